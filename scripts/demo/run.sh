#!/usr/bin/env bash
# The embedded CPU default, end to end: install, build the tiny model, fit, predict with the saved adapter; then a
# short fit on four dialogues shows a trained diary written back exactly, beside a diary for an unseen chat.
# Run from the repository root: bash scripts/demo/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .venv/bin/python ] || python3 -m venv .venv
# torch first, pinned: a bare requirement would pull a multi-GB CUDA build.
# The dev extras too: the README's next command, the tests, runs in this venv.
.venv/bin/pip install -q torch==2.13.0 -e '.[dev]'
py=.venv/bin/python
$py -m diary_lightning.model.tiny --output runs/tiny-model --force   # seconds: random weights pre-trained on the chats
# The demo's runs start afresh: fit refuses a folder that holds another run's checkpoints.
rm -rf runs/tiny runs/tiny-four
$py -m diary_lightning fit --config configs/tiny.yaml
# With the adapter fit exported (its best checkpoint by val/loss), the one a service would load.
$py -m diary_lightning predict --config configs/tiny.yaml --model.adapter_path runs/tiny/checkpoints/adapter \
    --output runs/tiny/diaries.jsonl
# What a model this small can show: that the loop is right. Four dialogues, learned until greedy decoding from the
# saved checkpoint writes each diary back and stops, as tests/test_memorize.py does: on a random tiny model (no
# pre-training), which learns four diaries by heart in 150 steps where the pre-trained one is still far off.
$py -m diary_lightning.model.tiny --output runs/tiny-model-random --pretrain-steps 0 --force
$py scripts/demo/demo_show.py four runs/tiny-four/four.jsonl
four=(--config configs/tiny.yaml --model.base_model runs/tiny-model-random --trainer.default_root_dir runs/tiny-four
      --data.paths '[runs/tiny-four/four.jsonl]'
      --data.val_fraction 0.0 --data.test_fraction 0.0 --trainer.limit_val_batches 0 --model.warmup_steps 10
      --model.max_new_tokens 80 --trainer.log_every_n_steps 1)   # one batch an epoch: log every step
$py -m diary_lightning fit "${four[@]}"
$py -m diary_lightning predict "${four[@]}" --ckpt_path runs/tiny-four/checkpoints/last.ckpt \
    --data.predict_path runs/tiny-four/four.jsonl --output runs/tiny-four/diaries.jsonl
# Last, the benchmark's report for the main fit's adapter: 40 of the dev chats, spread over their settings
# (docs/benchmark.md), the tiny adapter and its untuned base beside the reference diaries (every metric's ceiling) and
# the writer's own lines (a floor). A model this small lands at or below the floor: what the report shows here is the
# path a real adapter takes, not a result.
$py -m diary_lightning evaluate --output runs/tiny/benchmark --adapter_path tiny-adapter=runs/tiny/checkpoints/adapter \
    --zero_shot runs/tiny-model --limit 40
echo
echo "diaries:         runs/tiny/diaries.jsonl (unseen chats), runs/tiny-four/diaries.jsonl (trained ones)"
echo "checkpoints:     runs/tiny/checkpoints/ (adapters only)"
echo "adapter:         runs/tiny/checkpoints/adapter (PEFT folder; DiaryPipeline.from_pretrained; README.md, its model card, with the benchmark's results)"
echo "benchmark:       runs/tiny/benchmark/report.md and metrics.png (dev split: tiny adapter, base, reference, floor)"
echo "TensorBoard:     .venv/bin/tensorboard --logdir runs/tiny   (the Custom Scalars tab: both losses on one chart)"
echo
$py scripts/demo/demo_show.py show runs/tiny-four/four.jsonl runs/tiny-four/diaries.jsonl runs/tiny/diaries.jsonl \
    runs/tiny-four runs/tiny runs/tiny-model-random

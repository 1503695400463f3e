#!/usr/bin/env bash
# The embedded CPU default, end to end: install, build the tiny model, fit, predict with the saved adapter.
# Run from the repository root: bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
# torch first, pinned: a bare requirement would pull a multi-GB CUDA build.
.venv/bin/pip install -q torch==2.13.0 -e .
py=.venv/bin/python
$py -m diary_lightning.model.tiny --output runs/tiny-model --force   # seconds: random weights pre-trained on the chats
# The demo's run starts afresh: fit refuses a folder that holds another run's checkpoints.
rm -rf runs/tiny
$py -m diary_lightning fit --config configs/tiny.yaml
$py -m diary_lightning predict --config configs/tiny.yaml --ckpt_path runs/tiny/checkpoints/last.ckpt \
    --output runs/tiny/diaries.jsonl
echo
echo "diaries:         runs/tiny/diaries.jsonl"
echo "checkpoints:     runs/tiny/checkpoints/ (adapters only)"
echo "adapter:         runs/tiny/checkpoints/adapter (PEFT folder; DiaryPipeline.from_pretrained)"
echo "TensorBoard:     .venv/bin/tensorboard --logdir runs/tiny"

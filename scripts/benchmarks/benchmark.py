"""diary_lightning against TRL's SFTTrainer on the same QLoRA work, side by side.

    python scripts/benchmarks/benchmark.py --data /path/to/aihub --steps 100 --batch-size 4 --max-length 512 --json bench.json

Each run is a fresh process, so that its peak memory is its own. The runs alternate (diary_lightning, TRL,
diary_lightning, TRL, ...) so that a slow spell of a shared machine hits both alike. Both sides get the same
base model loaded in 4-bit NF4, the same LoRA (r, alpha, dropout, target modules), optimizer, learning-rate
schedule, gradient clipping, batch size, max length, number of optimizer steps and seed, and the same
examples: the prompts and targets of diary_lightning's train split, with the oldest turns already dropped
where a dialogue did not fit ``max_length``. TRL receives them as a ``prompt``/``completion`` dataset
(completion-only loss) and tokenizes them itself; the script checks that its token ids and labels are
identical to diary_lightning's, and stops if not.

What is left as each side does it by default: the order of the batches (diary_lightning groups them by
length; TRL shuffles, or groups with ``--trl-group-by-length``), TRL casting the LoRA weights of a quantized
model to bf16, and TRL's per-step entropy and token-accuracy metrics.

Figures, from the start of training (model loaded, data tokenized) to the end of the last step: seconds per
optimizer step, real (attention mask) and padded tokens per second, peak memory (resident set size on the
CPU, ``torch.cuda.max_memory_allocated`` on a GPU). The table gives the median over the runs of each side,
and the median over the pairs of the ratio diary_lightning / TRL.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIDES = ("diary_lightning", "TRL")
FIGURES = (  # key, column title, format, better when higher
    ("seconds_per_step", "s / step", "{:.3f}", False),
    ("real_tokens_per_second", "real tokens / s", "{:,.0f}", True),
    ("padded_tokens_per_second", "padded tokens / s", "{:,.0f}", True),
    ("peak_memory_mib", "peak memory (MiB)", "{:,.0f}", False),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="base model directory; absent: a tiny random Llama is built in --workdir")
    parser.add_argument("--data", help="training dialogues, anything data.paths accepts (default: the bundled sample)")
    parser.add_argument("--steps", type=int, help="optimizer steps per run (default: one epoch of the train split)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--pairs", type=int, default=3, help="runs of each side, alternating (default: %(default)s)")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--lora-alpha", type=int, default=32)
    parser.add_argument("--lora-dropout", type=float, default=0.05)
    parser.add_argument("--target-modules", default="all-linear")
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--warmup-steps", type=int, default=0)
    parser.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping; 0: none")
    parser.add_argument("--compute-dtype", choices=("float32", "bfloat16"),
                        help="default: bfloat16 on a GPU, float32 on the CPU")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="on both sides (default: off)")
    parser.add_argument("--loss-chunk-size", type=int, default=0,
                        help="diary_lightning's model.loss_chunk_size (configs/eeve-qlora.yaml: 2048; default: 0, off)")
    parser.add_argument("--trl-group-by-length", action="store_true",
                        help="give TRL length-grouped batches too (transformers' group_by_length sampler)")
    parser.add_argument("--hidden-size", type=int, default=256, help="of the tiny model built without --model")
    parser.add_argument("--num-layers", type=int, default=4, help="of the tiny model built without --model")
    parser.add_argument("--workdir", help="models, data and results of the runs (default: a temporary directory)")
    parser.add_argument("--json", help="write every run and the summary to this file")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "max_length", "pairs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')}={value}: expected 1 or more")
    return args


# -- the two workers: each runs in its own process --------------------------------------------------------
def run_diary_lightning(spec: dict[str, Any]) -> None:
    """One fit through the project's command line, with a trainer that only trains."""
    from diary_lightning.cli.commands import main

    clock = {"class_path": "step_clock.StepClock", "init_args": {"output": spec["result"]}}
    main([
        "fit",
        "--model.base_model", spec["model"],
        "--model.compute_dtype", spec["compute_dtype"],
        "--model.lora_r", str(spec["lora_r"]),
        "--model.lora_alpha", str(spec["lora_alpha"]),
        "--model.lora_dropout", str(spec["lora_dropout"]),
        "--model.target_modules", spec["target_modules"],
        "--model.learning_rate", str(spec["learning_rate"]),
        "--model.warmup_steps", str(spec["warmup_steps"]),
        "--model.lr_scheduler", "cosine",
        "--model.optimizer", "adamw",
        "--model.gradient_checkpointing", str(spec["gradient_checkpointing"]).lower(),
        "--model.loss_chunk_size", str(spec["loss_chunk_size"]),
        "--data.paths", json.dumps([spec["data"]]),
        "--data.batch_size", str(spec["batch_size"]),
        "--data.max_length", str(spec["max_length"]),
        "--data.cache_dir", spec["cache_dir"],
        "--data.val_generate_samples", "0",
        "--trainer.accelerator", spec["accelerator"],
        "--trainer.devices", "1",
        "--trainer.precision", "bf16-mixed" if spec["compute_dtype"] == "bfloat16" else "32-true",
        "--trainer.max_steps", str(spec["steps"]),
        "--trainer.gradient_clip_val", str(spec["max_grad_norm"] or "null"),
        "--trainer.limit_val_batches", "0",
        "--trainer.num_sanity_val_steps", "0",
        "--trainer.enable_checkpointing", "false",
        "--trainer.logger", "false",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--trainer.default_root_dir", spec["run_dir"],
        "--trainer.callbacks+", json.dumps(clock),
    ])


def run_trl(spec: dict[str, Any]) -> None:
    """The usual QLoRA recipe: a 4-bit base, a LoraConfig and TRL's SFTTrainer on a prompt/completion dataset.

    diary_lightning is not imported here: it would load Lightning into this process and inflate its memory.
    """
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    dtype = getattr(torch, spec["compute_dtype"])
    on_gpu = spec["accelerator"] == "gpu"
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    if tokenizer.pad_token is None:  # as diary_lightning does: pads never reach the loss
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        spec["model"],
        dtype=dtype,
        attn_implementation="sdpa",
        quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype,
        ),
        device_map={"": 0 if on_gpu else "cpu"},
    )
    lora = LoraConfig(r=spec["lora_r"], lora_alpha=spec["lora_alpha"], lora_dropout=spec["lora_dropout"],
                      target_modules=spec["target_modules"], task_type="CAUSAL_LM")
    config = SFTConfig(
        output_dir=spec["run_dir"],
        max_length=spec["max_length"],
        per_device_train_batch_size=spec["batch_size"],
        max_steps=spec["steps"],
        learning_rate=spec["learning_rate"],
        warmup_steps=spec["warmup_steps"],
        lr_scheduler_type="cosine",
        weight_decay=0.0,
        optim="adamw_torch",
        max_grad_norm=spec["max_grad_norm"],
        completion_only_loss=True,
        gradient_checkpointing=spec["gradient_checkpointing"],
        gradient_checkpointing_kwargs={"use_reentrant": False},
        bf16=spec["compute_dtype"] == "bfloat16",
        use_cpu=not on_gpu,
        train_sampling_strategy="group_by_length" if spec["trl_group_by_length"] else "random",
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=42,
    )
    counts = {"real": 0, "padded": 0}

    class Clock(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            _synchronize(on_gpu)
            counts["start"] = time.perf_counter()

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            _synchronize(on_gpu)
            counts["seconds"] = time.perf_counter() - counts["start"]
            counts["steps"] = state.global_step

    class CountingSFTTrainer(SFTTrainer):
        def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
            mask = inputs["attention_mask"]
            counts["real"] = counts["real"] + mask.sum()  # kept on the device: no synchronization per step
            counts["padded"] += mask.numel()
            return super().training_step(model, inputs, num_items_in_batch)

    train = Dataset.from_json(spec["trl_data"])
    trainer = CountingSFTTrainer(model=model, args=config, train_dataset=train, processing_class=tokenizer,
                                 peft_config=lora, callbacks=[Clock()])
    prepared = trainer.train_dataset
    fingerprint = examples_fingerprint(prepared["input_ids"], prepared["labels"])
    if fingerprint != spec["fingerprint"]:
        raise SystemExit("TRL tokenized the prompts and targets differently from diary_lightning: "
                         "the two would not do the same work")
    trainer.train()
    from peak_memory import peak_memory_bytes

    Path(spec["result"]).write_text(json.dumps({
        "steps": counts["steps"], "seconds": counts["seconds"], "real_tokens": int(counts["real"]),
        "padded_tokens": counts["padded"], "peak_memory_bytes": peak_memory_bytes(),
    }))


def _synchronize(on_gpu: bool) -> None:
    if on_gpu:
        import torch

        torch.cuda.synchronize()


def examples_fingerprint(input_ids: Any, labels: Any) -> str:
    """One hash of every example's token ids and labels, in order."""
    digest = hashlib.sha256()
    for ids, lab in zip(input_ids, labels):
        digest.update(json.dumps([list(ids), list(lab)]).encode())
    return digest.hexdigest()


# -- the parent: prepares the shared inputs, alternates the runs, prints the table -----------------------
def prepare(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The model, the tokenized train split (in diary_lightning's cache) and the same examples for TRL."""
    import torch

    from diary_lightning.data.prompts import render_prompt
    from diary_lightning.data.records import Turn
    from diary_lightning.model.tiny import build_tiny_model, sample_data_path
    from diary_lightning.training.datamodule import DiaryDataModule

    model = args.model or str(build_tiny_model(workdir / f"tiny-h{args.hidden_size}-l{args.num_layers}",
                                               hidden_size=args.hidden_size, num_layers=args.num_layers))
    data = str(Path(args.data).resolve()) if args.data else str(sample_data_path())
    on_gpu = torch.cuda.is_available()
    datamodule = DiaryDataModule(paths=[data], tokenizer=model, batch_size=args.batch_size,
                                 max_length=args.max_length, cache_dir=str(workdir / "cache"), val_generate_samples=0)
    train = datamodule.splits()["train"]
    eos = datamodule.tokenizer.eos_token
    trl_data = workdir / "trl-train.jsonl"
    with open(trl_data, "w", encoding="utf-8") as f:
        for row in train:
            # The turns diary_lightning kept after dropping the oldest ones to fit max_length.
            turns = [Turn(s, t) for s, t in zip(row["speakers"], row["texts"])][row["turns_cut"]:]
            prompt = render_prompt(datamodule.template, turns)  # the speakers are already the prompt's labels
            f.write(json.dumps({"prompt": prompt, "completion": row["summary"] + eos}, ensure_ascii=False) + "\n")
    lengths = [len(ids) for ids in train["input_ids"]]
    return {
        "model": model,
        "data": data,
        "trl_data": str(trl_data),
        "fingerprint": examples_fingerprint(train["input_ids"], train["labels"]),
        "cache_dir": str(workdir / "cache"),
        "accelerator": "gpu" if on_gpu else "cpu",
        "compute_dtype": args.compute_dtype or ("bfloat16" if on_gpu else "float32"),
        "steps": args.steps or math.ceil(len(train) / args.batch_size),
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "lora_r": args.lora_r,
        "lora_alpha": args.lora_alpha,
        "lora_dropout": args.lora_dropout,
        "target_modules": args.target_modules,
        "learning_rate": args.learning_rate,
        "warmup_steps": args.warmup_steps,
        "max_grad_norm": args.max_grad_norm,
        "gradient_checkpointing": args.gradient_checkpointing,
        "loss_chunk_size": args.loss_chunk_size,
        "trl_group_by_length": args.trl_group_by_length,
        "train_examples": len(train),
        "train_tokens": {"mean": statistics.mean(lengths), "median": statistics.median(lengths),
                         "max": max(lengths), "min": min(lengths)},
    }


def run_side(side: str, spec: dict[str, Any], workdir: Path, index: int) -> dict[str, Any]:
    run_spec = dict(spec, run_dir=str(workdir / f"run-{side}-{index}"), result=str(workdir / f"result-{side}-{index}.json"))
    spec_path = workdir / f"spec-{side}-{index}.json"
    spec_path.write_text(json.dumps(run_spec))
    Path(run_spec["result"]).unlink(missing_ok=True)
    command = [sys.executable, os.path.abspath(__file__), "--worker", side, "--spec", str(spec_path)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not Path(run_spec["result"]).is_file():
        raise SystemExit(f"the {side} run {index} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    raw = json.loads(Path(run_spec["result"]).read_text())
    if raw["steps"] != spec["steps"]:
        raise SystemExit(f"the {side} run {index} made {raw['steps']} optimizer steps, not {spec['steps']}")
    return {
        **raw,
        "seconds_per_step": raw["seconds"] / raw["steps"],
        "real_tokens_per_second": raw["real_tokens"] / raw["seconds"],
        "padded_tokens_per_second": raw["padded_tokens"] / raw["seconds"],
        "peak_memory_mib": raw["peak_memory_bytes"] / 2**20,
    }


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    summary: dict[str, dict[str, float]] = {side: {} for side in (*SIDES, "ratio")}
    for key, *_ in FIGURES:
        for side in SIDES:
            summary[side][key] = statistics.median(r[key] for r in runs[side])
        summary["ratio"][key] = statistics.median(a[key] / b[key] for a, b in zip(*(runs[s] for s in SIDES)))
    return summary


def markdown_table(summary: dict[str, dict[str, float]]) -> str:
    lines = ["| run | " + " | ".join(title for _, title, *_ in FIGURES) + " |",
             "| --- |" + " ---: |" * len(FIGURES)]
    for side in SIDES:
        lines.append(f"| {side} | " + " | ".join(fmt.format(summary[side][key]) for key, _, fmt, _ in FIGURES) + " |")
    ratios = [f"{summary['ratio'][key]:.2f}× ({'higher' if up else 'lower'} is better)" for key, _, _, up in FIGURES]
    lines.append("| diary_lightning / TRL | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


def differences(spec: dict[str, Any]) -> list[str]:
    """What the two sides still do differently on the same examples and settings."""
    return [
        "batch order: diary_lightning groups by length; TRL " + ("groups too" if spec["trl_group_by_length"]
                                                                   else "shuffles (more padding)"),
        "loss: diary_lightning " + (f"{spec['loss_chunk_size']} labelled tokens' logits at a time"
                                    if spec["loss_chunk_size"] else "from the full logits")
        + "; TRL the model's own LM head and cross-entropy",
        "TRL casts LoRA to bf16 on a quantized bf16 model and computes entropy and token accuracy every step",
        "diary_lightning's norms, embeddings and LM head in float32 (prepare_model_for_kbit_training), TRL's as "
        "loaded" + (" (the same here: float32 compute)" if spec["compute_dtype"] == "float32" else ""),
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        spec = json.loads(Path(args.spec).read_text())
        (run_diary_lightning if args.worker == "diary_lightning" else run_trl)(spec)
        return
    with tempfile.TemporaryDirectory(prefix="diary-bench-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        spec = prepare(args, workdir)
        print(f"{spec['train_examples']} training examples, {spec['train_tokens']['median']:.0f} tokens median, "
              f"{spec['train_tokens']['max']} max; {spec['steps']} steps of batch {spec['batch_size']}, "
              f"{spec['accelerator']}, {spec['compute_dtype']}; {args.pairs} pair(s) of runs", file=sys.stderr)
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        for index in range(args.pairs):
            for side in SIDES:
                runs[side].append(run_side(side, spec, workdir, index))
                last = runs[side][-1]
                print(f"pair {index + 1} {side}: {last['seconds_per_step']:.3f} s/step, "
                      f"{last['real_tokens_per_second']:,.0f} real tokens/s, {last['peak_memory_mib']:,.0f} MiB",
                      file=sys.stderr)
        real = {side: {r["real_tokens"] for r in runs[side]} for side in SIDES}
        summary = summarize(runs)
        print(markdown_table(summary))
        print("\nWhat differs between the sides, in the ratio above:")
        for line in differences(spec):
            print(f"- {line}")
        if real["diary_lightning"] != real["TRL"]:
            print(f"\nReal tokens trained on differ ({sorted(real['diary_lightning'])} vs {sorted(real['TRL'])}): "
                  "the steps cover other subsets of the examples; run one epoch (no --steps) for equal totals.")
        if args.json:
            Path(args.json).write_text(json.dumps({"spec": spec, "runs": runs, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()

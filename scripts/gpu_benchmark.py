"""QLoRA throughput of diary_lightning at EEVE-10.8B's shape, with random weights: tokens/s, peak memory, MFU.

    python scripts/gpu_benchmark.py --workdir /scratch/eeve-shape --json gpu-bench.json

No weights can be downloaded on a benchmark machine, so the base is built from EEVE-Korean-Instruct-10.8B's
shape (LlamaForCausalLM: 48 layers, hidden 4096, intermediate 14336, 32 heads, 8 KV heads, vocabulary 40960,
4096 positions) with random bf16 weights and saved, then loaded by the project's own loading code
(``diary_lightning.model.loading.build_model``) in 4-bit NF4 with LoRA, as ``configs/eeve-qlora.yaml`` does.
Training runs through a Lightning Trainer and ``DiaryLoRAModule.training_step`` on random full-length
sequences: for each sequence length, batch 1, 2, 4, ... until memory runs out (or ``--max-batch``).

``--trl`` runs the same configurations through TRL's SFTTrainer instead (the base loaded with a
``BitsAndBytesConfig`` and a ``peft.LoraConfig``, the same LoRA, optimizer, precision and checkpointing), the
recipe users compare against; ``scripts/gpu_check.sh`` runs both sides.

MFU is 6 · N · tokens/s over the bf16 matmul peak measured on this GPU (N: the base's parameter count).
Every size is a flag, so the same script runs on the CPU at a tiny size (float32, the fp32 matmul peak);
there peak memory is the process's resident set size, which only grows, so later rows include earlier ones.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shape = parser.add_argument_group("model shape (default: EEVE-Korean-Instruct-10.8B)")
    shape.add_argument("--layers", type=int, default=48)
    shape.add_argument("--hidden", type=int, default=4096)
    shape.add_argument("--intermediate", type=int, default=14336)
    shape.add_argument("--heads", type=int, default=32)
    shape.add_argument("--kv-heads", type=int, default=8)
    shape.add_argument("--vocab", type=int, default=40960)
    shape.add_argument("--positions", type=int, default=4096)
    parser.add_argument("--seq-lengths", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--max-batch", type=int, default=64, help="largest batch tried per sequence length")
    parser.add_argument("--tokens-per-step", type=int,
                        help="one batch per sequence length, of this many tokens (default: batch 1, 2, 4, ...)")
    parser.add_argument("--trl", action="store_true", help="train through TRL's SFTTrainer instead")
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="untimed optimizer steps before them")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--lora-alpha", type=int, default=32)
    parser.add_argument("--no-gradient-checkpointing", action="store_true",
                        help="keep every activation (configs/eeve-qlora.yaml checkpoints them)")
    parser.add_argument("--optimizer", help="default: paged_adamw_8bit on a GPU, adamw on the CPU")
    parser.add_argument("--workdir", default="runs/eeve-shape", help="where the random base is saved and reused")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args(argv)
    for name in ("layers", "hidden", "intermediate", "heads", "kv_heads", "vocab", "positions", "max_batch", "steps",
                 "tokens_per_step"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}={getattr(args, name)}: expected 1 or more")
    if args.hidden % args.heads or args.heads % args.kv_heads:
        parser.error(f"--hidden {args.hidden}, --heads {args.heads}, --kv-heads {args.kv_heads}: "
                     "hidden must divide by heads and heads by kv-heads")
    if max(args.seq_lengths) > args.positions:
        parser.error(f"--seq-lengths up to {max(args.seq_lengths)} exceed --positions {args.positions}")
    return args


def build_random_base(args: argparse.Namespace, device: torch.device) -> tuple[Path, int]:
    """Save a random bf16 Llama of the requested shape (reused when present); returns its path and parameter count."""
    path = Path(args.workdir) / f"llama-l{args.layers}-h{args.hidden}-i{args.intermediate}-v{args.vocab}"
    meta = path / "parameters.json"
    if not meta.is_file():
        _save_random_base(args, device, path)
    if not (path / "tokenizer.json").is_file():
        # So that the folder loads as any hub model does (TRL's side pads with it); the benchmark's ids are
        # random, and the tokenizer's 2,048 ids fit any --vocab above that.
        from diary_lightning.model.tiny import build_tokenizer

        build_tokenizer().save_pretrained(path)
    return path, json.loads(meta.read_text())["parameters"]


def _save_random_base(args: argparse.Namespace, device: torch.device, path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        max_position_embeddings=args.positions, rms_norm_eps=1e-5, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    torch.manual_seed(0)
    # Initialised on the GPU, in bf16: 10.8B parameters are minutes on the CPU and twice the memory in fp32.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    parameters = sum(p.numel() for p in model.parameters())
    model.save_pretrained(path)
    (path / "parameters.json").write_text(json.dumps({"parameters": parameters}))
    del model
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def matmul_peak_flops(device: torch.device, dtype: torch.dtype) -> float:
    """The best of a few timed square matmuls: the peak the MFU is measured against."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(5):
        _sync(device)
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        _sync(device)
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * n**3 / best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _collate(rows: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
    from diary_lightning.data.batching import batch_counts

    batch = {key: torch.stack([row[key] for row in rows]) for key in rows[0]}
    return {**batch, **batch_counts(batch["attention_mask"], batch["labels"])}


class RandomSequences(torch.utils.data.Dataset):
    """Full-length sequences of random ids: no padding, every token scored."""

    def __init__(self, count: int, length: int, vocab: int) -> None:
        self.ids = torch.randint(3, vocab, (count, length), generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = self.ids[index]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def measure(module: Any, args: argparse.Namespace, device: torch.device, seq: int, batch: int) -> dict[str, Any] | None:
    """One configuration; None when it runs out of GPU memory."""
    import lightning as L
    from step_clock import StepClock  # beside this script

    steps = args.warmup + args.steps
    data = torch.utils.data.DataLoader(RandomSequences(batch * steps, seq, args.vocab), batch_size=batch,
                                       collate_fn=_collate)
    clock = StepClock(skip_steps=args.warmup)
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
        precision="bf16-mixed" if device.type == "cuda" else "32-true",
        max_steps=steps, limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[clock],
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        trainer.fit(module, train_dataloaders=data)
    except torch.cuda.OutOfMemoryError:
        return None
    finally:
        del trainer
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    result = clock.result
    return {"seq_length": seq, "batch_size": batch, "seconds_per_step": result["seconds"] / result["steps"],
            "tokens_per_second": result["real_tokens"] / result["seconds"],
            "peak_memory_gib": result["peak_memory_bytes"] / 2**30}


def batch_sizes(args: argparse.Namespace, seq: int) -> list[int]:
    if args.tokens_per_step:
        return [max(1, args.tokens_per_step // seq)]
    return [2**i for i in range(args.max_batch.bit_length()) if 2**i <= args.max_batch]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    dtype = "bfloat16" if device.type == "cuda" else "float32"
    print(f"building the random base on {device}", file=sys.stderr)
    path, parameters = build_random_base(args, device)
    peak = matmul_peak_flops(device, getattr(torch, dtype))
    print(f"{parameters / 1e9:.2f}B parameters; measured {dtype} matmul peak {peak / 1e12:.1f} TFLOP/s", file=sys.stderr)
    side = "TRL" if args.trl else "diary_lightning"
    optimizer = args.optimizer or ("paged_adamw_8bit" if device.type == "cuda" else "adamw")
    if args.trl:
        from trl_side import TRLSide

        run = TRLSide(path, args, device, dtype, optimizer)
    else:
        from diary_lightning.model.loading import build_model
        from diary_lightning.training.lora_module import DiaryLoRAModule

        module = DiaryLoRAModule(
            base_model=str(path), compute_dtype=dtype, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
            gradient_checkpointing=not args.no_gradient_checkpointing, optimizer=optimizer,
        )
        # The project's loading code, once: every configuration below trains the same 4-bit base.
        module.model = build_model(module.hparams, device)

        def run(seq: int, batch: int) -> dict[str, Any] | None:
            return measure(module, args, device, seq, batch)

    report = {"side": side, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "parameters": parameters, "peak_flops": peak, "compute_dtype": dtype,
              "optimizer": optimizer, "gradient_checkpointing": not args.no_gradient_checkpointing, "rows": []}
    rows = report["rows"]
    for seq in args.seq_lengths:
        for batch in batch_sizes(args, seq):
            row = run(seq, batch)
            if row is None:
                print(f"seq {seq}: batch {batch} does not fit", file=sys.stderr)
                break
            row["mfu"] = 6 * parameters * row["tokens_per_second"] / peak
            rows.append(row)
            print(f"{side} seq {seq} batch {batch}: {row['tokens_per_second']:,.0f} tokens/s, "
                  f"{row['peak_memory_gib']:.1f} GiB, MFU {100 * row['mfu']:.1f}%", file=sys.stderr)
            if args.json:  # after every row: a run stopped by a time limit keeps what it measured
                write_json(Path(args.json), report)
    print("| seq length | batch | s / step | tokens / s | peak memory (GiB) | MFU |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['seq_length']} | {r['batch_size']} | {r['seconds_per_step']:.3f} | {r['tokens_per_second']:,.0f} "
              f"| {r['peak_memory_gib']:.2f} | {100 * r['mfu']:.1f}% |")
    if args.json:
        write_json(Path(args.json), report)


def write_json(path: Path, report: dict[str, Any]) -> None:
    from diary_lightning.io.atomic import write_text

    write_text(path, json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

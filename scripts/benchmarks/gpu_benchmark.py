"""QLoRA throughput of diary_lightning at EEVE-10.8B's shape, with random weights: tokens/s, peak memory, MFU.

    python scripts/benchmarks/gpu_benchmark.py --workdir /scratch/eeve-shape --json gpu-bench.json

No weights can be downloaded on a benchmark machine, so the base is built from EEVE-Korean-Instruct-10.8B's
shape (LlamaForCausalLM: 48 layers, hidden 4096, intermediate 14336, 32 heads, 8 KV heads, vocabulary 40960,
4096 positions) with random bf16 weights and saved (``--build-only`` stops there), then loaded by the
project's own loading code (``diary_lightning.model.loading.build_model``) in 4-bit NF4 with LoRA.

``--config configs/eeve-qlora.yaml configs/eeve-lora-bf16.yaml`` loads the base unquantized in bf16 instead (``model.load_in_4bit:
false``): LoRA beside QLoRA on one card with room for 21.6 GB of weights.

It measures what the recipe runs: the training settings of ``--config`` (configs/eeve-qlora.yaml: the loss
path with its ``loss_chunk_size``, the optimizer, gradient checkpointing, the residual dtype, LoRA) through
a Lightning Trainer and ``DiaryLoRAModule.training_step``, on batches whose lengths are drawn from the real
length distribution of the bundled sample dialogues (scaled so that the longest is the sequence length;
``--lengths full`` for unpadded full-length rows) and whose labels cover the diary part, as the data
module's do, so that padding and the chunked loss's work are real. For each sequence length: ``--batch-size``,
or one batch of ``--tokens-per-step`` tokens, or batch 1, 2, 4, ... until memory runs out.

``--trl`` runs the same batches through TRL's SFTTrainer instead (scripts/benchmarks/trl_side.py), the recipe users
compare against; what the two sides still do differently is listed in the JSON (``differences``) and
printed beside the table. ``scripts/gpu/gpu_check.sh`` runs both sides.

``--predict-batches 32 1`` measures the service's side instead: diaries per second through the predict path's
generation (``diary_lightning.model.generation.generate_diaries``, the recipe's ``max_new_tokens``, greedy, in
inference mode under bf16 autocast as ``predict`` runs it) on prompts whose lengths are drawn from the sample.
With random weights a diary rarely ends before ``max_new_tokens``: the rows are the longest diaries' cost.

MFU is 6 · N · real tokens/s over the bf16 matmul peak measured on this GPU (N: the base's parameter count).
Every size is a flag, so the same script runs on the CPU at a tiny size (float32, the fp32 matmul peak);
there peak memory is the process's resident set size, which only grows, so later rows include earlier ones.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

# The base is a local folder and the GPU machine reaches no network: a name mistaken for a hub id would wait
# out the hub's retries. Set before transformers is imported, which reads them once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    # This checkout's package, installed or not (the GPU machine installs nothing of it): the code measured is
    # the code beside the script, never another copy on the path.
    sys.path.insert(0, str(ROOT))
# The recipe's training settings measured here, with their defaults where a config leaves one out
# (DiaryLoRAModule's own).
RECIPE = {"load_in_4bit": True, "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear",
          "optimizer": "adamw", "gradient_checkpointing": False, "loss_chunk_size": 0, "residual_dtype": "float32",
          "learning_rate": 2e-4, "max_new_tokens": 256}


def recipe_settings(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The configs' model settings (later ones override earlier ones, as the CLI's repeated ``--config``), with the
    command line's overrides."""
    import yaml

    model: dict[str, Any] = {}
    for config in args.config:
        model.update((yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}).get("model") or {})
    settings = {key: model.get(key, default) for key, default in RECIPE.items()}
    for key in ("optimizer", "loss_chunk_size", "residual_dtype"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.max_new_tokens is not None:
        settings["max_new_tokens"] = args.max_new_tokens
    if args.gradient_checkpointing is not None:
        settings["gradient_checkpointing"] = args.gradient_checkpointing == "true"
    if device.type != "cuda" and settings["optimizer"] != "adamw":
        settings["optimizer"] = "adamw"  # bitsandbytes' 8-bit optimizers need CUDA
    return settings



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
    parser.add_argument("--config", nargs="+", default=[str(ROOT / "configs" / "eeve-qlora.yaml")],
                        help="the recipe whose model settings are measured, and configs that override it, in order "
                             "(default: configs/eeve-qlora.yaml)")
    parser.add_argument("--seq-lengths", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--batch-size", type=int, help="one batch size for every sequence length")
    parser.add_argument("--lengths", choices=("sample", "full"), default="sample",
                        help="row lengths: drawn from the bundled sample's distribution, or all full (no padding)")
    parser.add_argument("--build-only", action="store_true", help="build and save the random base, then stop")
    parser.add_argument("--max-batch", type=int, default=64, help="largest batch tried per sequence length")
    parser.add_argument("--tokens-per-step", type=int,
                        help="one batch per sequence length, of this many tokens (default: batch 1, 2, 4, ...)")
    parser.add_argument("--trl", action="store_true", help="train through TRL's SFTTrainer instead")
    parser.add_argument("--predict-batches", type=int, nargs="+",
                        help="measure diaries per second through predict's generation at these batch sizes instead")
    parser.add_argument("--max-new-tokens", type=int, help="with --predict-batches (default: the config's)")
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="untimed optimizer steps before them")
    parser.add_argument("--gradient-checkpointing", choices=("true", "false"), help="default: the config's")
    parser.add_argument("--loss-chunk-size", type=int, help="default: the config's")
    parser.add_argument("--residual-dtype", choices=("float32", "bfloat16"), help="default: the config's")
    parser.add_argument("--optimizer", help="default: the config's (adamw on the CPU when it names a bitsandbytes one)")
    parser.add_argument("--workdir", default="runs/eeve-shape", help="where the random base is saved and reused")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args(argv)
    for name in ("layers", "hidden", "intermediate", "heads", "kv_heads", "vocab", "positions", "max_batch", "steps",
                 "tokens_per_step", "batch_size", "max_new_tokens"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}={getattr(args, name)}: expected 1 or more")
    if args.hidden % args.heads or args.heads % args.kv_heads:
        parser.error(f"--hidden {args.hidden}, --heads {args.heads}, --kv-heads {args.kv_heads}: "
                     "hidden must divide by heads and heads by kv-heads")
    if args.predict_batches and min(args.predict_batches) < 1:
        parser.error(f"--predict-batches {args.predict_batches}: expected 1 or more each")
    if args.trl and args.predict_batches:
        parser.error("--trl and --predict-batches: TRL's side trains; predict is diary_lightning's")
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


def sample_shapes(tokenizer_dir: Path) -> list[tuple[int, int]]:
    """(tokens, labelled tokens) of every bundled sample dialogue as the data module encodes it for training."""
    import tempfile

    from diary_lightning.training.datamodule import DiaryDataModule
    from diary_lightning.model.tiny import sample_data_path

    with tempfile.TemporaryDirectory() as cache:
        data = DiaryDataModule(paths=[str(sample_data_path())], tokenizer=str(tokenizer_dir), max_length=100_000,
                               cache_dir=cache, val_fraction=0, test_fraction=0, val_generate_samples=0)
        train = data.splits()["train"]
        return [(len(ids), sum(1 for t in labels if t != -100)) for ids, labels in zip(train["input_ids"], train["labels"])]


class Batches(torch.utils.data.Dataset):
    """Ready-made batches of random ids, the same for both sides: each row's length and labelled share drawn
    (seeded) from ``shapes`` scaled so that the longest dialogue is ``seq`` tokens, right-padded to the longest
    row of its batch, labels on the row's last tokens (the diary) as the data module puts them."""

    def __init__(self, shapes: list[tuple[int, int]], count: int, batch: int, seq: int, vocab: int) -> None:
        generator = torch.Generator().manual_seed(0)
        longest = max(n for n, _ in shapes)
        self.batches = []
        for _ in range(count):
            picks = torch.randint(len(shapes), (batch,), generator=generator).tolist()
            rows = [(max(2, round(seq * shapes[i][0] / longest)), shapes[i]) for i in picks]
            width = max(n for n, _ in rows)
            ids = torch.randint(3, vocab, (batch, width), generator=generator)
            mask = torch.zeros(batch, width, dtype=torch.long)
            labels = torch.full((batch, width), -100)
            for r, (n, (tokens, labelled)) in enumerate(rows):
                mask[r, :n] = 1
                scored = max(1, round(n * labelled / tokens))
                labels[r, n - scored : n] = ids[r, n - scored : n]
            ids[mask == 0] = 0
            self.batches.append({"input_ids": ids, "attention_mask": mask, "labels": labels})

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from diary_lightning.data.batching import batch_counts

        batch = self.batches[index]
        return {**batch, **batch_counts(batch["attention_mask"], batch["labels"])}


def make_batches(args: argparse.Namespace, shapes: list[tuple[int, int]], seq: int, batch: int) -> Batches:
    full = [(seq, seq)] if args.lengths == "full" else shapes
    return Batches(full, args.warmup + args.steps, batch, seq, args.vocab)


def measure(module: Any, args: argparse.Namespace, device: torch.device, batches: Batches) -> dict[str, Any] | None:
    """One configuration; None when it runs out of GPU memory."""
    import lightning as L

    from step_clock import StepClock  # beside this script

    data = torch.utils.data.DataLoader(batches, batch_size=None)  # already batched
    clock = StepClock(skip_steps=args.warmup)
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
        precision="bf16-mixed" if device.type == "cuda" else "32-true",
        max_steps=args.warmup + args.steps, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[clock],
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
    return {"seconds_per_step": result["seconds"] / result["steps"],
            "tokens_per_second": result["real_tokens"] / result["seconds"],
            "padded_tokens_per_second": result["padded_tokens"] / result["seconds"],
            "peak_memory_gib": result["peak_memory_bytes"] / 2**30}


def batch_sizes(args: argparse.Namespace, seq: int) -> list[int]:
    if args.batch_size:
        return [args.batch_size]
    if args.tokens_per_step:
        return [max(1, args.tokens_per_step // seq)]
    return [2**i for i in range(args.max_batch.bit_length()) if 2**i <= args.max_batch]


# What TRL's SFTTrainer does otherwise on the same batches; the measured ratio includes all of it.
TRL_DIFFERENCES = [
    "LoRA weights cast to bf16 for a quantized model (ours: float32 unless residual_dtype bfloat16)",
    "no prepare_model_for_kbit_training: norms, embeddings and LM head stay bf16, so the residual stream is bf16 "
    "(ours: float32 unless residual_dtype bfloat16)",
    "loss from the model's own LM head and cross-entropy (ours: loss_chunk_size labelled tokens at a time)",
    "entropy and token accuracy computed at every step, each with a host synchronization",
    "transformers' optimizer names and its AdamW implementation (adamw_torch)",
]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    dtype = "bfloat16" if device.type == "cuda" else "float32"
    print(f"building the random base on {device}", file=sys.stderr)
    path, parameters = build_random_base(args, device)
    if args.build_only:
        print(f"{parameters / 1e9:.2f}B parameters saved in {path}", file=sys.stderr)
        return
    settings = recipe_settings(args, device)
    shapes = sample_shapes(path)
    if args.predict_batches:
        predict_main(args, device, dtype, path, parameters, settings, shapes)
        return
    peak = matmul_peak_flops(device, getattr(torch, dtype))
    print(f"{parameters / 1e9:.2f}B parameters; measured {dtype} matmul peak {peak / 1e12:.1f} TFLOP/s", file=sys.stderr)
    side = "TRL" if args.trl else "diary_lightning"
    if args.trl:
        from trl_side import TRLSide

        run = TRLSide(path, {**settings, "warmup": args.warmup}, device, dtype)
    else:
        from diary_lightning.model.loading import build_model
        from diary_lightning.training.lora_module import DiaryLoRAModule

        module = load_module(path, dtype, settings, device)

        def run(batches: Batches) -> dict[str, Any] | None:
            return measure(module, args, device, batches)

    report = {"side": side, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "parameters": parameters, "peak_flops": peak, "compute_dtype": dtype,
              "config": args.config, "quantization": quantization(settings, args.trl), **settings,
              "lengths": args.lengths,
              "differences": TRL_DIFFERENCES if args.trl else [], "rows": []}
    rows = report["rows"]
    for seq in args.seq_lengths:
        for batch in batch_sizes(args, seq):
            batches = make_batches(args, shapes, seq, batch)
            row = run(batches)
            if row is None:
                print(f"seq {seq}: batch {batch} does not fit", file=sys.stderr)
                break
            real = sum(int(b["attention_mask"].sum()) for b in batches.batches)
            row = {"seq_length": seq, "batch_size": batch, **row,
                   "padding_efficiency": real / sum(b["attention_mask"].numel() for b in batches.batches),
                   "mfu": 6 * parameters * row["tokens_per_second"] / peak}
            rows.append(row)
            print(f"{side} seq {seq} batch {batch}: {row['tokens_per_second']:,.0f} real tokens/s, "
                  f"{row['peak_memory_gib']:.1f} GiB, MFU {100 * row['mfu']:.1f}%", file=sys.stderr)
            if args.json:  # after every row: a run stopped by a time limit keeps what it measured
                write_json(Path(args.json), report)
    print("| seq length | batch | s / step | real tokens / s | padding efficiency | peak memory (GiB) | MFU |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['seq_length']} | {r['batch_size']} | {r['seconds_per_step']:.3f} | {r['tokens_per_second']:,.0f} "
              f"| {100 * r['padding_efficiency']:.0f}% | {r['peak_memory_gib']:.2f} | {100 * r['mfu']:.1f}% |")
    print(f"settings: {', '.join(f'{k} {v}' for k, v in settings.items())}")
    for line in report["differences"]:
        print(f"differs from diary_lightning: {line}")
    if args.json:
        write_json(Path(args.json), report)


def quantization(settings: dict[str, Any], trl: bool = False) -> str:
    return "nf4" if settings["load_in_4bit"] or trl else "none (bf16 base)"


def load_module(path: Path, dtype: str, settings: dict[str, Any], device: torch.device) -> Any:
    """A DiaryLoRAModule with its model built once by the project's loading code: every configuration measured
    trains (or generates with) the same base. The style metric is off: Kiwi is not on the GPU machine, and no
    step measured here scores a diary."""
    from diary_lightning.model.loading import build_model
    from diary_lightning.training.lora_module import DiaryLoRAModule

    module = DiaryLoRAModule(base_model=str(path), compute_dtype=dtype, style_metric=False, **settings)
    module.model = build_model(module.hparams, device)
    return module


class Prompts:
    """Left-padded prompts of random ids, seeded, whose lengths are the sample dialogues' prompt parts (tokens
    less the labelled diary) in the order drawn; ``seq`` scales them as :class:`Batches` does."""

    def __init__(self, shapes: list[tuple[int, int]], batch: int, seq: int, vocab: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        longest = max(n for n, _ in shapes)
        picks = torch.randint(len(shapes), (batch,), generator=generator).tolist()
        lengths = [max(2, round(seq * (shapes[i][0] - shapes[i][1]) / longest)) for i in picks]
        width = max(lengths)
        self.input_ids = torch.randint(3, vocab, (batch, width), generator=generator)
        self.attention_mask = torch.zeros(batch, width, dtype=torch.long)
        for r, n in enumerate(lengths):
            self.attention_mask[r, width - n:] = 1
        self.input_ids[self.attention_mask == 0] = 0


def predict_main(args: argparse.Namespace, device: torch.device, dtype: str, path: Path, parameters: int,
                 settings: dict[str, Any], shapes: list[tuple[int, int]]) -> None:
    """Diaries per second through predict's generation at each of ``--predict-batches``."""
    from diary_lightning.model.generation import GenerationSettings, generate_diaries
    from diary_lightning.model.loading import load_tokenizer
    from peak_memory import peak_memory_bytes  # beside this script

    module = load_module(path, dtype, settings, device)
    model = module.model.eval()  # already on its device: build_model loads the base there (device_map)
    tokenizer = load_tokenizer(str(path))
    seq = max(args.seq_lengths)  # the longest dialogue's prompt at the longest length measured in training
    report = {"side": "predict", "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "parameters": parameters, "compute_dtype": dtype, "config": args.config,
              "quantization": quantization(settings), "max_new_tokens": settings["max_new_tokens"],
              "prompt_seq_length": seq, "rows": []}

    def generate(prompts: Prompts, max_new_tokens: int) -> list[str]:
        generation = GenerationSettings.from_mapping({**module.hparams, "max_new_tokens": max_new_tokens})
        # As predict runs under bf16-mixed: inference mode, bf16 autocast on the GPU.
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            diaries, _ = generate_diaries(model, tokenizer, prompts.input_ids.to(device),
                                          prompts.attention_mask.to(device), generation)
        return diaries

    generate(Prompts(shapes, 1, seq, args.vocab, seed=99), 4)  # warm-up: kernels and caches, untimed
    for batch in args.predict_batches:
        # At least two diaries at batch 1, so that one slow first call does not make the row.
        calls = max(1, 2 // batch)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        _sync(device)
        start = time.perf_counter()
        diaries = [d for call in range(calls)
                   for d in generate(Prompts(shapes, batch, seq, args.vocab, seed=call), settings["max_new_tokens"])]
        _sync(device)
        seconds = time.perf_counter() - start
        row = {"batch_size": batch, "diaries": len(diaries), "seconds": seconds,
               "diaries_per_second": len(diaries) / seconds,
               "peak_memory_gib": (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
                                   else peak_memory_bytes()) / 2**30}
        report["rows"].append(row)
        print(f"predict batch {batch}: {row['diaries_per_second']:.2f} diaries/s ({len(diaries)} diaries of up to "
              f"{settings['max_new_tokens']} tokens in {seconds:.1f} s), {row['peak_memory_gib']:.1f} GiB",
              file=sys.stderr)
        if args.json:
            write_json(Path(args.json), report)
    print("| eval batch | diaries | s | diaries / s | peak memory (GiB) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for r in report["rows"]:
        print(f"| {r['batch_size']} | {r['diaries']} | {r['seconds']:.1f} | {r['diaries_per_second']:.2f} "
              f"| {r['peak_memory_gib']:.2f} |")


def write_json(path: Path, report: dict[str, Any]) -> None:
    from diary_lightning.io.atomic import write_text

    write_text(path, json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

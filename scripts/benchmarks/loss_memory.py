"""Peak CPU memory of one training step (forward + backward) with and without ``model.loss_chunk_size``.

A random 4-bit Llama with EEVE's vocabulary (40,960) but a tiny body is saved to a temporary folder, then
each setting runs in a fresh process, whose peak resident memory during the step, above what it held
before the step, is reported. The body is kept small so that the logits dominate, as they do per token
for the real model:

    python scripts/benchmarks/loss_memory.py --vocab 40960 --seq 2048 --labelled 0.25
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile


def _step(model_dir: str, seq: int, labelled: float, chunk: int) -> dict[str, float]:
    import torch

    from diary_lightning.data.batching import batch_counts
    from diary_lightning.data.encoding import IGNORE_INDEX
    from diary_lightning.training.lora_module import DiaryLoRAModule

    module = DiaryLoRAModule(base_model=model_dir, compute_dtype="float32", lora_dropout=0.0, loss_chunk_size=chunk)
    module.configure_model()
    module.train()
    vocab = module.model.config.vocab_size
    ids = torch.randint(0, vocab, (1, seq), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, : seq - int(seq * labelled)] = IGNORE_INDEX  # the prompt; the diary is the labelled tail
    mask = torch.ones_like(ids)
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels, **batch_counts(mask, labels)}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    loss, _ = module._loss(batch)
    loss.backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"loss": float(loss), "step_peak_mib": (peak - before) / 1024}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=40960)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--labelled", type=float, default=1.0, help="share of the sequence in the loss")
    parser.add_argument("--chunks", type=int, nargs="+", default=[0, 1024, 256])
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.model_dir:  # one measurement, in the child process
        print(json.dumps(_step(args.model_dir, args.seq, args.labelled, args.chunk)))
        return

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    with tempfile.TemporaryDirectory() as tmp:
        config = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=2 * args.hidden,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=max(args.seq, 2048), tie_word_embeddings=False)
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(tmp)
        for chunk in args.chunks:
            out = subprocess.run([sys.executable, __file__, "--model-dir", tmp, "--chunk", str(chunk),
                                  "--seq", str(args.seq), "--labelled", str(args.labelled)],
                                 capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            name = f"loss_chunk_size {chunk}" if chunk else "full logits"
            print(f"{name:22s} step peak {result['step_peak_mib']:8.1f} MiB   loss {result['loss']:.6f}")


if __name__ == "__main__":
    main()

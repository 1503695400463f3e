"""How far a training step's LoRA gradients move after one evaluation forward, on the tiny model (issue 12 §1).

    python scripts/benchmarks/nf4_grad_error.py                 # as the project loads the model: 0
    python scripts/benchmarks/nf4_grad_error.py --repacking     # bitsandbytes' own behaviour: the error the fix removes

Builds the tiny random Llama, loads it in NF4 with LoRA (lora_B drawn non-zero, so every adapter gets a
gradient), and compares the adapter gradients of one training step taken after an eval-mode, no-grad
forward (what the sanity check, validation and generation do) with those of the same step without it:
relative error ||g_after - g|| / ||g|| per adapter tensor, median, max and per layer. Without AVX512-BF16
bitsandbytes never repacks, and both read 0.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import torch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repacking", action="store_true",
                        help="leave bitsandbytes' CPU repacking on, as before the fix")
    args = parser.parse_args(argv)

    import diary_lightning.model.loading as loading
    from diary_lightning.data.batching import batch_counts
    from diary_lightning.data.encoding import IGNORE_INDEX
    from diary_lightning.model.tiny import build_tiny_model
    from diary_lightning.training.lora_module import DiaryLoRAModule

    if args.repacking:
        loading.keep_nf4_unpacked = lambda model: 0
    model_dir = build_tiny_model(tempfile.mkdtemp(prefix="nf4-grad-") + "/model")

    def module() -> DiaryLoRAModule:
        m = DiaryLoRAModule(base_model=str(model_dir), compute_dtype="float32", lora_r=4, lora_alpha=8, lora_dropout=0.0)
        torch.manual_seed(0)
        m.configure_model()
        torch.manual_seed(1)
        for name, param in m.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.05)
        return m

    torch.manual_seed(2)
    ids = torch.randint(5, 200, (2, 30))
    mask = torch.ones_like(ids)
    labels = ids.clone()
    labels[:, :10] = IGNORE_INDEX
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels, **batch_counts(mask, labels)}

    def step_grads(m: DiaryLoRAModule) -> dict[str, torch.Tensor]:
        m.train()
        m.zero_grad()
        m._loss(batch)[0].backward()
        return {n: p.grad.clone() for n, p in m.named_parameters() if p.requires_grad}

    clean = step_grads(module())
    evaluated = module()
    evaluated.eval()
    with torch.no_grad():
        evaluated._loss(batch)
    after = step_grads(evaluated)
    errors = {n: ((after[n] - g).norm() / g.norm()).item() for n, g in clean.items()}
    print(f"relative error of the LoRA gradients after an evaluation forward ({len(errors)} tensors): "
          f"median {statistics.median(errors.values()):.3g}, max {max(errors.values()):.3g}")
    for layer in range(evaluated.model.config.num_hidden_layers):
        values = [e for n, e in errors.items() if f"layers.{layer}." in n]
        print(f"  layer {layer}: median {statistics.median(values):.3g}")


if __name__ == "__main__":
    main()

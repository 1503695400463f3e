"""TRL's side of scripts/gpu_benchmark.py: the same random sequences through SFTTrainer, the usual QLoRA recipe.

diary_lightning is not imported here, so that this process's memory is TRL's stack alone.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from peak_memory import peak_memory_bytes  # beside this script


class TRLSide:
    """Loads the base once in 4-bit NF4 (``BitsAndBytesConfig``, as TRL's documentation does); the first
    SFTTrainer adds LoRA from a ``LoraConfig``, later ones train that same PEFT model."""

    def __init__(self, path: Path, args: argparse.Namespace, device: torch.device, dtype: str, optimizer: str) -> None:
        from peft import LoraConfig
        from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

        self.args, self.device, self.on_gpu = args, device, device.type == "cuda"
        self.dtype = getattr(torch, dtype)
        # The project's optimizer names, in transformers' spelling.
        self.optim = {"adamw": "adamw_torch", "adamw_8bit": "adamw_bnb_8bit"}.get(optimizer, optimizer)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model: Any = AutoModelForCausalLM.from_pretrained(
            path, dtype=self.dtype, attn_implementation="sdpa",
            quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                   bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=self.dtype),
            device_map={"": device.index or 0} if self.on_gpu else {"": "cpu"},
        )
        self.lora: Any = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=0.05,
                                    target_modules="all-linear", task_type="CAUSAL_LM")

    def __call__(self, seq: int, batch: int) -> dict[str, Any] | None:
        from datasets import Dataset
        from transformers import TrainerCallback
        from trl import SFTConfig, SFTTrainer

        args, on_gpu = self.args, self.on_gpu
        steps = args.warmup + args.steps
        ids = torch.randint(3, args.vocab, (batch * steps, seq), generator=torch.Generator().manual_seed(0))
        data = Dataset.from_dict({"input_ids": ids.tolist()})  # already tokenized: TRL leaves it as it is
        clock: dict[str, float] = {}

        class Clock(TrainerCallback):
            def on_train_begin(self, _args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                clock["0"] = time.perf_counter()

            def on_step_end(self, _args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if state.global_step in (args.warmup, steps):
                    if on_gpu:
                        torch.cuda.synchronize()
                    clock[str(state.global_step)] = time.perf_counter()

        with tempfile.TemporaryDirectory() as out:
            config = SFTConfig(
                output_dir=out, max_length=seq, per_device_train_batch_size=batch, max_steps=steps,
                learning_rate=2e-4, lr_scheduler_type="constant", optim=self.optim,
                gradient_checkpointing=not args.no_gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False},
                bf16=self.dtype == torch.bfloat16, use_cpu=not on_gpu, save_strategy="no", eval_strategy="no",
                report_to="none", disable_tqdm=True, dataloader_num_workers=0, logging_steps=steps, seed=42,
            )
            if on_gpu:
                torch.cuda.reset_peak_memory_stats(self.device)
            trainer = SFTTrainer(model=self.model, args=config, train_dataset=data, processing_class=self.tokenizer,
                                 peft_config=self.lora, callbacks=[Clock()])
            try:
                trainer.train()
            except torch.cuda.OutOfMemoryError:
                return None
            finally:
                self.model, self.lora = trainer.model, None  # LoRA once; the next trainer reuses the PEFT model
                del trainer
                gc.collect()
                if on_gpu:
                    torch.cuda.empty_cache()
        seconds = clock[str(steps)] - clock[str(args.warmup)]
        peak = peak_memory_bytes()  # measured as StepClock measures diary_lightning's side
        return {"seq_length": seq, "batch_size": batch, "seconds_per_step": seconds / args.steps,
                "tokens_per_second": batch * seq * args.steps / seconds, "peak_memory_gib": peak / 2**30}

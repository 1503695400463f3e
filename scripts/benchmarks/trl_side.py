"""TRL's side of scripts/benchmarks/gpu_benchmark.py: the same batches through SFTTrainer, the usual QLoRA recipe.

diary_lightning is not imported here, so that this process's memory is TRL's stack alone.
"""

from __future__ import annotations

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

    def __init__(self, path: Path, settings: dict[str, Any], device: torch.device, dtype: str) -> None:
        from peft import LoraConfig
        from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

        self.settings, self.device, self.on_gpu = settings, device, device.type == "cuda"
        self.dtype = getattr(torch, dtype)
        # The project's optimizer names, in transformers' spelling.
        optimizer = settings["optimizer"]
        self.optim = {"adamw": "adamw_torch", "adamw_8bit": "adamw_bnb_8bit"}.get(optimizer, optimizer)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model: Any = AutoModelForCausalLM.from_pretrained(
            path, dtype=self.dtype, attn_implementation="sdpa",
            quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                   bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=self.dtype),
            device_map={"": device.index or 0} if self.on_gpu else {"": "cpu"},
        )
        self.lora: Any = LoraConfig(r=settings["lora_r"], lora_alpha=settings["lora_alpha"],
                                    lora_dropout=settings["lora_dropout"], target_modules=settings["target_modules"],
                                    task_type="CAUSAL_LM")

    def __call__(self, batches: Any) -> dict[str, Any] | None:
        """``batches``: gpu_benchmark.Batches. Their rows go to TRL unpadded and in order, with a completion mask
        where diary_lightning has labels; TRL pads each batch to its longest row again, as diary_lightning's was."""
        from datasets import Dataset
        from transformers import TrainerCallback
        from trl import SFTConfig, SFTTrainer

        on_gpu, settings = self.on_gpu, self.settings
        warmup = self.settings.get("warmup", 1)
        steps = len(batches.batches)
        rows: dict[str, list] = {"input_ids": [], "completion_mask": []}
        for b in batches.batches:
            for ids, mask, labels in zip(b["input_ids"], b["attention_mask"], b["labels"]):
                n = int(mask.sum())
                rows["input_ids"].append(ids[:n].tolist())
                rows["completion_mask"].append((labels[:n] != -100).long().tolist())
        data = Dataset.from_dict(rows)  # already tokenized: TRL leaves it as it is
        batch, seq = len(batches.batches[0]["input_ids"]), max(len(r) for r in rows["input_ids"])
        clock: dict[str, float] = {}

        class Clock(TrainerCallback):
            def on_train_begin(self, _args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                clock["0"] = time.perf_counter()

            def on_step_end(self, _args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if state.global_step in (warmup, steps):
                    if on_gpu:
                        torch.cuda.synchronize()
                    clock[str(state.global_step)] = time.perf_counter()

        with tempfile.TemporaryDirectory() as out:
            options = dict(
                output_dir=out, max_length=seq, per_device_train_batch_size=batch, max_steps=steps,
                learning_rate=settings["learning_rate"], lr_scheduler_type="constant", optim=self.optim,
                completion_only_loss=True, gradient_checkpointing=settings["gradient_checkpointing"],
                gradient_checkpointing_kwargs={"use_reentrant": False},
                bf16=self.dtype == torch.bfloat16, use_cpu=not on_gpu, save_strategy="no", eval_strategy="no",
                report_to="none", disable_tqdm=True, dataloader_num_workers=0, logging_steps=steps, seed=42,
                train_sampling_strategy="sequential",  # the rows in order: the same batches as diary_lightning's
            )
            try:
                config = SFTConfig(**options)
            except TypeError:  # a transformers without train_sampling_strategy: TRL shuffles the rows
                del options["train_sampling_strategy"]
                config = SFTConfig(**options)
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
        seconds = clock[str(steps)] - clock[str(warmup)]
        peak = peak_memory_bytes()  # measured as StepClock measures diary_lightning's side
        timed = batches.batches[warmup:]
        real = sum(int(b["attention_mask"].sum()) for b in timed)
        padded = sum(b["attention_mask"].numel() for b in timed)
        return {"seconds_per_step": seconds / len(timed), "tokens_per_second": real / seconds,
                "padded_tokens_per_second": padded / seconds, "peak_memory_gib": peak / 2**30}

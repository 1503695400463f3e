"""The LightningModule: a (4-bit) causal LM with LoRA adapters; only the adapters train and are saved."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal, get_args

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn

from diary_lightning.errors import ConfigError, check_numbers
from diary_lightning.evaluation import samples as evaluation
from diary_lightning.evaluation.diary_style import require_kiwi
from diary_lightning.evaluation.metrics import DEFAULT_ROUGE_TOKENIZER, RougeTokenizer, get_rouge_tokenizer
from diary_lightning.model.generation import GenerationSettings, generate_diaries
from diary_lightning.model.loading import (
    ComputeDtype,
    adapter_state,
    build_model,
    check_positions,
    load_adapter_checkpoint,
)
from diary_lightning.model.metadata import CHECKPOINT_KEY, BaseFingerprint, RunMetadata, check_base, read_adapter
from diary_lightning.model.settings import RunSettings
from diary_lightning.model.loss import TokenMeanGradients, check_chunked_loss_support, peft_chunked_loss
from diary_lightning.training.lightning_internals import attached, logged_step

log = logging.getLogger(__name__)

GENERATION = GenerationSettings()
"""The generation settings' defaults, declared once (in GenerationSettings); ``model.*`` flags override them."""

TENSORBOARD_LAYOUT = {
    "losses": {"train/loss and val/loss (nats per diary token)": ["Multiline", ["train/loss", "val/loss"]]},
    "diaries written at validation": {"scores": ["Multiline", ["val/rougeL", "val/chrf"]],
                                      "cut at max_new_tokens": ["Multiline", ["val/truncated_frac"]]},
}
"""The Custom Scalars page of a run: what a user opens TensorBoard for."""



class DiaryLoRAModule(L.LightningModule):
    def __init__(
        self,
        base_model: str | None = None,
        load_in_4bit: bool = True,
        compute_dtype: ComputeDtype = "bfloat16",
        double_quant: bool = True,
        lora_r: int = 16,
        lora_alpha: int = 32,
        lora_dropout: float = 0.05,
        target_modules: list[str] | str = "all-linear",
        learning_rate: float = 2e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        lr_scheduler: Scheduler = "cosine",
        optimizer: Optimizer = "adamw",
        gradient_checkpointing: bool = False,
        loss_chunk_size: int = 0,
        residual_dtype: ResidualDtype = "float32",
        attn_implementation: str | None = "sdpa",
        trust_remote_code: bool = False,
        max_new_tokens: int = GENERATION.max_new_tokens,
        num_beams: int = GENERATION.num_beams,
        do_sample: bool = GENERATION.do_sample,
        temperature: float = GENERATION.temperature,
        top_p: float = GENERATION.top_p,
        repetition_penalty: float = GENERATION.repetition_penalty,
        no_repeat_ngram_size: int = GENERATION.no_repeat_ngram_size,
        generate_every_n_val: int = 1,
        rouge_tokenizer: RougeTokenizer = DEFAULT_ROUGE_TOKENIZER,
        style_metric: bool = True,
        adapter_path: str | None = None,
        allow_other_base: bool = False,
    ) -> None:
        """
        Args:
            base_model: Hub id or local directory of the causal LM (and its tokenizer). Optional with
                ``--ckpt_path`` or ``adapter_path`` outside fit: then the one they were trained on.
            load_in_4bit: Quantize the frozen base to 4-bit NF4 with bitsandbytes (QLoRA).
            compute_dtype: dtype of the matmuls and unquantized weights: ``bfloat16`` on GPUs, ``float32`` on CPU.
            double_quant: Also quantize the quantization constants (saves ~0.4 bit per weight).
            lora_r: LoRA rank; higher: more capacity, more memory.
            lora_alpha: LoRA scale numerator (the update is scaled by alpha / r).
            lora_dropout: Dropout on the LoRA input.
            target_modules: Layers that get adapters: ``all-linear`` or a list of module names.
            learning_rate: Peak learning rate of the adapters.
            weight_decay: AdamW weight decay.
            warmup_steps: Linear warm-up, in optimizer steps.
            lr_scheduler: After warm-up: ``cosine`` or ``linear`` decay to zero, or ``constant``.
            optimizer: ``adamw`` (torch), ``adamw_8bit`` or ``paged_adamw_8bit`` (bitsandbytes, GPU).
            gradient_checkpointing: Recompute activations in backward (non-reentrant): much less memory, ~30% slower.
                Off, a layer keeps its activations for backward, about 34 bytes per token per hidden unit in
                bf16 (EEVE-10.8B: ~6.5 GiB per 1,000 tokens of the batch over its 48 layers); on, one layer's
                input (~0.4 GiB per 1,000 tokens) plus one layer recomputed at a time.
            loss_chunk_size: Compute the loss from the final hidden states, this many labelled tokens at a time,
                recomputing their logits in backward, instead of the full ``seq x vocab`` logits (0: off, the
                model's own loss). Same value and gradients; less memory at long sequences and large vocabularies.
            residual_dtype: dtype of the residual stream (embeddings, norms, LM head) and of the LoRA weights with a
                4-bit base: ``float32`` (PEFT's ``prepare_model_for_kbit_training``: more exact, more memory and
                casts) or ``bfloat16`` (left as loaded and LoRA cast to bf16, as TRL's SFTTrainer does).
            attn_implementation: transformers attention kernel (``sdpa``, ``eager``, ``flash_attention_2``).
            trust_remote_code: Allow a model repository to run its own code; off unless you trust it.
            max_new_tokens: Longest diary generated, in tokens.
            num_beams: Beam search width (1: greedy).
            do_sample: Sample instead of greedy/beam search.
            temperature: Sampling temperature (with ``do_sample``).
            top_p: Nucleus sampling mass (with ``do_sample``).
            repetition_penalty: >1 discourages repeating tokens.
            no_repeat_ngram_size: Forbid repeating n-grams of this size (0: off).
            generate_every_n_val: During fit, write and score diaries for the fixed subset of the val split
                (``data.val_generate_samples``) at every n-th validation; ``validate`` always does.
            rouge_tokenizer: Units ROUGE counts: ``char`` (syllables, no dependency), ``eojeol`` (words)
                or ``morpheme`` (kiwipiepy, the ``korean`` extra).
            style_metric: Check every generated diary with Kiwi (kiwipiepy and kiwipiepy_model): its style
                (``SPLIT/diary_style`` and the shares per check, each predicted diary's ``style_failures``) and
                its faithfulness to the chat (``faithfulness_failures``), both of which read Kiwi's morphemes.
                Off, nothing needs Kiwi (a machine it cannot reach, such as the GPU check's): diaries are still
                generated and ROUGE/chrF scored, and both failure lists are null.
            adapter_path: An exported PEFT adapter folder (``export``, or ``CHECKPOINT_DIR/adapter`` after fit) to
                validate, test or predict with instead of ``--ckpt_path``; its LoRA shape replaces ``lora_*``
                and its prompt settings are used.
            allow_other_base: Load a checkpoint or adapter onto a base model of the same shape but other weights
                than the one it was trained on (refused by default: it writes other diaries than it was trained to).
        """
        super().__init__()
        check_module_settings(optimizer=optimizer, lr_scheduler=lr_scheduler, compute_dtype=compute_dtype,
                              generate_every_n_val=generate_every_n_val, loss_chunk_size=loss_chunk_size,
                              residual_dtype=residual_dtype, rouge_tokenizer=rouge_tokenizer, adapter_path=adapter_path,
                              style_metric=style_metric)
        self.save_hyperparameters()
        check_numbers("--model", self.hparams, positive=("lora_r", "lora_alpha", "learning_rate"),
                      at_least_zero=("weight_decay", "warmup_steps"), share=("lora_dropout",))
        self.generation = GenerationSettings(max_new_tokens, num_beams, do_sample, temperature, top_p,
                                             repetition_penalty, no_repeat_ngram_size)
        """The generation settings, declared once (GenerationSettings) and built once, here, from the ``model.*``
        ones: a run's recorded settings reach them as the command line's defaults."""
        self.model: Any = None
        self.base_fingerprint: BaseFingerprint | None = None
        # The frozen base is not in the checkpoint, so loading one must not demand its keys;
        # on_load_checkpoint checks the adapter keys itself.
        self.strict_loading = False
        self._validations = 0
        self._token_mean = TokenMeanGradients()
        self._epoch_tokens = 0.0
        self._unlogged_epoch: dict[str, Any] | None = None  # set by a resume at an epoch's last batch

    # -- building the model -------------------------------------------------------------------------------
    def configure_model(self) -> None:
        """Load the base here, not in ``__init__``: Lightning calls this on each process with its own device
        known, so under DDP every rank loads its own 4-bit copy onto its own GPU."""
        if self.model is not None:
            return
        if not self.hparams.base_model:
            raise ConfigError("model.base_model is not set: give it (--model.base_model or a --config), or a "
                              "--ckpt_path or --model.adapter_path to take it from")
        if self.hparams.adapter_path and attached(self) and self.trainer.state.fn == TrainerFn.FITTING:
            raise ValueError("model.adapter_path loads a finished adapter for validate, test and predict; "
                             "to continue training use fit --ckpt_path")
        datamodule = getattr(self.trainer, "datamodule", None) if attached(self) else None
        max_length = getattr(datamodule, "max_length", None)
        if max_length:
            check_positions(self.hparams.base_model, max_length, trust_remote_code=self.hparams.trust_remote_code)
        device = self.trainer.strategy.root_device if attached(self) else torch.device("cpu")
        self.model = build_model(self.hparams, device)
        self.base_fingerprint = BaseFingerprint.of(self.hparams.base_model, self.model)
        if self.hparams.adapter_path:
            check_base(read_adapter(self.hparams.adapter_path).fingerprint, self.base_fingerprint,
                       self.hparams.allow_other_base, f"the adapter {self.hparams.adapter_path}")
        # from_pretrained hands the model over in eval mode and Lightning keeps each module's mode at the
        # start of fit; transformers only checkpoints layers in training mode, so without this gradient
        # checkpointing would silently do nothing. Validation and predict still switch to eval themselves.
        self.model.train()
        if self.hparams.loss_chunk_size:
            check_chunked_loss_support(self.model.config)

    # -- steps --------------------------------------------------------------------------------------------
    def _loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
        # Tokens scored after the shift inside the model: this weights the epoch mean per token.
        n_tokens = batch["num_scored"]
        if self.hparams.loss_chunk_size:
            return peft_chunked_loss(self.model, batch, self.hparams.loss_chunk_size), n_tokens
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        return out.loss, n_tokens

    def on_fit_start(self) -> None:
        # TensorBoard's scalars page lists its groups by name (epoch, lr, train, val): its Custom Scalars page opens
        # on this layout instead, the two losses on one chart first.
        if self.trainer.is_global_zero:
            for logger in self.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_custom_scalars(TENSORBOARD_LAYOUT)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, n_tokens = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=max(n_tokens, 1))
        self._epoch_tokens += float(batch["num_tokens"])
        accumulate = self.trainer.accumulate_grad_batches if attached(self) else 1
        # Every target token of the optimizer step weighs the same, whatever its micro-batch and rank:
        # see diary_lightning.model.loss.
        return self._token_mean.loss_to_backward(loss, n_tokens, accumulate)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Lightning calls this after the step's last backward (and DDP's all-reduce), before clipping.
        reduce = self.trainer.strategy.reduce
        params = (p for group in optimizer.param_groups for p in group["params"])
        self._token_mean.scale(params, self.trainer.world_size,
                               lambda tokens: int(reduce(torch.tensor(tokens, device=self.device), reduce_op="sum")))

    def on_train_epoch_end(self) -> None:
        # Counted here rather than by Lightning's epoch aggregation, which a checkpoint does not carry: a run
        # resumed mid-epoch would count only the batches since the resume.
        self.log("train/tokens", self._epoch_tokens, reduce_fx="sum", sync_dist=True)
        self._epoch_tokens = 0.0

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # A run resumed from a checkpoint taken on the last batch of an epoch goes on to the next epoch
        # without that epoch's end (nor the next one's start): its count is logged here, at the step and epoch
        # its end would have used.
        late, self._unlogged_epoch = self._unlogged_epoch, None
        if late is None or late["epoch"] >= self.current_epoch:
            return
        total = self.trainer.strategy.reduce(torch.tensor(self._epoch_tokens, device=self.device), reduce_op="sum")
        for logger in self.loggers:
            logger.log_metrics({"train/tokens": float(total), "epoch": late["epoch"]}, step=late["step"])
            logger.save()
        self._epoch_tokens = 0.0

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss, n_tokens = self._loss(batch)
        self.log("val/loss", loss, prog_bar=True, batch_size=max(n_tokens, 1), sync_dist=True)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss, n_tokens = self._loss(batch)
        self.log("test/loss", loss, batch_size=max(n_tokens, 1), sync_dist=True)

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[list[str], list[bool]]:
        """Diaries for left-padded prompts, and whether each hit ``max_new_tokens`` before EOS."""
        return generate_diaries(self.model, self.trainer.datamodule.tokenizer, input_ids, attention_mask,
                                self.generation)

    def run_metadata(self, settings: RunSettings, fingerprint: BaseFingerprint | None = None,
                     log_version: int | str | None = None) -> RunMetadata:
        """What a checkpoint or exported adapter of this module records: its base, loading and LoRA shape with
        the run's ``settings``."""
        return RunMetadata.of_run(self.hparams, settings, fingerprint, log_version)

    # -- generated diaries, scored ----------------------------------------------------------------------
    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            # One unscored batch: a generation setup that fails, fails before training rather than at the
            # first validation, possibly hours in.
            self._generations("val", max_batches=1)
            return
        self._validations += 1
        if self.trainer.state.fn != TrainerFn.FITTING or self._validations % self.hparams.generate_every_n_val == 0:
            self._score_generations("val")

    def on_test_epoch_end(self) -> None:
        rows = self._score_generations("test")
        if rows and self.trainer.is_global_zero:
            evaluation.write_generations(Path(self.trainer.log_dir or ".") / "test_generations.jsonl",
                                         rows, self.hparams.rouge_tokenizer)

    def _generations(self, split: str, max_batches: int | None = None) -> list[dict[str, Any]] | None:
        loader = self.trainer.datamodule.generation_dataloader(split, self.global_rank, self.trainer.world_size)
        if loader is None:
            return None
        # Epoch-end hooks run outside the precision plugin's autocast, which the steps get: without it a bf16-mixed
        # run would generate with float32 activations through the float32 norms and LM head, at twice the memory.
        with self.trainer.precision_plugin.forward_context():
            rows = evaluation.generate_rows(self, loader, max_batches, style=self.hparams.style_metric)
        return evaluation.gather_rows(rows, self.global_rank, self.trainer.world_size)

    def _score_generations(self, split: str) -> list[dict[str, Any]] | None:
        """Generate for the split's fixed subset; log ``SPLIT/rouge1 ... SPLIT/chrf``, ``SPLIT/diary_style`` and a share
        per style check (``SPLIT/polite_frac ... SPLIT/truncated_frac``), ``SPLIT/faithful`` and a share per
        faithfulness failure (``SPLIT/wrong_person_frac``...), and the sample table."""
        rows = self._generations(split)
        if not rows:
            if rows is not None:
                log.warning("the %s split is empty: no diaries generated to score", split)
            return rows
        # Every rank scores the same gathered rows: the mean over ranks changes nothing, it only tells
        # Lightning the values are already global.
        scores = evaluation.corpus_scores(rows, self.hparams.rouge_tokenizer)
        self.log_dict({f"{split}/{key}": value for key, value in scores.items()}, sync_dist=True)
        if self.trainer.is_global_zero:
            # The step Lightning gives the scalars logged here (one less than global_step during fit),
            # so the table sits beside them in TensorBoard.
            step = logged_step(self.trainer)
            for logger in self.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_text(f"{split}/samples", evaluation.samples_table(rows), global_step=step)
        return rows

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        diaries, truncated = self.generate(batch["input_ids"], batch["attention_mask"])
        chats = batch.get("turns") or [None] * len(diaries)
        if not self.hparams.style_metric:  # no Kiwi: neither the style nor the faithfulness checks
            return [{"id": i, "writer": w, "diary": d, "truncated": t, "style_failures": None,
                     "faithfulness_failures": None}
                    for i, d, t, w in zip(batch["id"], diaries, truncated, batch["writer"])]
        return [{"id": i, "writer": w, "diary": d, "truncated": t,
                 "style_failures": evaluation.row_failures({"diary": d, "truncated": t, "writer": w}),
                 "faithfulness_failures": evaluation.row_faithfulness({"diary": d, "turns": c, "writer": w})}
                for i, d, t, w, c in zip(batch["id"], diaries, truncated, batch["writer"], chats)]

    # -- optimization -------------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        h = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        if h.optimizer == "adamw":
            optimizer = torch.optim.AdamW(params, lr=h.learning_rate, weight_decay=h.weight_decay)
        else:
            import bitsandbytes as bnb

            cls = bnb.optim.PagedAdamW8bit if h.optimizer == "paged_adamw_8bit" else bnb.optim.AdamW8bit
            optimizer = cls(params, lr=h.learning_rate, weight_decay=h.weight_decay)
        from transformers import get_scheduler

        # transformers' "constant" has no warm-up; ours warms up like the others.
        name = "constant_with_warmup" if h.lr_scheduler == "constant" else h.lr_scheduler
        scheduler = get_scheduler(name, optimizer, num_warmup_steps=h.warmup_steps,
                                  num_training_steps=max(int(self.trainer.estimated_stepping_batches), 1))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- checkpoints: adapters only -----------------------------------------------------------------------
    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """The adapter weights under PEFT's names (those of ``adapter_model.safetensors``)."""
        return adapter_state(self.model)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = self.adapter_state_dict()
        # The one place a checkpoint's metadata is written (diary_lightning.model.metadata).
        trainer = self._trainer
        datamodule = getattr(trainer, "datamodule", None)
        # A resumed fit continues the TensorBoard version of the run (cli.runs.resumed_log).
        logger = trainer.logger if trainer is not None and isinstance(trainer.logger, TensorBoardLogger) else None
        settings = datamodule.settings(self.generation) if datamodule is not None else RunSettings(
            generation=self.generation)
        checkpoint[CHECKPOINT_KEY] = self.run_metadata(settings, self.base_fingerprint,
                                                       logger.version if logger is not None else None).to_dict()
        checkpoint["diary_lightning_progress"] = {
            "epoch_tokens": self._epoch_tokens, "epoch": self.current_epoch, "validations": self._validations,
            "step": logged_step(self.trainer) if attached(self) else 0}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        load_adapter_checkpoint(self.model, checkpoint, self.hparams, self.adapter_state_dict(), self.base_fingerprint)
        # Loaded above, under PEFT's names: nothing is left for Lightning's own (non-strict) load.
        checkpoint["state_dict"] = {}
        progress = checkpoint.get("diary_lightning_progress", {})
        self._epoch_tokens = progress.get("epoch_tokens", 0.0)
        if "epoch" in progress:
            self._unlogged_epoch = {"epoch": progress["epoch"], "step": progress["step"]}
        # generate_every_n_val counts validations: a resumed run generates at the same ones.
        self._validations = progress.get("validations", 0)


# The LightningModule's settings checked as it is built: a bad value fails with its name before any model loads.
# The choices are types, which the command line's parser checks; Python callers get the same check from them.

Optimizer = Literal["adamw", "paged_adamw_8bit", "adamw_8bit"]
Scheduler = Literal["cosine", "linear", "constant"]
ResidualDtype = Literal["float32", "bfloat16"]
CHOICES = {"optimizer": Optimizer, "lr_scheduler": Scheduler, "compute_dtype": ComputeDtype,
           "residual_dtype": ResidualDtype, "rouge_tokenizer": RougeTokenizer}


def check_module_settings(*, generate_every_n_val: int, loss_chunk_size: int, adapter_path: str | None,
                          residual_dtype: str = "float32", compute_dtype: str = "bfloat16",
                          rouge_tokenizer: str = DEFAULT_ROUGE_TOKENIZER, style_metric: bool = True,
                          **choices: str) -> None:
    given = {**choices, "residual_dtype": residual_dtype, "compute_dtype": compute_dtype,
             "rouge_tokenizer": rouge_tokenizer}
    for key, value in given.items():
        if value not in get_args(CHOICES[key]):
            raise ValueError(f"model.{key}={value!r}: expected one of {', '.join(get_args(CHOICES[key]))}")
    if residual_dtype == "bfloat16" and compute_dtype != "bfloat16":
        raise ValueError(f"model.residual_dtype=bfloat16 with model.compute_dtype={compute_dtype}: a bf16 residual "
                         "stream needs bf16 compute; set both, or leave residual_dtype at float32")
    if generate_every_n_val < 1:
        raise ValueError(f"model.generate_every_n_val={generate_every_n_val}: expected 1 or more "
                         "(set data.val_generate_samples: 0 to turn generation off)")
    if loss_chunk_size < 0:
        raise ValueError(f"model.loss_chunk_size={loss_chunk_size}: expected 0 (off) or a positive chunk size")
    get_rouge_tokenizer(rouge_tokenizer)  # a missing kiwipiepy fails here, not at the first validation
    if style_metric:
        require_kiwi("model.style_metric (on by default)")
    if adapter_path is not None and not (Path(adapter_path) / "adapter_config.json").is_file():
        raise FileNotFoundError(f"model.adapter_path={adapter_path!r}: no adapter_config.json there; give a folder "
                                "written by `python -m diary_lightning export` or CHECKPOINT_DIR/adapter")

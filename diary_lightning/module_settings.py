"""The LightningModule's settings checked as it is built: a bad value fails with its name before any model loads."""

from __future__ import annotations

from pathlib import Path

from diary_lightning.loading import DTYPES
from diary_lightning.metrics import ROUGE_TOKENIZERS, get_rouge_tokenizer

OPTIMIZERS = ("adamw", "paged_adamw_8bit", "adamw_8bit")
SCHEDULERS = ("cosine", "linear", "constant")


def check_module_settings(*, optimizer: str, lr_scheduler: str, compute_dtype: str, generate_every_n_val: int,
                          loss_chunk_size: int, rouge_tokenizer: str, adapter_path: str | None) -> None:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"model.optimizer={optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
    if lr_scheduler not in SCHEDULERS:
        raise ValueError(f"model.lr_scheduler={lr_scheduler!r}: expected one of {', '.join(SCHEDULERS)}")
    if compute_dtype not in DTYPES:
        raise ValueError(f"model.compute_dtype={compute_dtype!r}: expected one of {', '.join(DTYPES)}")
    if generate_every_n_val < 1:
        raise ValueError(f"model.generate_every_n_val={generate_every_n_val}: expected 1 or more "
                         "(set data.val_generate_samples: 0 to turn generation off)")
    if loss_chunk_size < 0:
        raise ValueError(f"model.loss_chunk_size={loss_chunk_size}: expected 0 (off) or a positive chunk size")
    if rouge_tokenizer not in ROUGE_TOKENIZERS:
        raise ValueError(f"model.rouge_tokenizer={rouge_tokenizer!r}: expected one of {', '.join(ROUGE_TOKENIZERS)}")
    get_rouge_tokenizer(rouge_tokenizer)  # a missing kiwipiepy fails here, not at the first validation
    if adapter_path is not None and not (Path(adapter_path) / "adapter_config.json").is_file():
        raise FileNotFoundError(f"model.adapter_path={adapter_path!r}: no adapter_config.json there; give a folder "
                                "written by `python -m diary_lightning export` or CHECKPOINT_DIR/adapter")

"""What the console shows: a progress bar that counts what the run is limited by, and known-harmless
notices silenced, all here, in one place.

Silenced: bitsandbytes' notice that the optional ``kernels`` package is missing (it falls back to its
own CPU kernel), Lightning's tips advertising litlogger and litmodels, transformers' FutureWarnings
(deprecations inside transformers that this package does not call directly), Lightning's deprecation
notice about its own use of torch's pytree, its "checkpoint directory is not empty" on a resume, its
"Detected KeyboardInterrupt" (predict says what it kept and how to go on instead) and its accelerator lines where
there is none to report ("GPU available: False, used: False"; a GPU left unused is still said). The progress bar
drops the logger's version (``v_num``) and a speed not yet measured (``0.00it/s``); tqdm bars done within 2 s
(transformers' and datasets' on a tiny model) do not show (``python -m diary_lightning``'s ``TQDM_DELAY``).
Never silenced: anything that can mean a wrong result, such as PyTorch's warning that an operation has no autograd
formula.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from typing import Any

from lightning.pytorch.callbacks import ProgressBar, RichProgressBar, TQDMProgressBar

HARMLESS_LOG_PREFIXES = {
    "bitsandbytes.backends.cpu.ops": ("Failed to load CPU gemm_4bit_forward from kernels-community",),
    # Its Ctrl-C notice: predict says instead what it kept and how to go on (PredictionsJsonl.on_exception).
    # Its accelerator report where there is nothing to report: no GPU and none used, no TPU (a GPU left unused is
    # still said).
    "lightning.pytorch.utilities.rank_zero": ("💡 Tip:", "Detected KeyboardInterrupt",
                                              "GPU available: False, used: False", "TPU available: False",
                                              "HPU available: False"),
    "lightning.fabric.utilities.rank_zero": ("💡 Tip:",),
}


class _DropPrefixes(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).lstrip().startswith(self.prefixes)


def silence_known_noise() -> None:
    """Install the filters; call before bitsandbytes or Lightning is imported (the kernels notice is
    logged at import time)."""
    for name, prefixes in HARMLESS_LOG_PREFIXES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropPrefixes) for f in logger.filters):
            logger.addFilter(_DropPrefixes(prefixes))
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers(\.|$)")
    # Lightning's own use of a torch API it has not caught up with.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # On a resume the folder holds the run's own checkpoints; a fresh fit into another run's folder is
    # refused before this could be said (diary_lightning/cli/runs.py).
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


class _StepsMixin:
    """``Epoch 11/-2`` under ``max_steps`` (Lightning prints ``max_epochs - 1``, and max_epochs is -1): the
    epoch alone instead, and the optimizer step out of ``max_steps`` beside the loss."""

    trainer: Any

    def _get_train_description(self, current_epoch: int) -> str:
        if self.trainer.max_epochs is not None and self.trainer.max_epochs >= 0:
            return super()._get_train_description(current_epoch)  # type: ignore[misc]
        return f"Epoch {current_epoch}"

    def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)  # type: ignore[misc]
        # The logger's version, shown as a metric ("v_num: 0.000"): fit prints the log folder instead.
        items.pop("v_num", None)
        if trainer.max_steps and trainer.max_steps > 0:
            items["step"] = f"{trainer.global_step}/{trainer.max_steps}"
        return items


RICH = importlib.util.find_spec("rich") is not None
"""Lightning's rich bar needs rich, which this package does not require (without it: the tqdm bar)."""

if RICH:
    from lightning.pytorch.callbacks.progress.rich_progress import ProcessingSpeedColumn
    from rich.text import Text

    class SpeedColumn(ProcessingSpeedColumn):
        """The speed, or nothing before rich can measure one (a one-batch epoch or predict showed ``0.00it/s``);
        seconds per batch below one batch a second, as a CPU generates (``2.4s/it``, not ``0.41it/s``)."""

        def render(self, task: Any) -> Text:
            speed = task.speed
            if not speed:
                return Text("")
            return Text(f"{speed:.2f}it/s" if speed >= 1 else f"{1 / speed:.1f}s/it", style=self.style)


class RichStepsProgressBar(_StepsMixin, RichProgressBar):
    def configure_columns(self, trainer: Any) -> list:
        return [SpeedColumn(c.style) if isinstance(c, ProcessingSpeedColumn) else c
                for c in super().configure_columns(trainer)]


class TQDMStepsProgressBar(_StepsMixin, TQDMProgressBar):
    pass


def progress_bar() -> ProgressBar:
    """Lightning's progress bar (rich when installed), counting optimizer steps under ``max_steps``."""
    return RichStepsProgressBar() if RICH else TQDMStepsProgressBar()

"""The command line: LightningCLI with fit, validate, test, predict, preprocess and export; merge, evaluate and app
beside it."""

from __future__ import annotations

import difflib
import json
import logging
import os
import pickle
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import CheckpointIO

from diary_lightning.cli.console import progress_bar, silence_known_noise
from diary_lightning.cli.preflight import check_command_line
from diary_lightning.cli.runs import (
    RunLocks,
    as_list,
    cpu_when_no_accelerator_needed,
    place_checkpoints,
    refuse_mixed_runs,
    refuse_other_training_data,
    require_adapter_or_zero_shot,
    resume_command,
    resumed_log,
    run_logger,
)
from diary_lightning.errors import (
    ConfigError,
    check_config_syntax,
    check_numbers,
    log_to_stderr,
    redact_urls,
    run_reporting_user_errors,
)
from diary_lightning.io import outputs
from diary_lightning.cli.evaluate import evaluate, scored_system, summary_table
from diary_lightning.inference.app import serve
from diary_lightning.inference.export import merge_adapter
from diary_lightning.io.outputs import Output, check_outputs
from diary_lightning.model.metadata import adapter_base_model, checkpoint_state, read_adapter, read_checkpoint
from diary_lightning.model.settings import RunFolder
from diary_lightning.synthesis.command import SynthesizeCommand
from diary_lightning.training.callbacks import PredictionsJsonl, RunSummary, predict_inputs, prediction_identity
from diary_lightning.training.checkpointing import (
    CheckpointOnSigterm,
    ExportAdapter,
    SafeCheckpointIO,
    checkpoint_dir,
    checkpoint_folder,
    run_folder,
)
from diary_lightning.training.datamodule import DiaryDataModule
from diary_lightning.training.exact_resume import ExactResume, RngState
from diary_lightning.training.lightning_internals import KeepConfiguredHyperparameters, PlainSubcommands
from diary_lightning.training.lora_module import DiaryLoRAModule

log = logging.getLogger(__name__)


class DiaryTrainer(SynthesizeCommand, Trainer):
    # The command line's own arguments of fit, validate, test and predict, declared in their signatures; the CLI's
    # before_* hooks act on them (diary_lightning.cli.commands.DiaryCLI), the trainer passes the rest on.
    def fit(self, model: Any, train_dataloaders: Any = None, val_dataloaders: Any = None, datamodule: Any = None,
            ckpt_path: str | None = None, weights_only: bool | None = None, resume_other_data: bool = False) -> None:
        """Train the LoRA adapters on data.paths; checkpoints, logs and the exported adapter go under
        trainer.default_root_dir.

        Args:
            ckpt_path: The checkpoint to continue (a path, or ``last``).
            resume_other_data: With --ckpt_path: continue the run on other training data than it was trained on.
        """
        return super().fit(model, train_dataloaders, val_dataloaders, datamodule, ckpt_path, weights_only)

    def validate(self, model: Any = None, dataloaders: Any = None, ckpt_path: str | None = None, verbose: bool = True,
                 datamodule: Any = None, weights_only: bool | None = None, zero_shot: bool = False) -> Any:
        """Score the validation split: loss, ROUGE, chrF and the diary-style checks.

        Args:
            ckpt_path: The checkpoint to score (a path, ``best`` or ``last``); none: an exported adapter
                (``--model.adapter_path``) or the base model alone.
            zero_shot: Score the base model alone, no adapter (the zero-shot baseline).
        """
        return super().validate(model, dataloaders, ckpt_path, verbose, datamodule, weights_only)

    def test(self, model: Any = None, dataloaders: Any = None, ckpt_path: str | None = None, verbose: bool = True,
             datamodule: Any = None, weights_only: bool | None = None, zero_shot: bool = False) -> Any:
        """Score the test split and write its diaries (test_generations.jsonl beside the logs).

        Args:
            ckpt_path: The checkpoint to score (a path, ``best`` or ``last``); none: an exported adapter
                (``--model.adapter_path``) or the base model alone.
            zero_shot: Score the base model alone, no adapter (the zero-shot baseline).
        """
        return super().test(model, dataloaders, ckpt_path, verbose, datamodule, weights_only)

    def predict(self, model: Any = None, dataloaders: Any = None, datamodule: Any = None,
                return_predictions: bool | None = None, ckpt_path: str | None = None, weights_only: bool | None = None,
                output: str | None = None, resume_predictions: bool | None = None, zero_shot: bool = False) -> Any:
        """Write a diary for every chat of data.predict_path into --output (JSONL).

        Args:
            ckpt_path: The checkpoint to write with (a path, ``best`` or ``last``), or an exported adapter
                (``--model.adapter_path``).
            output: JSONL file for the diaries (default: DEFAULT_ROOT_DIR/predictions.jsonl).
            resume_predictions: Keep the diaries an interrupted predict left in OUTPUT.partial and write only the
                missing ones (default: when the same weights, settings and inputs wrote them; true: refuse
                otherwise; false: start over).
            zero_shot: Write with the base model alone, no adapter (the zero-shot baseline).
        """
        return super().predict(model, dataloaders, datamodule, return_predictions, ckpt_path, weights_only)

    def preprocess(self, model: DiaryLoRAModule | None = None, datamodule: DiaryDataModule | None = None) -> dict[str, Any]:
        """Parse, clean, split and tokenize the data into the cache, and print a JSON summary."""
        from diary_lightning.data.prepare import summarize, too_long

        start = time.perf_counter()
        refuse_cache_over_input("preprocess", datamodule)
        summary = summarize(datamodule)
        log.info("preprocess: data read, tokenized and summarized in %.2fs", time.perf_counter() - start)
        # What the data lost to max_length, said as fit's start-up block says it: a count in the JSON is easy to miss.
        line, warnings = too_long(datamodule.report, datamodule.max_length)
        log.info("preprocess: %s", " ".join(line.split()))
        for warning in warnings:
            log.warning(warning)
        print(json.dumps(summary, ensure_ascii=False, indent=1))
        return summary

    def export(self, model: DiaryLoRAModule, datamodule: DiaryDataModule, ckpt_path: str,
               output: str | None = None, evaluation: str | None = None) -> Path:
        """Write a checkpoint's adapter as a PEFT folder with the tokenizer, prompt and generation settings.

        Args:
            ckpt_path: The checkpoint to export (a path, ``best`` or ``last``).
            output: The adapter folder to write (default: DEFAULT_ROOT_DIR/adapter).
            evaluation: An ``evaluate --output`` folder that scored this checkpoint (``DIR``, or ``NAME=DIR``
                where it scored several systems): its results go into the adapter's model card.
        """
        from diary_lightning.inference.export import export_adapter
        from diary_lightning.inference.model_card import record_evaluation

        scored = scored_system(evaluation) if evaluation else None  # before minutes of loading the base

        if model.hparams.adapter_path:
            raise ValueError("export takes --ckpt_path; model.adapter_path is already an exported adapter")
        folder = run_folder(self)
        if ckpt_path == "last":
            ckpt_path = str(folder.last_checkpoint)
        if not Path(ckpt_path).is_file():
            raise FileNotFoundError(f"--ckpt_path {ckpt_path}: no such checkpoint")
        model.trainer = self  # configure_model loads the base onto this trainer's device
        model.configure_model()
        target = export_adapter(model, ckpt_path, output or folder.exported_adapter, datamodule)
        if scored:
            split, result, name = scored
            record_evaluation(target, split, result, name)
        print(target)
        return target


def refuse_cache_over_input(subcommand: str, datamodule: DiaryDataModule) -> None:
    """The tokenized cache (``data.cache_dir``) may not be or hold a data file, nor lie inside the base model.
    It may lie inside a data folder: the reader passes over it, and its entries only ever add."""
    from diary_lightning.data.cache import cache_root

    h = datamodule.hparams
    root = cache_root(h.cache_dir)
    cache = [Output("--data.cache_dir", root, "folder", lambda p: True)]
    check_outputs(subcommand, cache, outputs.data_inputs("the data --data.paths", h.paths, exclude=[root]),
                  allowed_inside=[root])
    check_outputs(subcommand, cache, {"the tokenizer": h.get("tokenizer")})


def refuse_missing_config(subcommand: str, config: Any) -> None:
    """Run without ``--config``, a subcommand lacks the settings a config gives, and the first to be missed
    (``data.paths``, ``data.tokenizer``) would not say that a config was what was left out."""
    if config.get("config") or subcommand == "synthesize":
        return
    adapter = config.get("ckpt_path") or config.get("model.adapter_path")
    missing = []
    if subcommand in ("fit", "validate", "test", "preprocess") and not config.get("data.paths"):
        missing.append("data.paths")
    if subcommand == "predict" and not config.get("data.predict_path"):
        missing.append("data.predict_path")
    # Outside fit a checkpoint or an exported adapter names its base model (DiaryCLI.parse_arguments).
    if not config.get("model.base_model") and (subcommand in ("fit", "preprocess") or not adapter):
        missing.append("model.base_model")
    if missing:
        raise ConfigError(f"{subcommand} needs {' and '.join(missing)}, and no --config was given: add the run's "
                          f"config (--config configs/tiny.yaml, or configs/eeve-qlora.yaml), or give "
                          f"{' and '.join('--' + key for key in missing)} on the command line")


def recorded_run(config: Any) -> tuple[Any, str, str] | None:
    """What the checkpoint (``--ckpt_path``: a file, ``last`` or ``best``) or exported adapter
    (``--model.adapter_path``) a subcommand reads recorded, where it is and the base it names; None with neither,
    or when loading it will name what is wrong with it."""
    ckpt, adapter = config.get("ckpt_path"), config["model"].get("adapter_path")
    if ckpt and adapter:
        raise ConfigError(f"give --ckpt_path or --model.adapter_path, not both ({ckpt} and {adapter})")
    if adapter:
        return read_adapter(adapter), adapter, adapter_base_model(adapter)
    if not ckpt:
        return None
    folder = RunFolder.at(config["trainer"].get("default_root_dir") or os.getcwd(),
                          configured_checkpoint_dir(config["trainer"].get("callbacks")))
    path = folder.last_checkpoint if ckpt in ("last", "best") else Path(ckpt)
    if ckpt in ("last", "best") and not path.is_file():
        return None  # Lightning, or resolve_checkpoint, says so
    if not path.is_file():
        raise FileNotFoundError(f"--ckpt_path {ckpt}: no such checkpoint")
    if ckpt == "best":
        path = Path(best_in(path))
    try:
        metadata = read_checkpoint(path, strict=False)
    except (RuntimeError, pickle.UnpicklingError, EOFError):
        return None  # not a checkpoint: the output rule is checked first, then loading it names what is wrong
    if metadata is None:
        if not config["model"].get("base_model"):
            raise ConfigError(f"{path} records no base model (not written by diary_lightning?): give "
                              "--model.base_model")
        return None  # loading it names what is wrong with it
    return metadata, str(path), metadata.base_model


LORA_FLAGS = {"r": "lora_r", "alpha": "lora_alpha", "target_modules": "target_modules"}
"""The model's flag of each key of a run's recorded LoRA shape."""


def run_defaults(metadata: Any, base: str) -> dict[str, Any]:
    """A run's recorded settings as the dotted keys of the command line."""
    return {"model.base_model": base, **{f"model.{key}": value for key, value in metadata.loading.items()},
            **{f"model.{LORA_FLAGS[key]}": value for key, value in metadata.lora.items() if key in LORA_FLAGS},
            **{f"model.{key}": value for key, value in metadata.settings.generation.to_dict().items()},
            **({"data.max_length": metadata.settings.max_length} if metadata.settings.max_length else {})}


def configured_checkpoint_dir(callbacks: Any) -> str | None:
    """The ``dirpath`` of a ModelCheckpoint the config gives, as parsed (before the trainer exists)."""
    for callback in as_list(callbacks):
        init_args = getattr(callback, "init_args", None) or {}
        if str(getattr(callback, "class_path", "")).endswith("ModelCheckpoint") and init_args.get("dirpath"):
            return init_args["dirpath"]
    return None


def check_trainer_numbers(trainer: Any) -> None:
    """The trainer's numeric settings, refused here by name: Lightning takes some of them (``max_steps -5``, a
    negative ``limit_val_batches``) without a word or refuses them with a traceback from deep inside."""
    check_numbers("--trainer", trainer, positive=("accumulate_grad_batches", "num_nodes", "log_every_n_steps",
                                                  "check_val_every_n_epoch", "val_check_interval"),
                  at_least_zero=("min_steps", "gradient_clip_val", "limit_train_batches", "limit_val_batches",
                                 "limit_test_batches", "limit_predict_batches"))
    problems = [f"--trainer.{key} {trainer.get(key)!r}: expected -1 (no limit) or {low} or more"
                for key, low in (("max_steps", 1), ("max_epochs", 0), ("num_sanity_val_steps", 0))
                if trainer.get(key) is not None and trainer.get(key) != -1 and not trainer.get(key) >= low]
    fractions = [f"--trainer.{key} {trainer.get(key)!r}: a float is a share of the batches, at most 1.0 (or give "
                 "a count of batches as an integer)" for key in ("limit_train_batches", "limit_val_batches",
                                                                   "limit_test_batches", "limit_predict_batches",
                                                                   "val_check_interval")
                 if isinstance(trainer.get(key), float) and trainer.get(key) > 1]
    if problems or fractions:
        raise ConfigError("; ".join(problems + fractions))


def resolve_checkpoint(ckpt_path: str | None, trainer: Trainer) -> str | None:
    """Make ``best`` work in a new process: Lightning only knows it in the process that trained,
    so it is looked up in the state ModelCheckpoint saved into ``last.ckpt``."""
    if ckpt_path != "best" or trainer.checkpoint_callback is None:
        return ckpt_path
    if trainer.checkpoint_callback.best_model_path:
        return ckpt_path
    dirpath = trainer.checkpoint_callback.dirpath
    last = RunFolder.at(dirpath or ".", dirpath or ".").last_checkpoint
    if not dirpath or not last.is_file():
        raise FileNotFoundError(f"--ckpt_path best: no {last} to read the best checkpoint from; give the path instead")
    return best_in(last)


def best_in(last: Path) -> str:
    """The best checkpoint ModelCheckpoint recorded in ``last``."""
    state = checkpoint_state(last)
    for key, value in state.get("callbacks", {}).items():
        if key.startswith("ModelCheckpoint") and value.get("best_model_path"):
            return value["best_model_path"]
    # No validation ran, so nothing was ranked: the last checkpoint is the best there is, as fit said
    # when it ended (RunSummary) and as it exported.
    log.info("--ckpt_path best: %s records no validation, so the best checkpoint is the last: %s", last, last)
    return str(last)


def check_writable(directory: str | os.PathLike) -> None:
    """Fail at start, not hours later at the first checkpoint, when outputs cannot be written."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as err:
        raise ConfigError(f"cannot write to {path}: {err.strerror or err}") from None


class DiaryArgumentParser(LightningArgumentParser):
    """The command line's parser: options spelled out in full, and a mistake told in one line.

    An abbreviation would take ``--trainer.max_step 10`` for ``max_steps`` without a word (and a later option
    could make the same abbreviation mean another one); argparse's answer to a typo is the whole usage, about
    a hundred lines above the one that matters. ``--help`` still prints the usage."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def dump(self, *args: Any, **kwargs: Any) -> str:
        # What --print_config prints and the run folder's config.yaml records: a URL's password or key-like
        # query parameter (--teacher.base_url) is no setting to show or keep.
        return redact_urls(super().dump(*args, **kwargs))

    def error(self, message: str, ex: Exception | None = None) -> Any:
        if not self.exit_on_error:  # jsonargparse parsing a part of the arguments: it handles the error
            return super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        if message.startswith(UNRECOGNIZED):
            raise ConfigError(f"{unknown_option_message(message, parser)} (all options: {prog} --help)")
        raise ConfigError(f"{bad_value_message(message)}\n(all options: {prog} --help)")


UNRECOGNIZED = "unrecognized arguments: "


def bad_value_message(message: str) -> str:
    """jsonargparse's report of a value its type refuses (a dozen lines on the Union's subtypes), said in one:
    ``model.optimizer='sgd': expected one of adamw, paged_adamw_8bit, adamw_8bit``."""
    key = re.search(r'Parser key "([^"]+)"', message)
    value = re.search(r"(?:Given|Got) value: (.*)", message)
    if key is None or value is None:
        return message
    choices = re.search(r"Literal\[([^\]]*)\]", message)
    kind = re.search(r"Expected a <class '(\w+)'>", message)
    if choices:
        expected = f"expected one of {', '.join(c.strip().strip(chr(39)) for c in choices.group(1).split(','))}"
    elif kind:
        expected = f"expected {'an' if kind.group(1)[0] in 'aeiou' else 'a'} {kind.group(1)}"
    else:
        return message
    return f"{key.group(1)}={value.group(1).strip()!r}: {expected}"


def unknown_option_message(message: str, parser: Any) -> str:
    """``message`` with the closest known option after each unrecognized one."""
    known = [option for action in parser._actions for option in action.option_strings if option.startswith("--")]
    parts = []
    for given in (arg.split("=", 1)[0] for arg in message[len(UNRECOGNIZED):].split() if arg.startswith("--")):
        close = difflib.get_close_matches(given, known, n=1, cutoff=0.6)
        parts.append(f"unknown option {given}" + (f"; did you mean {close[0]}?" if close else ""))
    return "; ".join(parts) or message


class DiaryCLI(RunLocks, KeepConfiguredHyperparameters, PlainSubcommands, LightningCLI):
    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {**LightningCLI.subcommands(), "preprocess": {"model", "datamodule"},
                "export": {"model", "datamodule"}, "synthesize": {"model", "datamodule"}}

    def plain_subcommands(self) -> dict[str, Any]:
        return {"merge": merge_adapter, "evaluate": evaluate, "app": serve}

    def merge(self, **kwargs: Any) -> None:
        print(merge_adapter(**kwargs))

    def evaluate(self, **kwargs: Any) -> None:
        print(summary_table(evaluate(**kwargs)))
        print(Path(kwargs["output"]) / "report.md")

    def app(self, **kwargs: Any) -> None:
        serve(**kwargs)

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.link_arguments("model.base_model", "data.tokenizer")
        parser.link_arguments("model.trust_remote_code", "data.trust_remote_code")

    def parse_arguments(self, parser: Any, args: Any) -> None:
        """Settings travel with the run: what the checkpoint or exported adapter a subcommand reads recorded (its
        base and how it was loaded, the LoRA shape, ``max_length``, the generation settings) are the parser's
        defaults, which the config and the options given override as they override any default."""
        self._argv = list(args) if isinstance(args, list) else sys.argv[1:]  # for the command that resumes predict
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        self._recorded = None
        if subcommand in self.plain_subcommands():
            return
        refuse_missing_config(subcommand, self.config[subcommand])  # before a checkpoint named is read
        if subcommand not in ("validate", "test", "predict", "export"):
            return
        self._recorded = recorded_run(self.config[subcommand])
        if self._recorded is not None:
            metadata, source, base = self._recorded
            self._subcommand_parsers[subcommand].set_defaults(run_defaults(metadata, base))
            super().parse_arguments(parser, args)
            given = self.config[subcommand]
            log.info("model.base_model from %s: %s", source, given["model"]["base_model"])
            taken = {key: value for key, value in metadata.settings.generation.to_dict().items()
                     if given["model"][key] == value}
            log.info("generation settings from %s where the config and options give none: %s", source,
                     ", ".join(f"{key}={value}" for key, value in taken.items()))

    def before_instantiate_classes(self) -> None:
        if self.subcommand not in self.plain_subcommands():
            check_trainer_numbers(self.config[self.subcommand].get("trainer") or {})

    def _adopt_run_settings(self) -> None:
        """Name the checkpoint ``--ckpt_path`` means for Lightning, and encode as the run read at parsing was
        trained to read: its prompt, and an adapter's ``max_length``, which no setting overrides."""
        config = self.config_init[self.subcommand]
        if "ckpt_path" in config:
            config["ckpt_path"] = resolve_checkpoint(config["ckpt_path"], self.trainer)
        if config.get("ckpt_path") == "last" and self.subcommand == "predict":
            # Named now, so that the diaries' record names the very file. validate and test keep "last" for
            # Lightning, which warns rather than fails when there is none yet.
            config["ckpt_path"] = str(run_folder(self.trainer).last_checkpoint)
        if self._recorded is not None:
            metadata, source, _ = self._recorded
            adapter = source == self.model.hparams.adapter_path
            self.datamodule.adopt(metadata.settings, max_length=adapter)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self.config_init[self.subcommand]
        plugins = config["trainer"].get("plugins")
        plugins = list(plugins) if isinstance(plugins, list) else [plugins] if plugins is not None else []
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            kwargs["plugins"] = [*plugins, SafeCheckpointIO()]
        kwargs.update(self._run_folder(config))
        kwargs.update(cpu_when_no_accelerator_needed(self.subcommand, config["trainer"]))
        if config["trainer"].get("enable_progress_bar") is not False and not any(
                isinstance(c, ProgressBar) for c in as_list(config["trainer"].get("callbacks"))):
            kwargs["callbacks"] = [*as_list(config["trainer"].get("callbacks")), progress_bar()]
        if self.subcommand not in ("fit", "validate", "test"):
            self.save_config_callback = None  # no log folder to save it in
        return super().instantiate_trainer(**kwargs)

    def _run_folder(self, config: dict[str, Any]) -> dict[str, Any]:
        """Checkpoints and logs under ``trainer.default_root_dir`` (``diary_lightning/cli/runs.py``)."""
        trainer = config["trainer"]
        root = trainer.get("default_root_dir") or os.getcwd()
        callbacks = as_list(trainer.get("callbacks"))
        place_checkpoints(callbacks, root)
        if trainer.get("logger") not in (None, True):
            return {}  # a logger the config gives, or none (false)
        version, purge_step = None, None
        if self.subcommand == "fit":
            version, purge_step = resumed_log(config.get("ckpt_path"), checkpoint_folder(callbacks, root), root)
        return {"logger": run_logger(self.subcommand, root, version, purge_step)}

    def before_fit(self) -> None:
        h = self.model.hparams
        # What fit writes in the run folder: the root itself may hold the data (runs under a project folder).
        log_roots = [getattr(self.trainer.logger, "root_dir", None) or self.trainer.logger.save_dir] \
            if self.trainer.logger is not None else []
        refuse_cache_over_input("fit", self.datamodule)
        # The checkpoint folder is fit's own: resuming reads from it (--ckpt_path), so it is no input here.
        check_outputs("fit", [Output("the checkpoint folder", checkpoint_dir(self.trainer), "folder", lambda p: True),
                              *(Output("the log folder", log, "folder", lambda p: True) for log in log_roots)], {
            **outputs.data_inputs("the data --data.paths", self.datamodule.hparams.paths),
            "the base model": h.get("base_model"), "the adapter --model.adapter_path": h.get("adapter_path")})
        refuse_mixed_runs(checkpoint_dir(self.trainer), self.config_init["fit"].get("ckpt_path"))
        refuse_other_training_data(checkpoint_dir(self.trainer), self.config_init["fit"].get("ckpt_path"),
                                   self.datamodule, self.config_init["fit"].get("resume_other_data", False))
        check_writable(self.trainer.default_root_dir)
        self._lock_run_folder(checkpoints_too=False)  # before anything else is created in it
        logs = [self.trainer.logger.save_dir] if self.trainer.logger is not None else []
        dirpaths = [getattr(callback, "dirpath", None) for callback in self.trainer.checkpoint_callbacks]
        for folder in dict.fromkeys(str(f) for f in [*logs, *dirpaths] if f):  # each folder once
            check_writable(folder)
        self._lock_checkpoints()
        self._adopt_resumed_prompt()

    def _adopt_resumed_prompt(self) -> None:
        """A resumed fit trains on with the prompt its checkpoint was trained with (its other settings are the
        config's): taken here, before the data is encoded."""
        ckpt = self.config_init["fit"].get("ckpt_path")
        path = run_folder(self.trainer).last_checkpoint if ckpt == "last" else Path(ckpt) if ckpt else None
        if path is None or ckpt == "best" or not path.is_file():
            return  # nothing to resume, or Lightning names what is wrong
        try:
            metadata = read_checkpoint(path, strict=False)
        except (RuntimeError, pickle.UnpicklingError, EOFError):
            return  # not a checkpoint: loading it names what is wrong
        if metadata is not None:
            self.datamodule.adopt(metadata.settings)

    def before_export(self) -> None:
        self._lock_run_folder()
        self._adopt_run_settings()
        folder = run_folder(self.trainer)
        output = self.config_init["export"].get("output") or folder.exported_adapter
        # fit exports into CHECKPOINT_DIR/adapter itself: export may refresh that one, and nothing else there.
        self._check_outputs("export", [Output("--output", output, "folder", outputs.EXPORTED)], {},
                            allowed_inside=[folder.fit_adapter])

    def _check_outputs(self, subcommand: str, written: list[Output], inputs: dict[str, Any],
                       allowed_inside: list[Any] = ()) -> None:
        """The rule of diary_lightning/io/outputs.py, with what every subcommand of the trainer reads: the
        checkpoint, the adapter, the base model and the run's checkpoint folder."""
        config, h = self.config_init[subcommand], self.model.hparams
        check_outputs(subcommand, written, {
            **inputs, "the checkpoint --ckpt_path": config.get("ckpt_path"),
            "the adapter --model.adapter_path": h.get("adapter_path"), "the base model": h.get("base_model"),
            "the run's checkpoint folder": checkpoint_dir(self.trainer)}, allowed_inside)

    def before_validate(self) -> None:
        self._lock_run_folder()
        self._adopt_run_settings()
        require_adapter_or_zero_shot(self.subcommand, self.config_init[self.subcommand], self.model.hparams)

    before_test = before_validate
    # What a job holds is released when it ends (predict also finishes its diaries file first).
    after_fit = after_export = after_validate = after_test = RunLocks._unlock

    def before_predict(self) -> None:
        self._adopt_run_settings()
        require_adapter_or_zero_shot(self.subcommand, self.config_init[self.subcommand], self.model.hparams)
        output = self.config_init["predict"].get("output") or str(run_folder(self.trainer).predictions)
        self._check_outputs("predict", [
            Output("--output", output, "file", outputs.PREDICTIONS),
            Output("--output", output + ".partial", "file", outputs.PREDICTIONS_PARTIAL),
            Output("--output", output + ".partial.json", "file", outputs.PREDICTIONS_RECORD)], {
            **outputs.data_inputs("the input --data.predict_path", self.datamodule.hparams.predict_path),
            **outputs.data_inputs("the training data --data.paths", self.datamodule.hparams.paths)})
        check_writable(Path(output).parent)
        self._locks = []
        self._lock(output, "file")
        predictions = PredictionsJsonl(output, resume=self.config_init["predict"].get("resume_predictions"),
                                       resume_command=resume_command(self._argv))
        predictions.check_identity(prediction_identity(self.config_init["predict"].get("ckpt_path"), self.model,
                                                       self.datamodule))
        self.datamodule.skip_predict_ids = predictions.written_ids(predict_inputs(self.datamodule))
        # Every chat read, its writer found and its length checked before the model loads (minutes on EEVE).
        self.datamodule.predict_dataset(self.model.generation.max_new_tokens)
        self.trainer.callbacks.append(predictions)

    def after_predict(self) -> None:
        for callback in self.trainer.callbacks:
            if isinstance(callback, PredictionsJsonl) and self.trainer.is_global_zero:
                callback.finish(getattr(self.datamodule, "predict_order", None))
        self._unlock()


def main(args: list[str] | None = None) -> None:
    """The program: user errors end with their message and exit status 2 (``diary_lightning/errors.py``)."""
    silence_known_noise()
    log_to_stderr()
    run_reporting_user_errors(run, sys.argv[1:] if args is None else args)


DESCRIPTION = ("diary_lightning: fine-tune a Korean LLM with QLoRA to write a day's chat as its writer's diary; "
               "prepare the data, train, score, write diaries, export, merge, compare systems on the benchmark and try the "
               "adapter.")


def run(argv: list[str]) -> None:
    """The command line without the error reporting: exceptions propagate (tests call this)."""
    check_command_line(argv)  # again, for callers that come in here (python -m checked before importing torch)
    check_config_syntax(argv)
    DiaryCLI(
        DiaryLoRAModule,
        DiaryDataModule,
        trainer_class=DiaryTrainer,
        trainer_defaults={
            "callbacks": [ExactResume(), RunSummary(), CheckpointOnSigterm(resume_command(argv)), RngState(),
                          ExportAdapter()],
            # The data module shards its batches across DDP ranks itself (see LengthGroupedBatchSampler).
            "use_distributed_sampler": False,
        },
        seed_everything_default=42,
        parser_class=DiaryArgumentParser,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": "python -m diary_lightning", "description": DESCRIPTION,
                       "epilog": "Each subcommand takes --config FILE (YAML) and dotted options (--model.base_model "
                                 "NAME); python -m diary_lightning SUBCOMMAND --help lists them."},
        # Given the program's own arguments, LightningCLI reads them itself (it warns when handed them).
        args=None if argv == sys.argv[1:] else argv,
    )

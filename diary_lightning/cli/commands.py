"""The command line: LightningCLI with fit, validate, test, predict, preprocess and export; merge, evaluate and app
beside it."""

from __future__ import annotations

import difflib
import json
import logging
import os
import pickle
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
    apply_run_metadata,
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
from diary_lightning.io.outputs import Output, check_outputs
from diary_lightning.model.metadata import RunMetadata, adapter_base_model, checkpoint_state, read_adapter
from diary_lightning.synthesis.command import SynthesizeCommand
from diary_lightning.training.callbacks import PredictionsJsonl, RunSummary, predict_inputs, prediction_identity
from diary_lightning.training.checkpointing import (
    CheckpointOnSigterm,
    ExportAdapter,
    SafeCheckpointIO,
    checkpoint_dir,
    checkpoint_folder,
)
from diary_lightning.training.datamodule import DiaryDataModule
from diary_lightning.training.exact_resume import ExactResume, RngState
from diary_lightning.training.lightning_internals import KeepConfiguredHyperparameters
from diary_lightning.training.lora_module import DiaryLoRAModule

log = logging.getLogger(__name__)


class DiaryTrainer(SynthesizeCommand, Trainer):
    def preprocess(self, model: DiaryLoRAModule | None = None, datamodule: DiaryDataModule | None = None) -> dict[str, Any]:
        """Parse, clean, split and tokenize the data into the cache, and print a JSON summary."""
        from diary_lightning.data.prepare import summarize, too_long

        start = time.perf_counter()
        refuse_cache_over_input("preprocess", datamodule)
        summary = summarize(datamodule)
        log.info("preprocess: data read, tokenized and summarized in %.2fs", time.perf_counter() - start)
        # What the data lost to max_length, said as fit's start-up block says it: a count in the JSON is easy to miss.
        line, warnings = too_long(datamodule.report, datamodule.hparams.max_length)
        log.info("preprocess: %s", " ".join(line.split()))
        for warning in warnings:
            log.warning(warning)
        print(json.dumps(summary, ensure_ascii=False, indent=1))
        return summary

    def export(self, model: DiaryLoRAModule, datamodule: DiaryDataModule, ckpt_path: str,
               output: str | None = None) -> Path:
        """Write a checkpoint's adapter as a PEFT folder with the tokenizer, prompt and generation settings.

        Args:
            ckpt_path: The checkpoint to export (a path, ``best`` or ``last``).
            output: The folder to write (``--output``; default: DEFAULT_ROOT_DIR/adapter).
        """
        from diary_lightning.inference.export import export_adapter

        if model.hparams.adapter_path:
            raise ValueError("export takes --ckpt_path; model.adapter_path is already an exported adapter")
        if ckpt_path == "last":
            ckpt_path = str(checkpoint_dir(self) / "last.ckpt")
        if not Path(ckpt_path).is_file():
            raise FileNotFoundError(f"--ckpt_path {ckpt_path}: no such checkpoint")
        model.trainer = self  # configure_model loads the base onto this trainer's device
        model.configure_model()
        target = export_adapter(model, ckpt_path, output or Path(self.default_root_dir) / "adapter", datamodule)
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
    # Outside fit a checkpoint or an exported adapter names its base model (runs.apply_run_metadata).
    if not config.get("model.base_model") and (subcommand in ("fit", "preprocess") or not adapter):
        missing.append("model.base_model")
    if missing:
        raise ConfigError(f"{subcommand} needs {' and '.join(missing)}, and no --config was given: add the run's "
                          f"config (--config configs/tiny.yaml, or configs/eeve-qlora.yaml), or give "
                          f"{' and '.join('--' + key for key in missing)} on the command line")


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


def options_given(argv: list[str]) -> set[str]:
    """The dotted keys given as options on the command line (``--model.max_new_tokens 4`` gives
    ``model.max_new_tokens``)."""
    return {arg[2:].split("=", 1)[0] for arg in argv if arg.startswith("--")}


def resolve_checkpoint(ckpt_path: str | None, trainer: Trainer) -> str | None:
    """Make ``best`` work in a new process: Lightning only knows it in the process that trained,
    so it is looked up in the state ModelCheckpoint saved into ``last.ckpt``."""
    if ckpt_path != "best" or trainer.checkpoint_callback is None:
        return ckpt_path
    if trainer.checkpoint_callback.best_model_path:
        return ckpt_path
    dirpath = trainer.checkpoint_callback.dirpath
    last = Path(dirpath or "") / "last.ckpt"
    if not dirpath or not last.is_file():
        raise FileNotFoundError(f"--ckpt_path best: no {last} to read the best checkpoint from; give the path instead")
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
        raise ConfigError(f"{message}\n(all options: {prog} --help)")


UNRECOGNIZED = "unrecognized arguments: "


def unknown_option_message(message: str, parser: Any) -> str:
    """``message`` with the closest known option after each unrecognized one."""
    known = [option for action in parser._actions for option in action.option_strings if option.startswith("--")]
    parts = []
    for given in (arg.split("=", 1)[0] for arg in message[len(UNRECOGNIZED):].split() if arg.startswith("--")):
        close = difflib.get_close_matches(given, known, n=1, cutoff=0.6)
        parts.append(f"unknown option {given}" + (f"; did you mean {close[0]}?" if close else ""))
    return "; ".join(parts) or message


class DiaryCLI(RunLocks, KeepConfiguredHyperparameters, LightningCLI):
    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # export's output is the shared --output below, not an argument of its own.
        return {**LightningCLI.subcommands(), "preprocess": {"model", "datamodule"},
                "export": {"model", "datamodule", "output"}, "synthesize": {"model", "datamodule", "output"}}

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_argument("--output", type=str | None, default=None,
                            help="predict: JSONL file for the diaries (default: DEFAULT_ROOT_DIR/predictions.jsonl); "
                                 "export: the adapter folder (default: DEFAULT_ROOT_DIR/adapter); "
                                 "synthesize: the JSONL of diaries to write or complete")
        parser.add_argument("--resume_predictions", type=bool | None, default=None,
                            help="predict: keep the diaries an interrupted predict left in OUTPUT.partial and "
                                 "write only the missing ones (default: when the same weights, settings and inputs "
                                 "wrote them; true: refuse otherwise; false: start over)")
        parser.add_argument("--resume_other_data", type=bool, default=False,
                            help="fit --ckpt_path: continue the run on other training data than it was trained on")
        parser.add_argument("--zero_shot", type=bool, default=False,
                            help="predict: write with the base model alone, no adapter (the zero-shot baseline)")
        parser.link_arguments("model.base_model", "data.tokenizer")
        parser.link_arguments("model.trust_remote_code", "data.trust_remote_code")

    def parse_arguments(self, parser: Any, args: Any) -> None:
        # Kept to tell the options given on the command line from a config's and the defaults.
        self._argv = list(args) if isinstance(args, list) else sys.argv[1:]
        super().parse_arguments(parser, args)

    def before_instantiate_classes(self) -> None:
        refuse_missing_config(self.subcommand, self.config[self.subcommand])
        check_trainer_numbers(self.config[self.subcommand].get("trainer") or {})

    def _ckpt(self) -> None:
        config = self.config_init[self.subcommand]
        if config.get("ckpt_path") and self.model.hparams.adapter_path:
            raise ValueError(f"give --ckpt_path or --model.adapter_path, not both "
                             f"({config['ckpt_path']} and {self.model.hparams.adapter_path})")
        if "ckpt_path" in config:
            config["ckpt_path"] = resolve_checkpoint(config["ckpt_path"], self.trainer)
        last = str(checkpoint_dir(self.trainer) / "last.ckpt")
        if config.get("ckpt_path") == "last" and self.subcommand == "predict":
            # Named now, so that the diaries' record names the very file. validate and test keep "last" for
            # Lightning, which warns rather than fails when there is none yet.
            config["ckpt_path"] = last
        ckpt = config.get("ckpt_path")
        ckpt = last if ckpt == "last" else ckpt
        adapter = self.model.hparams.adapter_path
        if adapter:
            metadata, base = read_adapter(adapter), adapter_base_model(adapter)
        elif ckpt and (ckpt != last or Path(last).is_file()):  # a missing last.ckpt: Lightning says so
            if not Path(ckpt).is_file():
                raise FileNotFoundError(f"--ckpt_path {ckpt}: no such checkpoint")
            try:
                metadata = RunMetadata.from_checkpoint(checkpoint_state(ckpt))
            except (RuntimeError, pickle.UnpicklingError, EOFError):
                return  # not a checkpoint: the output rule is checked first, then loading it names what is wrong
            if metadata is None:
                if not self.model.hparams.base_model:
                    raise ConfigError(f"{ckpt} records no base model (not written by diary_lightning?): give "
                                      "--model.base_model")
                return  # loading it names what is wrong with it
            base = metadata.base_model
        else:
            return
        # Written as DiaryPipeline writes with this adapter or checkpoint: its prompt, max_length and settings.
        apply_run_metadata(self.model, self.datamodule, metadata, adapter or ckpt, base, bool(config.get("config")),
                           options_given(self._argv), adapter=bool(adapter))

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

    def before_export(self) -> None:
        self._lock_run_folder()
        self._ckpt()
        output = self.config_init["export"].get("output") or Path(self.trainer.default_root_dir) / "adapter"
        # fit exports into CHECKPOINT_DIR/adapter itself: export may refresh that one, and nothing else there.
        self._check_outputs("export", [Output("--output", output, "folder", outputs.EXPORTED)], {},
                            allowed_inside=[checkpoint_dir(self.trainer) / "adapter"])

    def _check_outputs(self, subcommand: str, written: list[Output], inputs: dict[str, Any],
                       allowed_inside: list[Any] = ()) -> None:
        """The rule of diary_lightning/io/outputs.py, with what every subcommand of the trainer reads: the
        checkpoint, the adapter, the base model and the run's checkpoint folder."""
        config, h = self.config_init[subcommand], self.model.hparams
        check_outputs(subcommand, written, {
            **inputs, "the checkpoint --ckpt_path": config.get("ckpt_path"),
            "the adapter --model.adapter_path": h.get("adapter_path"), "the base model": h.get("base_model"),
            "the run's checkpoint folder": checkpoint_dir(self.trainer)}, allowed_inside)

    def export(self, **kwargs: Any) -> Path:
        return self.trainer.export(**kwargs, output=self.config_init["export"].get("output"))

    def synthesize(self, **kwargs: Any) -> dict[str, Any]:
        return self.trainer.synthesize(**kwargs, output=self.config_init["synthesize"].get("output"))

    def before_validate(self) -> None:
        self._lock_run_folder()
        self._ckpt()
        require_adapter_or_zero_shot(self.subcommand, self.config_init[self.subcommand], self.model.hparams)

    before_test = before_validate
    # What a job holds is released when it ends (predict also finishes its diaries file first).
    after_fit = after_export = after_validate = after_test = RunLocks._unlock

    def before_predict(self) -> None:
        self._ckpt()
        require_adapter_or_zero_shot(self.subcommand, self.config_init[self.subcommand], self.model.hparams)
        output = self.config_init["predict"].get("output") or os.path.join(self.trainer.default_root_dir, "predictions.jsonl")
        self._check_outputs("predict", [
            Output("--output", output, "file", outputs.PREDICTIONS),
            Output("--output", output + ".partial", "file", outputs.PREDICTIONS_PARTIAL),
            Output("--output", output + ".partial.json", "file", outputs.PREDICTIONS_RECORD)], {
            **outputs.data_inputs("the input --data.predict_path", self.datamodule.hparams.predict_path),
            **outputs.data_inputs("the training data --data.paths", self.datamodule.hparams.paths)})
        check_writable(Path(output).parent)
        self._locks = []
        self._lock(output, "file")
        writer = PredictionsJsonl(output, resume=self.config_init["predict"].get("resume_predictions"),
                                  resume_command=resume_command(self._argv))
        writer.check_identity(prediction_identity(self.config_init["predict"].get("ckpt_path"), self.model,
                                                  self.datamodule))
        self.datamodule.skip_predict_ids = writer.written_ids(predict_inputs(self.datamodule))
        # Every chat read, its writer found and its length checked before the model loads (minutes on EEVE).
        self.datamodule.predict_dataset(self.model.hparams.get("max_new_tokens", 0))
        self.trainer.callbacks.append(writer)

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


def run(argv: list[str]) -> None:
    """The command line without the error reporting: exceptions propagate (tests call this)."""
    check_command_line(argv)  # again, for callers that come in here (python -m checked before importing torch)
    check_config_syntax(argv)
    if argv[:1] == ["merge"]:
        from diary_lightning.inference.export import merge_main

        merge_main(argv[1:])
        return
    if argv[:1] == ["evaluate"]:
        from diary_lightning.cli.evaluate import main as evaluate_main

        evaluate_main(argv[1:])
        return
    if argv[:1] == ["app"]:
        from diary_lightning.inference.app import main as app_main

        app_main(argv[1:])
        return
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
        parser_kwargs={"prog": "python -m diary_lightning",
                       "epilog": "merge: fold an exported adapter into its base as a plain transformers model "
                                 "(python -m diary_lightning merge --help); evaluate: systems side by side on the "
                                 "benchmark (python -m diary_lightning evaluate --help); app: a web page to try an adapter "
                                 "(python -m diary_lightning app --help)"},
        # Given the program's own arguments, LightningCLI reads them itself (it warns when handed them).
        args=None if argv == sys.argv[1:] else argv,
    )

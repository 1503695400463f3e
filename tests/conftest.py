"""Shared fixtures: a tiny random Llama and tokenizer built once per session, and tiny-run configs."""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

# Nothing here may reach for the Hub: without this, a name that could be a Hub id waits out
# huggingface_hub's retries (about 45 s per test). Set before transformers is imported, which reads it once.
os.environ["HF_HUB_OFFLINE"] = "1"

from diary_lightning.model.tiny import build_tiny_model, sample_data_path

ROOT = Path(__file__).resolve().parents[1]


def subprocess_env(*paths: str | os.PathLike, **variables: str) -> dict[str, str]:
    """This process's environment for a child ``python``: the repository (and ``paths``) importable first,
    ``variables`` set."""
    path = os.pathsep.join([str(ROOT), *map(str, paths), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **variables}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir: Path) -> Any:
    from diary_lightning.model.loading import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


@pytest.fixture(scope="session")
def sample_dialogues() -> Path:
    return sample_data_path()


@pytest.fixture(scope="session")
def sample_chats() -> Path:
    return sample_data_path("sample_chats.jsonl")


@pytest.fixture(scope="session")
def aihub_sample() -> Path:
    """AI Hub's own validation sample, which may not be copied into the project: read where it lies."""
    path = Path(os.environ.get("DIARY_AIHUB_SAMPLE", ROOT.parent / "shared" / "aihub-sample"))
    if not path.is_dir():
        pytest.skip(f"AI Hub sample not found at {path} (set DIARY_AIHUB_SAMPLE)")
    return path


def tiny_config(tmp_path: Path, model_dir: Path, **overrides: Any) -> Path:
    """configs/tiny.yaml with every output under ``tmp_path`` and ``overrides`` merged in
    (dotted keys: ``{"trainer.max_steps": 4}``). Returns the path of the written YAML."""
    config = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())
    run = tmp_path / "run"
    trainer = config["trainer"]
    trainer["default_root_dir"] = str(run)  # moves checkpoints and logs too
    trainer["enable_progress_bar"] = False
    trainer["enable_model_summary"] = False
    config["model"]["base_model"] = str(model_dir)
    config["data"]["paths"] = [str(sample_data_path())]
    config["data"]["predict_path"] = str(sample_data_path("sample_chats.jsonl"))
    config["data"]["cache_dir"] = str(tmp_path / "cache")
    for dotted, value in overrides.items():
        node = config
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = copy.deepcopy(value)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


@pytest.fixture
def make_config(tmp_path: Path, tiny_model_dir: Path):
    def make(**overrides: Any) -> Path:
        return tiny_config(tmp_path, tiny_model_dir, **overrides)

    return make


def lora_module(model_dir: Path, **hparams: Any) -> Any:
    """A DiaryLoRAModule on the tiny model with its model built (float32, LoRA r 4, no dropout unless given)."""
    from diary_lightning.training.lora_module import DiaryLoRAModule

    module = DiaryLoRAModule(base_model=str(model_dir), **{"compute_dtype": "float32", "lora_r": 4, "lora_alpha": 8,
                                                           "lora_dropout": 0.0, **hparams})
    module.configure_model()
    return module


def random_b_module(model_dir: Path, seed: int | None = None, **hparams: Any) -> Any:
    """:func:`lora_module` with every lora_B drawn at random (seed 1): a fresh lora_B is zero, which would
    leave every lora_A gradient zero and a comparison of gradients empty. ``seed`` fixes lora_A too."""
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    module = lora_module(model_dir, **hparams)
    torch.manual_seed(1)
    for name, param in module.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)
    return module


def run_cli(*args: str) -> None:
    """Run the CLI in this process, as ``python -m diary_lightning ARGS`` would, but with user errors raised
    rather than reported with exit status 2, so tests can check them."""
    from diary_lightning.cli.commands import run

    run(list(args))


@pytest.fixture(autouse=True, scope="session")
def _argv_without_pytests_options() -> Any:
    # pytest's own arguments in sys.argv would make every in-process LightningCLI (run_cli, evaluate's and the
    # app's main) warn that it was given both args and a command line: dozens of warnings a run, none meaningful.
    # For the session, so that module-scoped fixtures running the CLI are covered too.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", sys.argv[:1])
        yield


@pytest.fixture(scope="session")
def reference_fit(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    """An uninterrupted tiny fit (tests/fits.py RUN), shared by the resume and determinism tests."""
    from fits import ReferenceFit, fit_config

    reference = ReferenceFit(fit_config(tmp_path_factory.mktemp("fits"), tiny_model_dir, "reference"))
    yield reference
    if reference.process is not None:
        reference.process.kill()
        reference.process.wait()


def pytest_sessionstart(session: pytest.Session) -> None:
    # The CLI's subprocesses forked from one that has imported torch and the rest once (tests/forkserver.py).
    import forkserver

    forkserver.install()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import forkserver

    forkserver.shutdown()
    if hasattr(session.config, "workeroutput"):  # an xdist worker: its counts go to the controller
        session.config.workeroutput["forkserver"] = dict(forkserver.counts)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    import forkserver

    forkserver.counts.update(getattr(node, "workeroutput", {}).get("forkserver", {}))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    # So that a run where most commands fell back to fresh interpreters (slow, not wrong) shows why.
    import forkserver

    if forkserver.counts:
        terminalreporter.write_line("CLI subprocesses: " + ", ".join(f"{n} {why}" for why, n in
                                                                     forkserver.counts.most_common()))


# The longest tests, started first: CI runs the suite on two workers (pytest -n 2), and one of these begun last
# would keep a worker busy for minutes after the other has run out of tests.
LONGEST = ("test_readme.py::test_the_readme_works_as_written_on_a_fresh_copy", "test_kill_moments.py::",
           "test_gpu_check.py::test_a_cpu_dry_run_writes_the_whole_report")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {item: next((i for i, name in enumerate(LONGEST) if name in item.nodeid), len(LONGEST)) for item in items}
    items.sort(key=rank.__getitem__)  # stable: the rest keep their order

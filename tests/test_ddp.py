"""Two DDP processes on the CPU (gloo), through the CLI, each with its own 4-bit copy of the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import subprocess_env
from fits import ddp_fit as ddp_fit_in_subprocesses
from safetensors.torch import load_file

from diary_lightning.io.outputs import mark_path

pytestmark = pytest.mark.slow  # two processes that train

STEPS = 7  # 51 training dialogues, 26 a rank at batch 4: one whole epoch


@pytest.fixture(scope="module")
def ddp_fit(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, Path]:
    from conftest import tiny_config

    tmp = tmp_path_factory.mktemp("ddp")
    config = tiny_config(tmp, tiny_model_dir, **{
        "trainer.max_steps": STEPS, "trainer.val_check_interval": STEPS, "trainer.log_every_n_steps": 1,
        "model.lora_dropout": 0.1,  # the ranks draw their masks apart; the gradients are still averaged
        "model.loss_chunk_size": 16,  # the chunked loss under DDP: the adapters still get every gradient
        "model.max_new_tokens": 8, "data.val_generate_samples": 5,  # odd: the ranks generate 3 and 2
    })
    probe = tmp / "probe"
    ddp_fit_in_subprocesses(config, "ddp_probe.RankProbe", probe)
    return tmp / "run", probe


def test_both_ranks_end_with_the_same_adapter(ddp_fit: tuple[Path, Path]) -> None:
    _, probe = ddp_fit
    ranks = [load_file(probe / f"rank{r}.safetensors") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and ranks[0]
    for key, value in ranks[0].items():
        assert value.equal(ranks[1][key]), key
    assert any(value.abs().sum() > 0 for key, value in ranks[0].items() if "lora_B" in key)


def test_ranks_train_on_disjoint_shares_of_the_data(ddp_fit: tuple[Path, Path]) -> None:
    _, probe = ddp_fit
    seen = [json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(s["world_size"] == 2 and len(s["batches"]) == STEPS for s in seen)
    ids = [[i for batch in s["batches"] for i in batch] for s in seen]
    assert len(ids[0]) == len(ids[1]) == 26
    # One epoch of 51 dialogues over two ranks: every dialogue once, and one repeated to even the shares.
    assert len(set(ids[0]) | set(ids[1])) == 51
    assert len(set(ids[0]) & set(ids[1])) <= 1


def test_only_rank_zero_writes(ddp_fit: tuple[Path, Path]) -> None:
    run, _ = ddp_fit
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints.count("last.ckpt") == 1
    step_checkpoints = [name for name in checkpoints if name.startswith("step")]
    assert len(step_checkpoints) == 1 and step_checkpoints[0].startswith(f"step{STEPS:05d}-loss"), checkpoints
    assert set(checkpoints) == {"last.ckpt", "adapter", *step_checkpoints}
    assert [p.name for p in (run / "tensorboard").iterdir()] == ["version_0"]


def test_validation_gathers_both_ranks_generations(ddp_fit: tuple[Path, Path]) -> None:
    """Rank r wrote diaries for positions r, r + 2, ... of the subset; the table on rank 0 lists them in
    subset order, as one process would."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from diary_lightning.evaluation.samples import TABLE_ROWS
    from diary_lightning.training.datamodule import DiaryDataModule

    run, _ = ddp_fit
    config = yaml.safe_load((run.parent / "config.yaml").read_text())
    data = DiaryDataModule(**config["data"], tokenizer=config["model"]["base_model"])
    expected = [row["id"] for row in data.generation_dataloader("val").dataset][:TABLE_ROWS]

    events = EventAccumulator(str(run / "tensorboard" / "version_0"), size_guidance={"tensors": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("val/loss")] == [e.step for e in events.Scalars("val/chrf")] == [STEPS - 1]
    (table,) = events.Tensors("val/samples/text_summary")
    lines = table.tensor_proto.string_val[0].decode().splitlines()[2:]
    assert [line.strip("|").split(" | ")[0].strip() for line in lines] == expected


def test_sigterm_to_one_rank_saves_and_stops_every_rank(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A pre-emption may signal one process only: the ranks agree to save at the same step, so the run
    ends with a checkpoint rather than hanging at the save's barrier."""
    import contextlib
    import signal
    import time

    import psutil
    import torch
    from conftest import tiny_config

    config = tiny_config(tmp_path, tiny_model_dir, **{
        "trainer.max_steps": 10_000, "trainer.val_check_interval": 10_000, "trainer.num_sanity_val_steps": 0,
        "data.val_generate_samples": 0,
    })
    env = subprocess_env()
    main = subprocess.Popen(
        [sys.executable, "-m", "diary_lightning", "fit", "--config", str(config),
         "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    children: list[psutil.Process] = []
    try:
        last = tmp_path / "run" / "checkpoints" / "last.ckpt"
        deadline = time.monotonic() + 240
        while not last.is_file():  # the step checkpoints (every 10 steps) show that both ranks train
            assert main.poll() is None, main.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no step checkpoint within 240 s"
            time.sleep(0.1)
        children = psutil.Process(main.pid).children(recursive=True)
        (rank1,) = [p for p in children if "diary_lightning" in " ".join(p.cmdline())]
        rank1.send_signal(signal.SIGTERM)
        _, err = main.communicate(timeout=120)
    finally:  # a hung run must not outlive the test
        main.kill()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
    assert "SIGTERM received" in err and "resume with --ckpt_path last" in err, err[-3000:]
    assert 10 <= torch.load(last, map_location="cpu", weights_only=True)["global_step"] < 10_000


# -- predict over the ranks: each generates its share, rank 0 writes one file in the input's order -------------
def _predict(config: Path, output: Path, *extra: str, ranks: int = 2) -> float:
    """``predict`` with the fit's last checkpoint on ``ranks`` gloo processes; returns its wall time."""
    import time

    command = [sys.executable, "-m", "diary_lightning", "predict", "--config", str(config),
               "--ckpt_path", str(config.parent / "run" / "checkpoints" / "last.ckpt"), "--output", str(output),
               "--data.eval_batch_size", "2", "--model.max_new_tokens", "4", "--trainer.accelerator", "cpu",
               "--trainer.devices", str(ranks), *(["--trainer.strategy", "ddp"] if ranks > 1 else []), *extra]
    start = time.monotonic()
    done = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return time.monotonic() - start


def _input_ids(config: Path) -> list[str]:
    from diary_lightning.data.dialogue import read_dialogues

    path = yaml.safe_load(config.read_text())["data"]["predict_path"]
    return [d.id for d in read_dialogues(path, require_summary=False).dialogues]


def _ids(output: Path) -> list[str]:
    return [json.loads(line)["id"] for line in output.read_text(encoding="utf-8").splitlines()]


def test_predict_on_two_ranks_writes_each_diary_once_in_input_order(ddp_fit: tuple[Path, Path], tmp_path: Path) -> None:
    config = ddp_fit[0].parent / "config.yaml"
    two, one = tmp_path / "two.jsonl", tmp_path / "one.jsonl"
    seconds = {2: _predict(config, two), 1: _predict(config, one, ranks=1)}
    print(f"predict wall time: 2 ranks {seconds[2]:.1f} s, 1 process {seconds[1]:.1f} s")
    assert _ids(two) == _ids(one) == _input_ids(config)
    # No rank files left: the two outputs and predict's mark beside each.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(mark_path(o).name for o in (one, two)), one.name,
                                                                 two.name])


def test_a_two_rank_predict_resumes_from_every_rank_file(ddp_fit: tuple[Path, Path], tmp_path: Path) -> None:
    from diary_lightning.training.callbacks import prediction_identity, write_record
    from diary_lightning.training.datamodule import DiaryDataModule
    from diary_lightning.training.lora_module import DiaryLoRAModule

    config = ddp_fit[0].parent / "config.yaml"
    ids = _input_ids(config)
    output = tmp_path / "diaries.jsonl"
    partial = output.with_name(output.name + ".partial")
    # What a killed two-rank predict leaves: rank 0's file and rank 1's, the latter with a torn last line.
    line = lambda i: json.dumps({"id": i, "diary": f"이미 쓴 일기 {i}", "style_failures": []}, ensure_ascii=False) + "\n"
    partial.write_text(line(ids[0]) + line(ids[2]), encoding="utf-8")
    partial.with_name(partial.name + ".rank1").write_text(line(ids[1]) + line(ids[3])[:15], encoding="utf-8")
    settings = yaml.safe_load(config.read_text())
    module = DiaryLoRAModule(**{**settings["model"], "max_new_tokens": 4})
    data = DiaryDataModule(**{**settings["data"], "eval_batch_size": 2}, tokenizer=settings["model"]["base_model"])
    checkpoint = config.parent / "run" / "checkpoints" / "last.ckpt"
    write_record(partial.with_name(partial.name + ".json"), prediction_identity(str(checkpoint), module, data))

    _predict(config, output, "--resume_predictions", "true")
    assert _ids(output) == ids  # every diary once, in the input's order
    kept = output.read_text(encoding="utf-8").splitlines(keepends=True)[:3]
    assert kept == [line(ids[0]), line(ids[1]), line(ids[2])]  # the interrupted run's diaries, not regenerated
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([output.name, mark_path(output).name])

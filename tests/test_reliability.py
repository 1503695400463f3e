"""Nothing half-written, nothing unsafe loaded, no run that fails hours in on an unwritable directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import lora_module, run_cli
from fits import run_dir

from diary_lightning.data.dialogue import read_dialogues
from diary_lightning.model.loading import AdapterMismatchError, check_adapter_checkpoint
from diary_lightning.model.tiny import build_tiny_model
from diary_lightning.training.checkpointing import SafeCheckpointIO
from diary_lightning.io.jsonl import OutputError, open_for_resume
from diary_lightning.io.outputs import OutputOverInputError, claim, mark_path
from diary_lightning.training.lora_module import DiaryLoRAModule


@pytest.fixture(scope="module")
def trained(reference_fit: Any) -> dict[str, Any]:
    run = reference_fit.wait()
    last = run / "checkpoints" / "last.ckpt"
    return {"config": reference_fit.config, "last": last,
            "checkpoint": torch.load(last, map_location="cpu", weights_only=True)}


# -- predict: streamed, resumable, never duplicated ----------------------------------------------------------------
def _record(config: Path, checkpoint: Path, partial: Path, **model: Any) -> None:
    """What a predict with ``config`` and ``model`` overrides records beside the ``.partial`` it starts."""
    from diary_lightning.training.callbacks import prediction_identity, write_record
    from diary_lightning.training.datamodule import DiaryDataModule

    settings = yaml.safe_load(config.read_text())
    module = DiaryLoRAModule(**{**settings["model"], **model})
    data = DiaryDataModule(**settings["data"], tokenizer=settings["model"]["base_model"])
    write_record(partial.with_name(partial.name + ".json"), prediction_identity(str(checkpoint), module, data))


@pytest.mark.slow
def test_resumed_predict_writes_each_missing_diary_once(trained: dict[str, Any], sample_chats: Path,
                                                        tmp_path: Path) -> None:
    ids = [d.id for d in read_dialogues(str(sample_chats), require_summary=False).dialogues]
    output = tmp_path / "diaries.jsonl"
    partial = output.with_name(output.name + ".partial")
    # What a predict killed mid-write leaves: three whole records and a torn fourth.
    kept = [json.dumps({"id": i, "diary": f"이미 쓴 일기 {i}"}, ensure_ascii=False) + "\n" for i in ids[:3]]
    partial.write_text("".join(kept) + json.dumps({"id": ids[3], "diary": "잘린"}, ensure_ascii=False)[:20])
    _record(trained["config"], trained["last"], partial, max_new_tokens=4)

    run_cli("predict", "--config", str(trained["config"]), "--ckpt_path", str(trained["last"]),
            "--output", str(output), "--resume_predictions", "true", "--model.max_new_tokens", "4")

    assert not partial.exists()
    lines = output.read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[:3] == kept
    written = [json.loads(line)["id"] for line in lines]
    assert sorted(written) == sorted(ids)
    assert len(written) == len(set(written))


@pytest.mark.slow
def test_resumed_predict_with_nothing_left_publishes_the_output(trained: dict[str, Any], sample_chats: Path,
                                                                tmp_path: Path) -> None:
    ids = [d.id for d in read_dialogues(str(sample_chats), require_summary=False).dialogues]
    output = tmp_path / "diaries.jsonl"
    done = "".join(json.dumps({"id": i, "diary": "다 썼다"}, ensure_ascii=False) + "\n" for i in ids)
    output.with_name(output.name + ".partial").write_text(done)
    _record(trained["config"], trained["last"], output.with_name(output.name + ".partial"))
    run_cli("predict", "--config", str(trained["config"]), "--ckpt_path", str(trained["last"]),
            "--output", str(output), "--resume_predictions", "true")
    assert output.read_text(encoding="utf-8") == done
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([output.name, mark_path(output).name])


def test_completed_predictions_cuts_a_torn_last_line(tmp_path: Path) -> None:
    partial = tmp_path / "out.jsonl.partial"
    partial.write_bytes(b'{"id": "a", "diary": "x"}\n{"id": "b", "diary": "y"}\n{"id": "c", "di')
    # Only a file predict marked as its own is cut: an unmarked one may be the user's.
    with pytest.raises(OutputError, match="carries no mark of predict"):
        open_for_resume(partial, "predict")
    claim(partial, "predict")
    assert [r["id"] for r in open_for_resume(partial, "predict")] == ["a", "b"]
    assert partial.read_bytes() == b'{"id": "a", "diary": "x"}\n{"id": "b", "diary": "y"}\n'
    assert open_for_resume(tmp_path / "missing", "predict") == []


# -- checkpoints: written whole, read with weights_only ---------------------------------------------------------
class _Unpicklable:
    def __reduce__(self) -> Any:
        raise RuntimeError("disk full")


class _Arbitrary:
    pass


def test_interrupted_checkpoint_write_keeps_the_previous_file(tmp_path: Path) -> None:
    io = SafeCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(2)}, path)
    with pytest.raises(RuntimeError, match="disk full"):
        io.save_checkpoint({"global_step": 2, "bad": _Unpicklable()}, path)
    assert io.load_checkpoint(path)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


@pytest.mark.slow
def test_checkpoints_load_with_weights_only_by_default(tmp_path: Path, trained: dict[str, Any]) -> None:
    io = SafeCheckpointIO()
    assert io.load_checkpoint(trained["last"])["global_step"] == trained["checkpoint"]["global_step"]
    path = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": {}, "payload": _Arbitrary()}, path)
    with pytest.raises(Exception, match="Weights only load failed"):
        io.load_checkpoint(path)


@pytest.mark.slow
# -- adapters: exported with PEFT, refused when they do not fit --------------------------------------------------
def test_fit_exports_the_best_adapter_as_safetensors(trained: dict[str, Any]) -> None:
    from safetensors.torch import load_file

    adapter = trained["last"].parent / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    weights = load_file(adapter / "adapter_model.safetensors")
    saved = [k for k in trained["checkpoint"]["state_dict"] if "lora_" in k]
    assert config["r"] == trained["checkpoint"]["diary_lightning"]["lora"]["r"]
    assert len(weights) == len(saved) > 0
    assert json.loads((adapter / "diary_lightning.json").read_text())["prompt_template"]
    assert not [p for p in adapter.parent.iterdir() if p.name.startswith(".")]  # no temporary left behind


def _module(base: Path, **hparams: Any) -> DiaryLoRAModule:
    return lora_module(base, load_in_4bit=False, **hparams)


@pytest.mark.slow
@pytest.mark.parametrize("change", ["lora_r", "base", "missing"])
def test_mismatched_checkpoint_is_refused_naming_both_sides(change: str, trained: dict[str, Any],
                                                             tiny_model_dir: Path, tmp_path: Path) -> None:
    checkpoint = dict(trained["checkpoint"])
    if change == "lora_r":
        module, expected = _module(tiny_model_dir, lora_r=4, lora_alpha=16), r"r=4.*shape|r': 8.*r=4"
    elif change == "base":
        other = build_tiny_model(tmp_path / "other", hidden_size=32)
        module, expected = _module(other, lora_r=8, lora_alpha=16), "hidden_size': 64.*hidden_size': 32"
    else:
        state = dict(checkpoint["state_dict"])
        state.pop(sorted(state)[0])
        checkpoint["state_dict"] = state
        module, expected = _module(tiny_model_dir, lora_r=8, lora_alpha=16), "1 adapter weight\\(s\\) missing"
    with pytest.raises(AdapterMismatchError, match=expected) as error:
        _check(checkpoint, module)
    assert str(module.hparams.base_model) in str(error.value)
    _check(trained["checkpoint"], _module(tiny_model_dir, lora_r=8, lora_alpha=16))


def _check(checkpoint: dict[str, Any], module: DiaryLoRAModule) -> None:
    check_adapter_checkpoint(checkpoint, module.hparams, module.base_fingerprint, module.adapter_state_dict())


# -- outputs: unwritable directories fail before training -------------------------------------------------------
@pytest.mark.slow
def test_unwritable_checkpoint_dir_fails_before_training(make_config: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = yaml.safe_load(make_config().read_text())
    # An explicit dirpath still wins over ROOT/checkpoints; under a file it fails even as root.
    config["trainer"]["callbacks"][0]["init_args"]["dirpath"] = str(blocker / "checkpoints")
    path = tmp_path / "unwritable.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    # Refused with the other outputs' checks, naming the folder and why.
    with pytest.raises(OutputOverInputError, match=f"{blocker / 'checkpoints'}: a part of the path is a file"):
        run_cli("fit", "--config", str(path))
    assert not (run_dir(path) / "tensorboard").exists()  # nothing trained, nothing logged


def test_the_writer_merges_the_rank_files_in_input_order_and_publishes_once(tmp_path: Path) -> None:
    from diary_lightning.training.callbacks import PredictionsJsonl

    writer = PredictionsJsonl(str(tmp_path / "out.jsonl"))
    line = lambda i: json.dumps({"id": i, "diary": f"일기 {i}"}, ensure_ascii=False) + "\n"  # noqa: E731
    writer.partial.write_text(line("a") + line("c"), encoding="utf-8")  # rank 0's share
    writer.partial.with_name(writer.partial.name + ".rank1").write_text(line("b") + line("d"), encoding="utf-8")
    writer.finish(["a", "b", "c", "d"])
    writer.finish(["a", "b", "c", "d"])  # again, as the CLI's after_predict does after on_predict_end
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == "".join(map(line, "abcd"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.jsonl", mark_path(tmp_path / "out.jsonl").name])

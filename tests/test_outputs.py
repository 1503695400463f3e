"""Issue 22: no subcommand writes over what it reads, or over a file or folder it did not write. Each refusal comes
before any work, names both paths, and leaves the input as it was."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import run_cli
from diary_lightning.io.outputs import MARKER, Output, OutputOverInputError, check_outputs, folder_with, jsonl_with

AIHUB = b'{"numberOfItems": 1, "data": [{"header": {"dialogueInfo": {"dialogueID": "a1"}}, ' \
        b'"body": {"dialogue": [{"participantID": "P01", "utterance": "\xec\x95\x88\xeb\x85\x95"}], "summary": "x"}}]}'


def digest(path: Path) -> str:
    """The bytes of a file, or of every file under a folder with their names."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return hashlib.sha256(b"".join(p.relative_to(path).as_posix().encode() + p.read_bytes()
                                   for p in sorted(path.rglob("*")) if p.is_file())).hexdigest()


def refused(call, *paths: Path) -> str:
    before = {p: digest(p) for p in paths if p.exists()}
    with pytest.raises(OutputOverInputError) as caught:
        call()
    assert {p: digest(p) for p in before} == before  # nothing touched
    return str(caught.value)


# -- the rule --------------------------------------------------------------------------------------------------

def test_the_rule_is_contains_and_inside_and_only_replaces_its_own(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "a.json").write_bytes(AIHUB)
    ours = jsonl_with("id", "diary")
    inputs = {"the data": [data]}
    for out, relation in [(data, "is"), (tmp_path, "contains"), (data / "sub" / "new.jsonl", "lies inside")]:
        message = refused(lambda: check_outputs("predict", [Output("--output", out, "file", ours)], inputs))
        assert f"--output {out} {relation} the data {data}" in message
    check_outputs("predict", [Output("--output", tmp_path / "elsewhere.jsonl", "file", ours)], inputs)

    foreign = tmp_path / "notes.jsonl"
    foreign.write_text('{"id": "x", "text": "mine"}\n')
    message = refused(lambda: check_outputs("predict", [Output("--output", foreign, "file", ours)], {}), foreign)
    assert "not written by predict" in message and str(foreign) in message
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"id": "x", "diary": "d"}\n')
    check_outputs("predict", [Output("--output", mine, "file", ours)], {})
    (tmp_path / "empty.jsonl").write_text("")
    check_outputs("predict", [Output("--output", tmp_path / "empty.jsonl", "file", ours)], {})


def test_a_folder_output_only_replaces_a_folder_it_wrote(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    check_outputs("merge", [Output("--output", folder, "folder", folder_with("x"))], {})  # empty
    (folder / "weights.bin").write_text("w")
    refused(lambda: check_outputs("merge", [Output("--output", folder, "folder", folder_with("x"))], {}), folder)
    (folder / MARKER).write_text('{"written_by": "merge"}')
    check_outputs("merge", [Output("--output", folder, "folder", folder_with("x"))], {})
    refused(lambda: check_outputs("export", [Output("--output", folder, "folder", folder_with("x"))], {}))
    refused(lambda: check_outputs("merge", [Output("--output", folder / "weights.bin", "folder", folder_with())], {}))


def test_a_hub_name_is_no_local_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_outputs("merge", [Output("--output", tmp_path / "m", "folder", folder_with())], {"the base model": "org/m"})


# -- per subcommand, through the command line ------------------------------------------------------------------

@pytest.fixture
def run_folder(make_config, tmp_path, tiny_model_dir):
    """A run folder with a checkpoint, a config naming it, and an adapter folder as export writes one."""
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "last.ckpt").write_bytes(b"checkpoint bytes")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tmp_path / "base")}))
    from diary_lightning.data.encoding import PromptFormat
    from diary_lightning.model.settings import RunSettings
    from diary_lightning.training.lora_module import DiaryLoRAModule
    from diary_lightning.data.prompts import TEMPLATES

    module = DiaryLoRAModule(base_model=str(tiny_model_dir))
    prompt = PromptFormat.from_settings({"prompt_template": TEMPLATES["eeve-diary"], "anonymization": "placeholder"})
    settings = module.run_metadata(RunSettings(prompt, 512, module.generation)).to_dict()
    (adapter / "diary_lightning.json").write_text(json.dumps(settings))
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    return make_config(), checkpoints, adapter


@pytest.mark.slow
def test_predict_refuses_each_input_as_its_output(run_folder, tiny_model_dir, tmp_path):
    config, checkpoints, adapter = run_folder
    chats = tmp_path / "chats.jsonl"
    chats.write_text('{"id": "c1", "dialogue": [{"speaker": "A", "text": "안녕"}]}')  # no newline at its end
    ckpt = checkpoints / "last.ckpt"

    def predict(output, *more):
        return lambda: run_cli("predict", "--config", str(config), "--data.predict_path", str(chats), "--output",
                               str(output), *more)

    assert "the input --data.predict_path" in refused(predict(chats, "--ckpt_path", str(ckpt)), chats, ckpt)
    assert "the checkpoint --ckpt_path" in refused(predict(ckpt, "--ckpt_path", str(ckpt)), ckpt)
    assert "the run's checkpoint folder" in refused(predict(checkpoints / "p.jsonl", "--ckpt_path", str(ckpt)), ckpt)
    assert "the adapter --model.adapter_path" in refused(
        predict(adapter / "adapter_model.safetensors", "--model.adapter_path", str(adapter)), adapter)
    assert "the base model" in refused(predict(tiny_model_dir / "config.json", "--zero_shot", "true"), tiny_model_dir)
    foreign = tmp_path / "notes.jsonl"
    foreign.write_text('{"id": "n", "note": "mine"}\n')
    assert "not written by predict" in refused(predict(foreign, "--zero_shot", "true"), foreign)


@pytest.mark.slow
def test_synthesize_refuses_its_data_as_its_output(make_config, tmp_path):
    config = make_config()
    aihub = tmp_path / "aihub.json"
    aihub.write_bytes(AIHUB)
    nikl = tmp_path / "nikl.json"
    nikl.write_text(json.dumps([{"id": "n1", "input": {"conversation": []}, "output": "x"}]))
    jsonl = tmp_path / "data" / "chats.jsonl"
    jsonl.parent.mkdir()
    jsonl.write_text(json.dumps({"id": "j1", "dialogue": [{"speaker": "A", "text": "안녕"}], "summary": "s"}))

    def synthesize(data, output):
        return lambda: run_cli("synthesize", "--config", str(config), "--data.paths", json.dumps([str(data)]),
                               "--output", str(output), "--progress", "false")

    for data in (aihub, nikl, jsonl):
        assert "is the data --data.paths" in refused(synthesize(data, data), data)
    assert "lies inside the data --data.paths" in refused(synthesize(jsonl.parent, jsonl.parent / "out.jsonl"), jsonl)
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    assert "the run's checkpoint folder" in refused(synthesize(aihub, checkpoints / "d.jsonl"))
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text('{"id": "x", "text": "a line without its newline"}')
    assert "not written by synthesize" in refused(synthesize(aihub, foreign), foreign)


@pytest.mark.slow
def test_export_refuses_the_checkpoint_folder_and_its_inputs(run_folder, tiny_model_dir, tmp_path):
    config, checkpoints, adapter = run_folder
    ckpt = checkpoints / "last.ckpt"

    def export(output):
        return lambda: run_cli("export", "--config", str(config), "--ckpt_path", str(ckpt), "--output", str(output))

    assert "contains the checkpoint --ckpt_path" in refused(export(checkpoints), checkpoints)
    assert "contains the checkpoint --ckpt_path" in refused(export(checkpoints.parent), checkpoints)
    assert "is the checkpoint --ckpt_path" in refused(export(ckpt), ckpt)
    assert "lies inside the run's checkpoint folder" in refused(export(checkpoints / "other"), checkpoints)
    assert "is the base model" in refused(export(tiny_model_dir), tiny_model_dir)
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "a.jpg").write_bytes(b"jpg")
    assert "not written by export" in refused(export(foreign), foreign)


def test_merge_refuses_the_adapter_and_the_base(run_folder, tmp_path):
    from conftest import run_cli

    def merge_main(args):
        run_cli("merge", *args)

    _, _, adapter = run_folder
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    assert "is the adapter --adapter_path" in refused(lambda: merge_main(["--adapter_path", str(adapter), "--output",
                                                                          str(adapter)]), adapter)
    assert "lies inside the adapter" in refused(lambda: merge_main(["--adapter_path", str(adapter), "--output",
                                                                    str(adapter / "merged")]), adapter)
    assert "is the base model" in refused(lambda: merge_main(["--adapter_path", str(adapter), "--output",
                                                              str(base)]), base)
    foreign = tmp_path / "work"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    assert "not written by merge" in refused(lambda: merge_main(["--adapter_path", str(adapter), "--output",
                                                                 str(foreign)]), foreign)


def _data_folder(tmp_path, make_config):
    """A folder of one JSONL chat, and a config that reads it."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "chats.jsonl").write_text(json.dumps({"id": "j1", "dialogue": [{"speaker": "A", "text": "안녕"}],
                                                  "summary": "s"}) + "\n")
    return data, make_config(**{"data.paths": [str(data)]})


@pytest.mark.slow
def test_fit_refuses_a_run_folder_inside_its_data_or_base(make_config, tiny_model_dir, tmp_path):
    data, config = _data_folder(tmp_path, make_config)
    message = refused(lambda: run_cli("fit", "--config", str(config), "--trainer.default_root_dir",
                                      str(data / "run")), data)
    assert "lies inside the data --data.paths" in message
    assert not (data / "run").exists()
    assert "the base model" in refused(lambda: run_cli("fit", "--config", str(config), "--trainer.default_root_dir",
                                                       str(tiny_model_dir)), tiny_model_dir)


@pytest.mark.slow
def test_preprocess_refuses_a_cache_that_holds_the_data(make_config, tiny_model_dir, tmp_path):
    data, config = _data_folder(tmp_path, make_config)
    assert "is the data --data.paths" in refused(lambda: run_cli("preprocess", "--config", str(config),
                                                               "--data.cache_dir", str(data)), data)
    assert "lies inside the tokenizer" in refused(lambda: run_cli("preprocess", "--config", str(config),
                                                                  "--data.cache_dir", str(tiny_model_dir / "c")))


# -- issue 22: --resume_predictions continues the same input, or is refused naming the first line that is not ----

def _chats(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": f"c{i}", "dialogue": [{"speaker": "A", "text": t},
                                                                     {"speaker": "B", "text": "응"}]},
                                       ensure_ascii=False) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    return path


@pytest.mark.slow
def test_resume_predictions_refuses_a_partial_written_for_another_input(make_config, tmp_path):
    import yaml

    from diary_lightning.training.callbacks import predict_inputs, prediction_identity, write_record
    from diary_lightning.training.datamodule import DiaryDataModule
    from diary_lightning.training.lora_module import DiaryLoRAModule

    config = make_config()
    first = _chats(tmp_path / "first.jsonl", ["오늘 비가 왔어", "우산을 잃어버렸어", "집에 왔어"])
    output = tmp_path / "diaries.jsonl"
    partial = output.with_name(output.name + ".partial")
    partial.write_text('{"id": "c0", "diary": "비", "style_failures": []}\n'
                       '{"id": "c1", "diary": "우산", "style_failures": []}\n', encoding="utf-8")
    settings = yaml.safe_load(config.read_text())
    data = DiaryDataModule(**{**settings["data"], "predict_path": str(first)}, tokenizer=settings["model"]["base_model"])
    identity = prediction_identity(None, DiaryLoRAModule(**settings["model"]), data)
    write_record(partial.with_name(partial.name + ".json"), {**identity, "input": predict_inputs(data)})
    started = partial.read_bytes()

    def resume(chats):
        run_cli("predict", "--config", str(config), "--zero_shot", "true", "--data.predict_path", str(chats),
                "--output", str(output), "--resume_predictions", "true")

    other = _chats(tmp_path / "other.jsonl", ["전혀", "다른", "대화"])
    other.write_text(other.read_text(encoding="utf-8").replace('"c', '"x'), encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 1 \(id 'c0'\) is for a dialogue that is not in the input"):
        resume(other)
    edited = _chats(tmp_path / "edited.jsonl", ["오늘 비가 왔어", "우산을 찾았어", "집에 왔어"])
    with pytest.raises(ValueError, match=r"line 2 \(id 'c1'\) was written for another text"):
        resume(edited)
    assert partial.read_bytes() == started and not output.exists()

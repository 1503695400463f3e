"""Handing the adapter over: export, plain PEFT loading, merge, DiaryPipeline, predict from an adapter folder
and from a plain-text chat log."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import ROOT, run_cli

from diary_lightning.data.dialogue import read_dialogues
from diary_lightning.data.records import DataError, Turn
from diary_lightning.data.roles import LabelScheme
from diary_lightning.evaluation.diary_style import style_failures

CHAT = "P01: 오늘 비가 많이 와서 #@이름# 만났어\nP02: 우산은 챙겼어?\n\nP01: 아니 그래서 다 젖었어\nP01: 감기 걸릴 것 같아\n"


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def exported(reference_fit: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An adapter exported by the CLI, and predict's diaries for the bundled chats and for one chat log."""
    run = reference_fit.wait()
    tmp = tmp_path_factory.mktemp("export")
    # Six tiny steps teach the random model little; large random adapter weights make every diary depend
    # on the adapter, so a path that loses it, or changes the prompt or the settings, writes another one.
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    generator = torch.Generator().manual_seed(0)
    checkpoint["state_dict"] = {k: 0.2 * torch.randn(v.shape, generator=generator)
                                for k, v in checkpoint["state_dict"].items()}
    torch.save(checkpoint, tmp / "random.ckpt")
    config = str(reference_fit.config)
    adapter = tmp / "adapter"
    run_cli("export", "--config", config, "--ckpt_path", str(tmp / "random.ckpt"), "--output", str(adapter))
    chat = tmp / "chat.txt"
    chat.write_text(CHAT, encoding="utf-8")
    run_cli("predict", "--config", config, "--model.adapter_path", str(adapter), "--data.predict_path", str(chat),
            "--output", str(tmp / "chat.jsonl"))
    run_cli("predict", "--config", config, "--model.adapter_path", str(adapter), "--output", str(tmp / "chats.jsonl"))
    return {"adapter": adapter, "chat": chat, "chat_diary": _rows(tmp / "chat.jsonl"),
            "chats_diaries": _rows(tmp / "chats.jsonl"), "run": run, "tmp": tmp, "config": config}


@pytest.mark.slow
def test_export_writes_a_standard_peft_folder(exported: dict[str, Any], tiny_model_dir: Path) -> None:
    adapter = exported["adapter"]
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json", "diary_lightning.json", "README.md"):
        assert (adapter / name).is_file(), name
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_dir)
    settings = json.loads((adapter / "diary_lightning.json").read_text(encoding="utf-8"))
    assert "{dialogue}" in settings["prompt_template"] and settings["label_scheme"] == LabelScheme().to_dict()
    assert settings["writer"] == ["Human", "exporter", "first"] and "AI" in settings["bots"]
    assert settings["generation"]["max_new_tokens"] == 64 and settings["max_length"] == 512
    # fit's own export at the end of the run has the same parts.
    at_fit_end = exported["run"] / "checkpoints" / "adapter"
    assert sorted(p.name for p in at_fit_end.iterdir()) == sorted(p.name for p in adapter.iterdir())
    # The model card replaces PEFT's empty one; fit's export read the data, so its card counts it.
    card = (adapter / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and "More Information Needed" not in card
    assert settings["prompt_template"] in card and "| LoRA r |" in card and "step " in card
    fit_card = (at_fit_end / "README.md").read_text(encoding="utf-8")
    assert "Examples per split: train " in fit_card and "sample_dialogues.json" in fit_card


@pytest.mark.slow
def test_plain_peft_load_writes_the_diary_predict_wrote(exported: dict[str, Any]) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, GenerationConfig

    from diary_lightning.model.loading import keep_nf4_unpacked

    adapter = exported["adapter"]
    # Loaded as a service would, knowing only the folder's standard files and diary_lightning.json.
    settings = json.loads((adapter / "diary_lightning.json").read_text(encoding="utf-8"))
    base_name = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(base_name, dtype=torch.float32, quantization_config=quantization,
                                                device_map={"": "cpu"})
    # On an AVX512-BF16 CPU, bitsandbytes would repack the layers at the first no-grad forward into a kernel
    # that computes in bfloat16, and write another diary than predict's; a GPU server never repacks.
    keep_nf4_unpacked(base)
    model = PeftModel.from_pretrained(base, str(adapter))
    tokenizer = AutoTokenizer.from_pretrained(str(adapter))
    # The chat log's turns, merged and cleaned by hand: "#@이름#" becomes "(이름)", P01 (the first speaker)
    # writes the diary, P02 is the other.
    dialogue = ("글쓴이: 오늘 비가 많이 와서 (이름) 만났어\n상대1: 우산은 챙겼어?\n"
                "글쓴이: 아니 그래서 다 젖었어 감기 걸릴 것 같아")
    inputs = tokenizer(settings["prompt_template"].format(dialogue=dialogue), return_tensors="pt")
    out = model.generate(**inputs, generation_config=GenerationConfig.from_pretrained(str(adapter)))
    # The bytes of a cut character decode to U+FFFD, which no diary holds (model.generation.decode_diaries).
    diary = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).replace("\ufffd", "").strip()

    truncated = tokenizer.eos_token_id not in out[0, inputs["input_ids"].shape[1]:].tolist()
    failures = style_failures(diary, writer_names=["P01"], truncated=truncated)
    assert [{k: row[k] for k in ("id", "writer", "diary", "style_failures")} for row in exported["chat_diary"]] == [
        {"id": "chat", "writer": "P01", "diary": diary, "style_failures": failures}]
    assert len(set(diary)) > 3  # a real sentence of the random model, not one repeated token
    with model.disable_adapter():
        without = model.generate(**inputs, generation_config=GenerationConfig.from_pretrained(str(adapter)))
    assert not torch.equal(out, without)  # the adapter decides the diary


@pytest.mark.slow
def test_the_exported_tokenizer_serves_the_prompt_predict_used(exported: dict[str, Any]) -> None:
    """A model server given the adapter folder builds the prompt from the service's messages."""
    from transformers import AutoTokenizer

    from diary_lightning.data.encoding import PromptFormat, render_chat
    from diary_lightning.inference.chat_template import chat_messages

    adapter = exported["adapter"]
    settings = json.loads((adapter / "diary_lightning.json").read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(str(adapter))
    chat = [{"speaker": s.strip(), "text": t.strip()}
            for s, t in (line.split(":", 1) for line in CHAT.splitlines() if line.strip())]
    rendered = render_chat(chat, PromptFormat.from_settings(settings), tokenizer=tokenizer,
                           max_length=settings["max_length"])
    served = tokenizer.apply_chat_template(chat_messages(rendered.user_message, settings["prompt_template"]),
                                           add_generation_prompt=True)
    served = list(served["input_ids"] if hasattr(served, "keys") else served)
    assert served == tokenizer(settings["prompt_template"].format(dialogue=rendered.user_message))["input_ids"]
    assert rendered.user_message.startswith("글쓴이: 오늘 비가 많이 와서 (이름) 만났어\n상대1: ")


@pytest.mark.slow
def test_diary_writer_writes_what_predict_wrote(exported: dict[str, Any], sample_chats: Path) -> None:
    from diary_lightning import DiaryPipeline

    pipeline = DiaryPipeline.from_pretrained(exported["adapter"], batch_size=8)  # data.batch_size of the fit
    chat = [{"speaker": s.strip(), "text": t.strip()}
            for s, t in (line.split(":", 1) for line in CHAT.splitlines() if line.strip())]
    assert pipeline.write(chat) == exported["chat_diary"][0]["diary"]

    dialogues = read_dialogues(str(sample_chats), require_summary=False, anonymization="keep").dialogues
    messages = [[{"speaker": t.speaker, "text": t.text} for t in d.turns] for d in dialogues]
    assert pipeline.write_many(messages) == [row["diary"] for row in exported["chats_diaries"]]
    assert pipeline.write_many([]) == []
    with pytest.raises(DataError, match=r"write_many, record 1 \(id '1'\): no text is left after cleaning"):
        pipeline.write_many([chat, [{"speaker": "P01", "text": "  "}]])


@pytest.mark.slow
def test_predict_from_an_adapter_applies_its_settings_as_diary_writer_does(exported: dict[str, Any],
                                                                          tmp_path: Path, caplog) -> None:
    """max_length comes from the adapter folder for both; the generation settings too, unless a config or the
    command line says otherwise, which then wins and is named in the log."""
    from diary_lightning import DiaryPipeline
    from diary_lightning.model.metadata import read_adapter

    caplog.set_level(logging.INFO)
    output = tmp_path / "chat.jsonl"
    run_cli("predict", "--model.adapter_path", str(exported["adapter"]), "--data.predict_path", str(exported["chat"]),
            "--output", str(output), "--data.max_length", "140")
    assert _rows(output) == exported["chat_diary"]
    assert "generation settings from" in caplog.text and "max_new_tokens=64" in caplog.text
    pipeline = DiaryPipeline.from_pretrained(exported["adapter"])
    settings = read_adapter(exported["adapter"]).settings
    assert pipeline.settings == settings and settings.generation.max_new_tokens == 64 and settings.max_length == 512
    shorter = tmp_path / "shorter.jsonl"
    run_cli("predict", "--config", exported["config"], "--model.adapter_path", str(exported["adapter"]),
            "--data.predict_path", str(exported["chat"]), "--output", str(shorter), "--model.max_new_tokens", "3")
    assert _rows(shorter) != exported["chat_diary"]


@pytest.mark.slow
def test_readme_diary_writer_example_runs(exported: dict[str, Any]) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = readme.split("**3. The Python API.**", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert "runs/tiny/checkpoints/adapter" in example
    printed: list[Any] = []
    exec(example.replace("runs/tiny/checkpoints/adapter", str(exported["adapter"])), {"print": printed.append})
    one, many = printed
    assert isinstance(one, str) and one and len(many) == 2 and many[0] == one


@pytest.mark.slow
@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-4), ("bfloat16", 0.05)])
def test_merged_model_matches_base_plus_adapter(exported: dict[str, Any], tiny_model_dir: Path, tmp_path: Path,
                                                dtype: str, tolerance: float) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    merged_dir = tmp_path / "merged"
    run_cli("merge", "--adapter_path", str(exported["adapter"]), "--output", str(merged_dir), "--dtype", dtype)
    assert not (merged_dir / "adapter_config.json").exists()
    assert (merged_dir / "tokenizer.json").is_file()
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(str(merged_dir)).chat_template == \
        AutoTokenizer.from_pretrained(str(exported["adapter"])).chat_template is not None
    generation = json.loads((merged_dir / "generation_config.json").read_text())
    assert generation["max_new_tokens"] == 64  # the training settings, not the base's defaults

    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=torch.float32)
    assert next(AutoModelForCausalLM.from_pretrained(str(merged_dir)).parameters()).dtype == getattr(torch, dtype)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    reference = PeftModel.from_pretrained(base, str(exported["adapter"]))
    ids = torch.randint(4, 500, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = reference(input_ids=ids).logits, merged(input_ids=ids).logits
        with reference.disable_adapter():
            plain = reference(input_ids=ids).logits
    # Mean error relative to the mean logit: bfloat16 rounding, amplified by the random adapter, moves a
    # few logits by much more than the rest.
    def error(logits: torch.Tensor) -> float:
        return float((logits - expected).abs().mean() / expected.abs().mean())

    assert error(got) <= tolerance
    assert error(plain) > 0.5  # the adapter matters, so the match says it was merged


@pytest.mark.slow
def test_adapter_path_is_refused_beside_ckpt_path_and_in_fit(exported: dict[str, Any], make_config: Any) -> None:
    with pytest.raises(ValueError, match="give --ckpt_path or --model.adapter_path, not both"):
        run_cli("predict", "--config", exported["config"], "--model.adapter_path", str(exported["adapter"]),
                "--ckpt_path", str(exported["run"] / "checkpoints" / "last.ckpt"))
    with pytest.raises(ValueError, match="to continue training use fit --ckpt_path"):
        run_cli("fit", "--config", str(make_config(**{"model.adapter_path": str(exported["adapter"])})))
    # Read when the command line is parsed (the adapter's settings are the parser's defaults), before any model.
    with pytest.raises(FileNotFoundError, match="is not an adapter exported by diary_lightning"):
        run_cli("predict", "--config", exported["config"], "--model.adapter_path", str(exported["tmp"]))


# -- plain-text chat logs ---------------------------------------------------------------------------------------
def test_text_chat_log_is_one_dialogue_named_after_the_file(tmp_path: Path) -> None:
    chat = tmp_path / "2024-05-01.txt"
    chat.write_text(CHAT, encoding="utf-8")
    [dialogue] = read_dialogues(str(chat), require_summary=False).dialogues
    assert dialogue.id == "2024-05-01"
    assert dialogue.turns == (Turn("P01", "오늘 비가 많이 와서 (이름) 만났어"), Turn("P02", "우산은 챙겼어?"),
                              Turn("P01", "아니 그래서 다 젖었어 감기 걸릴 것 같아"))


def test_text_line_without_a_speaker_names_file_and_line(tmp_path: Path) -> None:
    chat = tmp_path / "chat.txt"
    chat.write_text("P01: 안녕\n\n그리고 이어지는 줄\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"chat.txt: line 3: no 'speaker:' before the text \('그리고 이어지는 줄'\)"):
        read_dialogues(str(chat), require_summary=False)
    chat.write_text("P01: 안녕\nP02:   \n", encoding="utf-8")
    with pytest.raises(DataError, match=r"chat.txt: line 2: 'P02' says nothing"):
        read_dialogues(str(chat), require_summary=False)


@pytest.mark.slow
def test_export_puts_an_evaluate_folders_results_in_the_card(exported: dict[str, Any], tmp_path: Path) -> None:
    from diary_lightning.cli.evaluate import evaluate

    # The scores of a file of diaries stand in for the checkpoint's (writing them is evaluate's own test).
    benchmark = ROOT / "tests" / "data" / "benchmark"
    diaries = tmp_path / "diaries.jsonl"
    from diary_lightning.evaluation.benchmark import load_benchmark

    diaries.write_text("".join(json.dumps({"id": item.id, "diary": "오늘은 쉬었다."}) + "\n"
                               for item in load_benchmark(root=benchmark)), encoding="utf-8")
    evaluate(str(tmp_path / "eval"), predictions=[f"tiny={diaries}"], benchmark=str(benchmark), bootstrap_samples=20)
    adapter = tmp_path / "adapter"
    run_cli("export", "--config", exported["config"], "--ckpt_path", str(exported["tmp"] / "random.ckpt"),
            "--output", str(adapter), "--evaluation", str(tmp_path / "eval"))
    card = (adapter / "README.md").read_text(encoding="utf-8")
    assert "## Evaluation" in card and "As `tiny` in " in card and "model-index:" in card
    assert json.loads((adapter / "evaluation.json").read_text(encoding="utf-8"))["dev"]["system"] == "tiny"

"""The model card of an exported adapter and a merged model: Hugging Face's format (YAML metadata, then the
text), the base as the user named it, the run's data, recipe and metrics, the prompt, intended use and limits."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from diary_lightning.inference.export import merged_card
from diary_lightning.inference.model_card import model_card

SETTINGS = {"prompt_template": "### User:\n{dialogue}\n### Assistant:\n", "anonymization": "placeholder",
            "label_scheme": {"writer": "글쓴이"}, "max_length": 512, "generation": {"max_new_tokens": 64},
            "model": {"base_model": "/abs/runs/tiny-model", "load_in_4bit": True}, "lora": {"r": 16, "alpha": 32,
                                                                                           "target_modules": ["q_proj"]}}
RUN = {"data": {"sample_dialogues.json": 80}, "splits": {"train": 64, "val": 8, "test": 8},
       "recipe": {"learning rate": 0.01}, "metrics": {"best val/loss": 5.25}, "checkpoint": "last.ckpt", "step": 150}


def metadata(card: str) -> dict:
    head, _, _ = card.removeprefix("---\n").partition("\n---\n")
    return yaml.safe_load(head)


def test_a_hub_base_is_linked_in_the_metadata_and_the_run_is_told() -> None:
    card = model_card(SETTINGS, base_given="yanolja/EEVE-Korean-Instruct-10.8B-v1.0", base_is_local=False, run=RUN)
    meta = metadata(card)
    assert meta["base_model"] == "yanolja/EEVE-Korean-Instruct-10.8B-v1.0" and meta["library_name"] == "peft"
    assert meta["language"] == ["ko"] and meta["base_model_relation"] == "adapter"
    for section in ("## Base model", "## Training data", "## Training recipe", "## Metrics", "## The prompt",
                    "## Intended use and limits"):
        assert section in card, section
    assert "| sample_dialogues.json | 80 |" in card and "train 64, val 8, test 8" in card
    assert "| best val/loss | 5.2500 |" in card and "| LoRA r | 16 |" in card and "| learning rate | 0.01 |" in card
    assert "| LoRA target modules | q_proj |" in card
    # PEFT's shorthand is a string, not a list of one-letter modules.
    linear = model_card({**SETTINGS, "lora": {"r": 4, "alpha": 8, "target_modules": "all-linear"}},
                        base_given="m", base_is_local=False, run={})
    assert "| LoRA target modules | all-linear |" in linear
    assert SETTINGS["prompt_template"] in card and "More Information Needed" not in card


def test_a_local_base_is_flagged_and_not_claimed_as_a_hub_id() -> None:
    card = model_card(SETTINGS, base_given="runs/tiny-model", base_is_local=True, run={})
    assert "base_model" not in metadata(card)
    assert "`runs/tiny-model`, a local folder" in card
    assert "Not recorded with this export" in card and "None recorded" in card


def test_the_merged_models_card_keeps_the_adapters_run(tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    settings = {**SETTINGS, "base_model_as_given": {"name": "runs/tiny-model", "local": True}}
    (adapter / "diary_lightning.json").write_text(json.dumps(settings), encoding="utf-8")
    (adapter / "README.md").write_text(model_card(settings, base_given="runs/tiny-model", base_is_local=True, run=RUN),
                                       encoding="utf-8")
    card = merged_card(adapter, "/abs/runs/tiny-model", "bfloat16")
    assert "library_name" not in metadata(card) and "Merged here in bfloat16" in card
    assert "| sample_dialogues.json | 80 |" in card and "| best val/loss | 5.2500 |" in card
    assert card.count("## Metrics") == 1 and "AutoModelForCausalLM.from_pretrained(\"THIS_FOLDER\")" in card


def summary(value: float) -> dict:
    """An evaluate summary.json of two systems beside the reference and the baseline."""
    def system(v: float) -> dict:
        return {"overall": {"fact_recall": {"value": v, "low": v / 2, "high": min(v * 2, 1.0), "n": 40},
                            "trap_rate": {"value": 0.25, "low": 0.1, "high": 0.4, "n": 12}}}
    return {"benchmark": {"version": "1.0", "hash": "abc123", "split": "dev", "items": 75},
            "systems": {"reference": system(1.0), "baseline": system(0.5), "mine": system(value),
                        "other": system(0.01)}}


def test_evaluate_results_go_into_the_card_and_its_model_index(tmp_path: Path) -> None:
    from diary_lightning.evaluation.report import card_result
    from diary_lightning.inference.model_card import read_evaluation, record_evaluation

    (tmp_path / "README.md").write_text(model_card(SETTINGS, base_given="m/m", base_is_local=False, run=RUN),
                                        encoding="utf-8")
    record_evaluation(tmp_path, "dev", card_result(summary(0.375), "mine", "eval/dev"), "mine")
    card = (tmp_path / "README.md").read_text(encoding="utf-8")
    meta = metadata(card)
    assert meta["base_model"] == "m/m" and meta["library_name"] == "peft"  # the rest of the metadata is kept
    [index] = meta["model-index"]
    [result] = index["results"]
    assert index["name"] == "mine" and result["dataset"]["split"] == "dev" and result["dataset"]["revision"] == "abc123"
    assert {m["type"]: m["value"] for m in result["metrics"]} == {"fact_recall": 0.375, "trap_rate": 0.25}
    # The section after Metrics: this model's rate with its interval, beside the ceiling and the floor.
    assert card.index("## Metrics") < card.index("## Evaluation") < card.index("## The prompt")
    assert "|\n\n## The prompt" in card  # one blank line between sections, as between the others
    assert "| fact_recall ↑: facts recalled" in card and "| 0.375 [0.188, 0.750] | 1.000 | 0.500 |" in card
    assert "| trap_rate ↓:" in card and "eval/dev/report.md" in card and "| best val/loss | 5.2500 |" in card

    # Scored again on dev, and on test: dev's result replaced, test's added, one section.
    record_evaluation(tmp_path, "dev", card_result(summary(0.125), "mine", "eval/dev"), "mine")
    record_evaluation(tmp_path, "test", card_result(summary(0.25), "mine", "eval/test"), "mine")
    card = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert card.count("## Evaluation") == 1 and "0.375" not in card and "| 0.125 [0.062, 0.250]" in card
    assert [r["dataset"]["split"] for r in metadata(card)["model-index"][0]["results"]] == ["dev", "test"]
    assert set(read_evaluation(tmp_path)) == {"dev", "test"}


def test_the_merged_models_card_carries_the_adapters_evaluation(tmp_path: Path) -> None:
    from diary_lightning.evaluation.report import card_result
    from diary_lightning.inference.model_card import record_evaluation

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "diary_lightning.json").write_text(json.dumps(SETTINGS), encoding="utf-8")
    (adapter / "README.md").write_text(model_card(SETTINGS, base_given="m/m", base_is_local=False, run=RUN),
                                       encoding="utf-8")
    assert "model-index" not in metadata(merged_card(adapter, "m/m", "bfloat16"))
    record_evaluation(adapter, "dev", card_result(summary(0.375), "mine", "eval/dev"), "mine")
    card = merged_card(adapter, "m/m", "bfloat16")
    assert metadata(card)["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.375
    assert card.count("## Evaluation") == 1 and "Merged here in bfloat16" in card

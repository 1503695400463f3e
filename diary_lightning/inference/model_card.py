"""The model card (``README.md``) of an exported adapter and of a merged model, in Hugging Face's format: YAML
metadata the Hub reads (base model, library, language, tags), then what a reader needs to decide whether to use
it: the base, the data and its counts, the recipe, the run's metrics, the prompt, intended use and limits, and
what ``evaluate`` measured of it on the benchmark once it has been scored (:func:`record_evaluation`).

PEFT writes a card of its own whose every section says "More Information Needed"; this one replaces it.
Plain Python: what it reports is handed to it (no Lightning, no torch).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from diary_lightning.io.atomic import write_text

CARD_FILE = "README.md"
EVALUATION_FILE = "evaluation.json"
"""``evaluate``'s results for the model of this folder, by benchmark split (:func:`record_evaluation`): what its
card's Evaluation section and ``model-index`` are written from, again when the adapter is merged."""
EVALUATION_TITLE = "Evaluation"


def _front_matter(values: Mapping[str, Any]) -> str:
    # JSON is YAML: every value quoted as JSON reads back as itself, whatever characters a path holds.
    lines = ["---"]
    for key, value in values.items():
        if isinstance(value, (list, tuple)):
            lines.append(f"{key}:")
            lines += [f"- {json.dumps(item, ensure_ascii=False)}" for item in value]
        else:
            lines.append(f"{key}: {json.dumps(value, ensure_ascii=False)}")
    return "\n".join([*lines, "---", ""])


def _table(rows: Sequence[tuple[str, Any]]) -> str:
    body = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"| | |\n|---|---|\n{body}"


def model_card(settings: Mapping[str, Any], *, base_given: str, base_is_local: bool, run: Mapping[str, Any],
               merged_dtype: str | None = None) -> str:
    """The card's text. ``settings`` is the folder's ``diary_lightning.json``; ``base_given`` the base as the user
    named it; ``run`` what is known of the training run: ``data`` (files and dialogue counts), ``splits``,
    ``recipe`` (name: value), ``metrics`` (name: value, e.g. the best val/loss and an ``evaluate`` report's),
    ``checkpoint`` and ``step``. ``merged_dtype`` is set for a merged model. ``evaluate``'s results are added
    to it by :func:`with_evaluation`."""
    what = "merged model" if merged_dtype else "LoRA adapter"
    meta: dict[str, Any] = {"language": ["ko"], "pipeline_tag": "text-generation",
                            "tags": ["diary", "korean", "qlora", "lora", "diary_lightning"]}
    if not base_is_local:
        # A Hub id links the card to its base on the Hub; a local folder is no Hub id.
        meta["base_model"] = base_given
        meta["base_model_relation"] = "merge" if merged_dtype else "adapter"
    if not merged_dtype:
        meta["library_name"] = "peft"
    lora = settings.get("lora") or {}
    generation = settings.get("generation") or {}
    loading = {k: v for k, v in (settings.get("model") or {}).items() if k != "base_model"}
    base_line = (f"`{base_given}`, a local folder (not on the Hub: give the same weights with `--base_model` or "
                 f"`base_model=` where they lie on another machine)" if base_is_local else
                 f"[`{base_given}`](https://huggingface.co/{base_given})")
    parts = [
        _front_matter(meta),
        f"# A diary writer: {what} on {base_given}",
        "",
        "Writes the writer's first-person diary (Korean) of one day's chat. Trained with diary_lightning "
        "(QLoRA under Lightning: a frozen 4-bit NF4 base, LoRA adapters); `diary_lightning.json` in this folder "
        "holds every setting below.",
        "",
        "## Base model",
        "",
        f"{base_line}. Loaded for training as {json.dumps(loading, ensure_ascii=False) if loading else 'given'}."
        + (f" Merged here in {merged_dtype} (16-bit weights: an NF4 merge would round the update away)."
           if merged_dtype else ""),
        "",
        "## Training data",
        "",
    ]
    data = run.get("data") or {}
    if data:
        parts += ["Dialogues kept from each file:", "", _table(sorted(data.items())), ""]
    splits = run.get("splits") or {}
    if splits:
        parts += ["Examples per split: " + ", ".join(f"{name} {count}" for name, count in splits.items()) + ".", ""]
    if not data and not splits:
        parts += ["Not recorded with this export (it was written without the run's data).", ""]
    recipe = dict(run.get("recipe") or {})
    if lora:
        targets = lora.get("target_modules") or "all-linear"
        recipe.update({"LoRA r": lora.get("r"), "LoRA alpha": lora.get("alpha"),
                       "LoRA target modules": targets if isinstance(targets, str) else ", ".join(map(str, targets))})
    if settings.get("max_length"):
        recipe["max_length (prompt + diary tokens)"] = settings["max_length"]
    parts += ["## Training recipe", "", _table(list(recipe.items())) if recipe else "Not recorded.", ""]
    metrics = run.get("metrics") or {}
    where = ", ".join(str(x) for x in (run.get("checkpoint"), f"step {run['step']}" if run.get("step") is not None
                                       else None) if x)
    parts += ["## Metrics", ""]
    if metrics:
        parts += [f"From the run ({where})." if where else "From the run.", "",
                  _table([(name, f"{value:.4f}" if isinstance(value, float) else value)
                          for name, value in metrics.items()]), ""]
    else:
        parts += [f"None recorded{f' ({where})' if where else ''}: no validation in this run. "
                  "`python -m diary_lightning test --ckpt_path best` scores it on the held-out split.", ""]
    template = settings.get("prompt_template", "")
    parts += [
        "## The prompt",
        "",
        "The model was trained on this prompt, with `{dialogue}` one `label: text` line per turn, the speakers "
        "named by role, not by name (label scheme "
        f"`{json.dumps(settings.get('label_scheme') or settings.get('speaker_labels') or {}, ensure_ascii=False)}`; "
        "the tokenizer's chat template in this folder builds the prompt from chat messages). It writes with these "
        "generation settings (`generation_config.json`):",
        "",
        "```text",
        str(template),
        "```",
        "",
        f"`{json.dumps(generation, ensure_ascii=False)}`",
        "",
        "## Intended use and limits",
        "",
        "- For: writing a private diary of the user's own chats, in Korean, for that user to read and edit.",
        "- Not for: summaries of other people's conversations without their consent, facts about people, or any "
        "language but Korean. The diary may state what the chat did not say (a model's grounding is imperfect): "
        "show it as a draft, never as a record.",
        "- Chats are personal data: keep them and the diaries where the user agreed they go.",
        "- The data's speaker names are replaced by roles and AI Hub's anonymization codes by placeholders "
        f"(`{settings.get('anonymization', 'placeholder')}`): the model learned no names from the data.",
        "",
        "## Load it",
        "",
        "```python",
        *(["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
            'model = AutoModelForCausalLM.from_pretrained("THIS_FOLDER")',
            'tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")'] if merged_dtype else
          ["from peft import PeftModel", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
           f"base = AutoModelForCausalLM.from_pretrained({json.dumps(base_given, ensure_ascii=False)})",
           'model = PeftModel.from_pretrained(base, "THIS_FOLDER")',
           'tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")']),
        'messages = [{"role": "user", "content": "상대1: 오늘 뭐 했어?\\n글쓴이: 친구랑 영화 봤어"}]',
        "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\", "
        "return_dict=True)",
        "print(tokenizer.decode(model.generate(**inputs)[0, inputs[\"input_ids\"].shape[1]:], "
        "skip_special_tokens=True))",
        "```",
        "",
    ]
    return "\n".join(parts)


def _value(number: Any) -> str:
    return "–" if number is None else f"{number:.3f}"


def evaluation_section(evaluation: Mapping[str, Any]) -> str:
    """The card's Evaluation section: per benchmark split, each main rate with its 95% interval beside the
    reference diaries (the ceiling) and the writer's own lines (a floor), as ``evaluate``'s report.md shows them."""
    lines = [f"## {EVALUATION_TITLE}", "",
             "Scored by `python -m diary_lightning evaluate` on diary_lightning's benchmark of the real job "
             "(chats with the bot and KakaoTalk chats, each with the writer's reference diary; docs/benchmark.md). Each rate with "
             "its bootstrap 95% interval; ↑ higher is better, ↓ lower.", ""]
    for split, result in sorted(evaluation.items()):
        bench = result.get("benchmark") or {}
        lines += [f"### {split} split: {bench.get('items', '?')} chats, benchmark {bench.get('version', '?')} "
                  f"(files {bench.get('hash', '?')})", "",
                  f"As `{result.get('system')}` in {result.get('report') or 'an evaluate folder'}.", "",
                  *([f"A part of the split only (`--limit`): {bench['limit']}.", ""] if bench.get("limit") else []),
                  "| metric | this model [95% interval] | reference (ceiling) | baseline (floor) |",
                  "|---|---|---|---|"]
        for metric in result.get("metrics") or []:
            better = metric.get("higher_is_better")
            arrow = " ↑" if better else " ↓" if better is False else ""
            interval = (f" [{_value(metric.get('low'))}, {_value(metric.get('high'))}]"
                        if metric.get("low") is not None else "")
            lines.append(f"| {metric['name']}{arrow}: {metric.get('note') or metric['name']} | "
                         f"{_value(metric.get('value'))}{interval} | {_value(metric.get('reference'))} | "
                         f"{_value(metric.get('baseline'))} |")
        lines.append("")
    return "\n".join(lines)


def model_index(name: str, evaluation: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Hugging Face's ``model-index`` of the evaluation: one result per split, each metric with its value."""
    results = []
    for split, result in sorted(evaluation.items()):
        bench = result.get("benchmark") or {}
        if bench.get("limit"):
            continue  # a part of the split is a look, not a score for the Hub to list
        results.append({
            "task": {"type": "text-generation", "name": "Diary writing from a day's chat"},
            "dataset": {"type": "diary_lightning-benchmark", "name": "diary_lightning benchmark", "split": split,
                        "revision": str(bench.get("hash", ""))},
            "metrics": [{"type": m["name"], "name": m["name"], "value": m["value"]}
                        for m in result.get("metrics") or [] if m.get("value") is not None],
            "source": {"name": "python -m diary_lightning evaluate"},
        })
    return [{"name": name, "results": results}]


def with_evaluation(card: str, evaluation: Mapping[str, Any], name: str) -> str:
    """``card`` with its Evaluation section and ``model-index`` (re)written from ``evaluation``: the section after
    Metrics, replacing an earlier one; every other section as it was."""
    head, sep, body = card.removeprefix("---\n").partition("\n---\n")
    if not card.startswith("---\n") or not sep:
        head, body = "", card
    # The card's front matter is one key a line (list items under it start with "- "): the old index is one line.
    meta = [line for line in head.split("\n") if line and not line.startswith("model-index:")]
    meta.append("model-index: " + json.dumps(model_index(name, evaluation), ensure_ascii=False))
    sections = [part for part in body.split("\n## ") if not part.startswith(EVALUATION_TITLE + "\n")]
    at = next((i + 1 for i, part in enumerate(sections) if part.startswith("Metrics\n")), len(sections))
    sections.insert(at, evaluation_section(evaluation).removeprefix("## ").rstrip("\n") + "\n")
    return "---\n" + "\n".join(meta) + "\n---\n" + "\n## ".join(sections)


def read_evaluation(folder: str | Path) -> dict[str, Any]:
    """The folder's ``evaluation.json`` (empty when the model was never scored)."""
    path = Path(folder) / EVALUATION_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def record_evaluation(folder: str | Path, split: str, result: Mapping[str, Any], name: str) -> Path:
    """Put ``evaluate``'s result on ``split`` into the model folder's ``evaluation.json`` (an earlier result on
    that split is replaced, the other split's kept) and its card: the card says what the model scored, and a
    merge of the adapter carries it on. Each file whole or not at all."""
    folder = Path(folder)
    evaluation = {**read_evaluation(folder), split: dict(result)}
    card_path = folder / CARD_FILE
    card = card_path.read_text(encoding="utf-8") if card_path.is_file() else ""
    write_text(folder / EVALUATION_FILE, json.dumps(evaluation, ensure_ascii=False, indent=1))
    write_text(card_path, with_evaluation(card, evaluation, name))
    return card_path

"""``evaluate``'s output folder: ``items.jsonl`` (every score of every item and system), ``summary.json`` (each
system's rates with intervals, in all and by setting), ``report.md`` (the tables and each system's worst items)
and the charts ``metrics.png`` and ``lengths.png``.

The folder accumulates: the rows of systems scored before are read back and kept, so that a run with one more
system adds its column without recomputing the others; a system scored again replaces its own rows. Every file
is written whole or not at all (:mod:`diary_lightning.io.atomic`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from diary_lightning.errors import ConfigError
from diary_lightning.evaluation.scoring import HIGHER_IS_BETTER, reasons, summarize, worst
from diary_lightning.io.atomic import atomic_file, write_text
from diary_lightning.io.outputs import mark

log = logging.getLogger(__name__)

FIXED_SYSTEMS = ("reference", "baseline")
"""Always beside the systems compared: the gold diaries (every metric's ceiling) and the writer's own lines joined
(a floor)."""

MAIN_METRICS = ("style_pass", "fact_recall", "wrong_person", "trap_rate", "faithful", "rougeL", "chrf", "truncated")
SETTING_METRICS = ("style_pass", "fact_recall", "wrong_person", "trap_rate", "faithful", "chrf")

METRIC_NOTES = {
    "style_pass": "share of diaries passing every diary-style check",
    "fact_recall": "facts recalled / facts (one sentence holds all of a fact's keys)",
    "wrong_person": "facts of others recalled without naming them / facts of others recalled",
    "trap_rate": "traps fallen into / traps",
    "rougeL": "ROUGE-L F1 against the reference (syllable tokens)",
    "chrf": "chrF against the reference (sentence level, mean)",
    "chars": "mean length in characters, whitespace excluded",
    "truncated": "share cut at the token limit",
    "faithful": "share of diaries failing none of the faithfulness checks (nothing untrue to the chat found)",
}


def read_folder(output: Path, benchmark: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The systems and rows an earlier run left in ``output``; refuses a folder scored on another split, another
    copy of the benchmark or another ROUGE-L tokenizer, whose rows could not stand beside these (the rows keep
    their scores: a table under one heading would mix syllable and eojeol ROUGE-L)."""
    summary_path, items_path = output / "summary.json", output / "items.jsonl"
    if not summary_path.is_file():
        if output.exists() and not output.is_dir():
            raise ConfigError(f"--output {output}: not a folder")
        return {}, []
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        rows = [json.loads(line) for line in items_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as err:
        raise ConfigError(f"--output {output}: holds a summary.json, but its results cannot be read back ({err}); "
                          "give another folder, or remove these files") from None
    before = summary.get("benchmark", {})
    for key in ("split", "version", "hash", "limit", "rouge_tokenizer"):
        if before.get(key) != benchmark.get(key):
            raise ConfigError(f"--output {output}: its results are of {key} {before.get(key)!r}, this run's of "
                              f"{benchmark.get(key)!r}; they cannot share a table: give another --output")
    return dict(summary.get("systems", {})), rows


def write_folder(output: Path, benchmark: Mapping[str, Any], systems: Mapping[str, Any],
                 rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Write every file of the folder from the rows of every system; returns ``summary.json``'s content."""
    order = [s for s in FIXED_SYSTEMS if s in systems] + [s for s in systems if s not in FIXED_SYSTEMS]
    by_system = {name: [r for r in rows if r["system"] == name] for name in order}
    summary = {"benchmark": dict(benchmark),
               "systems": {name: {**systems[name], **summarize(by_system[name], benchmark["bootstrap_samples"],
                                                               benchmark["bootstrap_seed"])} for name in order}}
    output.mkdir(parents=True, exist_ok=True)
    mark(output, "evaluate")
    with atomic_file(output / "items.jsonl", "w", encoding="utf-8") as f:
        for name in order:
            for row in by_system[name]:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    write_text(output / "report.md", report_markdown(summary, by_system))
    charts(output, summary, by_system)
    write_text(output / "summary.json", json.dumps(summary, ensure_ascii=False, indent=1) + "\n")
    return summary


def card_result(summary: Mapping[str, Any], system: str, folder: str | Path) -> dict[str, Any]:
    """What a model card says of ``system`` (:func:`diary_lightning.inference.model_card.record_evaluation`): the
    benchmark, and each main rate with its interval beside the reference's and the baseline's."""
    systems = summary["systems"]
    metrics = []
    for name in MAIN_METRICS:
        mine = systems[system]["overall"].get(name)
        if not mine:
            continue
        direction = _direction(name)
        metrics.append({"name": name, "note": METRIC_NOTES.get(name, name),
                        "higher_is_better": direction == " ↑" if direction else None,
                        **{k: mine.get(k) for k in ("value", "low", "high", "n")},
                        **{fixed: (systems.get(fixed, {}).get("overall", {}).get(name) or {}).get("value")
                           for fixed in FIXED_SYSTEMS}})
    return {"system": system, "benchmark": dict(summary["benchmark"]), "report": str(Path(folder) / "report.md"),
            "metrics": metrics}


def _cell(metric: Mapping[str, Any] | None, digits: int = 3) -> str:
    if not metric or metric.get("value") is None:
        return "–"
    if metric.get("low") is None:
        return f"{metric['value']:.{digits}f}"
    return f"{metric['value']:.{digits}f} [{metric['low']:.{digits}f}, {metric['high']:.{digits}f}]"


def _direction(name: str) -> str:
    if name in ("chars",):
        return ""
    return " ↑" if name in HIGHER_IS_BETTER or name.startswith(("judge.rubric", "judge.faithful", "judge.first_person",
                                                                 "judge.covers", "judge.natural")) else \
        "" if name in ("judge.first_choice", "judge.consistent") else " ↓"


def report_markdown(summary: Mapping[str, Any], by_system: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    bench, systems = summary["benchmark"], summary["systems"]
    names = list(systems)
    metrics = list(dict.fromkeys(m for s in systems.values() for m in s["overall"]))
    lines = [f"# Benchmark results: {bench['split']} split, {bench['items']} items",
             "",
             f"Benchmark version {bench['version']} (files {bench['hash']}); each rate with its bootstrap 95% "
             f"interval over items ({bench['bootstrap_samples']} resamples, seed {bench['bootstrap_seed']}). "
             "↑: higher is better, ↓: lower. `reference` is the gold diary (the ceiling), `baseline` the writer's "
             "own lines joined (a floor). Metrics: docs/benchmark.md.",
             *(["", f"**A part of the split only** (`--limit`): {bench['limit']}."] if bench.get("limit") else []),
             "",
             "| metric | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names)]
    for metric in metrics:
        lines.append(f"| {metric}{_direction(metric)} | "
                     + " | ".join(_cell(systems[n]["overall"].get(metric)) for n in names) + " |")
    lines += ["", "What each system is:", ""]
    lines += [f"- `{n}`: {describe(systems[n])}" + (f" ({systems[n]['errors']} items without a diary)"
                                                   if systems[n].get("errors") else "") for n in names]
    settings = sorted({s for system in systems.values() for s in system["by_setting"]})
    lines += ["", "## By setting", ""]
    for metric in (m for m in SETTING_METRICS if m in metrics):
        lines += [f"### {metric}{_direction(metric)}", "", "| setting | " + " | ".join(names) + " |",
                  "|---|" + "---|" * len(names)]
        for setting in settings:
            lines.append(f"| {setting} | " + " | ".join(
                _cell(systems[n]["by_setting"].get(setting, {}).get(metric), 2) for n in names) + " |")
        lines.append("")
    lines += ["## The 10 worst items of each system", ""]
    for name in names:
        lines += [f"### {name}", ""]
        for row in worst(by_system[name]):
            found = reasons(row)
            if not found:
                break
            diary = " ".join(row["diary"].split())
            lines.append(f"- `{row['id']}` ({row['setting']}): " + "; ".join(found))
            lines.append(f"  > {diary[:300] + ('…' if len(diary) > 300 else '') or '(empty)'}")
        lines.append("")
    return "\n".join(lines)


def describe(system: Mapping[str, Any]) -> str:
    return str(system.get("source", "?"))


def charts(output: Path, summary: Mapping[str, Any], by_system: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """``metrics.png``: the main rates of every system with their intervals; ``lengths.png``: the distribution of
    diary lengths per system. Skipped, with a warning, without matplotlib (the ``evaluate`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display, whatever the environment says
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("evaluate: no charts (matplotlib is not installed: pip install 'diary-lightning[evaluate]')")
        return
    systems = summary["systems"]
    names = list(systems)
    metrics = [m for m in (*MAIN_METRICS, "judge.win") if any(m in s["overall"] for s in systems.values())]
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.2 * len(metrics) * max(1, len(names) / 3)), 4.5))
    for i, name in enumerate(names):
        values, errors = [], [[], []]
        for metric in metrics:
            m = systems[name]["overall"].get(metric) or {}
            v = m.get("value")
            values.append(v or 0.0)
            errors[0].append(0.0 if v is None else v - m["low"])
            errors[1].append(0.0 if v is None else m["high"] - v)
        positions = [j + (i - (len(names) - 1) / 2) * width for j in range(len(metrics))]
        ax.bar(positions, values, width, yerr=errors, capsize=2, label=name)
    ax.set_xticks(range(len(metrics)), [m + _direction(m) for m in metrics], rotation=20)
    ax.set_ylim(0, 1.05)
    bench = summary["benchmark"]
    ax.set_title(f"{bench['split']} split, {bench['items']} items (95% bootstrap intervals)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    with atomic_file(output / "metrics.png", "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names)), 4))
    ax.boxplot([[r["chars"] for r in by_system[n]] or [0] for n in names], showmeans=True)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=15)
    ax.set_ylabel("characters (no whitespace)")
    ax.set_title("Diary lengths")
    fig.tight_layout()
    with atomic_file(output / "lengths.png", "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


__all__ = ["FIXED_SYSTEMS", "card_result", "read_folder", "report_markdown", "write_folder"]

"""The report of a synthesis beside its output: ``OUTPUT.report.md`` and its PNG charts.

What a user reads before training on the diaries: how many were kept, why the others were not, how often each
check fails, how long the dialogues, summaries and diaries are, and random dialogue/summary/diary triples side
by side. It is written from the output files, so it covers every run that wrote them (a resumed run included).
matplotlib draws the charts and is imported only here; without it the report says how to get them.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from diary_lightning.data.records import Dialogue
from diary_lightning.io.atomic import atomic_file, write_text

log = logging.getLogger(__name__)

SAMPLES = 20
"""Random kept triples shown side by side."""


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _stats(values: Sequence[int]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def at(share: float) -> int:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return {"n": len(ordered), "mean": round(sum(ordered) / len(ordered), 1), "p10": at(0.1), "p50": at(0.5),
            "p90": at(0.9), "max": ordered[-1]}


def _cell(text: str | None) -> str:
    """Text for one cell of a Markdown table: no pipe, no line break of its own."""
    return (text or "").replace("|", "\\|").replace("\n", "<br>")


def _charts(base: Path, lengths: dict[str, list[int]], reasons: Counter) -> list[str]:
    """The PNGs beside the report, or [] (logged) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display on a server
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    names = []
    figure, axes = plt.subplots(1, len(lengths), figsize=(4 * len(lengths), 3.2))
    for axis, (name, values) in zip(axes, lengths.items()):
        axis.hist(values, bins=40, color="#4878a8")
        axis.set_title(f"{name} (characters)")
        axis.set_ylabel("dialogues")
    figure.tight_layout()
    names.append(_save(figure, base.with_name(base.name + ".lengths.png")))
    if reasons:
        figure, axis = plt.subplots(figsize=(7, 0.4 * len(reasons) + 1.2))
        labels, counts = zip(*reasons.most_common())
        axis.barh(labels[::-1], counts[::-1], color="#a85448")
        axis.set_xlabel("dialogues")
        axis.set_title("rejected by reason")
        figure.tight_layout()
        names.append(_save(figure, base.with_name(base.name + ".rejected.png")))
    plt.close("all")
    return names


def _save(figure: Any, path: Path) -> str:
    with atomic_file(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=110)
    return path.name


def write_report(output: str | Path, rejected: str | Path, dialogues: Iterable[Dialogue] = (),
                 samples: int = SAMPLES, seed: int = 0) -> Path:
    """Write ``OUTPUT.report.md`` (and its charts) from the kept and rejected files; ``dialogues`` (the run's
    input) give the lengths of dialogues and summaries, else the kept records do."""
    from diary_lightning.synthesis.checks import ALL_CHECKS

    output = Path(output)
    kept, refused = _read(output), _read(Path(rejected))
    total = len(kept) + len(refused)
    reasons = Counter(reason for record in refused for reason in record.get("failed", ()))
    dialogues = list(dialogues)
    if dialogues:
        dialogue_lengths = [sum(len(t.text) for t in d.turns) for d in dialogues]
        summary_lengths = [len(d.summary or "") for d in dialogues]
    else:
        dialogue_lengths = [sum(len(t["text"]) for t in r["dialogue"]) for r in kept]
        summary_lengths = [len(r.get("summary") or "") for r in kept]
    lengths = {"dialogue": dialogue_lengths, "summary": summary_lengths,
               "diary": [len(r["diary"]) for r in kept]}

    stem = output.name[:-len(".jsonl")] if output.suffix == ".jsonl" else output.name
    base = output.with_name(stem + ".report")
    share = (lambda n: f"{n / total:.1%}") if total else (lambda n: "-")
    lines = [f"# Synthesis report: {output.name}", "",
             f"{total} dialogues judged: **{len(kept)} kept ({share(len(kept))})**, {len(refused)} rejected "
             f"({share(len(refused))}). Files: `{output.name}`, `{Path(rejected).name}`.", ""]
    teachers = Counter(json.dumps(r.get("teacher"), ensure_ascii=False, sort_keys=True) for r in kept + refused)
    for teacher, count in teachers.most_common():
        lines.append(f"- teacher `{teacher}`: {count} dialogues")
    # What a kept diary was written from matters more than the run's log: a cut prompt hid the chat's start.
    cut = [r["turns_cut"] for r in kept if r.get("turns_cut")]
    if cut:
        lines.append(f"- prompts cut to the teacher's context: {len(cut)} of the kept diaries', {sum(cut)} oldest "
                     "turns left out in all (`turns_cut` on each line)")
    lines += ["", "## Rejected by reason", "", "| reason | dialogues | share of all |", "| --- | ---: | ---: |"]
    lines += [f"| `{reason}` | {count} | {share(count)} |" for reason, count in reasons.most_common()] or ["| none | 0 | - |"]
    lines += ["", "A dialogue can fail several checks; each counts under every one it failed.", "",
              "## Each check's rate", "", "| check | failed | rate |", "| --- | ---: | ---: |"]
    for check in dict.fromkeys([*ALL_CHECKS, *reasons]):
        lines.append(f"| `{check}` | {reasons.get(check, 0)} | {share(reasons.get(check, 0))} |")
    lines += ["", "## Lengths (characters)", "", "| | n | mean | p10 | p50 | p90 | max |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, values in lengths.items():
        stats = _stats(values)
        lines.append(f"| {name} | " + " | ".join(str(stats.get(k, "-")) for k in ("n", "mean", "p10", "p50", "p90",
                                                                                  "max")) + " |")
    charts = _charts(base, lengths, reasons)
    lines.append("")
    lines += [f"![{name}]({name})" for name in charts] or [
        "(No charts: matplotlib is not installed; `pip install 'diary-lightning[synthesize]'` adds it.)"]
    picked = random.Random(seed).sample(kept, min(samples, len(kept)))
    lines += ["", f"## {len(picked)} random kept diaries", "", "| dialogue | summary | diary |", "| --- | --- | --- |"]
    for record in picked:
        writer = record.get("writer")
        dialogue = "<br>".join(f"{'**' + t['speaker'] + '**' if t['speaker'] == writer else t['speaker']}: "
                               f"{_cell(t['text'])}" for t in record["dialogue"])
        lines.append(f"| `{record['id']}`<br>{dialogue} | {_cell(record.get('summary'))} | {_cell(record['diary'])} |")
    path = base.with_name(base.name + ".md")
    write_text(path, "\n".join(lines) + "\n")
    return path

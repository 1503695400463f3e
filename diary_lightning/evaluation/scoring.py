"""Scoring diaries on the benchmark: every score of one diary (:func:`score_diaries`), and a system's rates over
items with seeded bootstrap 95% intervals, in all and by setting (:func:`summarize`).

A rate is a ratio of sums over items (facts recalled over facts, traps fallen into over traps), so that an item
with six facts weighs six times one with one; the interval resamples items, as the items are what was drawn.
Plain Python and numpy; the ROUGE-L and chrF of :mod:`diary_lightning.evaluation.metrics` import torchmetrics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from diary_lightning.evaluation.benchmark import (
    TRAP_KINDS,
    BenchmarkItem,
    falls_into,
    recalling,
    sentences,
    squash,
    wrong_person,
)

BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 0

FAITHFULNESS_CHECKS = ("wrong_person", "suggestion_as_done", "invented", "wrong_number", "negation_flip")
"""The checks of ``diary_lightning.evaluation.faithfulness.faithfulness_failures`` (the companion issue): each
becomes a column ``faithful.CHECK``, the share of diaries failing it, when that module is there
(:func:`faithfulness_check`); ``faithful`` is the share failing none."""


def faithfulness_check() -> Any:
    """``faithfulness_failures(diary, dialogue, writer)`` of the companion issue's module, or None where that
    module is not installed (then its columns are left out, not zero)."""
    try:
        from diary_lightning.evaluation.faithfulness import faithfulness_failures
    except ModuleNotFoundError as err:
        if err.name != "diary_lightning.evaluation.faithfulness":
            raise
        return None
    return faithfulness_failures


@dataclass(frozen=True)
class Diary:
    """What a system wrote for one item."""

    text: str
    truncated: bool = False
    """Generation stopped at its token limit, not at its end."""
    error: str | None = None
    """Why there is no diary (a teacher's request that failed); the text is then empty and scored as such."""


def score_diaries(items: Sequence[BenchmarkItem], diaries: Sequence[Diary], system: str,
                  rouge_tokenizer: str = "char") -> list[dict[str, Any]]:
    """One row per item: the diary and every score of it, as ``items.jsonl`` holds them."""
    from diary_lightning.evaluation.diary_style import analyse_many, style_failures
    from diary_lightning.evaluation.metrics import chrf_pair, rouge_l_pair

    if len(items) != len(diaries):
        raise ValueError(f"{len(diaries)} diaries for {len(items)} items")
    # Kiwi's worker threads for the whole batch, then cached per text: the diaries, and the chats' turns that the
    # faithfulness checks read (cached across systems, so only the first system pays for them).
    analyse_many(d.text for d in diaries)
    faithfulness = faithfulness_check()
    if faithfulness is not None:
        turns = list(dict.fromkeys(text for item in items for _, text in item.dialogue))
        for start in range(0, len(turns), 4096):
            analyse_many(turns[start:start + 4096])
    rows = []
    for item, diary in zip(items, diaries):
        said = sentences(diary.text)
        recalled, missed, others, wrong = 0, [], 0, []
        for fact in item.facts:
            recalled_in = recalling(fact, said)
            if not recalled_in:
                missed.append(fact.text)
                continue
            recalled += 1
            if fact.who != item.writer:
                others += 1
                if wrong_person(fact, item.writer, said, recalled_in):
                    wrong.append(fact.text)
        fallen = [{"kind": t.kind, "claim": t.claim} for t in item.traps if falls_into(t, said)]
        row = {
            "system": system, "id": item.id, "split": item.split, "setting": item.setting, "topic": item.topic,
            "turns": len(item.dialogue), "diary": diary.text, "truncated": diary.truncated,
            "style_failures": style_failures(diary.text, writer_names=[item.writer]),
            "facts": len(item.facts), "facts_recalled": recalled, "facts_missed": missed,
            "facts_of_others_recalled": others, "facts_wrong_person": wrong,
            "traps": {kind: sum(t.kind == kind for t in item.traps) for kind in TRAP_KINDS},
            "traps_fallen": fallen,
            "rougeL": rouge_l_pair(diary.text, item.reference, rouge_tokenizer),
            "chrf": chrf_pair(diary.text, item.reference),
            "chars": len(squash(diary.text)), "sentences": len(said),
        }
        if diary.error:
            row["error"] = diary.error
        if faithfulness is not None:
            row["faithfulness_failures"] = list(faithfulness(diary.text, item.messages(), item.writer))
        rows.append(row)
    return rows


# A metric: (numerator, denominator) of one row; the rate is sum(numerators) / sum(denominators).
Ratio = tuple[float, float]


def _fallen(row: Mapping[str, Any], kind: str | None = None) -> int:
    return sum(1 for t in row["traps_fallen"] if kind is None or t["kind"] == kind)


def metric_parts(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Ratio]]:
    """Every metric's (numerator, denominator) per row, by name. Higher is better for ``style_pass``,
    ``fact_recall``, ``rougeL``, ``chrf`` and the judge's scores; lower for the rest."""
    parts: dict[str, list[Ratio]] = {
        "style_pass": [(float(not r["style_failures"]), 1.0) for r in rows],
        "fact_recall": [(r["facts_recalled"], r["facts"]) for r in rows],
        "wrong_person": [(len(r["facts_wrong_person"]), r["facts_of_others_recalled"]) for r in rows],
        "trap_rate": [(_fallen(r), sum(r["traps"].values())) for r in rows],
        **{f"trap.{kind}": [(_fallen(r, kind), r["traps"].get(kind, 0)) for r in rows] for kind in TRAP_KINDS},
        "rougeL": [(r["rougeL"], 1.0) for r in rows],
        "chrf": [(r["chrf"], 1.0) for r in rows],
        "chars": [(r["chars"], 1.0) for r in rows],
        "truncated": [(float(r["truncated"]), 1.0) for r in rows],
    }
    # The faithfulness checks' columns (the companion issue), where every row of the system carries them.
    if rows and all("faithfulness_failures" in r for r in rows):
        parts["faithful"] = [(float(not r["faithfulness_failures"]), 1.0) for r in rows]
        for check in FAITHFULNESS_CHECKS:
            parts[f"faithful.{check}"] = [(float(check in r["faithfulness_failures"]), 1.0) for r in rows]
    judged = [r["judge"] for r in rows if r.get("judge")]
    if judged and len(judged) == len(rows):
        from diary_lightning.evaluation.judge import judge_parts

        parts.update(judge_parts(judged))
    return parts


HIGHER_IS_BETTER = {"style_pass", "fact_recall", "rougeL", "chrf", "faithful", "judge.rubric", "judge.win"}


def bootstrap(parts: Sequence[Ratio], samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED,
              ) -> dict[str, float | int | None]:
    """The rate of ``parts`` and its 95% percentile interval over ``samples`` resamplings of the rows (seeded:
    the same rows give the same interval). A rate with nothing to count (all denominators 0) is None."""
    num = np.array([p[0] for p in parts], dtype=float)
    den = np.array([p[1] for p in parts], dtype=float)
    n = int(den.sum())
    if not len(parts) or den.sum() == 0:
        return {"value": None, "low": None, "high": None, "n": n}
    value = num.sum() / den.sum()
    idx = np.random.default_rng(seed).integers(0, len(parts), size=(samples, len(parts)))
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = num[idx].sum(axis=1) / den[idx].sum(axis=1)
    rates = rates[np.isfinite(rates)]
    low, high = np.percentile(rates, [2.5, 97.5]) if len(rates) else (value, value)
    return {"value": float(value), "low": float(low), "high": float(high), "n": n}


def summarize(rows: Sequence[Mapping[str, Any]], samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED,
              ) -> dict[str, Any]:
    """One system's metrics with intervals, in all (``overall``) and per setting (``by_setting``), and the
    item count and the failures seen."""
    by_setting: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_setting.setdefault(row["setting"], []).append(row)
    return {
        "items": len(rows),
        "errors": sum(1 for r in rows if r.get("error")),
        "overall": {name: bootstrap(p, samples, seed) for name, p in metric_parts(rows).items()},
        "by_setting": {setting: {name: bootstrap(p, samples, seed) for name, p in metric_parts(part).items()}
                       for setting, part in sorted(by_setting.items())},
    }


def reasons(row: Mapping[str, Any]) -> list[str]:
    """What is wrong with one diary, worst first."""
    found = [f"fell into a {t['kind']} trap: {t['claim']}" for t in row["traps_fallen"]]
    found += [f"gave to the wrong person: {fact}" for fact in row["facts_wrong_person"]]
    found += [f"style: {', '.join(row['style_failures'])}"] if row["style_failures"] else []
    found += ["truncated"] if row["truncated"] else []
    found += [f"missed: {fact}" for fact in row["facts_missed"]]
    if row.get("error"):
        found.insert(0, f"no diary: {row['error']}")
    if row.get("faithfulness_failures"):
        found.append(f"faithfulness: {', '.join(row['faithfulness_failures'])}")
    return found


def badness(row: Mapping[str, Any]) -> tuple[float, float]:
    """Orders the worst diaries first: traps and wrong attributions (false statements) count twice a missed fact;
    a style failure, a cut or a faithfulness failure counts as one; ties go to the lower chrF."""
    points = 2 * (len(row["traps_fallen"]) + len(row["facts_wrong_person"])) + len(row["facts_missed"])
    points += bool(row["style_failures"]) + bool(row["truncated"]) + 3 * bool(row.get("error"))
    points += len(row.get("faithfulness_failures") or ())
    return -points, row["chrf"]


def worst(rows: Iterable[Mapping[str, Any]], count: int = 10) -> list[Mapping[str, Any]]:
    return sorted(rows, key=badness)[:count]


__all__ = ["BOOTSTRAP_SAMPLES", "BOOTSTRAP_SEED", "FAITHFULNESS_CHECKS", "HIGHER_IS_BETTER", "Diary", "bootstrap",
           "metric_parts", "reasons", "score_diaries", "summarize", "worst"]

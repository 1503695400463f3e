"""What the data lost on its way to training, said where a user looks: dialogues too long for
``data.max_length`` per split in fit's start-up block (a warning past 5% of a split), and an error when
nothing at all is left.

Plain functions on the :class:`~diary_lightning.prepare.DataReport`; no Lightning.
"""

from __future__ import annotations

from typing import Any

from diary_lightning.dialogue import DataError, Problem

WARN_FRACTION = 0.05
"""A split losing more than this share of its dialogues to ``data.max_length`` gets a warning."""


def too_long(report: Any, max_length: int) -> tuple[str, list[str]]:
    """The start-up line with the dialogues dropped as too long per split, and a warning per split that lost
    more than WARN_FRACTION of them."""
    dropped, kept = report.too_long_dropped, report.splits
    counts = ", ".join(f"{name} {n} of {n + kept.get(name, 0)}" for name, n in dropped.items())
    line = f"too long       {counts or 'none'} dropped (longer than data.max_length={max_length} with every turn but the last cut)"
    warnings = []
    for name, n in dropped.items():
        total = n + kept.get(name, 0)
        if total and n / total > WARN_FRACTION:
            warnings.append(f"{n} of {total} {name} dialogues ({n / total:.0%}) do not fit data.max_length={max_length} "
                            f"and were dropped; raise data.max_length to keep them")
    return line, warnings


def check_something_left(report: Any, max_length: int, paths: Any) -> None:
    """Stop when every record was skipped or dropped: a run on no data would only report ``dialogues: 0``."""
    if sum(report.splits.values()):
        return
    reasons = [f"{n} {reason}" for reason, n in report.skipped.items()]
    long_ones = sum(report.too_long_dropped.values())
    if long_ones:
        reasons.append(f"{long_ones} longer than data.max_length={max_length} (raise it to keep them)")
    where = ", ".join(report.files) or str(paths)
    detail = "; ".join(reasons) + " (every record was skipped or dropped)" if reasons else "none was read"
    raise DataError([Problem(where, None, None, "no dialogues", f"no dialogue is left to train or evaluate on: {detail}")])

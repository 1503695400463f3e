"""Deterministic train/val/test splits from dialogue IDs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from diary_lightning.data.records import Dialogue

SPLITS = ("train", "val", "test")
SPLIT_MODES = ("hash", "aihub")


def _unit(dialogue_id: str, seed: int) -> float:
    """A number in [0, 1) fixed by the ID and the seed: the same dialogue always lands in the same split,
    whatever the file order, the files read alongside it or the Python hash seed."""
    digest = hashlib.blake2b(f"{seed}\0{dialogue_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign_split(dialogue_id: str, val_fraction: float, test_fraction: float, seed: int = 0) -> str:
    u = _unit(dialogue_id, seed)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def split_dialogues(
    dialogues: Sequence[Dialogue],
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    mode: str = "hash",
) -> dict[str, list[Dialogue]]:
    """Split by a stable hash of each ID (``mode="hash"``), or (``"aihub"``) keep AI Hub's own
    Validation folder as val and carve test out of its Training folder by the same hash."""
    if mode not in SPLIT_MODES:
        raise ValueError(f"split={mode!r}: expected one of {', '.join(SPLIT_MODES)}")
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be >= 0 and sum to less than 1"
        )
    out: dict[str, list[Dialogue]] = {name: [] for name in SPLITS}
    if mode == "aihub":
        unknown = [d.source for d in dialogues if d.origin is None]
        if unknown:
            raise ValueError(
                f"split='aihub' needs files under AI Hub's Training/ or Validation/ folders; "
                f"{len(unknown)} dialogue(s) are not, e.g. {unknown[0]}"
            )
        for d in dialogues:
            if d.origin == "val":
                out["val"].append(d)
            else:
                out[assign_split(d.id, 0.0, test_fraction, seed)].append(d)
        return out
    for d in dialogues:
        out[assign_split(d.id, val_fraction, test_fraction, seed)].append(d)
    return out


def fit_split_warnings(report: Any, callbacks: Sequence[Any]) -> list[str]:
    """:func:`check_fit_splits` for a data report (``prepare.DataReport``) and the trainer's callbacks."""
    monitors = [(type(c).__name__, getattr(c, "monitor", None)) for c in callbacks]
    return check_fit_splits(report.splits, monitors)


def check_fit_splits(splits: dict[str, int], monitors: Sequence[tuple[str, str | None]] = ()) -> list[str]:
    """Refuse, before any model is loaded, splits that fit cannot use; returns warnings for those it can.

    ``splits``: dialogues per split; ``monitors``: (callback name, the metric it watches), e.g.
    ``("ModelCheckpoint", "val/loss")``. Data with nothing left at all was refused earlier, with the
    reasons, by :func:`diary_lightning.data.prepare.check_something_left`."""
    if not splits.get("train"):
        raise ValueError(f"the train split is empty ({splits}); add dialogues or lower data.val_fraction/"
                         "data.test_fraction (with data.split: aihub, the Training folder must hold dialogues)")
    warnings = []
    if not splits.get("val"):
        watching = [f"{name} monitors {metric}" for name, metric in monitors if metric and metric.startswith("val/")]
        if watching:
            named = ", ".join(dict.fromkeys(watching))
            raise ValueError(f"the val split is empty but {named}, which only validation logs: set data.val_fraction "
                             "above 0 (with data.split: aihub, give the Validation folder in data.paths), or remove "
                             "the monitor (monitor: null in that callback's init_args)")
        warnings.append("the val split is empty: fit will not validate (data.val_fraction above 0 to validate)")
    if not splits.get("test"):
        warnings.append("the test split is empty: test will have nothing to score (data.test_fraction above 0)")
    return warnings

"""Deterministic train/val/test splits from dialogue IDs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from diary_lightning.dialogue import Dialogue

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

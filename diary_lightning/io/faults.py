"""Test-only kill switch: SIGKILL this process at a named moment, to prove that a resumed run does not care when
the previous one died.

Off unless ``DIARY_LIGHTNING_KILL_AT`` is set (``MOMENT`` or ``MOMENT@N``, the N-th time the moment is reached,
default 1), so nothing of this runs in a normal job: the CLI adds :class:`diary_lightning.training.kill_switch.KillAt` only then, and
:func:`reached` is a single ``None`` check at the few places a callback cannot reach (inside a checkpoint
write, between the two renames that publish a folder); it imports nothing, so Lightning-free code may call it.
Moments:

========================  ==============================================================================
``data``                  inside the training loader, fetching a batch
``step``                  after the backward of a micro-batch whose optimizer step is not done yet
``checkpoint-write``      a checkpoint's temporary file written, not yet renamed to its name
``checkpoint-saved``      a checkpoint renamed into place, the step's logs not yet written
``validation``            after a validation batch
``generation``            after a batch of diaries generated during validation
``folder-write``          a folder (exported adapter, merged model, tokenized cache) written under its temporary
                          name, not yet published
``publish``               between the two renames that publish a folder (the old one moved aside)
``predict``               after a batch of diaries written to ``OUTPUT.partial``
========================  ==============================================================================
"""

from __future__ import annotations

import os
import signal
from typing import Any

ENV = "DIARY_LIGHTNING_KILL_AT"
MOMENTS = ("data", "step", "checkpoint-write", "checkpoint-saved", "validation", "generation", "folder-write",
           "publish", "predict")


def _plan() -> tuple[str, int] | None:
    value = os.environ.get(ENV)
    if not value:
        return None
    name, _, count = value.partition("@")
    if name not in MOMENTS:
        raise ValueError(f"{ENV}={value!r}: expected one of {', '.join(MOMENTS)}, optionally @N")
    return name, int(count or 1)


_PLAN = _plan()
_seen: dict[str, int] = {}


def reached(moment: str) -> None:
    """SIGKILL this process if the plan names ``moment`` and this is its N-th arrival."""
    if _PLAN is None or _PLAN[0] != moment:
        return
    _seen[moment] = _seen.get(moment, 0) + 1
    if _seen[moment] == _PLAN[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def callbacks() -> list[Any]:
    """The kill switch as a callback when armed, else nothing."""
    if _PLAN is None:
        return []
    from diary_lightning.training.kill_switch import KillAt

    return [KillAt()]



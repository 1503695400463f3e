"""A tiny fit killed at a named moment (``tests/faults.py``), resumed with ``--ckpt_path last`` until it
finishes, and compared with an uninterrupted one: every logged value, every checkpoint name, every adapter tensor.

Run as a script it prints the table of moments (``python tests/kills.py [MOMENT ...]``; ``KILLS_BASE=DIR`` reuses
the model and uninterrupted run of an earlier table).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from fits import FAULTS, fit_config, run_dir  # noqa: E402

# 51 training dialogues in batches of 8: 7 batches an epoch, accumulating 2. Validation every 4 batches of an
# epoch lands on steps 2 and 6; step checkpoints every 2 steps land on 2, 4, 6, 8: the shipped configs'
# layout (a step checkpoint on each validation step), at a few seconds a step.
KILL_RUN = {
    "trainer.max_steps": 8,
    "trainer.val_check_interval": 4,
    "trainer.check_val_every_n_epoch": 1,
    "trainer.num_sanity_val_steps": 0,
    "trainer.limit_val_batches": 2,
    "data.eval_batch_size": 4,
    "data.val_generate_samples": 4,
    "model.max_new_tokens": 6,
}

# moment@N → what it hits in KILL_RUN. A kill between the two renames of a publish needs a folder already
# there, which a fresh run's end-of-fit export never has: tests/test_jobs.py covers it on its own.
MOMENTS = {
    "data@9": "data loading (the first batch of step 5)",
    "step@3": "mid-step (between the micro-batches of step 3)",
    "checkpoint-write@4": "writing the step-4 checkpoint",
    "checkpoint-saved@4": "step-4 checkpoint in place, the step's logs not yet written",
    "validation@3": "validation after step 6 (val/loss batches)",
    "generation@2": "validation after step 6 (generating diaries)",
    "checkpoint-write@5": "writing the best checkpoint of that validation",
    "checkpoint-saved@2": "first validation's checkpoints half done (best and last written, the step one not)",
    "folder-write@1": "end-of-fit export (adapter written, not published)",
}


def kill_config(base: Path, model_dir: Path, name: str) -> Path:
    return fit_config(base, model_dir, name, **KILL_RUN)


def _fit(config: Path, *extra: str, kill_at: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("DIARY_LIGHTNING_KILL_AT", None)
    if kill_at:
        env["DIARY_LIGHTNING_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, str(FAULTS), "fit", "--config", str(config), *extra],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=timeout)


def reference(config: Path) -> Path:
    done = _fit(config)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir(config)


def killed_and_resumed(config: Path, moment: str) -> dict[str, Any]:
    """Kill at ``moment``, then resume until a run finishes (exit 0)."""
    killed = _fit(config, kill_at=moment)
    assert killed.returncode == -signal.SIGKILL, f"{moment} was never reached:\n{killed.stderr[-3000:]}"
    resumed = _fit(config, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return {"run": run_dir(config), "stderr": resumed.stderr}


def logged(run: Path) -> dict[str, dict[int, float]]:
    """Every scalar of a run, tag → step → value; a later TensorBoard version (a resumed run) overrides an
    earlier one at the same step, as the value the resumed run stands by."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values: dict[str, dict[int, float]] = {}
    for version in sorted((run / "tensorboard").iterdir(), key=lambda p: int(p.name.rpartition("_")[2])):
        accumulator = EventAccumulator(str(version), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            for event in accumulator.Scalars(tag):
                values.setdefault(tag, {})[event.step] = event.value
    return values


def adapter(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run / "checkpoints" / "adapter" / "adapter_model.safetensors")


def checkpoint_names(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


def differences(run: Path, expected: Path) -> list[str]:
    """What differs between a resumed run and the uninterrupted one; empty when identical."""
    found = []
    got, want = logged(run), logged(expected)
    for tag in sorted(set(got) | set(want)):
        if got.get(tag) != want.get(tag):
            steps = sorted(set(got.get(tag, {})) ^ set(want.get(tag, {})))
            diff = [s for s in set(got.get(tag, {})) & set(want.get(tag, {})) if got[tag][s] != want[tag][s]]
            found.append(f"{tag}: steps only in one {steps}, other values at {sorted(diff)}")
    if checkpoint_names(run) != checkpoint_names(expected):
        found.append(f"checkpoints {checkpoint_names(run)} vs {checkpoint_names(expected)}")
    if not (run / "checkpoints" / "adapter").is_dir():
        found.append("no adapter folder")
    else:
        a, b = adapter(run), adapter(expected)
        unequal = [k for k in b if k not in a or not a[k].equal(b[k])]
        if unequal or a.keys() != b.keys():
            found.append(f"adapter: {len(unequal)} of {len(b)} tensors differ")
    return found


def main(moments: list[str]) -> None:
    import tempfile

    from diary_lightning.model.tiny import build_tiny_model

    if os.environ.get("KILLS_BASE"):  # another table's model and uninterrupted run
        base = Path(os.environ["KILLS_BASE"])
        model, expected = base / "model", base / "reference" / "run"
    else:
        base = Path(tempfile.mkdtemp(prefix="kills-"))
        model = build_tiny_model(base / "model")
        expected = reference(kill_config(base, model, "reference"))
    for moment in moments or list(MOMENTS):
        run = killed_and_resumed(kill_config(base, model, moment.replace("@", "-")), moment)["run"]
        found = differences(run, expected)
        print(f"| {MOMENTS.get(moment, moment)} | `{moment}` | {'identical' if not found else '; '.join(found)} |",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

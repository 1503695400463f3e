"""The README followed line by line on a fresh copy of the project, as a newcomer would: every command of its
``bash`` blocks and every ``python`` snippet, in the order written, each from the repository root. Nothing is
skipped silently: a command that needs a GPU, the Hub or runs until stopped is listed in NOT_RUN with why, and
an entry there that matches no README command fails (the README changed; so must this list).

The copy holds what a clone holds (the tracked and not-ignored files). Its ``.venv`` is made beforehand with the
packages of this interpreter visible in it, so the demo's ``pip install`` finds them all installed but the project
itself and needs no download of torch; the rest is the README's own commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import ROOT

NOT_RUN = {
    r"eeve-qlora": "the real recipe: a CUDA GPU and the 10.8B base from the Hub",
    r"pip install torch -e \.": "the GPU machine's install (a CUDA build of torch)",
    r"^\.venv/bin/torchrun |^srun ": "several GPUs and nodes",
    r"^\.venv/bin/tensorboard ": "a server that runs until it is stopped",
    r"-m diary_lightning app ": "a server that runs until it is stopped (tests/test_app.py starts it)",
    r"bench_preprocess\.py --sizes 71139 280000": "a benchmark at full size, minutes of CPU "
                                                  "(tests/test_benchmark.py runs it small)",
    r"evaluate --output eval/dev --ckpt_path best\.ckpt": "the real run's checkpoint and base (best.ckpt, BASE) and a "
                                                         "teacher server (M at localhost:8000) are placeholders; "
                                                         "tests/test_evaluate.py runs evaluate on a tiny model",
}
# The fast lane runs in CI beside this test: here, that the demo's venv has pytest and the suite collects.
ABRIDGED = {r"^\.venv/bin/python -m pytest$": " --collect-only -q"}


def readme_commands(text: str) -> list[tuple[str, str]]:
    """``(language, command)`` for each command of the README's bash blocks (continuation lines joined,
    comment lines dropped) and each python block whole, in order."""
    found = []
    for lang, body in re.findall(r"^```(bash|python)\n(.*?)^```", text, flags=re.M | re.S):
        if lang == "python":
            found.append((lang, body))
            continue
        for command in re.sub(r"\\\n\s*", "", body).splitlines():
            if command.strip() and not command.lstrip().startswith("#"):
                found.append((lang, command.strip()))
    return found


def test_every_readme_command_runs_in_the_demos_venv() -> None:
    # A bare `python -m diary_lightning` from a fresh shell has no Lightning (the newcomer's first error): every
    # command uses the venv the demo leaves, except the lines that make one.
    bare = [c for lang, c in readme_commands((ROOT / "README.md").read_text(encoding="utf-8")) if lang == "bash"
            and re.search(r"(^|[;&|]\s*|srun )(python3?|pip3?|pytest|tensorboard|torchrun) ", c)
            and not re.search(r"python3 -m venv \.venv", c)]
    assert not bare, bare


def why_not_run(command: str) -> str | None:
    return next((why for pattern, why in NOT_RUN.items() if re.search(pattern, command)), None)


def test_every_not_run_entry_names_a_readme_command() -> None:
    commands = [command for _, command in readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))]
    for pattern in [*NOT_RUN, *ABRIDGED]:
        assert any(re.search(pattern, c) for c in commands), f"{pattern!r} matches no README command"
    # What is run is most of it: the tiny model's whole journey.
    run = [c for c in commands if why_not_run(c) is None]
    assert run[0] == "bash scripts/demo/run.sh" and len(run) >= 8, run


def fresh_copy(target: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    subprocess.run([sys.executable, "-m", "venv", str(target / ".venv")], check=True, timeout=600)
    # This interpreter's packages, seen by the new venv (a plain path line: their .pth hooks, the project's
    # editable install among them, stay out).
    (site,) = Path(target / ".venv" / "lib").glob("python*/site-packages")
    (site / "_readme_test_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return target


@pytest.mark.slow
def test_the_readme_works_as_written_on_a_fresh_copy(tmp_path: Path) -> None:
    clone = fresh_copy(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    not_run = []
    for lang, command in readme_commands((clone / "README.md").read_text(encoding="utf-8")):
        why = why_not_run(command)
        if why:
            not_run.append(f"{command[:80]}: {why}")
            continue
        for pattern, extra in ABRIDGED.items():
            if re.search(pattern, command):
                command += extra
        argv = [".venv/bin/python", "-c", command] if lang == "python" else ["bash", "-c", command]
        done = subprocess.run(argv, cwd=clone, env=env, capture_output=True, text=True,
                              timeout=2400 if "demo" in command else 900)
        assert done.returncode == 0, f"{command}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        if lang == "python":
            assert done.stdout.strip(), f"{command}\nprinted nothing"
    print("not run by design:\n" + "\n".join(not_run))
    assert (clone / "runs" / "tiny" / "adapter" / "README.md").is_file()  # the export line's model card
    assert (clone / "runs" / "tiny" / "merged" / "README.md").is_file()
    # The demo's evaluate: its adapter and base beside the reference and the baseline, in the report and the chart.
    report = (clone / "runs" / "tiny" / "benchmark" / "report.md").read_text(encoding="utf-8")
    assert "| metric | reference | baseline | tiny-adapter | zero-shot:tiny-model |" in report
    assert (clone / "runs" / "tiny" / "benchmark" / "metrics.png").is_file()
    assert '"writer": "민지"' in (clone / "runs" / "tiny" / "kakao.jsonl").read_text(encoding="utf-8")

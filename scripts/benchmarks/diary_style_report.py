"""How well the diary-style checks tell diaries from non-diaries: on the labelled texts in tests/data/diary_style/
(each a diary or a non-diary of a named kind) and on real summaries (all non-diaries), now and, with
``--before REV``, as the checks of that git revision judged them.

    python scripts/benchmarks/diary_style_report.py
    python scripts/benchmarks/diary_style_report.py --before main --errors
    python scripts/benchmarks/diary_style_report.py --data ../shared/aihub-sample --before main

For each split: the share of diaries that pass every check and of non-diaries that fail at least one. Then the
confusion of each check: how often it fires on diaries (false alarms), on texts of its own kind (hits), and on
other non-diaries. For ``--data``: the share of summaries failed, by check.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import types
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
LABELLED = sorted((ROOT / "tests" / "data" / "diary_style").glob("*.jsonl"))


def read_labelled(paths: list[Path]) -> list[dict]:
    return [json.loads(line) for path in paths for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def module_at(rev: str) -> types.ModuleType:
    """diary_style as it was at git revision ``rev`` (path before or after the layout move)."""
    for path in ("diary_lightning/evaluation/diary_style.py", "diary_lightning/diary_style.py"):
        shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], capture_output=True, text=True)
        if shown.returncode == 0:
            module = types.ModuleType(f"diary_style_{rev}")
            exec(compile(shown.stdout, f"{rev}:{path}", "exec"), module.__dict__)
            return module
    raise SystemExit(f"--before {rev}: no diary_style module at that revision")


def judge(module: types.ModuleType, rows: list[dict]) -> list[list[str]]:
    if hasattr(module, "analyse_many"):
        module.analyse_many([r["text"] for r in rows])
    return [module.style_failures(r["text"], writer_names=[r["writer"]] if r.get("writer") else ()) for r in rows]


def report_labelled(name: str, module: types.ModuleType, rows: list[dict], errors: bool) -> None:
    failed = judge(module, rows)
    print(f"\n## {name}")
    print(f"{'split':<10} {'texts':>5} {'diaries passed':>16} {'non-diaries failed':>20}")
    for split in sorted({r["split"] for r in rows}) + ["all"]:
        pick = [i for i, r in enumerate(rows) if split in ("all", r["split"])]
        diaries = [i for i in pick if rows[i]["kind"] == "diary"]
        others = [i for i in pick if rows[i]["kind"] != "diary"]
        passed = sum(not failed[i] for i in diaries)
        caught = sum(bool(failed[i]) for i in others)
        print(f"{split:<10} {len(pick):>5} {passed:>7}/{len(diaries):<3} {passed / len(diaries):>5.0%} "
              f"{caught:>9}/{len(others):<3} {caught / len(others):>5.0%}")
    kinds = Counter(r["kind"] for r in rows)
    print(f"\n{'check':<16} {'fires on diaries':>17} {'on its own kind':>16} {'on other non-diaries':>21}")
    for check in module.CHECKS:
        on_diary = sum(check in f for f, r in zip(failed, rows) if r["kind"] == "diary")
        own = sum(check in f for f, r in zip(failed, rows) if r["kind"] == check)
        other = sum(check in f for f, r in zip(failed, rows) if r["kind"] not in ("diary", check))
        n_other = len(rows) - kinds["diary"] - kinds[check]
        own_text = f"{own}/{kinds[check]}" if kinds[check] else "-"
        print(f"{check:<16} {on_diary:>10}/{kinds['diary']:<6} {own_text:>16} {other:>14}/{n_other:<6}")
    caught_by_kind = defaultdict(lambda: [0, 0])
    for f, r in zip(failed, rows):
        if r["kind"] != "diary":
            caught_by_kind[r["kind"]][0] += bool(f)
            caught_by_kind[r["kind"]][1] += 1
    print("non-diaries failed by kind: " + ", ".join(f"{k} {a}/{b}" for k, (a, b) in sorted(caught_by_kind.items())))
    if errors:
        for f, r in zip(failed, rows):
            if (r["kind"] == "diary") == bool(f):
                print(f"  WRONG [{r['split']}] {r['kind']}: {r['text']!r} -> {f}")


def report_data(name: str, module: types.ModuleType, path: str) -> None:
    from diary_lightning.data.dialogue import read_dialogues
    from diary_lightning.data.roles import assign_writers

    dialogues, _, _ = assign_writers(read_dialogues(path).dialogues, None)
    rows = [{"text": d.summary or "", "writer": d.writer} for d in dialogues]
    start = time.perf_counter()
    failed = judge(module, rows)
    seconds = time.perf_counter() - start
    counts = Counter(c for f in failed for c in f)
    print(f"\n## {name}: {path}: {len(rows)} summaries (none is a diary), {seconds:.2f} s")
    print(f"failed at least one check: {sum(map(bool, failed)) / len(rows):.1%}")
    print(", ".join(f"{c} {counts[c] / len(rows):.1%}" for c in module.CHECKS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labelled", nargs="*", type=Path, default=LABELLED, help="JSONL: kind, writer, text, split")
    parser.add_argument("--data", nargs="*", default=[], help="dialogue files or folders: their summaries")
    parser.add_argument("--before", help="also judge with the checks of this git revision (e.g. main)")
    parser.add_argument("--errors", action="store_true", help="list the texts judged wrongly")
    args = parser.parse_args()
    start = time.perf_counter()
    from diary_lightning.evaluation import diary_style

    diary_style.kiwi()
    print(f"Kiwi loaded in {time.perf_counter() - start:.2f} s")
    modules = ([(f"before ({args.before})", module_at(args.before))] if args.before else []) + [("now", diary_style)]
    rows = read_labelled(args.labelled)
    for name, module in modules:
        report_labelled(name, module, rows, args.errors)
    for path in args.data:
        for name, module in modules:
            report_data(name, module, path)


if __name__ == "__main__":
    main()

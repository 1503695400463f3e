"""Print the benchmark datasheet's tables (docs/benchmark.md), computed from the shipped files, or write them
into the doc between its datasheet markers:

    python scripts/benchmarks/benchmark_datasheet.py                           # print
    python scripts/benchmarks/benchmark_datasheet.py --write docs/benchmark.md # rewrite the doc's tables
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from diary_lightning.evaluation.benchmark import datasheet_tables, load_benchmark
from diary_lightning.io.atomic import write_text

START, END = "<!-- datasheet:start -->", "<!-- datasheet:end -->"


def with_tables(doc: str, tables: str) -> str:
    if START not in doc or END not in doc:
        raise SystemExit(f"the doc has no {START} ... {END} block to fill")
    return re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: f"{START}\n{tables}\n{END}", doc, flags=re.S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", type=Path, help="the doc to rewrite the tables of (docs/benchmark.md)")
    options = parser.parse_args()
    tables = datasheet_tables(load_benchmark())
    if options.write:
        write_text(options.write, with_tables(options.write.read_text(encoding="utf-8"), tables))
    else:
        print(tables)


if __name__ == "__main__":
    main()

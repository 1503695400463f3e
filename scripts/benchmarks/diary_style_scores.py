"""The diary-style score of reference diaries (the summaries of data files) or of generated ones (a
``test_generations.jsonl`` or predict output): the share passing every check, and the share failing each.

    python scripts/benchmarks/diary_style_scores.py --data ../shared/aihub-sample
    python scripts/benchmarks/diary_style_scores.py --data diary_lightning/resources/sample_dialogues.json
    python scripts/benchmarks/diary_style_scores.py --generations runs/tiny/tensorboard/version_0/test_generations.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    from diary_lightning.data.dialogue import read_dialogues
    from diary_lightning.data.roles import assign_writers
    from diary_lightning.evaluation.diary_style import scores_from_failures, style_failures, style_scores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="*", default=[], help="dialogue files or folders: their summaries are scored")
    parser.add_argument("--writer", nargs="*", default=None, help="data.writer (default: Human, exporter, first)")
    parser.add_argument("--generations", nargs="*", default=[], help="JSONL files with a diary per line")
    args = parser.parse_args()
    for path in args.data:
        dialogues, _, _ = assign_writers(read_dialogues(path).dialogues, args.writer)
        scores = style_scores([d.summary or "" for d in dialogues], writer_names=[[d.writer] for d in dialogues])
        print(json.dumps({"data": path, "texts": len(dialogues), **scores}, ensure_ascii=False))
    for path in args.generations:
        rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        # The failures written with each row were checked against that dialogue's writer, which the file omits.
        failed = [r["style_failures"] if "style_failures" in r
                  else style_failures(r["diary"], truncated=bool(r.get("truncated"))) for r in rows]
        scores = scores_from_failures(failed)
        print(json.dumps({"generations": path, "texts": len(rows), **scores}, ensure_ascii=False))


if __name__ == "__main__":
    main()

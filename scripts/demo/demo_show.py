"""The demo's two halves (scripts/demo/run.sh): the chats a short fit learns by heart, and the lines that show what
the tiny model can and cannot do.

    python scripts/demo/demo_show.py four OUT.jsonl            # four bundled dialogues with their diaries
    python scripts/demo/demo_show.py show TRAINED.jsonl WRITTEN.jsonl UNSEEN.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from diary_lightning.model.tiny import sample_data_path


def four(output: Path) -> None:
    """The first four dialogues of the bundled AI Hub sample as JSONL records with their diaries."""
    records = json.loads(sample_data_path().read_text(encoding="utf-8"))["data"][:4]
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as f:
        for r in records:
            dialogue = [{"speaker": u["participantID"], "text": u["utterance"]} for u in r["body"]["dialogue"]]
            f.write(json.dumps({"id": r["header"]["dialogueInfo"]["dialogueID"], "dialogue": dialogue,
                                "summary": r["body"]["summary"]}, ensure_ascii=False) + "\n")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def show(trained: Path, written: Path, unseen: Path) -> None:
    reference = {row["id"]: row["summary"] for row in _rows(trained)}
    diaries = {row["id"]: row["diary"] for row in _rows(written)}
    exact = sum(diaries.get(key) == diary for key, diary in reference.items())
    first = next(iter(reference))
    print(f"A trained chat ({first}): the diary it was trained on, and the one the model wrote")
    print(f"  trained on: {reference[first]}")
    print(f"  written:    {diaries.get(first, '')}")
    print(f"  exactly the same: {'yes' if diaries.get(first) == reference[first] else 'no'} "
          f"({exact} of {len(reference)} trained diaries reproduced exactly)")
    row = _rows(unseen)[0]
    print(f"An unseen chat ({row['id']}): the tiny model has not learned to write diaries, so this is noise")
    print(f"  written:    {row['diary']}")


if __name__ == "__main__":
    command, *paths = sys.argv[1:]
    if command == "four":
        four(Path(paths[0]))
    else:
        show(*map(Path, paths))

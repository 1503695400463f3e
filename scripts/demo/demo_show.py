"""The demo's two halves (scripts/demo/run.sh): the chats a short fit learns by heart, and the lines that show what
the tiny model can and cannot do.

    python scripts/demo/demo_show.py four OUT.jsonl            # four bundled dialogues with their diaries
    python scripts/demo/demo_show.py show TRAINED.jsonl WRITTEN.jsonl UNSEEN.jsonl [FOUR_RUN MAIN_RUN MODEL]

With the two run folders and the model folder, it also says what the losses mean: a loss in nats per diary token
against ln(vocabulary), the loss of a uniform guess, and exp(-loss), the probability the model gives the right
token on average (geometric mean), which is how confidently it has learned the diaries.
"""

from __future__ import annotations

import json
import math
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


def scalars(run: Path, tag: str) -> list[float]:
    """A run's logged values of ``tag`` in step order, from its newest TensorBoard version."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    versions = sorted((run / "tensorboard").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    if not versions:
        return []
    events = EventAccumulator(str(versions[-1]), size_guidance={"scalars": 0})
    events.Reload()
    return [e.value for e in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []


def losses(four_run: Path, main_run: Path, model: Path) -> None:
    vocab = json.loads((model / "config.json").read_text(encoding="utf-8"))["vocab_size"]
    uniform = math.log(vocab)
    print(f"What the losses mean (nats per diary token; a uniform guess over the {vocab}-token vocabulary is "
          f"ln {vocab} = {uniform:.2f}, a perfect model 0):")
    train = scalars(four_run, "train/loss")
    if train:
        print(f"  four-chat fit: train/loss {train[0]:.2f} -> {train[-1]:.2f}: the right next token gets "
              f"p = exp(-loss) = {math.exp(-train[-1]):.2g} on average (geometric mean) at the end"
              + ("; greedy decoding only needs it ranked first, so an exact copy can come at low confidence"
                 if math.exp(-train[-1]) < 0.5 else ""))
    val = scalars(main_run, "val/loss")
    if val:
        best = min(range(len(val)), key=val.__getitem__)
        print(f"  main fit: val/loss at each check {', '.join(f'{v:.2f}' for v in val)}; the best (check {best + 1}) "
              f"is the exported adapter that wrote runs/tiny/diaries.jsonl"
              + ("; rising after the first check, it shows the tiny model overfitting its few training chats" if best == 0 and
                 len(val) > 1 else ""))


def show(trained: Path, written: Path, unseen: Path, *runs: Path) -> None:
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
    if len(runs) == 3:
        losses(*runs)


if __name__ == "__main__":
    command, *paths = sys.argv[1:]
    if command == "four":
        four(Path(paths[0]))
    else:
        show(*map(Path, paths))

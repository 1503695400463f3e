"""Generated diaries during validation and test: the fixed subset, the scores and table in TensorBoard,
the test JSONL."""

import json
import random
from pathlib import Path

import pytest
import yaml
from conftest import run_cli
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from diary_lightning.evaluation import samples as evaluation
from diary_lightning.evaluation.diary_style import CHECKS, score_name, style_failures
from diary_lightning.evaluation.metrics import METRIC_KEYS, score_pair
from diary_lightning.training.datamodule import DiaryDataModule

ROW_KEYS = {"id", "summary", "diary", "truncated", "style_failures", "faithfulness_failures", *METRIC_KEYS}
STYLE_TAGS = ("diary_style", *(score_name(check) for check in CHECKS))


def _events(run: Path) -> EventAccumulator:
    (path,) = run.glob("events.out.tfevents.*")
    # 0: keep every event; the defaults sample tensors (where text lives) down to 10.
    accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def _table_rows(markdown: str) -> list[list[str]]:
    lines = markdown.splitlines()
    assert lines[0] == "| id | dialogue | summary | diary | fails |"
    return [line.strip("|").strip().split(" | ") for line in lines[2:]]


@pytest.mark.slow
def test_fit_logs_scores_and_sample_table_each_scored_validation(make_config, tmp_path):
    config = make_config(**{
        "trainer.max_steps": 4,
        "trainer.val_check_interval": 1,
        "trainer.limit_val_batches": 1,   # caps the val/loss batches, not the generation subset
        "trainer.num_sanity_val_steps": 0,
        "data.eval_batch_size": 2,
        "data.val_generate_samples": 5,   # 3 generation batches of 2
        "model.generate_every_n_val": 2,
        "model.max_new_tokens": 8,
        "model.rouge_tokenizer": "eojeol",
    })
    run_cli("fit", "--config", str(config))

    version = tmp_path / "run" / "tensorboard" / "version_0"
    events = _events(version)
    tags = events.Tags()
    for tag in ("val/loss", "val/rouge1", "val/rouge2", "val/rougeL", "val/chrf", *(f"val/{t}" for t in STYLE_TAGS)):
        assert tag in tags["scalars"], tag
    assert "val/samples/text_summary" in tags["tensors"]

    # Four validations; diaries scored at the 2nd and 4th only.
    assert [e.step for e in events.Scalars("val/loss")] == [0, 1, 2, 3]
    assert [e.step for e in events.Scalars("val/rougeL")] == [1, 3]
    assert all(0.0 <= e.value <= 1.0 for tag in STYLE_TAGS for e in events.Scalars(f"val/{tag}"))

    tables = events.Tensors("val/samples/text_summary")
    assert [t.step for t in tables] == [1, 3]  # beside the scores
    rows = _table_rows(tables[-1].tensor_proto.string_val[0].decode())
    # limit_val_batches=1 would have left one batch of 2: the subset is generated in full.
    assert len(rows) == evaluation.TABLE_ROWS
    references = {d["body"]["summary"] for d in json.loads(Path(yaml.safe_load(config.read_text())["data"]["paths"][0])
                                                             .read_text())["data"]}
    assert all(row[2] in references for row in rows)
    # The first speaker writes the diary (AI Hub's dialogues have no Human): labels, not speaker codes.
    assert all(row[1].startswith("글쓴이: ") and "P01" not in row[1] and "P02" not in row[1] for row in rows)
    # The failing style checks of each diary, or a dash.
    assert all(row[4] == "—" or set(row[4].split(", ")) <= set(CHECKS) for row in rows)

    hparams = yaml.safe_load((version / "hparams.yaml").read_text())
    assert hparams["rouge_tokenizer"] == "eojeol"
    assert hparams["val_generate_samples"] == 5
    # No placeholder hp_metric (Lightning's -1) among the charts: the run's settings are in hparams.yaml.
    assert "hp_metric" not in tags["scalars"]


@pytest.mark.slow
def test_test_without_checkpoint_writes_scored_generations(make_config, tmp_path):
    config = make_config(**{"data.test_generate_samples": 3, "data.eval_batch_size": 2, "model.max_new_tokens": 6})
    run_cli("test", "--config", str(config))

    version = tmp_path / "run" / "tensorboard" / "version_0"
    path = version / "test_generations.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 3
    assert all(set(r) == ROW_KEYS for r in records)
    assert len({r["id"] for r in records}) == 3
    for record in records:
        assert record["summary"]
        assert record["style_failures"] == style_failures(record["diary"], writer_names=["P01"],
                                                          truncated=record["truncated"])
        scores = score_pair(record["diary"], record["summary"])
        assert {k: record[k] for k in METRIC_KEYS} == pytest.approx(scores)
    assert sorted(p.name for p in version.iterdir() if p.name.startswith(".")) == []  # no temp file left

    tags = _events(version).Tags()
    for tag in ("test/loss", "test/rougeL", "test/chrf", *(f"test/{t}" for t in STYLE_TAGS)):
        assert tag in tags["scalars"], tag
    assert "test/samples/text_summary" in tags["tensors"]


def test_the_writer_and_role_labels_reach_the_prompt(tmp_path, tiny_model_dir, sample_dialogues, tokenizer):
    def val_prompt(writer):
        data = DiaryDataModule(paths=[str(sample_dialogues)], tokenizer=str(tiny_model_dir), writer=writer,
                               cache_dir=str(tmp_path / "cache"), val_generate_samples=2)
        data.setup("validate")
        batch = next(iter(data.generation_dataloader("val")))
        return batch["dialogue"][0], batch["writer"][0], tokenizer.decode(batch["input_ids"][0], skip_special_tokens=True)

    dialogue, writer, prompt = val_prompt(None)  # no Human in AI Hub's data: the first speaker
    assert writer == "P01" and dialogue.splitlines()[0].startswith("글쓴이: ")
    assert dialogue.splitlines()[1].startswith("상대1: ")
    assert dialogue in prompt and "P01" not in prompt and "P02" not in prompt

    dialogue, writer, prompt = val_prompt("P02")
    assert writer == "P02" and dialogue.splitlines()[0].startswith("상대1: ")
    assert dialogue.splitlines()[1].startswith("글쓴이: ")
    assert dialogue in prompt


def test_generation_subset_is_fixed_by_ids_not_order(tmp_path, tiny_model_dir, sample_dialogues):
    from datasets import Dataset

    data = DiaryDataModule(paths=[str(sample_dialogues)], tokenizer=str(tiny_model_dir),
                           cache_dir=str(tmp_path / "cache"))
    val = data.splits()["val"]
    shuffled = list(range(len(val)))
    random.Random(0).shuffle(shuffled)
    first = evaluation.generation_subset(val, 4)
    again = evaluation.generation_subset(Dataset.from_dict(val.select(shuffled).to_dict()), 4)
    assert [r["id"] for r in first] == [r["id"] for r in again]
    assert len(evaluation.generation_subset(val, None)) == len(val)
    # Prompt only: the generated diary must not be fed the reference.
    example = val[[i for i, x in enumerate(val["id"]) if x == first[0]["id"]][0]]
    assert first[0]["input_ids"] == example["input_ids"][: example["prompt_length"]]
    assert len(first[0]["input_ids"]) < len(example["input_ids"])


@pytest.mark.slow  # two processes
def test_rows_gathered_from_ranks_come_back_in_subset_order(tmp_path):
    """Two real processes joined by gloo: each generated its share, each gets every row in subset order."""
    import torch.multiprocessing
    from gather_probe import SHARDS, gather_on_rank

    torch.multiprocessing.spawn(gather_on_rank, args=(2, str(tmp_path)), nprocs=2)
    for rank in range(2):
        merged = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert [r["id"] for r in merged] == ["a", "b", "c", "d", "e"]
        assert merged[1] == SHARDS[1][0]  # the rows themselves, not copies of one rank's


def test_corpus_scores_count_truncated_diaries():
    rows = [
        {"diary": "오늘 영화를 봤다", "summary": "오늘 영화를 봤다", "truncated": False},
        {"diary": "오늘 영화를 봤", "summary": "친구를 만났다", "truncated": True},
    ]
    scores = evaluation.corpus_scores(rows, "char")
    assert scores["truncated_frac"] == 0.5
    assert 0.0 < scores["rouge1"] < 1.0


def test_samples_table_escapes_and_shortens():
    long_dialogue = "Human: " + "가" * 400 + "\nAI: 끝|"
    row = {"id": "x", "dialogue": long_dialogue, "summary": "참고", "diary": "일기를 썼다.", "truncated": True}
    (cells,) = _table_rows(evaluation.samples_table([row] * 6, limit=1))
    assert cells[0] == "x"
    assert "<br>" in cells[1] and "\n" not in cells[1]
    assert cells[1].endswith("끝\\|")
    assert " … " in cells[1] and len(cells[1]) < 320
    assert cells[3] == "일기를 썼다. *(cut at max_new_tokens)*"
    assert cells[4] == "truncated"


def test_write_generations_replaces_only_when_complete(tmp_path):
    path = tmp_path / "out" / "test_generations.jsonl"
    row = {"id": "a", "summary": "오늘 영화를 봤다", "diary": "오늘 영화를 봤다", "truncated": False}
    evaluation.write_generations(path, [row], "char")
    (record,) = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert set(record) == ROW_KEYS and record["rouge1"] == pytest.approx(1.0)
    assert record["faithfulness_failures"] is None  # no chat in the row: nothing to check it against

    with pytest.raises(KeyError):
        evaluation.write_generations(path, [row, {"id": "b"}], "char")
    assert [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()] == ["a"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]

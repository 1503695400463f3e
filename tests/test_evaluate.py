"""``evaluate`` and its scorer on a hand-made benchmark (tests/data/benchmark: three chats and a two-day
KakaoTalk export): each metric can fail, the systems appear as columns, a rerun adds a column, bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chat_server import ChatServer

from diary_lightning.data.records import DataError
from diary_lightning.errors import ConfigError
from diary_lightning.evaluation.benchmark import load_benchmark
from diary_lightning.cli.evaluate import evaluate
from diary_lightning.evaluation.judge import parse_choice, parse_rubric
from diary_lightning.evaluation.scoring import Diary, bootstrap, score_diaries, summarize

MINI = Path(__file__).resolve().parent / "data" / "benchmark"


@pytest.fixture(scope="module")
def items() -> dict[str, Any]:
    return {item.id: item for item in load_benchmark(root=MINI)}


def score(item: Any, text: str, truncated: bool = False) -> dict[str, Any]:
    return score_diaries([item], [Diary(text, truncated)], "s")[0]


def test_the_mini_benchmark_reads_chats_and_export_days_with_predicts_ids(items):
    assert set(items) == {"mini-bot-1", "mini-1on1-1", "mini-group-1", "mini-01_2024-05-04", "mini-01_2024-05-05"}
    day = items["mini-01_2024-05-04"]
    assert day.setting == "kakao_export" and day.writer == "지호" and day.export == "mini-export-1"
    # Read as predict reads the file: the 사진 placeholder dropped, a speaker's messages in a row joined.
    assert ("지호", "오 대박 ㅋㅋ") in day.dialogue and all(text != "사진" for _, text in day.dialogue)
    assert ("엄마", "그래 고생했다 다음 주에 이모가 수술하신대") in items["mini-01_2024-05-05"].dialogue
    assert [item.id for item in load_benchmark("test", root=MINI)] == ["mini-group-1"]


def test_the_reference_scores_the_ceiling(items):
    for item in items.values():
        row = score(item, item.reference)
        assert row["style_failures"] == [] and row["facts_missed"] == [] and row["traps_fallen"] == []
        assert row["facts_wrong_person"] == [] and row["rougeL"] == pytest.approx(1.0)


def test_fact_recall_needs_every_key_in_one_sentence(items):
    item = items["mini-1on1-1"]
    row = score(item, "콘서트는 못 갔다. 표값이 15만 원이었다. 알바를 했다. 8시간이나 했다.")
    assert row["facts_recalled"] == 2  # 콘서트+못 and 15만; 알바 and 8시간 are in two sentences
    assert "주말에 알바를 8시간 한다" in row["facts_missed"]


def test_another_persons_fact_without_their_name_is_given_to_the_wrong_person(items):
    item = items["mini-1on1-1"]
    assert score(item, "다음 주에 캠핑을 간다.")["facts_wrong_person"] == ["지훈이 다음 주에 캠핑을 간다"]
    assert score(item, "지훈이는 다음 주에 캠핑을 간다고 했다.")["facts_wrong_person"] == []
    # The subject carried over from the sentence before, as Korean does.
    assert score(item, "지훈이는 요즘 바쁘다고 했다. 다음 주에는 캠핑을 간다고 했다.")["facts_wrong_person"] == []


def test_traps_fall_unless_their_exception_is_there(items):
    item = items["mini-bot-1"]
    fallen = score(item, "다음 달에 제주도로 이사 간다. 자기 전에 스트레칭을 했다.")["traps_fallen"]
    assert {t["kind"] for t in fallen} == {"wrong_person", "suggestion_as_done"}
    assert score(item, "언니가 다음 달에 제주도로 이사 간다고 했다. 스트레칭은 생각해 보기로 했다.")["traps_fallen"] == []


def test_style_text_similarity_and_length_can_fail(items):
    item = items["mini-group-1"]
    row = score(item, "토요일 7시에 사당역에서 만나요. 김밥은 제가 싸 갈게요.", truncated=True)
    assert "polite" in row["style_failures"] and row["truncated"] is True
    assert row["rougeL"] < 0.6 and row["chrf"] < 0.5 and row["chars"] == len("토요일7시에사당역에서만나요.김밥은제가싸갈게요.")
    assert score(item, "")["style_failures"] == ["empty"]


def test_rates_are_ratios_of_sums_with_seeded_intervals():
    parts = [(1.0, 2.0), (0.0, 1.0), (3.0, 3.0), (1.0, 4.0)]
    first, again = bootstrap(parts, seed=3), bootstrap(parts, seed=3)
    assert first == again and first["value"] == pytest.approx(5 / 10) and first["n"] == 10
    assert first["low"] <= first["value"] <= first["high"] and first["low"] < first["high"]
    assert bootstrap([(0.0, 0.0)])["value"] is None


def test_summary_breaks_down_by_setting(items):
    chosen = [items["mini-bot-1"], items["mini-1on1-1"]]
    rows = score_diaries(chosen, [Diary(chosen[0].reference), Diary("오늘은 그냥 쉬었다.")], "s")
    summary = summarize(rows, samples=200)
    assert summary["by_setting"]["bot"]["fact_recall"]["value"] == 1.0
    assert summary["by_setting"]["kakao_1on1"]["fact_recall"]["value"] == 0.0
    assert summary["overall"]["fact_recall"]["value"] == pytest.approx(3 / 7)


def write_predictions(path: Path, diaries: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"id": k, "diary": v}, ensure_ascii=False) + "\n" for k, v in diaries.items()),
                    encoding="utf-8")
    return path


def dev_predictions(items: dict[str, Any], text: str = "오늘은 그냥 쉬었다.") -> dict[str, str]:
    return {k: text for k, item in items.items() if item.split == "dev"}


def test_predictions_sit_beside_reference_and_baseline(items, tmp_path):
    preds = write_predictions(tmp_path / "preds.jsonl", dev_predictions(items))
    summary = evaluate(str(tmp_path / "out"), predictions=[f"mine={preds}"], benchmark=str(MINI), bootstrap_samples=50)
    assert list(summary["systems"]) == ["reference", "baseline", "mine"]
    mine = summary["systems"]["mine"]["overall"]
    assert mine["fact_recall"]["value"] == 0.0 and mine["style_pass"]["value"] == 1.0
    assert summary["systems"]["reference"]["overall"]["fact_recall"]["value"] == 1.0
    # The faithfulness checks' columns (evaluation/faithfulness.py).
    assert {"faithful", "faithful.wrong_person", "faithful.negation_flip"} <= set(mine)
    rows = [json.loads(line) for line in (tmp_path / "out" / "items.jsonl").read_text().splitlines()]
    assert len(rows) == 3 * 4 and {r["system"] for r in rows} == {"reference", "baseline", "mine"}
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| metric | reference | baseline | mine |" in report and "### mine" in report and "missed:" in report
    assert (tmp_path / "out" / "metrics.png").stat().st_size > 1000
    assert (tmp_path / "out" / "lengths.png").stat().st_size > 1000


def test_without_the_faithfulness_module_its_columns_are_left_out(items, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "diary_lightning.evaluation.faithfulness", None)
    rows = score_diaries([items["mini-bot-1"]], [Diary("오늘은 쉬었다.")], "s")
    assert "faithfulness_failures" not in rows[0]
    assert not any(name.startswith("faithful") for name in summarize(rows, samples=10)["overall"])


def test_a_rerun_adds_a_column_and_keeps_the_others(items, tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    first = write_predictions(tmp_path / "first.jsonl", dev_predictions(items))
    evaluate(out, predictions=str(first), benchmark=str(MINI), bootstrap_samples=50)
    before = (tmp_path / "out" / "items.jsonl").read_text()
    scored: list[str] = []
    import diary_lightning.cli.evaluate as command

    real = command.score_diaries
    monkeypatch.setattr(command, "score_diaries", lambda *a, **k: scored.append(a[2]) or real(*a, **k))
    second = write_predictions(tmp_path / "second.jsonl", {k: items[k].reference for k in dev_predictions(items)})
    summary = evaluate(out, predictions=str(second), benchmark=str(MINI), bootstrap_samples=50)
    assert scored == ["second"]  # only the new system was scored
    assert list(summary["systems"]) == ["reference", "baseline", "first", "second"]
    assert (tmp_path / "out" / "items.jsonl").read_text().startswith(before)
    with pytest.raises(ConfigError, match="split"):
        evaluate(out, split="test", predictions=str(second), benchmark=str(MINI))
    # The earlier rows keep their syllable ROUGE-L: an eojeol column beside them would not compare.
    with pytest.raises(ConfigError, match="rouge_tokenizer 'char', this run's of 'eojeol'"):
        evaluate(out, predictions=str(second), benchmark=str(MINI), rouge_tokenizer="eojeol")


def test_a_teacher_is_a_column(items, tmp_path):
    asked: list[str] = []

    def answer(prompt: str) -> str:
        asked.append(prompt)
        return "언니가 다음 달에 제주도로 이사 간다고 했다." if "제주도" in prompt else "오늘은 그냥 쉬었다."

    with ChatServer(answer=answer) as server:
        from diary_lightning.synthesis.teacher import TeacherConfig

        summary = evaluate(str(tmp_path / "out"), benchmark=str(MINI), bootstrap_samples=50,
                           teacher=TeacherConfig(backend="openai", model="fake-m", base_url=server.url))
    assert "teacher:fake-m" in summary["systems"] and len(asked) == 4
    # The prompt names the writer and holds the chat, and no reference summary.
    assert any('"민지"' in p and "제주도로 이사 간대" in p and "[요약]" not in p for p in asked)
    rows = [json.loads(line) for line in (tmp_path / "out" / "items.jsonl").read_text().splitlines()]
    bot = next(r for r in rows if r["system"] == "teacher:fake-m" and r["id"] == "mini-bot-1")
    assert bot["diary"] == "언니가 다음 달에 제주도로 이사 간다고 했다." and bot["facts_recalled"] == 1
    assert "| metric | reference | baseline | teacher:fake-m |" in (tmp_path / "out" / "report.md").read_text()


def test_a_judge_that_always_picks_the_first_diary_shows_its_position_bias(items, tmp_path):
    def answer(prompt: str) -> str:
        return '{"faithful": 4, "first_person": 5, "covers_day": 3, "natural_korean": 4}' if "JSON" in prompt else "A"

    preds = write_predictions(tmp_path / "p.jsonl", dev_predictions(items))
    with ChatServer(answer=answer) as server:
        from diary_lightning.synthesis.teacher import TeacherConfig

        summary = evaluate(str(tmp_path / "out"), predictions=str(preds), benchmark=str(MINI), bootstrap_samples=50,
                           judge=TeacherConfig(backend="openai", model="judge-m", base_url=server.url))
    mine = summary["systems"]["p"]["overall"]
    assert mine["judge.rubric"]["value"] == pytest.approx(4.0)
    assert mine["judge.first_choice"]["value"] == 1.0  # always A
    assert mine["judge.consistent"]["value"] == 0.0 and mine["judge.win"]["value"] == 0.0
    assert "judge.win" not in summary["systems"]["reference"]["overall"]  # no pair against itself


def test_a_rerun_with_the_same_judge_asks_only_about_the_new_rows(items, tmp_path):
    asked: list[str] = []

    def answer(prompt: str) -> str:
        asked.append(prompt)
        return '{"faithful": 3, "first_person": 3, "covers_day": 3, "natural_korean": 3}' if "JSON" in prompt else "B"

    first = write_predictions(tmp_path / "first.jsonl", dev_predictions(items))
    second = write_predictions(tmp_path / "second.jsonl", dev_predictions(items, "오늘은 집에서 쉬었다."))
    dev = len(dev_predictions(items))
    with ChatServer(answer=answer) as server:
        from diary_lightning.synthesis.teacher import TeacherConfig

        judge = TeacherConfig(backend="openai", model="judge-m", base_url=server.url)
        evaluate(str(tmp_path / "out"), predictions=str(first), benchmark=str(MINI), bootstrap_samples=20,
                 judge=judge)
        # reference: the rubric; baseline and first: the rubric and the pair in both orders.
        assert len(asked) == dev * (1 + 3 + 3)
        asked.clear()
        summary = evaluate(str(tmp_path / "out"), predictions=str(second), benchmark=str(MINI),
                           bootstrap_samples=20, judge=judge)
    assert len(asked) == dev * 3 and all("오늘은 집에서 쉬었다." in p for p in asked)
    for name in ("first", "second"):
        judged = summary["systems"][name]["overall"]  # the first run's verdicts kept, the second's added
        assert judged["judge.first_choice"]["value"] == 0.0 and judged["judge.rubric"]["value"] == 3.0


def test_judge_answers_are_read_strictly():
    assert parse_rubric('점수: {"faithful": 5, "first_person": 4, "covers_day": 3, "natural_korean": 2}') == {
        "faithful": 5, "first_person": 4, "covers_day": 3, "natural_korean": 2}
    assert parse_rubric('{"faithful": 9, "first_person": 4, "covers_day": 3, "natural_korean": 2}') is None
    assert parse_rubric("좋아요") is None
    assert parse_choice("B") == "B" and parse_choice("일기 A가 낫다") == "A" and parse_choice("둘 다") is None


def test_the_prompts_in_the_docs_are_the_prompts_sent():
    from diary_lightning.cli.evaluate import WRITE_PROMPT
    from diary_lightning.evaluation.judge import JUDGE_SYSTEM, PAIRWISE_PROMPT, RUBRIC_PROMPT
    from diary_lightning.synthesis.teacher import DEFAULT_SYSTEM as WRITE_SYSTEM  # what a teacher is sent

    doc = (MINI.parents[2] / "docs" / "benchmark.md").read_text(encoding="utf-8")
    for prompt in (RUBRIC_PROMPT, PAIRWISE_PROMPT, JUDGE_SYSTEM, WRITE_PROMPT, WRITE_SYSTEM):
        assert prompt in doc


def run_main(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    from diary_lightning.cli.commands import main

    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", *args])
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("diaries, message", [
    ({"mini-bot-1": "a", "nope-1": "b"}, "1 id(s) the benchmark does not have: 'nope-1'"),
    ({"mini-bot-1": "a"}, "no diary for 3 of the 4 items of the dev split"),
])
def test_predictions_with_unknown_or_missing_ids_exit_2(items, tmp_path, capsys, diaries, message):
    preds = write_predictions(tmp_path / "p.jsonl", diaries)
    code, err = run_main(capsys, "--benchmark", str(MINI), "--output", str(tmp_path / "out"), "--predictions",
                         str(preds))
    assert code == 2 and message in err and str(preds) in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_the_output_is_never_an_input_nor_a_folder_evaluate_did_not_write(items, tmp_path):
    from diary_lightning.io.outputs import OutputOverInputError

    preds = write_predictions(tmp_path / "p.jsonl", dev_predictions(items))
    with pytest.raises(OutputOverInputError, match="--output .* is the diaries --predictions"):
        evaluate(str(preds), predictions=str(preds), benchmark=str(MINI))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(OutputOverInputError, match="already exists and was not written by evaluate"):
        evaluate(str(tmp_path / "run"), predictions=str(preds), benchmark=str(MINI))
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_the_command_prints_the_main_rates_and_the_reports_path(items, tmp_path, capsys):
    from diary_lightning.cli.commands import run

    preds = write_predictions(tmp_path / "p.jsonl", dev_predictions(items))
    run(["evaluate", "--benchmark", str(MINI), "--output", str(tmp_path / "out"), "--predictions", f"mine={preds}",
         "--bootstrap_samples", "20"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["system", "style_pass", "fact_recall"]
    assert out[1].split()[:3] == ["reference", "1.000", "1.000"] and out[3].split()[:3] == ["mine", "1.000", "0.000"]
    assert out[-1] == str(tmp_path / "out" / "report.md")


def test_a_test_split_prediction_file_may_hold_dev_ids_too(items, tmp_path):
    preds = write_predictions(tmp_path / "p.jsonl", {k: "오늘은 쉬었다." for k in items})
    summary = evaluate(str(tmp_path / "out"), split="test", predictions=str(preds), benchmark=str(MINI),
                       bootstrap_samples=20)
    assert summary["benchmark"]["items"] == 1


def test_bad_options_exit_2(tmp_path, capsys):
    code, err = run_main(capsys, "--benchmark", str(MINI), "--output", str(tmp_path / "o"), "--split", "train")
    assert code == 2 and "--split 'train'" in err
    code, err = run_main(capsys, "--output", str(tmp_path / "o"), "--teacher.backend", "rules")
    assert code == 2 and "reference summary" in err
    code, err = run_main(capsys, "--benchmark", str(MINI), "--output", str(tmp_path / "o"), "--predictions",
                         str(tmp_path / "none.jsonl"))
    assert code == 2 and "none.jsonl" in err


def test_a_broken_item_is_named_with_its_file_and_line(tmp_path):
    lines = (MINI / "chats.jsonl").read_text(encoding="utf-8").splitlines()
    broken = json.loads(lines[1])
    broken["traps"][0]["kind"] = "made_up"
    del broken["topic"]
    (tmp_path / "chats.jsonl").write_text("\n".join([lines[0], json.dumps(broken, ensure_ascii=False)]) + "\n",
                                          encoding="utf-8")
    with pytest.raises(DataError, match=r"chats.jsonl:2 \(id 'mini-1on1-1'\): missing field\(s\) topic"):
        load_benchmark(root=tmp_path)


@pytest.mark.slow
def test_evaluate_writes_with_a_checkpoint_and_the_base_model(reference_fit, tiny_model_dir, tmp_path):
    checkpoint = reference_fit.wait() / "checkpoints" / "last.ckpt"
    summary = evaluate(str(tmp_path / "out"), ckpt_path=[f"tiny={checkpoint}"], zero_shot=str(tiny_model_dir),
                       benchmark=str(MINI), max_new_tokens=8, device="cpu", bootstrap_samples=20)
    assert list(summary["systems"]) == ["reference", "baseline", "tiny", "zero-shot:model"]
    rows = [json.loads(line) for line in (tmp_path / "out" / "items.jsonl").read_text().splitlines()]
    tiny = [r for r in rows if r["system"] == "tiny"]
    assert len(tiny) == 4 and all(isinstance(r["diary"], str) for r in tiny)
    # Eight new tokens cannot hold a diary's end: every one of them is cut.
    assert summary["systems"]["tiny"]["overall"]["truncated"]["value"] > 0.5
    assert summary["systems"]["tiny"]["generation_seconds"] > 0


@pytest.mark.slow
def test_a_local_transformers_teacher_is_a_column(tiny_model_dir, tmp_path):
    from diary_lightning.synthesis.teacher import TeacherConfig

    teacher = TeacherConfig(backend="transformers", model=str(tiny_model_dir), dtype="float32", max_new_tokens=8)
    summary = evaluate(str(tmp_path / "out"), teacher=teacher, benchmark=str(MINI), bootstrap_samples=20)
    name = f"teacher:{tiny_model_dir}"
    assert list(summary["systems"]) == ["reference", "baseline", name]
    assert summary["systems"][name]["items"] == 4 and summary["systems"][name]["errors"] == 0
    rows = [json.loads(line) for line in (tmp_path / "out" / "items.jsonl").read_text().splitlines()]
    assert sum(r["system"] == name and r["diary"] != "" for r in rows) == 4
    # Eight new tokens cannot hold a diary's end: the teacher's cut reaches the truncated column.
    assert summary["systems"][name]["overall"]["truncated"]["value"] > 0.5


def test_the_counter_chrf_equals_torchmetrics(items):
    from torchmetrics.functional.text import chrf_score

    from diary_lightning.evaluation.metrics import chrf_pair

    texts = [item.reference for item in items.values()] + ["\n".join(item.writer_lines) for item in items.values()]
    pairs = [(a, b) for a in texts for b in texts[:4]]
    pairs += [("응", "응"), ("", "오늘은 쉬었다."), ("오늘은 쉬었다.", ""), ("a, b. (c)!", "a b c"), ("ㅋㅋ ㅋㅋ", "ㅋㅋㅋㅋ")]
    for pred, target in pairs:
        assert chrf_pair(pred, target) == pytest.approx(float(chrf_score([pred], [[target]])), abs=1e-6), (pred, target)


@pytest.mark.parametrize("tokenizer", ["char", "eojeol"])
def test_the_bit_parallel_rouge_l_equals_torchmetrics(items, tokenizer):
    from diary_lightning.evaluation.metrics import rouge_l_pair, score_pair

    texts = [item.reference for item in items.values()] + ["\n".join(item.writer_lines) for item in items.values()]
    pairs = [(a, b) for a in texts for b in texts[:4]] + [("응", "응"), ("", "오늘은 쉬었다."), ("...", "오늘"), ("a b a", "a a b b")]
    for pred, target in pairs:
        expected = score_pair(pred, target, tokenizer)["rougeL"]
        assert rouge_l_pair(pred, target, tokenizer) == pytest.approx(expected, abs=1e-6), (pred, target)


def test_an_exported_adapter_scored_carries_its_results_in_its_card(items, tmp_path, monkeypatch):
    import diary_lightning.cli.evaluate as command
    from diary_lightning.inference.model_card import model_card

    # The adapter's writing stands in for a model's: what is tested is where its scores go.
    monkeypatch.setattr(command, "load_pipeline", lambda kind, path, common: (kind, path))
    monkeypatch.setattr(command, "run_pipeline", lambda pipeline, chats, n: [Diary(item.reference) for item in chats])
    adapter, foreign = tmp_path / "adapter", tmp_path / "foreign"
    for folder in (adapter, foreign):
        folder.mkdir()
        (folder / "README.md").write_text(model_card({}, base_given="m/m", base_is_local=False, run={}),
                                          encoding="utf-8")
    (adapter / "diary_lightning.json").write_text("{}", encoding="utf-8")
    before = (foreign / "README.md").read_text(encoding="utf-8")
    evaluate(str(tmp_path / "out"), adapter_path=[f"mine={adapter}", f"theirs={foreign}"], benchmark=str(MINI),
             bootstrap_samples=20)
    card = (adapter / "README.md").read_text(encoding="utf-8")
    assert "## Evaluation" in card and "As `mine` in " in card and "| fact_recall ↑" in card
    recorded = json.loads((adapter / "evaluation.json").read_text())["dev"]["metrics"]
    assert next(m for m in recorded if m["name"] == "fact_recall")["value"] == 1.0  # the reference's diaries
    # A folder diary_lightning did not export keeps its card as it was.
    assert (foreign / "README.md").read_text(encoding="utf-8") == before and not (foreign / "evaluation.json").exists()


def test_an_evaluate_folder_names_the_system_a_card_takes(items, tmp_path):
    from diary_lightning.cli.evaluate import scored_system

    out = tmp_path / "out"
    first = write_predictions(tmp_path / "first.jsonl", dev_predictions(items))
    evaluate(str(out), predictions=[f"mine={first}"], benchmark=str(MINI), bootstrap_samples=20)
    split, result, name = scored_system(str(out))  # one system besides the reference and the baseline
    assert (split, name, result["system"]) == ("dev", "mine", "mine") and result["report"].endswith("report.md")
    evaluate(str(out), predictions=[f"theirs={first}"], benchmark=str(MINI), bootstrap_samples=20)
    with pytest.raises(ConfigError, match=r"2 systems were scored there \(mine, theirs\); name the one this model is"):
        scored_system(str(out))
    assert scored_system(f"theirs={out}")[2] == "theirs"
    with pytest.raises(ConfigError, match="no system 'baseline' was scored"):
        scored_system(f"baseline={out}")
    with pytest.raises(FileNotFoundError, match="no summary.json there"):
        scored_system(str(tmp_path))


def test_a_limit_scores_an_even_spread_and_says_it_is_no_benchmark_score(items, tmp_path):
    dev = [item_id for item_id, item in items.items() if item.split == "dev"]
    preds = write_predictions(tmp_path / "preds.jsonl", dev_predictions(items))
    out = tmp_path / "out"
    summary = evaluate(str(out), predictions=[f"mine={preds}"], benchmark=str(MINI), bootstrap_samples=20, limit=2)
    rows = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    scored = sorted({r["id"] for r in rows}, key=dev.index)
    # Evenly spaced over the split, not its first two items.
    assert scored == [dev[0], dev[len(dev) // 2]] and summary["benchmark"]["items"] == 2
    assert "of %d items" % len(dev) in summary["benchmark"]["limit"]
    assert "A part of the split only" in (out / "report.md").read_text()
    # The whole split cannot share a table with a part of it.
    with pytest.raises(ConfigError, match="limit"):
        evaluate(str(out), predictions=[f"mine={preds}"], benchmark=str(MINI), bootstrap_samples=20)
    with pytest.raises(ConfigError, match="--limit 0"):
        evaluate(str(tmp_path / "other"), predictions=[f"mine={preds}"], benchmark=str(MINI), limit=0)


def test_a_limited_result_is_in_the_card_as_a_look_but_not_in_its_model_index():
    from diary_lightning.inference.model_card import evaluation_section, model_index

    result = {"system": "a", "benchmark": {"items": 40, "version": "1.1", "hash": "h", "limit": "40 of 155 items"},
              "metrics": [{"name": "fact_recall", "value": 0.5, "low": 0.4, "high": 0.6}]}
    assert "A part of the split only" in evaluation_section({"dev": result})
    assert model_index("a", {"dev": result})[0]["results"] == []
    full = {**result, "benchmark": {k: v for k, v in result["benchmark"].items() if k != "limit"}}
    assert len(model_index("a", {"dev": full})[0]["results"]) == 1

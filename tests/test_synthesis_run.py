"""The resumable run: SIGKILL at any moment and resume, torn last lines, shards, the lock, retries, rejects."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import pytest
from chat_server import ChatServer
from conftest import ROOT, subprocess_env

from diary_lightning.data.records import Dialogue, Turn
from diary_lightning.io.jsonl import OutputError
from diary_lightning.io.lock import LockedError
from diary_lightning.synthesis.command import roles_for
from diary_lightning.synthesis.rules import RulesTeacher
from diary_lightning.synthesis.openai_teacher import OpenAITeacher
from diary_lightning.synthesis.runner import Synthesis, shard_of
from diary_lightning.synthesis.teacher import DEFAULT_PROMPT, DEFAULT_SYSTEM, Reply, TeacherConfig


def make_dialogues(n: int) -> list[Dialogue]:
    return [Dialogue(f"dlg-{i:04d}", (Turn("P01", f"오늘 공원에서 {i}분 동안 달렸어"), Turn("P02", "대단하다")),
                     f"나는 오늘 공원에서 {i}분 동안 달렸다.") for i in range(n)]


def synthesis(output, teacher=None, **kwargs) -> Synthesis:
    return Synthesis(teacher or RulesTeacher(), output, template=DEFAULT_PROMPT, system=DEFAULT_SYSTEM,
                     roles=roles_for, progress=False, **kwargs)


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


DRIVER = """
import sys
sys.path[:0] = [{tests!r}]
from test_synthesis_run import make_dialogues, synthesis
from diary_lightning.synthesis.openai_teacher import OpenAITeacher
from diary_lightning.synthesis.teacher import TeacherConfig
teacher = OpenAITeacher(TeacherConfig(backend="openai", model="m", base_url=sys.argv[1], concurrency=4))
print(synthesis(sys.argv[2], teacher, sync_every=0).run(make_dialogues(300)))
"""


@pytest.mark.slow  # repeated synthesize runs killed and resumed in subprocesses
def test_sigkill_at_any_moment_then_resume_loses_and_duplicates_nothing(tmp_path):
    out = tmp_path / "diaries.jsonl"
    code = DRIVER.format(tests=str(ROOT / "tests"))
    env = subprocess_env()
    kills = 0
    with ChatServer(delay=0.01) as server:
        for threshold in (40, 150, 250, None):
            proc = subprocess.Popen([sys.executable, "-c", code, server.url, str(out)], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if threshold is None:
                stdout, stderr = proc.communicate(timeout=120)
                assert proc.returncode == 0, stderr[-2000:]
                break
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                if out.exists() and out.read_bytes().count(b"\n") >= threshold:
                    break
                time.sleep(0.002)
            assert proc.poll() is None, "the run finished before it could be killed: " + proc.stderr.read()[-500:]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            ids = [json.loads(line)["id"] for line in out.read_text().splitlines() if line.endswith("}")]
            assert len(ids) == len(set(ids)), "an id was written twice"
    ids = [r["id"] for r in lines(out)]
    assert kills == 3
    assert len(ids) == len(set(ids)) == 300
    assert set(ids) == {d.id for d in make_dialogues(300)}
    # A rerun with the same teacher finds nothing left to do (another teacher is refused: one output, one teacher).
    teacher = OpenAITeacher(TeacherConfig(backend="openai", model="m", base_url="http://127.0.0.1:9/v1"))
    try:
        again = synthesis(out, teacher).run(make_dialogues(300))
    finally:
        teacher.close()
    assert (again["already_done"], again["kept"]) == (300, 0)
    with pytest.raises(OutputError, match="written by the teacher openai m, and this run asks rules"):
        synthesis(out).run(make_dialogues(300))


def test_a_torn_last_line_is_cut_and_its_dialogue_written_again(tmp_path):
    out = tmp_path / "diaries.jsonl"
    dialogues = make_dialogues(5)
    synthesis(out).run(dialogues[:2])
    with open(out, "ab") as handle:
        handle.write('{"id": "dlg-0002", "dialogue": [{"speaker": "P0'.encode())
    summary = synthesis(out).run(dialogues)
    assert (summary["already_done"], summary["kept"]) == (2, 3)
    assert [r["id"] for r in lines(out)] == [d.id for d in dialogues]


def test_a_broken_line_in_the_middle_is_an_error_naming_it(tmp_path):
    out = tmp_path / "diaries.jsonl"
    out.write_text('{"id": "a", "diary": "d", "teacher": {}}\nnot json\n{"id": "b"}\n')
    with pytest.raises(OutputError, match="line 2"):
        synthesis(out).run(make_dialogues(3))


@pytest.mark.slow
def test_shards_split_by_id_whatever_the_order_and_concatenate_to_the_whole(tmp_path):
    dialogues = make_dialogues(60)
    shuffled = random.Random(0).sample(dialogues, len(dialogues))
    ids = []
    for i in range(3):
        a, b = tmp_path / f"a{i}.jsonl", tmp_path / f"b{i}.jsonl"
        synthesis(a, shard=f"{i}/3").run(dialogues)
        synthesis(b, shard=f"{i}/3").run(shuffled)
        assert sorted(r["id"] for r in lines(a)) == sorted(r["id"] for r in lines(b))
        assert all(shard_of(r["id"], 3) == i for r in lines(a))
        ids += [r["id"] for r in lines(a)]
    assert sorted(ids) == sorted(d.id for d in dialogues)
    assert all(len([x for x in ids if shard_of(x, 3) == i]) > 5 for i in range(3))
    with pytest.raises(ValueError, match="i/n"):
        synthesis(tmp_path / "x.jsonl", shard="3")
    with pytest.raises(ValueError, match="0 <= i < n"):
        synthesis(tmp_path / "x.jsonl", shard="3/3")


@pytest.mark.slow
def test_a_second_run_on_the_same_output_is_refused(tmp_path):
    out = tmp_path / "diaries.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from diary_lightning.io.lock import JobLock; "
                               "JobLock(sys.argv[1], 'file').acquire(); print('held', flush=True); time.sleep(60)",
                               str(out)], stdout=subprocess.PIPE, text=True, env=subprocess_env())
    assert holder.stdout.readline().strip() == "held"
    try:
        with pytest.raises(LockedError, match=r"in use by another job: PID \d+ .*own --output"):
            synthesis(out).run(make_dialogues(2))
    finally:
        holder.kill()
        holder.wait()
    assert synthesis(out).run(make_dialogues(2))["kept"] == 2  # the lock died with its holder


class FirstTryPolite:
    """Answers in the polite style on a first try and plainly on a retry."""

    def __init__(self) -> None:
        self.asked = []

    def describe(self):
        return {"backend": "scripted"}

    def generate(self, requests, on_reply):
        for request in requests:
            self.asked.append((request.id, request.attempt))
            text = request.summary if request.attempt else request.summary.replace("달렸다", "달렸습니다")
            on_reply(request, Reply(text))

    def close(self):
        pass


def test_rejected_diaries_are_asked_again_with_retries_and_otherwise_recorded_with_their_checks(tmp_path):
    dialogues = make_dialogues(4)
    out = tmp_path / "diaries.jsonl"
    teacher = FirstTryPolite()
    summary = synthesis(out, teacher, retries=1).run(dialogues)
    assert (summary["kept"], summary["retried"], summary["rejected"]) == (4, 4, 0)
    assert sorted(teacher.asked) == sorted([(d.id, 0) for d in dialogues] + [(d.id, 1) for d in dialogues])
    assert all(r["attempt"] == 1 and r["diary"].endswith("달렸다.") for r in lines(out))

    out = tmp_path / "no-retries.jsonl"
    summary = synthesis(out, FirstTryPolite()).run(dialogues)
    assert (summary["kept"], summary["rejected"]) == (0, 4)
    assert summary["rejected_by_check"] == {"polite": 4}
    rejected = lines(tmp_path / "no-retries.rejected.jsonl")
    assert [r["failed"] for r in rejected] == [["polite"]] * 4
    # Done either way: a rerun asks for nothing.
    assert synthesis(out, FirstTryPolite()).run(dialogues)["already_done"] == 4


def test_the_output_is_read_back_with_the_diary_as_the_target(tmp_path):
    from diary_lightning.data.dialogue import read_dialogues

    out = tmp_path / "diaries.jsonl"
    dialogues = make_dialogues(3)
    synthesis(out).run(dialogues)
    read = read_dialogues(out).dialogues
    assert [d.summary for d in read] == [r["diary"] for r in lines(out)]
    assert [d.turns for d in read] == [d.turns for d in dialogues]
    # Only a record that says which teacher wrote its diary switches the target: plain JSONL keeps "summary".
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"id": "a", "dialogue": [{"speaker": "A", "text": "안녕"}], "summary": "요약",
                                 "diary": "일기"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_dialogues(plain).dialogues[0].summary == "요약"


def test_the_prompt_marks_the_writer_the_data_settings_chose():
    from dataclasses import replace

    dialogue = replace(make_dialogues(1)[0], writer="P02")
    request = synthesis("unused.jsonl", FirstTryPolite()).request(dialogue)
    assert request.writer == "P02" and request.speaker_labels == {"P02": "글쓴이", "P01": "상대1"}
    prompt = request.messages[-1]["content"]
    assert "글쓴이: 대단하다" in prompt and "상대1: 오늘 공원에서 0분 동안 달렸어" in prompt
    assert request.writer_names == ("P02",)


def test_a_summary_the_rules_teacher_cannot_make_the_writers_diary_is_rejected_with_its_reason(tmp_path):
    dialogues = make_dialogues(2)
    dialogues[1] = Dialogue("dlg-0001", dialogues[1].turns, "공원에서 달렸다.")  # no one in it: stays the same
    out = tmp_path / "diaries.jsonl"
    summary = synthesis(out).run(dialogues)
    assert (summary["kept"], summary["rejected"], summary["rejected_by_check"]) == (1, 1, {"rules_unchanged": 1})
    (rejected,) = lines(tmp_path / "diaries.rejected.jsonl")
    assert rejected["id"] == "dlg-0001" and rejected["failed"] == ["rules_unchanged"]


@pytest.mark.slow
def test_rules_batches_in_worker_processes_write_what_one_process_writes(tmp_path, sample_dialogues):
    from diary_lightning.data.dialogue import read_dialogues

    # Summaries the rules teacher rewrites, refuses and leaves alone, in batches of 8: several batches per
    # process, and the last one short.
    dialogues = [d for d in read_dialogues(str(sample_dialogues)).dialogues if d.summary]
    dialogues += [Dialogue(f"aihub-{i}", (Turn("P01", "내일 뭐 해?"), Turn("P02", "병원 가")), summary)
                  for i, summary in enumerate(["P02는 내일 병원에 간다고 한다.", "P01은 주말에 등산을 가자고 한다.",
                                               "두 사람은 대화를 나눈다.", "점심 메뉴에 대해 이야기하고 있다."] * 3)]
    outputs = {}
    for processes in (1, 2):
        teacher = RulesTeacher(processes=processes)
        teacher.batch_size = 8
        output = tmp_path / f"{processes}.jsonl"
        synthesis(output, teacher).run(dialogues)
        outputs[processes] = (output.read_text(encoding="utf-8"),
                              output.with_name(f"{processes}.rejected.jsonl").read_text(encoding="utf-8"))
    assert outputs[2] == outputs[1]
    assert outputs[1][0].count("\n") > 8 and outputs[1][1].count("\n") > 1


# -- issue 22: a re-run continues the same input, or is refused naming the first line that is not ---------------

def test_a_rerun_on_other_data_is_refused_naming_the_first_foreign_line(tmp_path):
    out = tmp_path / "diaries.jsonl"
    synthesis(out).run(make_dialogues(4))
    before = out.read_bytes()
    other = [Dialogue(f"new-{i}", (Turn("P01", "다른 이야기"), Turn("P02", "응")), "다른 이야기를 했다.") for i in range(4)]
    with pytest.raises(OutputError, match=r"diaries.jsonl: line 1 \(id 'dlg-0000'\) is for a dialogue that is not in "
                                          r"the input"):
        synthesis(out).run(other)
    edited = make_dialogues(4)
    edited[2] = Dialogue("dlg-0002", (Turn("P01", "고친 문장"), Turn("P02", "대단하다")), edited[2].summary)
    with pytest.raises(OutputError, match=r"line 3 \(id 'dlg-0002'\) was written for another text"):
        synthesis(out).run(edited)
    assert out.read_bytes() == before
    assert synthesis(out).run(make_dialogues(6))["already_done"] == 4  # more of the same input: continued


def test_rejected_lines_are_checked_too(tmp_path):
    out = tmp_path / "diaries.jsonl"
    (tmp_path / "diaries.rejected.jsonl").write_text(json.dumps(
        {"id": "dlg-0001", "failed": ["x"], "diary": "d", "summary": "s", "attempts": 1, "teacher": {},
         "input": "0000000000000000"}) + "\n")
    with pytest.raises(OutputError, match=r"rejected.jsonl: line 1 \(id 'dlg-0001'\) was written for another text"):
        synthesis(out).run(make_dialogues(2))


def test_the_prompt_is_recorded_once_in_a_manifest_and_each_line_carries_its_hash(tmp_path):
    from diary_lightning.synthesis.runner import manifest_path, prompt_of

    out = tmp_path / "diaries.jsonl"
    synthesis(out, FirstTryPolite(), retries=1).run(make_dialogues(3))
    manifest = json.loads(manifest_path(out).read_text(encoding="utf-8"))
    (key, entry), = manifest["prompts"].items()
    assert entry["template"] == DEFAULT_PROMPT and entry["system"] == DEFAULT_SYSTEM
    assert entry["teacher"] == {"backend": "scripted"}
    records = lines(out)
    assert [r["prompt"] for r in records] == [key] * 3
    assert all(DEFAULT_PROMPT[:40] not in json.dumps(r, ensure_ascii=False) for r in records)  # not on every line
    assert prompt_of(records[0], out) == {"system": DEFAULT_SYSTEM, "template": DEFAULT_PROMPT}
    # A resumed run with another prompt is refused (issue 32: one output, one making of diaries), the manifest and
    # the lines as they were.
    before = out.read_bytes()
    with pytest.raises(OutputError, match="another prompt"):
        Synthesis(FirstTryPolite(), out, template="{dialogue}\n{summary}", system="", roles=roles_for,
                  progress=False, retries=1).run(make_dialogues(5))
    assert list(json.loads(manifest_path(out).read_text(encoding="utf-8"))["prompts"]) == [key]
    assert out.read_bytes() == before


def test_an_older_output_with_the_prompt_on_every_line_still_reads(tmp_path):
    from diary_lightning.data.dialogue import read_dialogues
    from diary_lightning.synthesis.runner import prompt_of

    out = tmp_path / "old.jsonl"
    old = {"id": "dlg-0000", "dialogue": [{"speaker": "P01", "text": "오늘 공원에서 0분 동안 달렸어"},
                                           {"speaker": "P02", "text": "대단하다"}], "writer": "P01",
           "summary": "나는 오늘 공원에서 0분 동안 달렸다.", "diary": "공원에서 달렸다.", "teacher": {"backend": "scripted"},
           "prompt": {"system": DEFAULT_SYSTEM, "template": DEFAULT_PROMPT}, "attempt": 0}
    out.write_text(json.dumps(old, ensure_ascii=False) + "\n", encoding="utf-8")
    assert prompt_of(old, out) == {"system": DEFAULT_SYSTEM, "template": DEFAULT_PROMPT}
    assert read_dialogues(out).dialogues[0].summary == "공원에서 달렸다."
    # Resumed by this version: the old line counts as done, the new ones carry a hash.
    summary = synthesis(out, FirstTryPolite(), retries=1).run(make_dialogues(2))
    assert summary["already_done"] == 1 and isinstance(lines(out)[-1]["prompt"], str)


class CountsCharacters(FirstTryPolite):
    """A teacher with a context: one token per character, so the cut can be checked by hand."""

    def __init__(self, budget):
        super().__init__()
        self.prompt_budget = type("Budget", (), {"budget": budget,
                                                 "count": staticmethod(lambda ms: sum(len(m["content"]) for m in ms))})()


def test_a_prompt_over_the_teachers_context_loses_its_oldest_turns_and_the_summary_says_so(tmp_path):
    turns = tuple(Turn("P01" if i % 2 == 0 else "P02", f"{i}번째 이야기 " + "가" * 50) for i in range(30))
    # What the diary says is in the chat (the faithfulness check would reject it otherwise).
    long = Dialogue("long", turns[:-2] + (Turn("P01", "오늘 공원에서 달렸어 " + "가" * 44), turns[-1]), "나는 오늘 공원에서 달렸다.")
    short = make_dialogues(1)[0]
    full = synthesis("unused.jsonl", FirstTryPolite()).request(long).messages
    size = sum(len(m["content"]) for m in full)
    teacher = CountsCharacters(size - 500)
    request = synthesis("unused.jsonl", teacher).request(long)
    assert sum(len(m["content"]) for m in request.messages) <= size - 500
    # The fewest oldest turns: a line of the first ten is 64 characters, so seven free 448 and eight 512.
    assert request.turns_cut == 8
    prompt = request.messages[-1]["content"]
    assert ": 7번째 이야기" not in prompt and ": 8번째 이야기" in prompt and ": 29번째 이야기" in prompt
    assert synthesis("unused.jsonl", teacher).request(short).turns_cut == 0

    out = tmp_path / "cut.jsonl"
    summary = synthesis(out, teacher, retries=1).run([long, short])
    assert (summary["prompts_cut"], summary["turns_cut"]) == (1, 8)
    by_id = {r["id"]: r for r in lines(out)}
    assert by_id["long"]["turns_cut"] == 8 and "turns_cut" not in by_id[short.id]
    assert len(by_id["long"]["dialogue"]) == 30  # the record keeps the whole chat
    assert "- prompts cut to the teacher's context: 1 of the kept diaries', 8 oldest turns left out in all" \
        in (tmp_path / "cut.report.md").read_text(encoding="utf-8")


class SameDiary(FirstTryPolite):
    """Writes one diary for every chat that mentions a park, whatever else it says."""

    def generate(self, requests, on_reply):
        for request in requests:
            on_reply(request, Reply("공원에서 달렸다." if "공원" in request.summary else request.summary))


def test_the_same_chat_twice_and_the_same_diary_for_two_chats_are_kept_once(tmp_path):
    from dataclasses import replace

    dialogues = make_dialogues(3)
    # The first chat again from another file: another id, other speaker codes, other spacing.
    again = Dialogue("other-file-0", tuple(Turn({"P01": "A", "P02": "B"}[t.speaker], t.text.replace(" ", "  ") + "!")
                                           for t in dialogues[0].turns), dialogues[0].summary)
    out = tmp_path / "diaries.jsonl"
    summary = synthesis(out, SameDiary()).run([*dialogues, again])
    assert summary["kept"] == 1 and summary["rejected_by_check"] == {"duplicate_diary": 2, "duplicate_dialogue": 1}
    rejected = {r["id"]: r for r in lines(tmp_path / "diaries.rejected.jsonl")}
    assert rejected["other-file-0"]["same_as"] == "dlg-0000"
    assert rejected["dlg-0001"]["failed"] == ["duplicate_diary"] and rejected["dlg-0001"]["same_as"] == "dlg-0000"
    # Resumed with a new chat: its diary is still compared with the ones already kept.
    new = replace(dialogues[0], id="dlg-new", turns=(Turn("P01", "오늘은 공원에서 달렸어, 새 이야기"),))
    assert synthesis(out, SameDiary()).run([*dialogues, again, new])["rejected_by_check"] == {"duplicate_diary": 1}
    # Different chats with different diaries are all kept.
    assert synthesis(tmp_path / "fine.jsonl").run(make_dialogues(3))["kept"] == 3


def test_a_report_beside_the_output_counts_reasons_and_lengths_and_shows_random_triples(tmp_path):
    import re

    dialogues = make_dialogues(30)
    out = tmp_path / "diaries.jsonl"
    summary = synthesis(out, FirstTryPolite(), retries=0).run(dialogues[:6])  # all rejected: polite
    summary = synthesis(out, FirstTryPolite(), retries=1).run(dialogues)  # resumed: the rest kept
    report = tmp_path / "diaries.report.md"
    assert summary["report"] == str(report)
    text = report.read_text(encoding="utf-8")
    # The whole output, both runs: 24 kept, 6 rejected as polite.
    assert "30 dialogues judged: **24 kept (80.0%)**, 6 rejected (20.0%)" in text
    assert "| `polite` | 6 | 20.0% |" in text and "| `meta` | 0 | 0.0% |" in text
    lengths = {name: int(n) for name, n in re.findall(r"^\| (dialogue|summary|diary) \| (\d+) \|", text, re.M)}
    assert lengths == {"dialogue": 30, "summary": 30, "diary": 24}
    triples = re.findall(r"^\| `dlg-\d+`<br>", text, re.M)
    assert len(triples) == 20
    assert "**P01**: 오늘 공원에서" in text  # the writer marked in the dialogue
    for chart in ("diaries.report.lengths.png", "diaries.report.rejected.png"):
        assert f"![{chart}]({chart})" in text and (tmp_path / chart).read_bytes()[:4] == b"\x89PNG"

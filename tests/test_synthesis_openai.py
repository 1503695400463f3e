"""The openai teacher against a real HTTP server on 127.0.0.1 speaking the chat-completions API."""

from __future__ import annotations

import json

import pytest
from chat_server import ChatServer

from diary_lightning.data.records import Dialogue, Turn
from diary_lightning.synthesis.command import roles_for
from diary_lightning.synthesis.openai_teacher import OpenAITeacher
from diary_lightning.synthesis.runner import Synthesis
from diary_lightning.synthesis.teacher import DEFAULT_PROMPT, DEFAULT_SYSTEM, TeacherConfig, TeacherError

# Each test starts an HTTP server (tests/chat_server.py) and waits on its retries: the slow lane.
pytestmark = pytest.mark.slow

KEY = "sk-test-not-a-real-key-8d1f"


def dialogue(i: int, marker: str = "") -> Dialogue:
    return Dialogue(f"d{i:03d}", (Turn("P01", f"{marker} 오늘 점심에 김치찌개를 {i}그릇 먹었어"),
                                  Turn("P02", "배부르겠다 맛있었어?"), Turn("P01", "응 정말 맛있었어")),
                    f"나는 오늘 점심에 김치찌개를 {i}그릇 먹었는데 정말 맛있었다.")


def teacher(server: ChatServer, **overrides) -> OpenAITeacher:
    settings = dict(backend="openai", model="teacher-m", base_url=server.url, api_key_env="DIARY_TEST_KEY",
                    concurrency=4, timeout=0.5, max_attempts=3)
    return OpenAITeacher(TeacherConfig(**{**settings, **overrides}))


def run(server, dialogues, output, **overrides):
    t = teacher(server, **overrides)
    try:
        return Synthesis(t, output, template=DEFAULT_PROMPT, system=DEFAULT_SYSTEM, roles=roles_for,
                         progress=False).run(dialogues)
    finally:
        t.close()


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("DIARY_TEST_KEY", KEY)


def test_answers_and_retries_429_500_and_timeouts_with_bounded_concurrency(tmp_path):
    dialogues = [dialogue(i) for i in range(24)] + [dialogue(24, "MODE429"), dialogue(25, "MODE500"),
                                                   dialogue(26, "MODESLOW")]
    out = tmp_path / "diaries.jsonl"
    with ChatServer(delay=0.05, slow=1.5) as server:
        summary = run(server, dialogues, out)
    assert summary["kept"] == 27 and summary["failed"] == 0 and summary["rejected"] == 0, summary
    assert server.statuses[429] == 1 and server.statuses[500] == 1
    assert server.calls[max(server.calls, key=lambda p: "MODESLOW" in p)] == 2  # timed out once, then answered
    assert 2 <= server.max_inflight <= 4, server.max_inflight
    assert summary["tokens_in"] > 0 and summary["tokens_out"] > 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in records) == sorted(d.id for d in dialogues)
    by_id = {r["id"]: r for r in records}
    assert by_id["d003"]["diary"] == dialogues[3].summary
    assert by_id["d003"]["teacher"] == {"backend": "openai", "model": "teacher-m", "base_url": server.url,
                                        "temperature": 0.0, "max_new_tokens": 384}
    from diary_lightning.synthesis.runner import prompt_of

    assert prompt_of(by_id["d003"], out)["template"] == DEFAULT_PROMPT
    assert server.authorization == {f"Bearer {KEY}"}
    assert KEY not in out.read_text()


def test_a_request_that_keeps_timing_out_stays_missing_and_the_next_run_completes_it(tmp_path):
    out = tmp_path / "diaries.jsonl"
    dialogues = [dialogue(0), dialogue(1, "MODEHANG"), dialogue(2)]
    with ChatServer(slow=1.0) as server:
        first = run(server, dialogues, out, max_attempts=2, timeout=0.3)
        assert (first["kept"], first["failed"]) == (2, 1)
        assert server.calls[max(server.calls, key=lambda p: "MODEHANG" in p)] == 2
        server.slow = 0.0
        second = run(server, dialogues, out, max_attempts=2, timeout=0.3)
    assert (second["already_done"], second["kept"], second["failed"]) == (2, 1, 0)
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == ["d000", "d001", "d002"]
    assert not (tmp_path / "diaries.rejected.jsonl").read_text()


@pytest.mark.parametrize("marker, words", [("MODE401", ["401", "$DIARY_TEST_KEY"]), ("MODE404", ["404", "teacher-m"])])
def test_401_and_404_stop_the_run_with_a_clear_error(tmp_path, marker, words):
    out = tmp_path / "diaries.jsonl"
    dialogues = [dialogue(i, marker) for i in range(10)]
    with ChatServer() as server, pytest.raises(TeacherError) as caught:
        run(server, dialogues, out)
    assert all(w in str(caught.value) for w in words), caught.value
    assert KEY not in str(caught.value)
    assert sum(server.calls.values()) <= 4  # no retries: only the requests already in flight were sent
    assert out.read_text() == ""


def test_missing_key_for_a_remote_endpoint_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("DIARY_TEST_KEY")
    with pytest.raises(TeacherError, match="DIARY_TEST_KEY"):
        OpenAITeacher(TeacherConfig(backend="openai", model="m", api_key_env="DIARY_TEST_KEY"))


def test_credentials_in_the_base_url_are_not_saved_with_the_records():
    teacher = OpenAITeacher(TeacherConfig(backend="openai", model="m", base_url="http://user:pw@127.0.0.1:9/v1"))
    assert teacher.describe()["base_url"] == "http://127.0.0.1:9/v1"
    teacher.close()


def test_an_answer_without_choices_fails_that_dialogue_only(tmp_path):
    out = tmp_path / "diaries.jsonl"
    with ChatServer() as server:
        summary = run(server, [dialogue(0), dialogue(1, "MODENOCHOICE")], out)
    assert (summary["kept"], summary["failed"], summary["rejected"]) == (1, 1, 0)


def test_a_failure_while_writing_stops_every_worker(tmp_path):
    seen = []

    def on_reply(request, reply):
        seen.append(request.id)
        if len(seen) == 3:
            raise OSError(28, "No space left on device")

    with ChatServer(delay=0.02) as server:
        t = teacher(server)
        requests = [Synthesis(t, tmp_path / "x.jsonl", template=DEFAULT_PROMPT, system=DEFAULT_SYSTEM,
                              roles=roles_for).request(dialogue(i)) for i in range(100)]
        with pytest.raises(OSError, match="No space"):
            t.generate(requests, on_reply)
        t.close()
    assert sum(server.calls.values()) <= 3 + 4  # what was answered, and what was in flight then


# -- issue 22: a malformed 200, the effective server, secrets ---------------------------------------------

def test_a_malformed_200_is_retried_and_a_lasting_one_leaves_the_dialogue_for_the_next_run(tmp_path):
    out = tmp_path / "diaries.jsonl"
    with ChatServer() as server:
        first = run(server, [dialogue(0, "MODEBADJSON"), dialogue(1, "MODEALWAYSBAD"), dialogue(2)], out,
                    max_attempts=2)
        assert (first["kept"], first["failed"]) == (2, 1), first
        assert server.calls[max(server.calls, key=lambda p: "MODEBADJSON" in p)] == 2
        assert server.calls[max(server.calls, key=lambda p: "MODEALWAYSBAD" in p)] == 2
    assert sorted(json.loads(line)["id"] for line in out.read_text().splitlines()) == ["d000", "d002"]


def test_openai_base_url_from_the_environment_is_said_and_recorded(tmp_path, monkeypatch, caplog):
    out = tmp_path / "diaries.jsonl"
    with ChatServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        with caplog.at_level("INFO"):
            summary = run(server, [dialogue(0)], out, base_url=None)
    assert summary["kept"] == 1
    assert json.loads(out.read_text())["teacher"]["base_url"] == server.url
    assert summary["teacher"]["base_url"] == server.url
    assert any("OPENAI_BASE_URL" in r.getMessage() and server.url in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("marker", ["MODEECHO400", "MODEECHO500"])
def test_a_key_the_server_echoes_is_redacted_from_messages_and_records(tmp_path, caplog, marker):
    out = tmp_path / "diaries.jsonl"
    with ChatServer() as server, caplog.at_level("INFO"):
        summary = run(server, [dialogue(0, marker), dialogue(1)], out, max_attempts=1)
    assert (summary["kept"], summary["failed"]) == (1, 1)
    assert any("bad request with header Bearer ***" in r.getMessage() for r in caplog.records)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert KEY not in logged and KEY not in out.read_text()
    assert KEY not in (tmp_path / "diaries.rejected.jsonl").read_text()


@pytest.mark.parametrize("marker", ["MODE401", "MODE404"])
def test_credentials_in_the_base_url_are_not_in_the_error(tmp_path, marker):
    with ChatServer() as server, pytest.raises(TeacherError) as caught:
        run(server, [dialogue(0, marker)], tmp_path / "d.jsonl",
            base_url=server.url.replace("http://", "http://alice:s3cret-pw@"))
    assert "s3cret-pw" not in str(caught.value) and "alice" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


@pytest.mark.parametrize("fields, problem", [
    ({"usage": {"prompt_tokens": "many", "completion_tokens": 3}}, "usage.prompt_tokens"),
    ({"usage": {"prompt_tokens": 3, "completion_tokens": [3]}}, "usage.completion_tokens"),
    ({"usage": {"prompt_tokens": -1}}, "usage.prompt_tokens"),
    ({"usage": {"prompt_tokens": True}}, "usage.prompt_tokens"),
    ({"usage": "none"}, "usage is not an object"),
    ({"finish_reason": 7}, "finish_reason"),
    ({"content": {"text": "일기"}}, "content is not text"),
])
def test_every_field_of_an_answer_is_checked(fields, problem):
    from diary_lightning.synthesis.openai_teacher import _reply

    choice = {"message": {"role": "assistant", "content": fields.get("content", "영화를 봤다.")},
              "finish_reason": fields.get("finish_reason", "stop")}
    body = {"choices": [choice], "usage": fields.get("usage", {"prompt_tokens": 5, "completion_tokens": 3})}
    reply = _reply(json.dumps(body).encode())
    assert reply.text is None and problem in reply.error
    good = _reply(json.dumps({"choices": [{"message": {"content": "영화를 봤다."}, "finish_reason": "length"}],
                              "usage": {"prompt_tokens": 5, "completion_tokens": 3}}).encode())
    assert (good.text, good.tokens_in, good.tokens_out, good.truncated, good.error) == ("영화를 봤다.", 5, 3, True, None)

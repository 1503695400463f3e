"""The local teachers: transformers on the tiny model (batched, left-padded), vllm's clear error without vllm."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

from diary_lightning.data.records import Dialogue, Turn
from diary_lightning.synthesis.command import make_teacher, roles_for
from diary_lightning.synthesis.runner import Synthesis
from diary_lightning.synthesis.teacher import DEFAULT_PROMPT, DEFAULT_SYSTEM, TeacherConfig, TeacherError


def _dialogues() -> list[Dialogue]:
    texts = ["오늘 회사에서 발표했어", "비가 와서 우산을 샀어 진짜 비싸더라", "저녁은 친구랑 떡볶이 먹었어"]
    return [Dialogue(f"t{i}", (Turn("P01", text), Turn("P02", "그랬구나")), f"{text}고 한다.")
            for i, text in enumerate(texts)]


@pytest.mark.slow
def test_transformers_teacher_batches_left_padded_like_one_at_a_time(tiny_model_dir, tmp_path):
    config = TeacherConfig(backend="transformers", model=str(tiny_model_dir), dtype="float32", max_new_tokens=12,
                           batch_size=3)
    teacher = make_teacher(config)
    run = Synthesis(teacher, tmp_path / "d.jsonl", template=DEFAULT_PROMPT, system=DEFAULT_SYSTEM, roles=roles_for,
                    progress=False)
    requests = [run.request(d) for d in _dialogues()]
    batched, single = {}, {}
    teacher.generate(requests, lambda r, reply: batched.__setitem__(r.id, reply))
    teacher.config.batch_size = 1
    teacher.generate(requests, lambda r, reply: single.__setitem__(r.id, reply))
    assert {k: v.text for k, v in batched.items()} == {k: v.text for k, v in single.items()}
    lengths = {r.id: len(teacher.tokenizer(teacher_prompt(teacher, r))["input_ids"]) for r in requests}
    assert len(set(lengths.values())) > 1  # the batch really was padded
    for request in requests:
        reply = batched[request.id]
        assert reply.tokens_in == lengths[request.id]  # padding is not counted as prompt
        assert 0 < reply.tokens_out <= 12 and reply.truncated == (reply.tokens_out == 12)


def test_transformers_teacher_past_its_deadline_fails_the_batch_for_the_next_run(tiny_model_dir, tmp_path):
    teacher = make_teacher(TeacherConfig(backend="transformers", model=str(tiny_model_dir), dtype="float32",
                                         max_new_tokens=12, batch_size=3, deadline=1e-6))
    out = tmp_path / "d.jsonl"
    summary = Synthesis(teacher, out, template=DEFAULT_PROMPT, system=DEFAULT_SYSTEM, roles=roles_for,
                        progress=False).run(_dialogues())
    # Stopped by the deadline, not judged: nothing kept or rejected, every dialogue asked again next run.
    assert summary["failed"] == summary["timed_out"] == 3 and summary["kept"] == summary["rejected"] == 0
    assert not out.with_name("d.rejected.jsonl").read_text()


def teacher_prompt(teacher, request):
    from diary_lightning.synthesis.local import teacher_prompt_text

    return teacher_prompt_text(teacher.tokenizer, request.messages)


@pytest.mark.slow
def test_transformers_teacher_end_to_end_keeps_or_rejects_every_dialogue(tiny_model_dir, tmp_path):
    teacher = make_teacher(TeacherConfig(backend="transformers", model=str(tiny_model_dir), dtype="float32",
                                         max_new_tokens=8, batch_size=2))
    out = tmp_path / "d.jsonl"
    summary = Synthesis(teacher, out, template=DEFAULT_PROMPT, system=DEFAULT_SYSTEM, roles=roles_for,
                        retries=1, progress=False).run(_dialogues())
    # A random tiny model writes noise: the checks catch it, the retry asks once more, then it is rejected.
    assert summary["kept"] + summary["rejected"] == 3 and summary["failed"] == 0
    assert summary["tokens_in"] > 0 and summary["tokens_out"] > 0
    rejected = [json.loads(line) for line in (tmp_path / "d.rejected.jsonl").read_text().splitlines()]
    assert len(rejected) == summary["rejected"] and summary["retried"] >= summary["rejected"]
    assert all(r["failed"] and r["attempts"] == 2 for r in rejected)


@pytest.mark.slow  # fresh interpreters
def test_vllm_missing_is_a_clear_error_and_never_imported_otherwise():
    if "vllm" in sys.modules or _installed("vllm"):
        pytest.skip("vllm is installed here; this checks the message where it is not")
    with pytest.raises(TeacherError, match=r"pip install 'diary-lightning\[vllm\]'"):
        make_teacher(TeacherConfig(backend="vllm", model="some/model"))
    code = ("import sys; from diary_lightning.synthesis.command import synthesize; "
            "import diary_lightning.cli.commands; from diary_lightning.synthesis.command import make_teacher; from diary_lightning.synthesis.teacher import TeacherConfig; "
            "make_teacher(TeacherConfig()); print(sorted(m for m in ('vllm', 'openai') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.mark.parametrize("backend", ["openai", "vllm", "transformers"])
def test_model_backends_need_a_model(backend):
    with pytest.raises(ValueError, match="--teacher.model"):
        make_teacher(TeacherConfig(backend=backend))


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="'gpt'"):
        make_teacher(TeacherConfig(backend="gpt"))


@pytest.mark.slow
def test_transformers_teacher_loads_4bit_when_asked(tiny_model_dir, tmp_path):
    import bitsandbytes as bnb

    teacher = make_teacher(TeacherConfig(backend="transformers", model=str(tiny_model_dir), dtype="float32",
                                         load_in_4bit=True, max_new_tokens=4))
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in teacher.model.modules())
    run = Synthesis(teacher, tmp_path / "d.jsonl", template=DEFAULT_PROMPT, system=DEFAULT_SYSTEM, roles=roles_for,
                    progress=False)
    replies = []
    teacher.generate([run.request(d) for d in _dialogues()[:2]], lambda r, reply: replies.append(reply))
    assert len(replies) == 2 and all(r.error is None and r.tokens_out for r in replies)


class _FakeCompletion:
    def __init__(self, text, token_ids, finish_reason):
        self.text, self.token_ids, self.finish_reason = text, token_ids, finish_reason


class _FakeLLM:
    """vllm.LLM's surface as the teacher uses it (no GPU here): records how it was built and called."""

    built: dict = {}
    calls: list = []

    def __init__(self, **kwargs):
        _FakeLLM.built = kwargs

    def get_tokenizer(self):
        return _FakeLLM.tokenizer

    def generate(self, prompts, params, use_tqdm=True):
        _FakeLLM.calls.append((list(prompts), list(params)))
        outputs = []
        for i, prompt in enumerate(prompts):
            output = type("RequestOutput", (), {})()
            output.prompt_token_ids = list(prompt["prompt_token_ids"])
            output.outputs = [_FakeCompletion(f" 오늘 일기 {i} ", [1, 2, 3], "length" if i == 0 else "stop")]
            outputs.append(output)
        return outputs


def _fake_vllm(monkeypatch, tokenizer):
    import types

    fake = types.SimpleNamespace(LLM=_FakeLLM, SamplingParams=lambda **kw: kw)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    _FakeLLM.tokenizer, _FakeLLM.calls, _FakeLLM.built = tokenizer, [], {}


def test_vllm_runs_on_one_gpu_unless_told(monkeypatch, tokenizer):
    _fake_vllm(monkeypatch, tokenizer)
    make_teacher(TeacherConfig(backend="vllm", model="some/model"))
    assert _FakeLLM.built["tensor_parallel_size"] == 1


@pytest.mark.parametrize("size", [3])  # 0 never gets this far: TeacherConfig refuses it (the damage suite)
def test_a_tensor_parallel_size_that_cannot_split_the_heads_is_refused_before_the_engine(size, monkeypatch,
                                                                                         tokenizer, tiny_model_dir):
    import json

    heads = json.loads((tiny_model_dir / "config.json").read_text())["num_attention_heads"]
    assert heads % 3  # the tiny model's heads (4 at its default size) are no multiple of 3
    _fake_vllm(monkeypatch, tokenizer)
    with pytest.raises(TeacherError, match=f"tensor_parallel_size {size}"):
        make_teacher(TeacherConfig(backend="vllm", model=str(tiny_model_dir), tensor_parallel_size=size))
    assert _FakeLLM.built == {}  # no engine was started


def test_a_tensor_parallel_size_is_refused_without_vllm_installed(tiny_model_dir):
    if "vllm" in sys.modules or _installed("vllm"):
        pytest.skip("vllm is installed here")
    with pytest.raises(TeacherError, match="attention heads, which 3 GPUs cannot split evenly"):
        make_teacher(TeacherConfig(backend="vllm", model=str(tiny_model_dir), tensor_parallel_size=3))


def test_vllm_teacher_hands_chat_prompts_to_the_engine_and_maps_its_outputs(monkeypatch, tokenizer, tiny_model_dir):
    _fake_vllm(monkeypatch, tokenizer)
    teacher = make_teacher(TeacherConfig(backend="vllm", model=str(tiny_model_dir), tensor_parallel_size=2,
                                         temperature=0.0, retry_temperature=0.5, max_new_tokens=77))
    assert _FakeLLM.built["tensor_parallel_size"] == 2 and _FakeLLM.built["model"] == str(tiny_model_dir)
    run = Synthesis(teacher, "unused.jsonl", template=DEFAULT_PROMPT, system=DEFAULT_SYSTEM, roles=roles_for)
    requests = [run.request(d) for d in _dialogues()]
    requests[2].attempt = 1
    replies = []
    teacher.generate(requests, lambda r, reply: replies.append((r.id, reply)))
    (prompts, params), = _FakeLLM.calls
    # Token ids, not text, so that the engine cannot read a "</s>" in the data as a control token.
    text = tokenizer.decode(prompts[0]["prompt_token_ids"])
    assert "[요약]" in text and requests[0].summary in text
    assert [p["temperature"] for p in params] == [0.0, 0.0, 0.5] and all(p["max_tokens"] == 77 for p in params)
    assert [r for r, _ in replies] == ["t0", "t1", "t2"]
    first = replies[0][1]
    assert first.text == "오늘 일기 0" and first.truncated and first.tokens_out == 3 and first.tokens_in > 0
    assert not replies[1][1].truncated


def test_a_teacher_without_a_chat_template_gets_a_clear_assistant_cue(tokenizer):
    import copy

    from diary_lightning.synthesis.local import teacher_prompt_text

    plain = copy.copy(tokenizer)
    plain.chat_template = None
    text = teacher_prompt_text(plain, [{"role": "system", "content": "S"}, {"role": "user", "content": "U\n[일기]"}])
    # Not the messages run together: the model is told whose turn comes next.
    assert text == "S\nHuman: U\n[일기]\nAssistant:\n"


def test_a_teacher_with_a_chat_template_is_prompted_in_it(tokenizer):
    import copy

    from diary_lightning.synthesis.local import prompt_ids, teacher_prompt_text

    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U\n[일기]"}]
    templated = copy.copy(tokenizer)
    templated.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>"
                               "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")
    # The model's own turn markers and its generation cue, not the Human/Assistant form.
    text = teacher_prompt_text(templated, messages)
    assert text == "<system>S</system><user>U\n[일기]</user><assistant>"
    assert templated.decode(prompt_ids(templated, messages)).replace(" ", "") == text.replace(" ", "")
    # A template that refuses a system message (Gemma's) gets it folded into the user's turn.
    templated.chat_template = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}"
                               + templated.chat_template)
    assert teacher_prompt_text(templated, messages) == "<user>S\n\nU\n[일기]</user><assistant>"


def test_prompts_are_counted_in_the_teachers_tokens_and_cut_to_its_context(tokenizer):
    from diary_lightning.data.records import Turn
    from diary_lightning.synthesis.local import TokenBudget, prompt_ids
    from diary_lightning.synthesis.teacher import fit_messages

    turns = tuple(Turn("P01" if i % 2 else "P02", f"{i}번 말 " * 20) for i in range(40))
    labels = {"P01": "글쓴이", "P02": "상대1"}
    whole, cut = fit_messages(DEFAULT_PROMPT, DEFAULT_SYSTEM, turns, "요약", "글쓴이", labels)
    tokens = len(prompt_ids(tokenizer, whole))
    budget = TokenBudget(tokenizer, tokens - 100 + 384, max_new_tokens=384)
    assert budget.budget == tokens - 100 and budget.count(whole) == tokens
    fitted, cut = fit_messages(DEFAULT_PROMPT, DEFAULT_SYSTEM, turns, "요약", "글쓴이", labels, budget.count, budget.budget)
    assert cut > 0 and budget.count(fitted) <= budget.budget
    assert budget.count(fit_messages(DEFAULT_PROMPT, DEFAULT_SYSTEM, turns[cut - 1:], "요약", "글쓴이", labels)[0]) > budget.budget
    with pytest.raises(TeacherError, match="max_new_tokens"):
        TokenBudget(tokenizer, 300, max_new_tokens=384)

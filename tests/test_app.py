"""The app: a Gradio page and its /write endpoint on DiaryPipeline. The endpoint is called with gradio_client on a
server started as a user starts it, and checked against DiaryPipeline called directly."""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import ROOT, run_cli, subprocess_env

from diary_lightning.errors import ConfigError, UserError
from diary_lightning.evaluation.diary_style import style_failures
from diary_lightning.evaluation.faithfulness import faithfulness_failures
from diary_lightning.inference.app import (AppModel, DiaryPage, Watch, faithfulness, faithfulness_lines, load_pipeline,
                                           read_chat)

# Nothing may call out: Gradio's usage data and version check are off (the app sets this too).
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

CHAT = "민지: 오늘 비가 많이 와서 우산 쓰고 학교 갔어\n준호: 우산은 챙겼구나\n민지: 근데 신발이 다 젖었어\n"
TWO_DAYS = ('{"id": "day1", "dialogue": [{"speaker": "민지", "text": "오늘 발표했어"}, {"speaker": "준호", "text": "잘했어?"}]}\n'
            '{"id": "day2", "dialogue": [{"speaker": "준호", "text": "오늘은 쉬었어"}, {"speaker": "민지", "text": "부럽다"}]}\n')
KAKAO = ("민지 님과 카카오톡 대화\n저장한 날짜 : 2024년 1월 6일 오후 12:00\n\n2024년 1월 5일 금요일\n"
         "2024년 1월 5일 오후 3:12, 민지 : 오늘 발표 끝났어\n2024년 1월 5일 오후 3:13, 준호 : 수고했어\n")


@pytest.fixture(scope="module")
def adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An adapter saved as export saves one, with random lora_B so that it writes other diaries than the base."""
    import torch

    from diary_lightning.data.encoding import PromptFormat
    from diary_lightning.inference.export import save_adapter
    from diary_lightning.model.generation import GenerationSettings
    from diary_lightning.model.loading import build_model, load_tokenizer
    from diary_lightning.model.metadata import RunMetadata
    from diary_lightning.model.settings import RunSettings

    hparams = {"base_model": str(tiny_model_dir), "load_in_4bit": False, "compute_dtype": "float32",
               "double_quant": True, "attn_implementation": "sdpa", "trust_remote_code": False,
               "gradient_checkpointing": False, "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
               "target_modules": "all-linear", "max_new_tokens": 8, "num_beams": 1, "do_sample": False,
               "temperature": 1.0, "top_p": 1.0, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0}
    torch.manual_seed(0)
    model = build_model(hparams, torch.device("cpu"))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    target = tmp_path_factory.mktemp("app") / "adapter"
    settings = RunSettings(PromptFormat(), 512, GenerationSettings.from_mapping(hparams))
    return save_adapter(model, target, RunMetadata.of_run(hparams, settings),
                        load_tokenizer(str(tiny_model_dir)))


@pytest.fixture(scope="module")
def pipeline(adapter: Path) -> Any:
    from diary_lightning.inference.pipeline import DiaryPipeline

    return DiaryPipeline.from_pretrained(adapter, device="cpu")


# -- reading the chat ---------------------------------------------------------------------------------------------
def test_a_pasted_chat_is_read_as_predict_reads_a_file() -> None:
    [chat] = read_chat(CHAT)
    assert [t.speaker for t in chat.turns] == ["민지", "준호", "민지"]
    assert [d.id for d in read_chat(TWO_DAYS)] == ["day1", "day2"]  # JSONL records pasted
    [kakao] = read_chat(KAKAO)  # timestamps and the header are not speakers
    assert [(t.speaker, t.text) for t in kakao.turns] == [("민지", "오늘 발표 끝났어"), ("준호", "수고했어")]
    # A KakaoTalk PC line starts with "[" and still reads as a chat, not as a JSON list.
    assert [t.speaker for t in read_chat("[민지] [오후 3:12] 안녕\n[준호] [오후 3:13] 응\n")[0].turns] == ["민지", "준호"]


def test_an_uploaded_file_is_read_under_its_own_name(tmp_path: Path) -> None:
    upload = tmp_path / "kakao.txt"
    upload.write_text("민지: 안녕\n이건 말한 사람이 없다\n", encoding="utf-8")
    with pytest.raises(UserError) as error:
        read_chat("준호: 무시되는 글", upload)
    assert "kakao.txt: line 2: no 'speaker:' before the text" in str(error.value)
    assert "diary-app-" not in str(error.value)  # the app's temporary folder is nobody's business


def test_no_chat_is_a_user_error() -> None:
    with pytest.raises(UserError, match="no chat: paste one"):
        read_chat("  \n")


# -- what the page writes, against DiaryPipeline called directly -------------------------------------------------------
@pytest.mark.slow
def test_the_page_writes_what_the_pipeline_writes(pipeline: Any) -> None:
    page = DiaryPage(pipeline, "adapter")
    result = page.write(TWO_DAYS)
    expected = pipeline.write_many(read_chat(TWO_DAYS))
    assert result["error"] is None and result["speakers"] == ["민지", "준호"]
    assert [d["day"] for d in result["days"]] == ["day1", "day2"]
    assert [d["diary"] for d in result["days"]] == expected
    # The run's rule (Human, else the first speaker) chooses each day's writer.
    assert [(d["writer"], d["chosen_by"]) for d in result["days"]] == [("민지", "first"), ("준호", "first")]
    for day, chat in zip(result["days"], read_chat(TWO_DAYS)):
        assert day["style_failures"] == style_failures(day["diary"], writer_names=[day["writer"]],
                                                       truncated=day["truncated"])
        turns = [{"speaker": t.speaker, "text": t.text} for t in chat.turns]
        assert day["faithfulness_failures"] == faithfulness_failures(day["diary"], turns, day["writer"])
        assert "글쓴이: " in day["prompt"] and day["zero_shot"] is None


def test_the_page_marks_each_untrue_sentence_with_its_evidence() -> None:
    [chat] = read_chat("하윤: 오늘 요가 다녀왔어\n도현: 나는 다음 주에 제주도 가\n하윤: 좋겠다 ㅠㅠ\n")
    true = faithfulness("요가를 다녀왔다. 도현이가 다음 주에 제주도에 간다고 해서 부러웠다.", chat, "하윤")
    assert true == {"faithfulness_failures": [], "faithfulness": []}
    assert faithfulness_lines(true["faithfulness"]).startswith("✅")
    untrue = faithfulness("요가를 다녀왔다. 다음 주에 제주도에 간다.", chat, "하윤")
    assert untrue["faithfulness_failures"] == ["wrong_person"]
    [flagged] = untrue["faithfulness"]
    assert flagged["sentence"] == "다음 주에 제주도에 간다." and flagged["failure"] == "wrong_person"
    assert [1, "도현"] in flagged["turns"] and "도현" in flagged["reason"]
    line = faithfulness_lines(untrue["faithfulness"])
    assert "**wrong_person**" in line and "다음 주에 제주도에 간다." in line and "turn 1 (도현)" in line


def test_a_chosen_writer_and_generation_settings_are_used(pipeline: Any) -> None:
    page = DiaryPage(pipeline, "adapter")
    result = page.write(CHAT, writer="준호", max_new_tokens=3)
    [day] = result["days"]
    assert (day["writer"], day["chosen_by"]) == ("준호", "준호") and "글쓴이: 우산은 챙겼구나" in day["prompt"]
    three = dataclasses.replace(pipeline.settings.generation, max_new_tokens=3)
    [direct] = pipeline.generate(pipeline.prepare(read_chat(CHAT), "준호"), generation=three)
    assert result["generation"]["max_new_tokens"] == 3 and day["diary"] == direct.diary and day["truncated"]


@pytest.mark.slow
def test_the_zero_shot_column_is_the_base_model_alone(pipeline: Any, tiny_model_dir: Path) -> None:
    from diary_lightning.inference.pipeline import DiaryPipeline

    result = DiaryPage(pipeline, "adapter").write(CHAT, compare=True)
    base = DiaryPipeline.zero_shot(str(tiny_model_dir), pipeline.settings, load_in_4bit=False, compute_dtype="float32",
                                 device="cpu")
    [day] = result["days"]
    assert day["zero_shot"]["diary"] == base.write_many(read_chat(CHAT))[0]
    assert day["zero_shot"]["diary"] != day["diary"]  # the adapter is back on after the base had its turn
    assert day["diary"] == pipeline.write_many(read_chat(CHAT))[0]


def test_mistakes_are_the_command_line_s_messages(pipeline: Any) -> None:
    page = DiaryPage(pipeline, "adapter")
    with pytest.raises(UserError) as error:
        page.write(CHAT, writer="철수")
    message = str(error.value)
    assert "chat.txt, record 0 (id 'chat'): the writer (철수) does not speak in this dialogue; the speakers are " \
           "민지, 준호" in message and "diary-app-" not in message
    with pytest.raises(UserError, match=r"chat: the chat is too long: .* 600 new tokens were asked, over max_length=512"):
        page.write(CHAT, max_new_tokens=600)
    with pytest.raises(UserError, match="max_new_tokens=0"):
        page.write(CHAT, max_new_tokens=0)


def test_a_last_message_too_long_alone_is_shortened_from_its_start_as_predict_would(pipeline: Any) -> None:
    [day] = DiaryPage(pipeline, "adapter").write("민지: 처음 " + "아주 긴 이야기 " * 400 + "끝")["days"]
    room = pipeline.settings.generation.max_new_tokens
    assert day["prompt_tokens"] <= 512 - room and "끝" in day["prompt"]


def test_a_long_chat_loses_its_oldest_turns_as_predict_would(pipeline: Any) -> None:
    chat = "".join(f"민지: 오늘 있었던 일 {i}번째 이야기를 길게 써 본다\n준호: 그랬구나 {i}\n" for i in range(40))
    [day] = DiaryPage(pipeline, "adapter").write(chat)["days"]
    assert day["turns_cut"] > 0 and day["prompt_tokens"] <= 512 and "그랬구나 39" in day["prompt"]


def test_serve_returns_a_user_error_as_the_result(pipeline: Any) -> None:
    import asyncio

    result = asyncio.run(DiaryPage(pipeline, "adapter").serve("아무 말", None, "", None, None, None, False))
    assert result["days"] == [] and "chat.txt: line 1: no 'speaker:' before the text" in result["error"]


def test_a_set_watch_stops_generation_at_the_next_token(pipeline: Any) -> None:
    watch = Watch(0)
    watch.stop.set()
    prompts = pipeline.prepare(read_chat(CHAT))
    [written] = pipeline.generate(prompts, stopping_criteria=[watch])
    [one] = pipeline.generate(prompts, generation=dataclasses.replace(pipeline.settings.generation, max_new_tokens=1))
    assert watch.steps == 1 and written.diary == one.diary


class EndlessPipeline:
    """Stands in for DiaryPipeline's generate: it only ends when its stopping criterion says so, as a model that
    never writes EOS would."""

    def __init__(self, pipeline: Any) -> None:
        self.settings, self.prompt_format, self.batch_size = pipeline.settings, pipeline.prompt_format, 8
        self.prepare = pipeline.prepare
        self.stopped = threading.Event()

    def generate(self, prompts: Any, *, stopping_criteria: Any, **kwargs: Any) -> list[Any]:
        [watch] = stopping_criteria
        while not watch(torch.zeros(1, 1), None).all():
            time.sleep(0.01)
        self.stopped.set()
        return []


def test_cancelling_a_request_stops_the_model_thread(pipeline: Any) -> None:
    import asyncio

    endless = EndlessPipeline(pipeline)
    page = DiaryPage(endless, "adapter")
    progress: list[tuple[float, str]] = []

    async def cancel_midway() -> None:
        task = asyncio.create_task(page.serve(CHAT, None, "", None, None, None, False,
                                              lambda fraction, desc: progress.append((fraction, desc))))
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    assert endless.stopped.wait(10)  # the model's thread ended, free for the next request
    assert progress and progress[-1][1] == "writing" and 0 < progress[-1][0] <= 1


# -- the command line ------------------------------------------------------------------------------------------------
def test_the_options_name_what_is_missing_or_contradicts() -> None:
    with pytest.raises(ConfigError, match="app needs an adapter: --ckpt_path CKPT"):
        load_pipeline()
    with pytest.raises(ConfigError, match="give --ckpt_path or --model.adapter_path, not both"):
        load_pipeline("a.ckpt", model=AppModel(adapter_path="adapter"))
    with pytest.raises(ConfigError, match="--zero_shot true writes with the base model alone; it contradicts"):
        load_pipeline(zero_shot=True, model=AppModel(adapter_path="adapter"))
    with pytest.raises(ConfigError, match="--zero_shot true needs --model.base_model"):
        load_pipeline(zero_shot=True)
    with pytest.raises(FileNotFoundError, match="--ckpt_path last: no such checkpoint file"):
        load_pipeline("last")


def test_app_is_parsed_as_every_subcommand_is(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dotted flags and --config alike, the defaults of serve's signature, a typo named in one line."""
    from diary_lightning.inference import app

    monkeypatch.setattr(app, "import_gradio", lambda: None)
    monkeypatch.setattr(app, "load_pipeline", lambda *args: (_ for _ in ()).throw(RuntimeError(args)))
    config = tmp_path / "app.yaml"
    config.write_text("model:\n  adapter_path: runs/a/adapter\nport: 9000\n")
    with pytest.raises(RuntimeError) as raised:
        run_cli("app", "--config", str(config), "--model.compute_dtype", "float32")
    ckpt_path, zero_shot, model, data, device, batch_size = raised.value.args[0]
    assert (ckpt_path, zero_shot, model, data.max_length, batch_size) == (
        None, False, AppModel(adapter_path="runs/a/adapter", compute_dtype="float32"), 1024, 8)
    with pytest.raises(ConfigError, match="model.compute_dtype='int4': expected one of bfloat16, float16, float32"):
        run_cli("app", "--model.compute_dtype", "int4")
    with pytest.raises(ConfigError, match="unknown option --model.adapter; did you mean --model.adapter_path"):
        run_cli("app", "--model.adapter", "x")


BLOCK = r'''
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in sys.argv[1].split(","):
            raise ModuleNotFoundError(f"blocked for this test: {name}", name=name)
        return None

sys.meta_path.insert(0, Block())
'''


@pytest.mark.slow
def test_without_gradio_the_app_says_how_to_install_it() -> None:
    script = BLOCK + "from diary_lightning.cli.commands import main\nmain(['app', '--model.adapter_path', 'nowhere'])\n"
    done = subprocess.run([sys.executable, "-c", script, "gradio"], capture_output=True, text=True, cwd=ROOT,
                          env=subprocess_env(), timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "pip install -e '.[app]'" in done.stderr and "Traceback" not in done.stderr


# -- the server, as a user starts it, called through gradio_client ---------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, args: list[str], script: str | None = None, timeout: float = 180,
                 uploads: Path | None = None) -> None:
        self.port = free_port()
        self.uploads = uploads  # Gradio's folder for uploaded files (GRADIO_TEMP_DIR)
        command = ["-m", "diary_lightning"] if script is None else ["-c", script, "lightning,pytorch_lightning"]
        self.process = subprocess.Popen(
            [sys.executable, *command, "app", *args, "--port", str(self.port)], cwd=ROOT, text=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=subprocess_env(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
                               **({"GRADIO_TEMP_DIR": str(uploads)} if uploads else {})))
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if line.startswith("app: serving http://"):
                self.url = f"http://127.0.0.1:{self.port}"
                return
        self.stop()
        raise AssertionError("the app did not start:\n" + "".join(self.log)[-4000:])

    def _read(self) -> None:
        for line in self.process.stderr:
            self.log.append(line)
            self.lines.put(line)

    def client(self) -> Any:
        from gradio_client import Client

        return Client(self.url, verbose=False)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def call(client: Any, chat: str = "", chat_file: Any = None, writer: str = "", compare: bool = False,
         max_new_tokens: int = 8) -> dict[str, Any]:
    return client.predict(chat=chat, chat_file=chat_file, writer=writer, max_new_tokens=max_new_tokens,
                          do_sample=False, temperature=1.0, compare=compare, api_name="/write")


APP_WITHOUT_LIGHTNING = BLOCK + ("import logging\nlogging.basicConfig(level=logging.INFO, format='%(message)s')\n"
                                 "from diary_lightning.inference.app import main\nmain(sys.argv[3:])\n")


@pytest.fixture(scope="module")
def server(adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    # Started through the app module with Lightning unimportable: the page runs without it.
    started = Server(["--model.adapter_path", str(adapter)], script=APP_WITHOUT_LIGHTNING,
                     uploads=tmp_path_factory.mktemp("gradio-uploads"))
    yield started
    started.stop()


@pytest.mark.slow
def test_the_endpoint_writes_each_day_as_the_pipeline_does(server: Server, pipeline: Any, tmp_path: Path) -> None:
    client = server.client()
    result = call(client, TWO_DAYS, compare=True)
    dialogues = read_chat(TWO_DAYS)
    assert [d["day"] for d in result["days"]] == ["day1", "day2"]
    assert [d["diary"] for d in result["days"]] == pipeline.write_many(dialogues)
    assert [d["writer"] for d in result["days"]] == [p.writer for p in pipeline.prepare(dialogues)]
    for day in result["days"]:
        assert day["style_failures"] == style_failures(day["diary"], writer_names=[day["writer"]],
                                                       truncated=day["truncated"])
    with pipeline.model.disable_adapter():
        assert [d["zero_shot"]["diary"] for d in result["days"]] == pipeline.write_many(dialogues)
    # A file uploaded through the client is read under its own name.
    from gradio_client import handle_file

    upload = tmp_path / "kakao.txt"
    upload.write_text(KAKAO, encoding="utf-8")
    [day] = call(client, chat_file=handle_file(str(upload)), writer="준호")["days"]
    assert day["writer"] == "준호" and day["diary"] == pipeline.write_many(read_chat(KAKAO), writer="준호")[0]
    # Read, then deleted: a private chat does not stay in Gradio's upload folder after its request.
    assert not list(server.uploads.rglob("kakao.txt"))


@pytest.mark.slow
def test_a_bad_chat_gets_the_message_and_the_server_goes_on(server: Server) -> None:
    client = server.client()
    result = call(client, "이건 대화가 아니다")
    with pytest.raises(UserError) as error:
        read_chat("이건 대화가 아니다")
    assert result["days"] == [] and result["error"] == str(error.value)
    assert "Traceback" not in "".join(server.log)
    assert call(client, CHAT)["error"] is None and server.process.poll() is None


@pytest.mark.slow
def test_the_page_serves_and_the_server_stays_offline(server: Server) -> None:
    import urllib.request

    with urllib.request.urlopen(server.url, timeout=30) as response:
        assert response.status == 200 and b"Diary writer" in response.read()
    config = json.loads(urllib.request.urlopen(f"{server.url}/config", timeout=30).read())
    assert any(d.get("api_name") == "write" for d in config["dependencies"])
    # Gradio's usage report and version check go to its site; neither is sent.
    assert not any("api.gradio.app" in line for line in server.log)


@pytest.mark.slow
def test_zero_shot_alone_writes_with_the_base_model(tiny_model_dir: Path, pipeline: Any) -> None:
    started = Server(["--zero_shot", "true", "--model.base_model", str(tiny_model_dir), "--model.load_in_4bit",
                      "false", "--data.max_length", "512"])
    try:
        [day] = call(started.client(), CHAT, compare=True)["days"]
    finally:
        started.stop()
    with pipeline.model.disable_adapter():
        # The built-in prompt is the one the adapter fixture was saved with.
        assert day["diary"] == pipeline.write_many(read_chat(CHAT))[0]
    assert day["zero_shot"] is None  # no adapter, so no second column


@pytest.mark.slow
def test_a_checkpoint_writes_what_its_export_writes(reference_fit: Any, tmp_path: Path) -> None:
    from diary_lightning.inference.pipeline import DiaryPipeline

    run = reference_fit.wait()
    checkpoint = run / "checkpoints" / "last.ckpt"
    run_cli("export", "--config", str(reference_fit.config), "--ckpt_path", str(checkpoint), "--output",
            str(tmp_path / "adapter"))
    chats = read_chat(TWO_DAYS)
    from_checkpoint = DiaryPipeline.from_checkpoint(checkpoint, device="cpu")
    exported = DiaryPipeline.from_pretrained(tmp_path / "adapter", device="cpu")
    # Everything that decides a diary (RunSettings: prompt, max_length, generation).
    assert from_checkpoint.settings == exported.settings
    assert from_checkpoint.write_many(chats) == exported.write_many(chats)


def test_every_style_check_is_explained_in_words_on_the_page() -> None:
    from diary_lightning.evaluation.diary_style import CHECKS
    from diary_lightning.inference.app import CHECK_NOTES, _checks_line

    assert set(CHECK_NOTES) == set(CHECKS)
    for check in CHECKS:
        line = _checks_line([check])
        assert f"**{check}** (" in line and f"({check})" not in line, line  # never explained by its own name


@pytest.mark.slow
def test_a_writer_chosen_for_one_chat_is_not_kept_for_a_chat_without_them(pipeline: Any) -> None:
    from diary_lightning.inference.app import build_page

    blocks = build_page(DiaryPage(pipeline, "adapter"))
    fns = blocks.fns.values() if isinstance(blocks.fns, dict) else blocks.fns
    describe = next(f.fn for f in fns if getattr(f.fn, "__name__", "") == "describe")
    assert describe(CHAT, None, "민지")[1]["value"] == "민지"  # the same speakers: the choice stays
    message, update = describe("이건 채팅이 아니다", None, "민지")  # a paste that cannot be read
    assert message.startswith("Cannot read the chat yet") and update["value"] == ""
    assert describe("가람: 안녕\n나래: 응", None, "민지")[1]["value"] == ""  # no 민지 in this chat


def test_the_page_wraps_its_messages_and_keeps_the_upload_icon_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    import re
    from types import SimpleNamespace

    import gradio as gr

    from diary_lightning.data.encoding import PromptFormat
    from diary_lightning.inference import app
    from diary_lightning.model.settings import RunSettings

    # No model: what is tested is the page Gradio is handed and how it is launched.
    pipeline = SimpleNamespace(settings=RunSettings(PromptFormat(), 512), prompt_format=PromptFormat())
    monkeypatch.setattr(app, "load_pipeline", lambda *args: (pipeline, "runs/x/adapter"))
    launched: dict[str, Any] = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs, blocks=self))
    monkeypatch.setattr(gr.Blocks, "block_thread", lambda self: None)
    app.serve(model=app.AppModel(adapter_path="runs/x/adapter"))

    # An error quotes a whole line of the chat: its panels wrap it (a code block scrolls sideways and hides its end).
    css = launched["css"]
    for panel in ("error", "found"):
        rule = re.search(rf"#{panel} pre[^{{]*\{{([^}}]*)\}}", css)
        assert rule and "white-space: pre-wrap" in rule.group(1) and "overflow-wrap: anywhere" in rule.group(1)
    components = list(launched["blocks"].blocks.values())
    assert "found" in {c.elem_id for c in components}
    assert 'elem_id="error"' in Path(app.__file__).read_text(encoding="utf-8")  # rendered only with an error
    # The upload's label floats over the top of its drop area: short, over a box of Gradio's own height (at 120
    # px the icon rose under the label).
    [upload] = [c for c in components if isinstance(c, gr.File)]
    assert upload.label == app.UPLOAD_LABEL and len(upload.label) <= 60 and upload.height is None

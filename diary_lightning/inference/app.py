"""``app``: a web page to try an adapter. Paste or upload a chat, choose whose diary it is, and read one diary per
day with the diary-style checks it fails and the prompt the model read; beside it, if asked, what the base model
alone writes. The page's function is also a named API endpoint (``/write``) for scripted checks (docs/serving.md).

Built on :class:`diary_lightning.inference.pipeline.DiaryPipeline`: nothing here imports Lightning, and Gradio (the ``app`` extra)
only once the page is built.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from diary_lightning.data.clean import DEFAULT_ANONYMIZATION
from diary_lightning.data.dialogue import read_dialogues
from diary_lightning.data.encoding import PromptFormat
from diary_lightning.data.records import Dialogue
from diary_lightning.data.roles import choose_writer
from diary_lightning.errors import ConfigError, UserError, is_user_error
from diary_lightning.evaluation.diary_style import style_failures
from diary_lightning.evaluation.faithfulness import FAILURES, faithfulness_evidence
from diary_lightning.inference.pipeline import DiaryPipeline, PreparedPrompt, pick_device
from diary_lightning.model.generation import GenerationSettings
from diary_lightning.model.loading import ComputeDtype
from diary_lightning.model.settings import DEFAULT_MAX_LENGTH, RunSettings

log = logging.getLogger(__name__)

INSTALL_HINT = "the app needs Gradio: pip install -e '.[app]' (or pip install 'gradio>=6,<7')"
API_NAME = "write"
"""The endpoint: ``Client(url).predict(..., api_name="/write")``."""
KEPT_UPLOADS = 4
"""Uploaded chats the page keeps in memory (never on disk) for a second read of the same upload."""
EXAMPLE_CHAT = ("민지: 오늘 비가 많이 와서 우산 쓰고 학교 갔어\n"
                "준호: 우산은 챙겼구나 다행이다\n"
                "민지: 근데 신발이 다 젖어서 하루 종일 찝찝했어\n"
                "준호: 내일은 장화 신고 가\n")


class Cancelled(Exception):
    """The page's Stop button: generation ended at its next token."""


class Watch:
    """A transformers stopping criterion that counts the tokens generated (the page's progress bar) and stops
    generating once :attr:`stop` is set (the Stop button)."""

    def __init__(self, total_steps: int) -> None:
        self.stop = threading.Event()
        self.steps = 0
        self.total_steps = max(total_steps, 1)
        self.stage = "reading the chat"

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        self.steps += 1
        return torch.full((input_ids.shape[0],), self.stop.is_set(), dtype=torch.bool, device=input_ids.device)

    @property
    def fraction(self) -> float:
        return min(self.steps / self.total_steps, 1.0)


def _format_of(text: str) -> str:
    """The file name a pasted chat is read under, whose suffix picks the format as predict's ``auto`` does: a
    JSONL record, a JSON list of records, else a chat log (``speaker: text`` lines or a KakaoTalk export, whose PC
    lines also start with ``[``)."""
    head = text.lstrip()
    if head.startswith("{"):
        return "chat.jsonl"
    if head.startswith("["):
        try:
            json.loads(text)
            return "chat.json"
        except ValueError:
            pass
    return "chat.txt"


@dataclasses.dataclass(frozen=True)
class Upload:
    """An uploaded chat, held in memory once taken off the disk (:func:`take_upload`)."""

    name: str
    data: bytes


def take_upload(path: str | os.PathLike) -> Upload:
    """The file Gradio saved for an upload, read and deleted, with the folder Gradio made for it: a private chat
    must not stay on the server's disk after its request (Gradio keeps uploads until the server stops)."""
    path = Path(path)
    upload = Upload(path.name, path.read_bytes())
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()  # Gradio's folder for this one file; left alone if anything else is in it
    except OSError:
        pass
    return upload


def read_chat(text: str = "", upload: str | os.PathLike | Upload | None = None,
              anonymization: str = DEFAULT_ANONYMIZATION) -> list[Dialogue]:
    """The dialogues of a pasted chat, or of an uploaded file (which wins; a path or an :class:`Upload`), read
    as ``predict`` reads ``data.predict_path``: any format it reads, one dialogue per day where the reader cuts
    a chat into days. A problem raises a :class:`UserError` with predict's message, naming the file as the user
    knows it."""
    with tempfile.TemporaryDirectory(prefix="diary-app-") as tmp:
        if isinstance(upload, Upload):
            path = Path(tmp) / upload.name
            path.write_bytes(upload.data)
        elif upload:
            path = Path(tmp) / Path(upload).name
            shutil.copyfile(upload, path)
        elif text.strip():
            path = Path(tmp) / _format_of(text)
            path.write_text(text, encoding="utf-8")
        else:
            raise UserError("no chat: paste one (speaker: text lines, or a KakaoTalk export) or upload a file")
        try:
            result = read_dialogues(str(path), require_summary=False, anonymization=anonymization, progress=False)
        except UserError as err:
            raise UserError(str(err).replace(f"{tmp}{os.sep}", "")) from None
    if not result.dialogues:
        raise UserError(f"{path.name}: no text is left after cleaning")
    # A later error (a writer who does not speak) names the dialogue's source: the name the user knows.
    return [dataclasses.replace(d, source=d.source.replace(f"{tmp}{os.sep}", "")) for d in result.dialogues]


def speakers(dialogues: Sequence[Dialogue]) -> list[str]:
    """Every speaker of the chat, in order of first appearance."""
    return list(dict.fromkeys(turn.speaker for dialogue in dialogues for turn in dialogue.turns))


def default_writers(dialogues: Sequence[Dialogue], prompt_format: PromptFormat) -> list[str]:
    """Whom the run's writer setting (``data.writer`` as the adapter saved it) chooses in each dialogue; a day it
    chooses no one in is left out (writing it names the problem)."""
    pf = prompt_format
    chosen = []
    for dialogue in dialogues:
        try:
            chosen.append(choose_writer(dialogue, pf.writer, pf.bots)[0])
        except UserError:
            continue
    return list(dict.fromkeys(chosen))


def generation_settings(base: GenerationSettings, max_new_tokens: float | None, do_sample: bool | None,
                        temperature: float | None) -> GenerationSettings:
    """The run's generation settings with the page's three changed; a bad value is a UserError."""
    changes: dict[str, Any] = {}
    if max_new_tokens is not None:
        if int(max_new_tokens) != max_new_tokens or max_new_tokens < 1:
            raise UserError(f"max_new_tokens={max_new_tokens}: give a whole number of tokens, at least 1")
        changes["max_new_tokens"] = int(max_new_tokens)
    if do_sample is not None:
        changes["do_sample"] = bool(do_sample)
    if temperature is not None:
        if temperature <= 0:
            raise UserError(f"temperature={temperature}: give a number above 0 (sampling divides by it)")
        changes["temperature"] = float(temperature)
    return dataclasses.replace(base, **changes)


def _check_lengths(dialogues: Sequence[Dialogue], prompts: Sequence[PreparedPrompt], max_length: int,
                   max_new_tokens: int) -> None:
    """The prompts are cut to leave the run's room for the diary, as predict cuts them; more new tokens asked on
    the page than that room leaves would run past ``max_length``, the length the model was trained to."""
    for dialogue, prompt in zip(dialogues, prompts):
        if len(prompt.input_ids) + max_new_tokens > max_length:
            raise UserError(f"{dialogue.id}: the chat is too long: its prompt is {len(prompt.input_ids)} tokens and "
                            f"{max_new_tokens} new tokens were asked, over max_length={max_length} of the run; "
                            "ask for fewer new tokens")


class DiaryPage:
    """What the page does, apart from Gradio: one model, one request at a time."""

    def __init__(self, pipeline: DiaryPipeline, source: str, has_adapter: bool = True) -> None:
        self.pipeline = pipeline
        self.source = source
        self.has_adapter = has_adapter
        # One thread owns the model: requests, and a cancelled one's last token, run one after another.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="diary-model")
        # Uploads taken off the disk, by the path Gradio gave: the page reads one twice (who speaks, then the
        # diary). The last few only, in memory.
        self._uploads: OrderedDict[str, Upload] = OrderedDict()
        self._uploads_lock = threading.Lock()

    def upload(self, path: str | os.PathLike | None) -> Upload | None:
        """The chat uploaded at ``path``, taken off the disk the first time it is read."""
        if not path:
            return None
        with self._uploads_lock:
            key = str(path)
            if key not in self._uploads:
                self._uploads[key] = take_upload(path)
                while len(self._uploads) > KEPT_UPLOADS:
                    self._uploads.popitem(last=False)
            self._uploads.move_to_end(key)
            return self._uploads[key]

    def describe(self, text: str = "", upload: str | None = None) -> dict[str, Any]:
        """The speakers of a chat and whom the run's writer setting chooses: what the page shows before writing."""
        dialogues = read_chat(text, self.upload(upload), self.pipeline.prompt_format.anonymization)
        return {"days": [d.id for d in dialogues], "speakers": speakers(dialogues),
                "default_writers": default_writers(dialogues, self.pipeline.prompt_format),
                "writer_setting": list(self.pipeline.prompt_format.writer)}

    def write(self, text: str = "", upload: str | None = None, writer: str | None = None,
              max_new_tokens: float | None = None, do_sample: bool | None = None, temperature: float | None = None,
              compare: bool = False, watch: Watch | None = None) -> dict[str, Any]:
        """One diary per dialogue (day) of the chat, as the API returns them; a user's mistake is raised as a
        :class:`UserError` before anything is generated."""
        settings = self.pipeline.settings
        generation = generation_settings(settings.generation, max_new_tokens, do_sample, temperature)
        dialogues = read_chat(text, self.upload(upload), self.pipeline.prompt_format.anonymization)
        who = writer.strip() if writer and writer.strip() else None
        prompts = self.pipeline.prepare(dialogues, who)
        _check_lengths(dialogues, prompts, settings.max_length, generation.max_new_tokens)
        compare = compare and self.has_adapter
        calls = -(-len(prompts) // self.pipeline.batch_size) * (2 if compare else 1)
        watch = watch or Watch(0)
        watch.total_steps = max(calls * generation.max_new_tokens, 1)
        stopping = [watch]

        def generate(use_adapter: bool) -> list[Any]:
            watch.stage = "writing" if use_adapter else "writing with the base model alone"
            written = self.pipeline.generate(prompts, generation=generation, use_adapter=use_adapter,
                                           stopping_criteria=stopping)
            if watch.stop.is_set():
                raise Cancelled()
            return written

        diaries = generate(True)
        base = generate(False) if compare else [None] * len(diaries)
        days = []
        for dialogue, written, alone in zip(dialogues, diaries, base):
            names = [written.prompt.writer]
            day = {"day": dialogue.id, "writer": written.prompt.writer, "chosen_by": written.prompt.chosen_by,
                   "diary": written.diary, "truncated": written.truncated,
                   "style_failures": style_failures(written.diary, writer_names=names, truncated=written.truncated),
                   **faithfulness(written.diary, dialogue, written.prompt.writer),
                   "prompt": written.prompt.prompt, "prompt_tokens": len(written.prompt.input_ids),
                   "turns_cut": written.prompt.turns_cut, "zero_shot": None}
            if alone is not None:
                day["zero_shot"] = {"diary": alone.diary, "truncated": alone.truncated,
                                    "style_failures": style_failures(alone.diary, writer_names=names,
                                                                     truncated=alone.truncated),
                                    **faithfulness(alone.diary, dialogue, written.prompt.writer)}
            days.append(day)
        return {"error": None, "speakers": speakers(dialogues), "days": days,
                "generation": generation.to_dict(), "model": self.source}

    async def serve(self, text: str, upload: str | None, writer: str | None, max_new_tokens: float | None,
                    do_sample: bool | None, temperature: float | None, compare: bool,
                    progress: Any = None) -> dict[str, Any]:
        """:meth:`write` on the model's thread, reporting progress; a user's mistake comes back as ``error`` (the
        message the command line prints), and a cancelled request stops generating at its next token."""
        watch = Watch(0)
        future = self.executor.submit(self.write, text, upload, writer, max_new_tokens, do_sample, temperature,
                                      compare, watch)
        try:
            while not future.done():
                if progress is not None:
                    progress(watch.fraction, desc=watch.stage)
                await asyncio.sleep(0.2)
            return future.result()
        except Exception as err:
            if not is_user_error(err):
                raise  # a bug: Gradio logs its traceback and shows the page an error without it
            return {"error": str(err), "speakers": [], "days": [], "generation": None, "model": self.source}
        finally:
            watch.stop.set()  # on Stop, asyncio cancels this coroutine here: the model thread stops too


def _quiet_gradio() -> None:
    """Gradio sends usage data and looks for a newer version unless told not to: the page makes no call out."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def import_gradio() -> Any:
    _quiet_gradio()
    try:
        import gradio
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return gradio


UPLOAD_LABEL = "…or upload a chat file instead (.txt, .jsonl, .json)"
PAGE_CSS = """
/* A message quotes the line of the chat it is about: wrapped in its panel, never cut off behind a scroll bar. */
#error pre, #error code, #found pre, #found code { white-space: pre-wrap; overflow-wrap: anywhere; }
"""
"""The page's style (Gradio 6 takes it at launch): the panels that show a message (elem_id ``error``, ``found``)."""


CHECK_NOTES = {
    "meta": "mentions the conversation, a speaker code or a prompt label instead of the day",
    "polite": "a polite ending (-요, -습니다) where a diary uses the plain -다",
    "third_person": "names the writer instead of writing as 나",
    "reported_speech": "ends on what someone said rather than what the writer did or felt",
    "chat": "talks to someone (a question to the reader, a suggestion, a promise) instead of writing for oneself",
    "assistant": "wraps the diary in an assistant's preamble or afterword (다음은 ... 일기입니다)",
    "layout": "a transcript of 이름: 말 lines or a list, not running prose",
    "unfinished": "its last sentence stops mid-way, with no final ending",
    "empty": "no Korean words",
    "truncated": "cut by max_new_tokens before it ended",
}
"""What each check of :func:`diary_lightning.evaluation.diary_style.style_failures` means, in the page's words."""


def faithfulness(diary: str, dialogue: Any, writer: str) -> dict[str, Any]:
    """``faithfulness_failures`` (:func:`diary_lightning.evaluation.faithfulness.faithfulness_failures`) and, for
    each flagged sentence, its evidence (``faithfulness``: sentence, failure, reason, the turns that support it)."""
    turns = [{"speaker": t.speaker, "text": t.text} for t in dialogue.turns]
    flagged = [e for e in faithfulness_evidence(diary, turns, writer) if e.failure]
    return {"faithfulness_failures": [f for f in FAILURES if any(e.failure == f for e in flagged)],
            "faithfulness": [e.to_dict() for e in flagged]}


def faithfulness_lines(flagged: Sequence[dict[str, Any]]) -> str:
    """The flagged sentences of a diary with their evidence, as the page shows them under it."""
    if not flagged:
        return "✅ true to the chat as far as the faithfulness check sees"
    lines = []
    for e in flagged:
        turns = ", ".join(f"turn {i} ({speaker})" for i, speaker in e["turns"]) or "no turn"
        lines.append(f"- ⚠️ **{e['failure']}**: “{e['sentence']}” — {e['reason']} (closest: {turns})")
    return "\n".join(lines)


def _checks_line(failures: Sequence[str]) -> str:
    if not failures:
        return "✅ passes every diary-style check"
    return "⚠️ fails: " + "; ".join(f"**{name}** ({CHECK_NOTES.get(name, name)})" for name in failures)


def build_page(page: DiaryPage) -> Any:
    """The Gradio page of ``page``; its write function is the API endpoint ``/write``."""
    gr = import_gradio()
    settings = page.pipeline.settings
    generation = settings.generation
    title = "Diary writer" if page.has_adapter else "Diary writer: the base model alone (zero-shot)"
    with gr.Blocks(title=title, analytics_enabled=False) as blocks:
        gr.Markdown(f"## {title}\n`{page.source}` · max_length {settings.max_length} tokens · writer by default: "
                    f"{', '.join(page.pipeline.prompt_format.writer)} (the run's `data.writer`)")
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Textbox(label="Chat: speaker: text lines, a KakaoTalk export, or JSONL records", lines=12,
                                  max_lines=30, value=EXAMPLE_CHAT, elem_id="chat")
                # A short label and Gradio's own height: the label floats over the drop area's top, where a
                # longer one, or a box too short for its three lines, covered the upload icon.
                upload = gr.File(label=UPLOAD_LABEL, file_types=[".txt", ".jsonl", ".json"], type="filepath",
                                 elem_id="upload")
            with gr.Column(scale=2):
                found = gr.Markdown(elem_id="found")
                writer = gr.Dropdown(label="Whose diary", choices=[("as the run chooses", "")], value="",
                                     allow_custom_value=True, elem_id="writer")
                with gr.Accordion("Generation settings (the run's by default)", open=False):
                    max_new_tokens = gr.Number(label="max new tokens", value=generation.max_new_tokens, precision=0,
                                               minimum=1)
                    do_sample = gr.Checkbox(label="sample (off: greedy, the same diary every time)",
                                            value=generation.do_sample)
                    temperature = gr.Slider(label="temperature (when sampling)", minimum=0.05, maximum=2.0, step=0.05,
                                            value=generation.temperature)
                compare = gr.Checkbox(label="also write with the base model alone (zero-shot), beside the adapter",
                                      value=False, visible=page.has_adapter, elem_id="compare")
                with gr.Row():
                    run = gr.Button("Write the diaries", variant="primary", elem_id="write")
                    stop = gr.Button("Stop", variant="stop")
        result = gr.JSON(label="result", visible=False)

        @gr.render(inputs=result)
        def show(data: dict[str, Any] | None) -> None:
            if not data:
                return
            if data.get("error"):
                gr.Markdown("### The chat cannot be written\n```\n" + data["error"] + "\n```", elem_id="error")
                return
            for day in data["days"]:
                gr.Markdown(f"### {day['day']}\nThe diary of **{day['writer']}** (chosen by: {day['chosen_by']})")
                # Columns of their own height: stretched to the taller one, a column spread its check lines apart.
                with gr.Row():
                    with gr.Column():
                        gr.Textbox(value=day["diary"], label="adapter" if page.has_adapter else "base model alone",
                                   lines=4, interactive=False, elem_classes="diary")
                        gr.Markdown(_checks_line(day["style_failures"]))
                        gr.Markdown(faithfulness_lines(day["faithfulness"]), elem_classes="faithfulness")
                    if day["zero_shot"] is not None:
                        with gr.Column():
                            gr.Textbox(value=day["zero_shot"]["diary"], label="base model alone (zero-shot)", lines=4,
                                       interactive=False)
                            gr.Markdown(_checks_line(day["zero_shot"]["style_failures"]))
                            gr.Markdown(faithfulness_lines(day["zero_shot"]["faithfulness"]))
                cut = f", the {day['turns_cut']} oldest turns cut to fit" if day["turns_cut"] else ""
                with gr.Accordion(f"The prompt sent ({day['prompt_tokens']} tokens{cut})", open=False):
                    gr.Textbox(value=day["prompt"], show_label=False, lines=8, max_lines=30, interactive=False)

        def describe(text: str, path: str | None, chosen: str | None = "") -> tuple[str, Any]:
            # A choice of writer outlives the chat only when the new chat has that speaker: a stale name left
            # selected after a failed paste would be sent with the next chat.
            try:
                info = page.describe(text, path)
            except UserError as err:
                return (f"Cannot read the chat yet:\n```\n{err}\n```",
                        gr.update(choices=[("as the run chooses", "")], value=""))
            rule = f"as the run chooses ({', '.join(info['writer_setting'])}): {', '.join(info['default_writers']) or 'no one'}"
            days = f"{len(info['days'])} days: {', '.join(info['days'])}" if len(info["days"]) > 1 else "one day"
            return (f"**Speakers**: {', '.join(info['speakers'])}  \n**Days**: {days}",
                    gr.update(choices=[(rule, ""), *info["speakers"]],
                              value=chosen if chosen in info["speakers"] else ""))

        for source in (chat.change, upload.change, blocks.load):
            source(describe, [chat, upload, writer], [found, writer], api_visibility="private",
                   show_progress="hidden", queue=False)

        async def write(chat: str, chat_file: str | None, writer: str, max_new_tokens: float, do_sample: bool,
                        temperature: float, compare: bool,
                        progress: Any = gr.Progress()) -> dict[str, Any]:  # noqa: B008 (how Gradio asks for it)
            """Write one diary per day of a chat. ``chat_file`` (a file, through gradio_client's ``handle_file``)
            is read instead of ``chat``; ``writer`` is a speaker name, or "" for the run's rule. Returns
            ``{"error", "speakers", "days": [{"day", "writer", "chosen_by", "diary", "truncated", "style_failures",
            "faithfulness_failures", "faithfulness", "prompt", "prompt_tokens", "turns_cut", "zero_shot"}],
            "generation", "model"}``; ``faithfulness`` lists each flagged sentence with its failure, the reason and
            the closest turns; ``error`` holds the
            message of a chat that cannot be written, as the command line words it."""
            return await page.serve(chat, chat_file, writer, max_new_tokens, do_sample, temperature, compare, progress)

        event = run.click(write, [chat, upload, writer, max_new_tokens, do_sample, temperature, compare], result,
                          api_name=API_NAME, concurrency_limit=1, concurrency_id="model")
        stop.click(None, cancels=[event])
    blocks.queue(default_concurrency_limit=1)
    return blocks


@dataclass(frozen=True)
class AppModel:
    """The model the page writes with (``--model.*``).

    Args:
        adapter_path: An exported adapter folder.
        base_model: The base model (default: the one the adapter or checkpoint was trained on).
        load_in_4bit: Load the base in 4 bits (default: as training did; zero-shot: true).
        compute_dtype: Default: as training did (zero-shot: bfloat16 on a GPU, float32 on the CPU).
        trust_remote_code: Allow the base model's repository to run its own code.
    """

    adapter_path: str | None = None
    base_model: str | None = None
    load_in_4bit: bool | None = None
    compute_dtype: ComputeDtype | None = None
    trust_remote_code: bool = False


@dataclass(frozen=True)
class AppData:
    """The chats (``--data.*``).

    Args:
        max_length: Zero-shot only: most tokens of prompt and diary (an adapter brings its own).
    """

    max_length: int = DEFAULT_MAX_LENGTH


def serve(ckpt_path: str | None = None, zero_shot: bool = False, model: AppModel = AppModel(),
          data: AppData = AppData(), device: str | None = None, batch_size: int = 8, host: str = "127.0.0.1",
          port: int = 7860) -> None:
    """Serve a web page to try an adapter: paste or upload a chat, choose whose diary, read one diary per day with
    its diary-style checks and the prompt sent, beside the base model's if asked. The page is also an API endpoint
    (/write): see docs/serving.md.

    Args:
        ckpt_path: A checkpoint of fit (the file; runs/NAME/checkpoints/last.ckpt).
        zero_shot: True: the base model alone, no adapter (needs --model.base_model).
        model: The model the page writes with.
        data: The chats.
        device: cpu, cuda or cuda:N (default: the first GPU if there is one).
        batch_size: Days generated together.
        host: The address to serve on (default: this machine only; 0.0.0.0: every interface).
        port: The port to serve on.
    """
    import_gradio()  # before minutes of loading a model, not after
    start = time.perf_counter()
    pipeline, source = load_pipeline(ckpt_path, zero_shot, model, data, device, batch_size)
    loaded = time.perf_counter()
    log.info("app: model loaded in %.1f s from %s", loaded - start, source)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own requests to the page, one line each
    page = DiaryPage(pipeline, source, has_adapter=not zero_shot)
    blocks = build_page(page)
    blocks.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True,
                  ssr_mode=False, mcp_server=False, show_error=False, css=PAGE_CSS)
    log.info("app: serving http://%s:%d (%.1f s after the model was loaded; Ctrl+C stops it)", host, port,
             time.perf_counter() - loaded)
    try:
        blocks.block_thread()
    finally:
        page.executor.shutdown(wait=False, cancel_futures=True)


def main(argv: list[str]) -> None:
    """:func:`serve` with its arguments parsed from its signature, as ``python -m diary_lightning app`` parses them,
    without Lightning: a service's machine may run the page with the inference dependencies alone."""
    import inspect

    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog="python -m diary_lightning app", description=(serve.__doc__ or "").split("\n\n")[0])
    parser.add_function_arguments(serve, as_group=False)
    options = parser.instantiate_classes(parser.parse_args(argv))
    serve(**{name: options[name] for name in inspect.signature(serve).parameters})


def load_pipeline(ckpt_path: str | None = None, zero_shot: bool = False, model: AppModel = AppModel(),
                  data: AppData = AppData(), device: str | None = None, batch_size: int = 8,
                  ) -> tuple[DiaryPipeline, str]:
    """The model :func:`serve`'s arguments name, and how the page names it."""
    too_small = [f"{flag} {value}: expected 1 or more" for flag, value in
                 (("--batch_size", batch_size), ("--data.max_length", data.max_length)) if value < 1]
    if too_small:  # before minutes of loading the model
        raise ConfigError("; ".join(too_small))
    sources = [s for s in (ckpt_path, model.adapter_path) if s]
    if len(sources) > 1:
        raise ConfigError(f"give --ckpt_path or --model.adapter_path, not both ({sources[0]} and {sources[1]})")
    if sources and zero_shot:
        raise ConfigError(f"--zero_shot true writes with the base model alone; it contradicts the adapter {sources[0]}")
    common = {"load_in_4bit": model.load_in_4bit, "compute_dtype": model.compute_dtype, "device": device,
              "batch_size": batch_size, "trust_remote_code": model.trust_remote_code}
    if ckpt_path:
        if ckpt_path in ("last", "best") or not Path(ckpt_path).is_file():
            raise FileNotFoundError(f"--ckpt_path {ckpt_path}: no such checkpoint file (app takes the "
                                    "file itself, e.g. runs/tiny/checkpoints/last.ckpt)")
        return DiaryPipeline.from_checkpoint(ckpt_path, model.base_model, **common), ckpt_path
    if model.adapter_path:
        return DiaryPipeline.from_pretrained(model.adapter_path, model.base_model, **common), model.adapter_path
    if not zero_shot:
        raise ConfigError("app needs an adapter: --ckpt_path CKPT (a checkpoint of fit) or --model.adapter_path DIR "
                          "(an exported adapter folder). To try the untuned base model, add --zero_shot true "
                          "--model.base_model NAME.")
    if not model.base_model:
        raise ConfigError("--zero_shot true needs --model.base_model NAME (a Hub id or a local folder)")
    device = pick_device(device)
    settings = RunSettings(PromptFormat(), data.max_length)
    common.update(load_in_4bit=True if model.load_in_4bit is None else model.load_in_4bit, device=device,
                  compute_dtype=model.compute_dtype or ("float32" if device.type == "cpu" else "bfloat16"))
    return DiaryPipeline.zero_shot(model.base_model, settings, **common), f"{model.base_model} (zero-shot)"

"""``python -m diary_lightning evaluate``: systems side by side on the benchmark, with the gold diaries and a
trivial baseline always beside them.

A system is a file of diaries (``--predictions``), or one this command runs on the benchmark's chats itself: a
checkpoint of fit or an exported adapter (through :class:`~diary_lightning.inference.pipeline.DiaryPipeline`, what
``predict`` and the app write with), the base model alone (zero-shot), or a teacher of ``synthesize`` (so that a
teacher can be chosen on the dev chats before it writes 280,000 diaries). :func:`evaluate` is the command;
:func:`main` parses its arguments from its signature.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from diary_lightning.data.records import Turn
from diary_lightning.errors import ConfigError
from diary_lightning.evaluation.benchmark import (
    BENCHMARK_VERSION,
    SPLITS,
    BenchmarkItem,
    benchmark_root,
    content_hash,
    load_benchmark,
)
from diary_lightning.evaluation.report import FIXED_SYSTEMS, card_result, read_folder, write_folder
from diary_lightning.evaluation.scoring import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, Diary, score_diaries
from diary_lightning.io.outputs import Output, check_outputs, folder_with
from diary_lightning.synthesis.teacher import Request, TeacherConfig

log = logging.getLogger(__name__)

WRITE_PROMPT = """아래는 "{writer}"의 오늘 대화입니다. "{writer}"의 입장에서, 그 사람의 목소리로 오늘 하루의 일기를 써 주세요.

규칙:
- "나"로 쓰는 1인칭 일기로, 평서형 반말(~했다, ~이다)로 씁니다. 존댓말도 채팅 말투도 쓰지 않습니다.
- 대화에 나온 일과 {writer}의 생각, 느낌만 씁니다. 다른 사람의 말이나 계획은 그 사람의 것으로 쓰고, 제안받기만 한 일은 한 일로 쓰지 않으며, 대화에 없는 사실은 지어내지 않습니다.
- 대화 자체나 챗봇은 언급하지 않고, 제목, 날짜, 설명 없이 일기 본문만 씁니다.

[대화]
{dialogue}

[일기]"""
"""What a teacher is asked on the benchmark: the chat and whose diary it is, and no reference summary (the
benchmark has none to give, and the diary is what is scored). ``--teacher.prompt`` replaces it."""


def baseline_diary(item: BenchmarkItem) -> Diary:
    """The trivial baseline: the writer's own messages, one a line (each its own sentence by the matching rules)."""
    return Diary("\n".join(item.writer_lines))


def _named(entry: str, default: str) -> tuple[str, str]:
    """``NAME=PATH`` or ``PATH`` (named ``default``)."""
    name, sep, path = entry.partition("=")
    return (name.strip(), path) if sep and name.strip() and "/" not in name else (default, entry)


def _short(path: str) -> str:
    parts = Path(path.rstrip("/")).with_suffix("").parts
    return "/".join(parts[-2:]) if len(parts) > 1 else (parts[0] if parts else path)


def read_predictions(path: str, items: Sequence[BenchmarkItem], known: set[str]) -> list[Diary]:
    """The diaries of a JSONL file of ``{"id", "diary"}`` (``predict``'s output: a day of an export by the id
    predict gives it), in the order of ``items``. Ids of the other split are passed over; an id the benchmark does
    not have, a repeated id or a missing one is the user's to fix, named with the file and line."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--predictions {path}: no such file")
    diaries: dict[str, Diary] = {}
    unknown: list[str] = []
    for line_number, line in enumerate(file.read_text(encoding="utf-8").split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(f"--predictions {path}, line {line_number}: not JSON ({err.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not isinstance(
                record.get("diary"), str):
            raise ConfigError(f"--predictions {path}, line {line_number}: expected an object with a string 'id' and "
                              f"a string 'diary' (predict's output), got {line[:80]!r}")
        record_id = record["id"]
        if record_id in diaries:
            raise ConfigError(f"--predictions {path}, line {line_number}: the id {record_id!r} again; one diary per id")
        if record_id not in known:
            unknown.append(record_id)
            continue
        truncated = bool(record.get("truncated")) or "truncated" in (record.get("style_failures") or [])
        diaries[record_id] = Diary(record["diary"], truncated)
    if unknown:
        raise ConfigError(f"--predictions {path}: {len(unknown)} id(s) the benchmark does not have: "
                          f"{', '.join(map(repr, unknown[:5]))}{' ...' if len(unknown) > 5 else ''}; write the "
                          "diaries of the benchmark's chats, with their ids (a day of an export: FILE_YYYY-MM-DD)")
    missing = [item.id for item in items if item.id not in diaries]
    if missing:
        raise ConfigError(f"--predictions {path}: no diary for {len(missing)} of the {len(items)} items of the "
                          f"{items[0].split} split: {', '.join(map(repr, missing[:5]))}"
                          f"{' ...' if len(missing) > 5 else ''}")
    return [diaries[item.id] for item in items]


def run_pipeline(pipeline: Any, items: Sequence[BenchmarkItem], max_new_tokens: int | None) -> list[Diary]:
    """Diaries written by ``pipeline`` (a :class:`~diary_lightning.inference.pipeline.DiaryPipeline`) as each
    item's writer, with the prompt and cuts of predict; generated longest prompts first, so that a batch holds
    prompts of like length."""
    prompts = [pipeline.prepare([item.messages()], item.writer)[0] for item in items]
    generation = pipeline.settings.generation
    if max_new_tokens is not None:
        generation = dataclasses.replace(generation, max_new_tokens=max_new_tokens)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i].input_ids))
    written = pipeline.generate([prompts[i] for i in order], generation=generation)
    diaries: list[Diary | None] = [None] * len(items)
    for i, diary in zip(order, written):
        diaries[i] = Diary(diary.diary, diary.truncated)
    return diaries  # type: ignore[return-value]


def teacher_requests(items: Sequence[BenchmarkItem], prompt: str, system: str) -> list[Request]:
    from diary_lightning.data.prompts import format_dialogue

    requests = []
    for item in items:
        turns = tuple(Turn(speaker, text) for speaker, text in item.dialogue)
        user = prompt.format(dialogue=format_dialogue(turns), writer=item.writer, summary="")
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        requests.append(Request(item.id, messages, turns, "", item.writer, {}, writer_names=(item.writer,)))
    return requests


def check_teacher(config: TeacherConfig, option: str) -> str:
    """The prompt a teacher or judge is asked with, after its settings are checked (before any model loads)."""
    if config.backend == "rules":
        raise ConfigError(f"{option}.backend rules rewrites a reference summary, which the benchmark does not give: "
                          f"use openai, vllm or transformers with {option}.model")
    if not config.model:
        raise ConfigError(f"{option}.backend {config.backend} needs {option}.model (the model to ask)")
    if config.prompt == "default":
        return WRITE_PROMPT
    if "{dialogue}" not in config.prompt or "{writer}" not in config.prompt:
        raise ConfigError(f"{option}.prompt: needs the fields {{dialogue}} and {{writer}} (or 'default')")
    return config.prompt


def run_teacher(config: TeacherConfig, items: Sequence[BenchmarkItem]) -> list[Diary]:
    from diary_lightning.synthesis.command import make_teacher
    from diary_lightning.synthesis.teacher import resolve_system

    prompt = check_teacher(config, "--teacher")
    replies: dict[str, Diary] = {}

    def on_reply(request: Request, reply: Any) -> None:
        replies[request.id] = Diary((reply.text or "").strip(), reply.truncated, reply.error if reply.text is None
                                    else None)

    teacher = make_teacher(config)
    try:
        teacher.generate(teacher_requests(items, prompt, resolve_system(config.system)), on_reply)
    finally:
        teacher.close()
    return [replies.get(item.id, Diary("", error="no answer")) for item in items]


def plan_systems(given: dict[str, list[str]], zero_shot: str | None, teacher: TeacherConfig | None,
                 items: Sequence[BenchmarkItem], known: set[str]) -> list[tuple[str, dict[str, Any], Any]]:
    """(name, record, source) of each system asked for, every file read and every path checked before any model
    loads (minutes on a large base): source is the diaries, a (kind, path) to write with, or the teacher."""
    planned: list[tuple[str, dict[str, Any], Any]] = []
    for entry in given["predictions"]:
        name, path = _named(entry, Path(entry).stem)
        planned.append((name, {"source": f"the diaries of {path}"}, read_predictions(path, items, known)))
    for entry in given["ckpt_path"]:
        name, path = _named(entry, _short(entry))
        if not Path(path).is_file():
            raise FileNotFoundError(f"--ckpt_path {path}: no such checkpoint file")
        planned.append((name, {"source": f"the checkpoint {path}, written as predict writes"}, ("checkpoint", path)))
    for entry in given["adapter_path"]:
        name, path = _named(entry, _short(entry))
        if not Path(path).is_dir():
            raise FileNotFoundError(f"--adapter_path {path}: no such adapter folder")
        planned.append((name, {"source": f"the adapter {path}, written as predict writes"}, ("adapter", path)))
    if zero_shot:
        planned.append((f"zero-shot:{Path(zero_shot.rstrip('/')).name}",
                        {"source": f"the base model {zero_shot} alone"}, ("zero_shot", zero_shot)))
    if teacher is not None:
        where = f" at {without_credentials(teacher.base_url)}" if teacher.base_url else ""
        planned.append((f"teacher:{teacher.model}", {"source": f"the {teacher.backend} teacher {teacher.model}{where}"},
                        teacher))
    names = [name for name, _, _ in planned]
    for name in names:
        if name in FIXED_SYSTEMS or names.count(name) > 1:
            raise ConfigError(f"two systems named {name!r}" if name not in FIXED_SYSTEMS else
                              f"the name {name!r} is the benchmark's own column: name the system NAME=PATH")
    return planned


def evaluate(
    output: str,
    split: str = "dev",
    predictions: list[str] | str | None = None,
    ckpt_path: list[str] | str | None = None,
    adapter_path: list[str] | str | None = None,
    zero_shot: str | None = None,
    teacher: TeacherConfig | None = None,
    judge: TeacherConfig | None = None,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    device: str | None = None,
    load_in_4bit: bool | None = None,
    compute_dtype: str | None = None,
    trust_remote_code: bool = False,
    benchmark: str | None = None,
    rouge_tokenizer: str = "char",
    bootstrap_samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
    limit: int | None = None,
) -> dict[str, Any]:
    """Score systems on the benchmark's chats and write the comparison to OUTPUT (summary.json, items.jsonl,
    report.md, metrics.png, lengths.png), beside the gold diaries (reference) and the writer's own lines (baseline).
    Running again into the same OUTPUT adds the new systems and keeps the others' scores.

    Args:
        output: The folder of results; an earlier run's systems there are kept.
        split: ``dev`` (default) or ``test``. Compare and tune on dev as often as needed; score the chosen system
            on test once, for the number you report: a choice made by looking at test no longer measures new chats.
        predictions: Files of diaries, JSONL ``{"id", "diary"}`` (predict's output), each ``FILE`` or ``NAME=FILE``;
            several as ``'[a.jsonl, b.jsonl]'``.
        ckpt_path: Checkpoints of fit to write with (``FILE`` or ``NAME=FILE``), as predict writes.
        adapter_path: Exported adapter folders to write with (``DIR`` or ``NAME=DIR``).
        zero_shot: A base model (Hub id or folder) to write with alone, untuned (``zero-shot``).
        teacher: A teacher of synthesize (``--teacher.backend openai|vllm|transformers --teacher.model M``).
        judge: An LLM judge through the same backends (``--judge.backend openai --judge.model M``): a rubric
            score of every diary and a pairwise verdict against the reference in both orders.
        max_new_tokens: Most tokens of a diary for the systems run here (default: each one's own setting).
        batch_size: Chats generated together by a checkpoint, adapter or base model.
        device: ``cpu``, ``cuda`` or ``cuda:N`` (default: the first GPU if there is one).
        load_in_4bit: Quantize the base to NF4 (default: as training did; zero-shot: true).
        compute_dtype: ``bfloat16``, ``float16`` or ``float32`` (default: as training did).
        trust_remote_code: Allow a base model's repository to run its own code.
        benchmark: The benchmark folder (default: the one shipped in the package).
        rouge_tokenizer: ROUGE-L tokens: ``char`` (syllables), ``eojeol`` or ``morpheme``.
        bootstrap_samples: Resamples of the items for the 95% intervals.
        seed: The bootstrap's seed (the same seed, the same intervals).
        limit: Score only this many items of the split, spread evenly over it (every setting and file): a quick
            look at a system or at the command itself (the demo), never a result to report; the report says so.
    """
    if split not in SPLITS:
        raise ConfigError(f"--split {split!r}: expected one of {', '.join(SPLITS)}")
    if bootstrap_samples < 1:
        raise ConfigError(f"--bootstrap_samples {bootstrap_samples}: at least 1")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: at least 1 item (or leave it out for the whole split)")
    for config, option in ((teacher, "--teacher"), (judge, "--judge")):
        if config is not None:
            check_teacher(config, option)
    root = Path(benchmark) if benchmark else benchmark_root()
    everything = load_benchmark(root=root)
    items = [item for item in everything if item.split == split]
    if not items:
        raise ConfigError(f"the benchmark at {root} has no {split} items")
    meta = {"version": BENCHMARK_VERSION, "hash": content_hash(root), "split": split, "items": len(items),
            "bootstrap_samples": bootstrap_samples, "bootstrap_seed": seed, "rouge_tokenizer": rouge_tokenizer}
    if limit is not None and limit < len(items):
        # Evenly spaced rather than the first N: the files are read in order, so a prefix would be one setting.
        items = [items[i * len(items) // limit] for i in range(limit)]
        meta.update(items=len(items), limit=f"{len(items)} of {meta['items']} items, evenly spaced: not a benchmark score")
    out = Path(output)
    given = {flag: [value] if isinstance(value, str) else list(value or []) for flag, value in (
        ("predictions", predictions), ("ckpt_path", ckpt_path), ("adapter_path", adapter_path))}
    paths = {flag: [_named(entry, "")[1] for entry in entries] for flag, entries in given.items()}
    # Never over what it reads, and only over a folder evaluate wrote (io/outputs.py): --output runs/eeve would
    # otherwise mix a report into a run folder.
    check_outputs("evaluate", [Output("--output", out, "folder", folder_with("summary.json", "items.jsonl"))], {
        "the diaries --predictions": paths["predictions"], "the checkpoint --ckpt_path": paths["ckpt_path"],
        "the adapter --adapter_path": paths["adapter_path"], "the base model --zero_shot": zero_shot,
        "the benchmark": root})
    systems, rows = read_folder(out, meta)
    planned = plan_systems(given, zero_shot, teacher, items, {item.id for item in everything})
    for name in FIXED_SYSTEMS:
        if name not in systems:
            planned.insert(FIXED_SYSTEMS.index(name), (name, {"source": "the benchmark's gold diaries" if name ==
                                                          "reference" else "the writer's own messages, one a line"},
                [Diary(item.reference) for item in items] if name == "reference" else
                [baseline_diary(item) for item in items]))

    common = {"device": device, "batch_size": batch_size, "load_in_4bit": load_in_4bit,
              "compute_dtype": compute_dtype, "trust_remote_code": trust_remote_code}
    new_rows: list[dict[str, Any]] = []
    for name, system, source in planned:
        start = time.perf_counter()
        if isinstance(source, list):
            diaries = source
        elif isinstance(source, TeacherConfig):
            log.info("evaluate: %s writes %d diaries", name, len(items))
            diaries = run_teacher(source, items)
            system["generation_seconds"] = round(time.perf_counter() - start, 2)
        else:
            pipeline = load_pipeline(source[0], source[1], common)
            log.info("evaluate: %s loaded in %.1f s; writing %d diaries", name, time.perf_counter() - start,
                     len(items))
            start = time.perf_counter()
            diaries = run_pipeline(pipeline, items, max_new_tokens)
            system["generation_seconds"] = round(time.perf_counter() - start, 2)
            del pipeline
        scored = time.perf_counter()
        new_rows += score_diaries(items, diaries, name, rouge_tokenizer)
        system["scoring_seconds"] = round(time.perf_counter() - scored, 2)
        systems[name] = system
        log.info("evaluate: %s scored in %.1f s", name, system["scoring_seconds"])
    replaced = {name for name, _, _ in planned}
    rows = [r for r in rows if r["system"] not in replaced] + new_rows
    if judge is not None:
        run_judge(judge, rows, items)
    summary = write_folder(out, meta, systems, rows)
    log.info("evaluate: %d systems on the %s split (%d items) in %s (report.md)", len(systems), split, len(items), out)
    for name, _, source in planned:
        if isinstance(source, tuple) and source[0] == "adapter":
            add_to_card(Path(source[1]), split, card_result(summary, name, out), name)
    return summary


def add_to_card(folder: Path, split: str, result: dict[str, Any], name: str) -> None:
    """An exported adapter's card gains what it scored here (a merge of it carries that on); a folder this project
    did not export, or one it may not write to, keeps its card, and the scores stay in the report."""
    from diary_lightning.inference.model_card import record_evaluation
    from diary_lightning.model.metadata import SETTINGS_FILE

    if not (folder / SETTINGS_FILE).is_file():
        log.info("evaluate: %s has no %s (not exported by diary_lightning): its card is left as it is", folder,
                 SETTINGS_FILE)
        return
    try:
        card = record_evaluation(folder, split, result, name)
    except OSError as err:
        log.warning("evaluate: the card of %s is left as it was (%s); the scores are in the report", folder, err)
        return
    log.info("evaluate: the %s split's results are in the card of %s (%s)", split, name, card)


def scored_system(entry: str, option: str = "--evaluation") -> tuple[str, dict[str, Any], str]:
    """``DIR`` or ``NAME=DIR``: what system NAME scored in evaluate's folder DIR, as a model card gives it
    (:func:`~diary_lightning.evaluation.report.card_result`), with the split and the name. Without a name, the folder's
    one system besides the reference and the baseline. Read before any model loads."""
    name, folder = _named(entry, "")
    summary_file = Path(folder) / "summary.json"
    if not summary_file.is_file():
        raise FileNotFoundError(f"{option} {folder}: no summary.json there (the folder evaluate --output writes)")
    try:
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        systems, split = summary["systems"], summary["benchmark"]["split"]
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{option} {folder}: {summary_file.name} is not evaluate's summary ({err})") from None
    scored = [s for s in systems if s not in FIXED_SYSTEMS]
    if not name:
        if len(scored) != 1:
            raise ConfigError(f"{option} {folder}: {len(scored)} systems were scored there "
                              f"({', '.join(scored) or 'none'}); name the one this model is: {option} NAME={folder}")
        name = scored[0]
    elif name not in scored:
        raise ConfigError(f"{option} {entry}: no system {name!r} was scored in {folder} "
                          f"(there: {', '.join(scored) or 'none'})")
    return split, card_result(summary, name, folder), name


def without_credentials(url: str | None) -> str | None:
    from diary_lightning.synthesis.openai_teacher import without_credentials as strip

    return strip(url)


def run_judge(config: TeacherConfig, rows: list[dict[str, Any]], items: Sequence[BenchmarkItem]) -> None:
    """Judge every row this judge has not judged yet (an earlier run's verdicts of the same judge are kept)."""
    from diary_lightning.evaluation.judge import judge_questions, verdict
    from diary_lightning.synthesis.command import make_teacher

    name = f"{config.backend}:{config.model}"
    todo = [row for row in rows if (row.get("judge") or {}).get("judge") != name]
    if not todo:
        return
    by_id = {item.id: item for item in items}
    requests = []
    for n, row in enumerate(todo):
        item = by_id[row["id"]]
        turns = tuple(Turn(speaker, text) for speaker, text in item.dialogue)
        for key, messages in judge_questions(row, item).items():
            requests.append(Request(f"{n}:{key}", messages, turns, "", item.writer, {}))
    answers: dict[int, dict[str, str | None]] = {n: {} for n in range(len(todo))}

    def on_reply(request: Request, reply: Any) -> None:
        n, key = request.id.split(":")
        answers[int(n)][key] = reply.text

    log.info("evaluate: the judge %s reads %d diaries (%d questions)", name, len(todo), len(requests))
    teacher = make_teacher(config)
    try:
        teacher.generate(requests, on_reply)
    finally:
        teacher.close()
    for n, row in enumerate(todo):
        row["judge"] = verdict(name, answers[n])


def load_pipeline(kind: str, path: str, common: dict[str, Any]) -> Any:
    """The DiaryPipeline of a checkpoint, an adapter or a base model alone."""
    from diary_lightning.data.encoding import PromptFormat
    from diary_lightning.inference.pipeline import DiaryPipeline, pick_device
    from diary_lightning.model.settings import DEFAULT_MAX_LENGTH, RunSettings

    if kind == "checkpoint":
        return DiaryPipeline.from_checkpoint(path, **common)
    if kind == "adapter":
        return DiaryPipeline.from_pretrained(path, **common)
    device = pick_device(common["device"])
    settings = RunSettings(PromptFormat(), DEFAULT_MAX_LENGTH)  # the base alone writes as in the app
    return DiaryPipeline.zero_shot(path, settings, **{
        **common, "device": device, "load_in_4bit": True if common["load_in_4bit"] is None else common["load_in_4bit"],
        "compute_dtype": common["compute_dtype"] or ("float32" if device.type == "cpu" else "bfloat16")})


SHOWN = ("style_pass", "fact_recall", "wrong_person", "trap_rate", "faithful", "chrf")


def summary_table(summary: dict[str, Any]) -> str:
    """The main rates of every system, one line each, for the terminal (report.md has them all, with intervals)."""
    shown = [m for m in SHOWN if any(m in s["overall"] for s in summary["systems"].values())]
    width = max(len(name) for name in summary["systems"])
    lines = [f"{'system':<{width}}  " + "  ".join(f"{m:>12}" for m in shown)]
    for name, system in summary["systems"].items():
        cells = [system["overall"].get(m, {}).get("value") for m in shown]
        lines.append(f"{name:<{width}}  " + "  ".join(f"{'-' if v is None else f'{v:.3f}':>12}" for v in cells))
    return "\n".join(lines)


__all__ = ["WRITE_PROMPT", "baseline_diary", "evaluate", "read_predictions", "scored_system", "summary_table"]

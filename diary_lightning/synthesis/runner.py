"""The resumable run: which dialogues are left, asking the teacher, checking, retrying, writing, the summary."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diary_lightning.data.records import Dialogue
from diary_lightning.io.jsonl import JsonlAppender, OutputError, first_mismatch, fingerprint, open_for_resume
from diary_lightning.io.lock import JobLock
from diary_lightning.io.outputs import SYNTHESIS_REJECTS, SYNTHESIZED, Output, check_outputs, claim
from diary_lightning.synthesis.checks import CheckConfig, check_diary
from diary_lightning.synthesis.teacher import Reply, Request, Teacher, build_messages

log = logging.getLogger(__name__)


def parse_shard(shard: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n), 0 <= i < n."""
    try:
        index, count = (int(part) for part in shard.split("/"))
    except ValueError:
        raise ValueError(f"--shard {shard!r}: expected i/n, e.g. 0/4 (the first of four shards)") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {shard!r}: need 0 <= i < n")
    return index, count


def shard_of(dialogue_id: str, count: int) -> int:
    """A stable hash of the id, so a dialogue lands in the same shard whatever the file order or machine."""
    return int.from_bytes(hashlib.blake2b(dialogue_id.encode("utf-8"), digest_size=8).digest(), "big") % count


def rejected_path(output: Path) -> Path:
    return output.with_name(output.name + ".rejected.jsonl") if output.suffix != ".jsonl" else \
        output.with_name(output.name[:-len(".jsonl")] + ".rejected.jsonl")


def synthesis_outputs(output: str | Path) -> list[Output]:
    """What a run writes: the kept diaries and the rejected ones, each only over a file synthesize wrote."""
    return [Output("--output", output, "file", SYNTHESIZED),
            Output("--output (its rejected file)", rejected_path(Path(output)), "file", SYNTHESIS_REJECTS)]


@dataclass
class Roles:
    """Whose diary it is and how the prompt names everyone."""

    writer: str | None
    speaker_labels: dict[str, str]
    writer_label: str
    writer_names: tuple[str, ...]


def dialogue_record(dialogue: Dialogue) -> list[dict[str, str]]:
    return [{"speaker": t.speaker, "text": t.text} for t in dialogue.turns]


def kept_record(dialogue: Dialogue, writer: str | None, diary: str, teacher: dict[str, Any], prompt: dict[str, str],
                attempt: int = 0) -> dict[str, Any]:
    """A line of the output: the dialogue, whose diary, the diary, and what made it (:func:`check_same_making`)."""
    return {"id": dialogue.id, "dialogue": dialogue_record(dialogue), "writer": writer, "summary": dialogue.summary,
            "diary": diary, "teacher": teacher, "prompt": prompt, "attempt": attempt}


class Synthesis:
    """One run over ``dialogues`` into ``output`` (and ``OUTPUT.rejected.jsonl``)."""

    def __init__(self, teacher: Teacher, output: str | Path, *, template: str, system: str, roles: Any,
                 checks: CheckConfig | None = None, retries: int = 0, shard: str = "0/1", progress: bool = True,
                 sync_every: float = 1.0) -> None:
        if retries < 0:
            raise ValueError(f"--retries {retries}: must be >= 0")
        self.teacher = teacher
        self.output = Path(output)
        self.rejected = rejected_path(self.output)
        self.template, self.system = template, system
        self.roles = roles
        """Dialogue -> :class:`Roles`."""
        self.checks = checks or CheckConfig()
        self.retries = retries
        self.shard = parse_shard(shard)
        self.progress = progress
        self.sync_every = sync_every
        self.instruction = template.format(dialogue="", summary="", writer="")
        self.counts: Counter = Counter()
        self.failed_checks: Counter = Counter()
        self.tokens = {"in": 0, "out": 0, "reported": False}

    def request(self, dialogue: Dialogue, attempt: int = 0) -> Request:
        roles = self.roles(dialogue)
        # The rules teacher reads no prompt: at 280,000 dialogues building them would be a tenth of its time.
        messages = build_messages(self.template, self.system, dialogue.turns, dialogue.summary or "",
                                  roles.writer_label, roles.speaker_labels) if getattr(self.teacher, "reads_prompt", True) else []
        return Request(dialogue.id, messages, dialogue.turns, dialogue.summary or "", roles.writer, roles.speaker_labels,
                       attempt, roles.writer_names)

    def run(self, dialogues: Sequence[Dialogue]) -> dict[str, Any]:
        start = time.perf_counter()
        check_outputs("synthesize", synthesis_outputs(self.output), {})
        self.output.parent.mkdir(parents=True, exist_ok=True)
        # One run per output: a second would write the same ids twice.
        lock = JobLock(self.output, "file", busy="Wait for it, or give each run its own --output (one per --shard)")
        lock.acquire()
        try:
            index, count = self.shard
            mine = [d for d in dialogues if count == 1 or shard_of(d.id, count) == index]
            # A rejected dialogue is done too: asking again gives the same answer (use --retries for more tries).
            self._teacher = self.teacher.describe()
            done = self._written_for(mine)
            todo = [d for d in mine if d.id not in done]
            self.counts["already_done"] = len(mine) - len(todo)
            self._by_id = {d.id: d for d in todo}
            self._kept = JsonlAppender(self.output, self.sync_every)
            self._rejects = JsonlAppender(self.rejected, self.sync_every)
            # Marked before the first line: what is under these names now is synthesize's to resume or repair
            # (an unmarked earlier output was checked line by line against this input first).
            claim(self.output, "synthesize")
            claim(self.rejected, "synthesize")
            self._bar = _progress(len(todo), self.progress)
            try:
                pending: Iterator[Request] = (self.request(d) for d in todo)
                while True:
                    self._again: list[Request] = []
                    self.teacher.generate(pending, self._on_reply)
                    if not self._again:
                        break
                    pending = iter(self._again)
            finally:
                self._bar.close()
                self._kept.close()
                self._rejects.close()
        finally:
            lock.release()
        wall = time.perf_counter() - start
        done_now = self.counts["kept"] + self.counts["rejected"]
        return {
            "output": str(self.output), "rejected_output": str(self.rejected), "shard": f"{index}/{count}",
            "dialogues": len(mine), "already_done": self.counts["already_done"],
            "kept": self.counts["kept"], "rejected": self.counts["rejected"],
            "rejected_by_check": dict(self.failed_checks.most_common()), "retried": self.counts["retried"],
            "failed": self.counts["failed"],
            "tokens_in": self.tokens["in"] if self.tokens["reported"] else None,
            "tokens_out": self.tokens["out"] if self.tokens["reported"] else None,
            "wall_s": round(wall, 3), "dialogues_per_s": round(done_now / wall, 2) if wall > 0 else None,
            "teacher": self._teacher,
        }

    def _written_for(self, mine: Sequence[Dialogue]) -> set[str]:
        """The ids already written (kept or rejected), after checking that each line was written for a dialogue
        of this input as it is now: a re-run on other data would otherwise keep diaries of other texts."""
        now = {d.id: fingerprint(d.turns, d.summary) for d in mine}
        by_id = {d.id: d for d in mine}
        done: set[str] = set()
        for path in (self.output, self.rejected):
            records = open_for_resume(path, "synthesize")
            written = [(record["id"], record.get("input") or (
                fingerprint(record["dialogue"], record.get("summary")) if isinstance(record.get("dialogue"), list)
                else None)) for record in records]
            mismatch = first_mismatch(written, now)
            if mismatch:
                raise OutputError(f"{path}: {mismatch} (--data.paths, --shard); this output belongs to another "
                                  "input: give this run its own --output, or move that file away to start over")
            check_same_making(path, records, self._teacher, {"system": self.system, "template": self.template},
                              lambda id_: self.roles(by_id[id_]).writer)
            done.update(id_ for id_, _ in written)
        return done

    def _on_reply(self, request: Request, reply: Reply) -> None:
        if reply.tokens_in is not None or reply.tokens_out is not None:
            self.tokens["reported"] = True
            self.tokens["in"] += reply.tokens_in or 0
            self.tokens["out"] += reply.tokens_out or 0
        if reply.error is not None:
            # Not written anywhere: the id stays missing, so the next run asks again.
            self.counts["failed"] += 1
            if self.counts["failed"] <= 5:
                log.warning("dialogue %s: the teacher failed: %s", request.id, reply.error)
            self._bar.update(1)
            return
        dialogue = self._by_id[request.id]
        failed = [reply.refused] if reply.refused else check_diary(reply, request, self.checks, self.instruction,
                                                                     request.writer_names)
        if not failed:
            self._kept.write(kept_record(dialogue, request.writer, reply.text.strip(), self._teacher,
                                         {"system": self.system, "template": self.template}, request.attempt))
            self.counts["kept"] += 1
        elif request.attempt < self.retries and not reply.refused:
            self.counts["retried"] += 1
            self._again.append(Request(**{**request.__dict__, "attempt": request.attempt + 1}))
            return
        else:
            self._rejects.write({"id": dialogue.id, "failed": failed, "diary": reply.text, "summary": dialogue.summary,
                                 "attempts": request.attempt + 1, "teacher": self._teacher,
                                 "input": fingerprint(dialogue.turns, dialogue.summary)})
            self.counts["rejected"] += 1
            self.failed_checks.update(failed)
        self._bar.update(1)


TEACHER_IDENTITY = ("backend", "model", "version")
"""What names a teacher in a record's ``teacher``; its sampling settings and server address may change on resume."""


def check_same_making(path: Path, records: Sequence[dict[str, Any]], teacher: dict[str, Any],
                      prompt: dict[str, Any], writer_of: Callable[[str], str | None]) -> None:
    """Refuse to continue ``path`` when a line already in it was made otherwise than this run makes its own: by
    another teacher (``teacher``, its :data:`TEACHER_IDENTITY`), with another prompt (system and template), or as
    another writer's diary (``writer_of`` an id, from ``data.writer``). One output holds one making of diaries; a
    mix would train on two teachers or two writers without a word. The one place this is decided."""
    mine = {key: teacher.get(key) for key in TEACHER_IDENTITY}
    for line, record in enumerate(records, 1):
        where = f"{path}, line {line} (id {record['id']!r})"
        then = record.get("teacher")
        if isinstance(then, dict) and {key: then.get(key) for key in TEACHER_IDENTITY} != mine:
            problem = (f"written by the teacher {_named(then)}, and this run asks {_named(teacher)} "
                       "(--teacher.backend, --teacher.model)")
        elif isinstance(record.get("prompt"), dict) and record["prompt"] != prompt:
            changed = " and ".join(key for key in ("system", "template") if record["prompt"].get(key) != prompt[key])
            problem = f"written with another prompt {changed} than this run's (--teacher.prompt, --teacher.system)"
        elif "writer" in record and record["writer"] != writer_of(record["id"]):
            problem = (f"written as {record['writer']!r}'s diary, and this run writes {writer_of(record['id'])!r}'s "
                       "(--data.writer)")
        else:
            continue
        raise OutputError(f"{where}: {problem}. One output holds the diaries of one teacher, prompt and writer: give "
                          "this run its own --output, or move that file away to start over.")


def _named(teacher: dict[str, Any]) -> str:
    return " ".join(str(teacher[key]) for key in TEACHER_IDENTITY if teacher.get(key) is not None)


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="dialogue", file=sys.stderr, disable=not enabled, dynamic_ncols=True,
                mininterval=0.5, smoothing=0.1)


def print_summary(summary: dict[str, Any]) -> None:
    print(json.dumps(summary, ensure_ascii=False, indent=1))

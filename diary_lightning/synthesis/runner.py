"""The resumable run: which dialogues are left, asking the teacher, checking, retrying, writing, the summary."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diary_lightning.data.clean import clean_lines
from diary_lightning.data.records import Dialogue
from diary_lightning.io.jsonl import JsonlAppender, OutputError, first_mismatch, fingerprint, open_for_resume
from diary_lightning.io.lock import JobLock
from diary_lightning.io.atomic import write_text
from diary_lightning.io.outputs import SYNTHESIS_MANIFEST, SYNTHESIS_REJECTS, SYNTHESIZED, Output, check_outputs, claim
from diary_lightning.synthesis.checks import MAX_DIARY_CHARS, CheckConfig, check_diary
from diary_lightning.synthesis.report import write_report
from diary_lightning.synthesis.teacher import Reply, Request, Teacher, fit_messages, instruction_of, prompt_hash

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
    return beside(output, "rejected.jsonl")


def beside(output: str | Path, suffix: str) -> Path:
    """``OUTPUT.suffix`` beside the output (``diaries.jsonl`` -> ``diaries.manifest.json``)."""
    output = Path(output)
    stem = output.name[:-len(".jsonl")] if output.suffix == ".jsonl" else output.name
    return output.with_name(f"{stem}.{suffix}")


def manifest_path(output: str | Path) -> Path:
    return beside(output, "manifest.json")


def synthesis_outputs(output: str | Path) -> list[Output]:
    """What a run writes: the kept diaries, the rejected ones and the manifest of its prompts, each only over a
    file synthesize wrote."""
    return [Output("--output", output, "file", SYNTHESIZED),
            Output("--output (its rejected file)", rejected_path(Path(output)), "file", SYNTHESIS_REJECTS),
            Output("--output (its manifest)", manifest_path(output), "file", SYNTHESIS_MANIFEST)]


def read_manifest(output: str | Path) -> dict[str, Any]:
    path = manifest_path(output)
    if not path.exists():
        return {"prompts": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise OutputError(f"{path}: not JSON ({err}); it is synthesize's record of the prompts of {output}: move it "
                          "away to start over") from None
    manifest.setdefault("prompts", {})
    return manifest


def record_prompt(output: str | Path, system: str, template: str, teacher: dict[str, Any]) -> str:
    """Add this run's prompt to the manifest beside ``output`` (once, whatever the number of lines) and return
    the hash each of its lines carries. A resumed run with another prompt is refused before this
    (:func:`check_same_making`); the manifest of several runs' outputs joined may hold several."""
    manifest = read_manifest(output)
    key = prompt_hash(system, template)
    if key not in manifest["prompts"]:
        manifest["prompts"][key] = {"system": system, "template": template, "teacher": teacher}
        write_text(manifest_path(output), json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
    return key


def prompt_of(record: dict[str, Any], output: str | Path) -> dict[str, str] | None:
    """The system message and template a kept line was written with: the manifest's entry for its hash, or the
    prompt itself on a line of an older output, which carried it whole."""
    prompt = record.get("prompt")
    if isinstance(prompt, dict) or prompt is None:
        return prompt
    entry = read_manifest(output)["prompts"].get(prompt)
    return None if entry is None else {"system": entry["system"], "template": entry["template"]}


@dataclass
class Roles:
    """Whose diary it is and how the prompt names everyone."""

    writer: str | None
    speaker_labels: dict[str, str]
    writer_label: str
    writer_names: tuple[str, ...]


def dialogue_record(dialogue: Dialogue) -> list[dict[str, str]]:
    return [{"speaker": t.speaker, "text": t.text} for t in dialogue.turns]


def kept_record(dialogue: Dialogue, writer: str | None, diary: str, teacher: dict[str, Any], prompt: str | None,
                attempt: int = 0, turns_cut: int = 0) -> dict[str, Any]:
    """A line of the output: the dialogue, whose diary, the diary, and what made it (the prompt by its hash in the
    manifest, :func:`record_prompt`; :func:`check_same_making`)."""
    return {"id": dialogue.id, "dialogue": dialogue_record(dialogue), "writer": writer, "summary": dialogue.summary,
            "diary": diary, "teacher": teacher, "prompt": prompt, "attempt": attempt,
            **({"turns_cut": turns_cut} if turns_cut else {})}


class Synthesis:
    """One run over ``dialogues`` into ``output`` (and ``OUTPUT.rejected.jsonl``)."""

    def __init__(self, teacher: Teacher, output: str | Path, *, template: str, system: str, roles: Any,
                 checks: CheckConfig | None = None, retries: int = 0, shard: str = "0/1", progress: bool = True,
                 sync_every: float = 1.0, report: bool = True) -> None:
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
        self.report = report
        """Write OUTPUT.report.md and its charts at the end (:mod:`diary_lightning.synthesis.report`)."""
        self.instruction = instruction_of(template)
        self.counts: Counter = Counter()
        self.failed_checks: Counter = Counter()
        self.tokens = {"in": 0, "out": 0, "reported": False}

    def request(self, dialogue: Dialogue, attempt: int = 0) -> Request:
        roles = self.roles(dialogue)
        # The rules teacher reads no prompt: at 280,000 dialogues building them would be a tenth of its time.
        messages, cut = [], 0
        if getattr(self.teacher, "reads_prompt", True):
            budget = getattr(self.teacher, "prompt_budget", None)
            messages, cut = fit_messages(self.template, self.system, dialogue.turns, dialogue.summary or "",
                                         roles.writer_label, roles.speaker_labels,
                                         budget.count if budget else None, budget.budget if budget else None)
        return Request(dialogue.id, messages, dialogue.turns, dialogue.summary or "", roles.writer, roles.speaker_labels,
                       attempt, roles.writer_names, cut)

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
            twins = duplicate_dialogues(mine)
            todo = [d for d in mine if d.id not in done]
            self.counts["already_done"] = len(mine) - len(todo)
            self._by_id = {d.id: d for d in todo}
            # The prompt once per run, in the manifest; each line names it by hash (3.6 KB a line otherwise).
            self._prompt = record_prompt(self.output, self.system, self.template, self._teacher) if getattr(
                self.teacher, "reads_prompt", True) else None
            self._kept = JsonlAppender(self.output, self.sync_every)
            self._rejects = JsonlAppender(self.rejected, self.sync_every)
            # Marked before the first line: what is under these names now is synthesize's to resume or repair
            # (an unmarked earlier output was checked line by line against this input first).
            claim(self.output, "synthesize")
            claim(self.rejected, "synthesize")
            self._bar = _progress(len(todo), self.progress)
            try:
                # The same chat twice (in two files, or twice in one): one diary, the other copy recorded as a
                # duplicate, so that training does not see it twice.
                for dialogue in (d for d in todo if d.id in twins):
                    self._reject(dialogue, ["duplicate_dialogue"], None, 1, same_as=twins[dialogue.id])
                    self._bar.update(1)
                pending: Iterator[Request] = (self.request(d) for d in todo if d.id not in twins)
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
            report = write_report(self.output, self.rejected, mine) if self.report else None
        finally:
            lock.release()
        wall = time.perf_counter() - start
        if self.counts["timed_out"]:
            log.warning("the teacher (%s) gave no answer within --teacher.deadline for %d dialogue(s): they stay "
                        "missing for the next run; a slow or overloaded server (lower --teacher.concurrency) or a "
                        "deadline too short for it", ", ".join(f"{k} {v}" for k, v in self._teacher.items()
                                                                  if k in ("backend", "model", "base_url") and v),
                        self.counts["timed_out"])
        done_now = self.counts["kept"] + self.counts["rejected"]
        return {
            "output": str(self.output), "rejected_output": str(self.rejected), "shard": f"{index}/{count}",
            "dialogues": len(mine), "already_done": self.counts["already_done"],
            "kept": self.counts["kept"], "rejected": self.counts["rejected"],
            "rejected_by_check": dict(self.failed_checks.most_common()), "retried": self.counts["retried"],
            "failed": self.counts["failed"], "timed_out": self.counts["timed_out"],
            "prompts_cut": self.counts["prompts_cut"], "turns_cut": self.counts["turns_cut"],
            "tokens_in": self.tokens["in"] if self.tokens["reported"] else None,
            "tokens_out": self.tokens["out"] if self.tokens["reported"] else None,
            "wall_s": round(wall, 3), "dialogues_per_s": round(done_now / wall, 2) if wall > 0 else None,
            "teacher": self._teacher, "report": str(report) if report else None,
        }

    def _written_for(self, mine: Sequence[Dialogue]) -> set[str]:
        """The ids already written (kept or rejected), after checking that each line was written for a dialogue
        of this input as it is now: a re-run on other data would otherwise keep diaries of other texts."""
        now = {d.id: fingerprint(d.turns, d.summary) for d in mine}
        by_id = {d.id: d for d in mine}
        done: set[str] = set()
        self._diaries: dict[str, str] = {}
        for path in (self.output, self.rejected):
            records = list(open_for_resume(path, "synthesize"))
            written = [(record["id"], record.get("input") or (
                fingerprint(record["dialogue"], record.get("summary")) if isinstance(record.get("dialogue"), list)
                else None)) for record in records]
            if path == self.output:
                self._diaries.update((squeezed(r.get("diary") or ""), r["id"]) for r in records)
            mismatch = first_mismatch(written, now)
            if mismatch:
                raise OutputError(f"{path}: {mismatch} (--data.paths, --shard); this output belongs to another "
                                  "input: give this run its own --output, or move that file away to start over")
            reads_prompt = getattr(self.teacher, "reads_prompt", True)
            check_same_making(path, records, self._teacher,
                              prompt_hash(self.system, self.template) if reads_prompt else None,
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
            self.counts["timed_out"] += reply.timed_out
            if self.counts["failed"] <= 5:
                log.warning("dialogue %s: the teacher failed: %s", request.id, reply.error)
            self._bar.update(1)
            return
        dialogue = self._by_id[request.id]
        # Cut before cleaning: an answer of megabytes is rejected unread (checks.MAX_DIARY_CHARS).
        raw = reply.text or ""
        reply = dataclasses.replace(reply, text=clean_lines(raw[:MAX_DIARY_CHARS + 1]))
        if request.turns_cut and request.attempt == 0:
            self.counts["prompts_cut"] += 1
            self.counts["turns_cut"] += request.turns_cut
            if self.counts["prompts_cut"] <= 5:
                log.warning("dialogue %s: its %d oldest turns were left out of the prompt to fit the teacher's "
                            "context (--teacher.context_length)", request.id, request.turns_cut)
        failed = [reply.refused] if reply.refused else check_diary(reply, request, self.checks, self.instruction,
                                                                     request.writer_names)
        twin = self._diaries.get(squeezed(reply.text or "")) if not failed else None
        if twin is not None:
            # The same diary for two different chats teaches the model that it fits both: kept once.
            self._reject(dialogue, ["duplicate_diary"], reply.text, request.attempt + 1, same_as=twin)
            self._bar.update(1)
            return
        if not failed:
            self._diaries[squeezed(reply.text)] = dialogue.id
            self._kept.write(kept_record(dialogue, request.writer, reply.text.strip(), self._teacher, self._prompt,
                                         request.attempt, request.turns_cut))
            self.counts["kept"] += 1
        elif request.attempt < self.retries and not reply.refused:
            self.counts["retried"] += 1
            self._again.append(Request(**{**request.__dict__, "attempt": request.attempt + 1}))
            return
        else:
            self._reject(dialogue, failed, reply.text, request.attempt + 1, raw_chars=len(raw))
        self._bar.update(1)

    def _reject(self, dialogue: Dialogue, failed: list[str], diary: str | None, attempts: int,
                same_as: str | None = None, raw_chars: int = 0) -> None:
        # An answer over the limit is stored cut, with its length (raw_chars: the answer as the teacher sent it).
        self._rejects.write({"id": dialogue.id, "failed": failed,
                             "diary": diary[:MAX_DIARY_CHARS] if diary is not None else None,
                             **({"diary_chars": raw_chars} if raw_chars > MAX_DIARY_CHARS else {}),
                             "summary": dialogue.summary, "attempts": attempts, "teacher": self._teacher,
                             "input": fingerprint(dialogue.turns, dialogue.summary),
                             **({"same_as": same_as} if same_as else {})})
        self.counts["rejected"] += 1
        self.failed_checks.update(failed)


_NOT_TEXT = re.compile(r"[\W_]+")


def squeezed(text: str) -> str:
    """``text`` without spaces, punctuation or case: two texts that differ only there are the same text."""
    return _NOT_TEXT.sub("", text).lower()


def duplicate_dialogues(dialogues: Sequence[Dialogue]) -> dict[str, str]:
    """Dialogue id -> the id of an earlier dialogue with the same turns (whatever their speaker ids, spaces or
    punctuation): the same chat read from two files, or twice from one. The first in input order is kept, so the
    choice is the same on a resumed run."""
    first: dict[str, str] = {}
    twins: dict[str, str] = {}
    for dialogue in dialogues:
        key = "\n".join(squeezed(t.text) for t in dialogue.turns)
        if not key.strip():
            continue  # nothing but emoji and marks: no text to call the same
        if key in first and first[key] != dialogue.id:
            twins[dialogue.id] = first[key]
        else:
            first.setdefault(key, dialogue.id)
    return twins


TEACHER_IDENTITY = ("backend", "model", "version")
"""What names a teacher in a record's ``teacher``; its sampling settings and server address may change on resume."""


def check_same_making(path: Path, records: Sequence[dict[str, Any]], teacher: dict[str, Any],
                      prompt: str | None, writer_of: Callable[[str], str | None]) -> None:
    """Refuse to continue ``path`` when a line already in it was made otherwise than this run makes its own: by
    another teacher (``teacher``, its :data:`TEACHER_IDENTITY`), with another prompt (``prompt``: the
    :func:`~diary_lightning.synthesis.teacher.prompt_hash` of its system message and template; None for a teacher
    that reads none), or as another writer's diary (``writer_of`` an id, from ``data.writer``). One output holds
    one making of diaries; a mix would train on two teachers or two writers without a word. The one place this is
    decided."""
    mine = {key: teacher.get(key) for key in TEACHER_IDENTITY}
    for line, record in enumerate(records, 1):
        where = f"{path}, line {line} (id {record['id']!r})"
        then = record.get("teacher")
        written_with = record.get("prompt")
        if isinstance(written_with, dict):  # an older output carried the prompt whole
            written_with = prompt_hash(written_with.get("system", ""), written_with.get("template", ""))
        if isinstance(then, dict) and {key: then.get(key) for key in TEACHER_IDENTITY} != mine:
            problem = (f"written by the teacher {_named(then)}, and this run asks {_named(teacher)} "
                       "(--teacher.backend, --teacher.model)")
        elif prompt is not None and written_with is not None and written_with != prompt:
            problem = (f"written with another prompt (hash {written_with}; this run's is {prompt}) "
                       "(--teacher.prompt, --teacher.system)")
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

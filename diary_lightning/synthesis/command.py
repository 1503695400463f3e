"""``synthesize``: the data settings of ``fit``, a teacher, and the resumable run, behind one subcommand."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

from diary_lightning.data.records import Dialogue
from diary_lightning.data.roles import DEFAULT_BOTS, LabelScheme, choose_writer, role_labels
from diary_lightning.synthesis.checks import CheckConfig
from diary_lightning.io.outputs import check_outputs, data_inputs
from diary_lightning.synthesis.runner import Roles, Synthesis, print_summary, shard_of, synthesis_outputs
from diary_lightning.synthesis.teacher import BACKENDS, Teacher, TeacherConfig, resolve_prompt, resolve_system

log = logging.getLogger(__name__)


def roles_for(dialogue: Dialogue, bots: Sequence[str] = DEFAULT_BOTS, scheme: LabelScheme = LabelScheme()) -> Roles:
    """The dialogue's roles as training speaker_labels them: its writer (chosen by ``data.writer`` when the data module
    read it; else by the default rule) and the speaker_labels of everyone."""
    writer = dialogue.writer or choose_writer(dialogue, None, bots)[0]
    speaker_labels = role_labels([t.speaker for t in dialogue.turns], writer, bots, scheme)
    return Roles(writer, speaker_labels, scheme.writer, (writer,))


def read_for_synthesis(datamodule: Any, progress: bool = True) -> list[Dialogue]:
    """The dialogues ``fit`` would train on (every split: a diary is written for each), read with the same
    paths, format, fields, cleaning, writer, topics and invalid-record policy."""
    if not datamodule.hparams.paths:
        raise ValueError("synthesize needs data.paths (the dialogues with their reference summaries)")
    # The data module's own reader, so that every data setting it honours now or later applies here too.
    result = datamodule._read(datamodule.hparams.paths, require_summary=True, progress=progress)
    if result.skipped:
        log.info("synthesize: skipped %s", dict(result.skipped))
    return result.dialogues


def dry_run_prompts(datamodule: Any, teacher: TeacherConfig, shard: str, count: int, progress: bool) -> dict[str, Any]:
    """Print ``count`` prompts as the teacher would read them, and what the whole input would cost in its tokens
    (prompts, and diaries of the length each prompt asks for), without calling it."""
    from diary_lightning.synthesis.local import plain_chat, teacher_prompt_text, tokenizer_budget
    from diary_lightning.synthesis.teacher import diary_length, instruction_of

    template, system = resolve_prompt(teacher.prompt), resolve_system(teacher.system)
    budget = tokenizer_budget(teacher) if teacher.backend != "rules" or teacher.tokenizer else None
    dialogues = read_for_synthesis(datamodule, progress)
    roles = functools.partial(roles_for, bots=datamodule.bots, scheme=datamodule.label_scheme or LabelScheme())
    run = Synthesis(budget and _Counting(budget), "unused.jsonl", template=template, system=system, roles=roles,
                    shard=shard, progress=False)
    index, shards = run.shard
    mine = [d for d in dialogues if shards == 1 or shard_of(d.id, shards) == index]

    def render(messages: list[dict[str, str]]) -> str:
        return teacher_prompt_text(budget.tokenizer, messages) if budget else plain_chat(messages)

    def tokens(text: str) -> int:
        return len(budget.tokenizer(text, add_special_tokens=False)["input_ids"]) if budget else len(text)

    prompt_tokens, diary_tokens, cut = [], [], 0
    per_character = None
    for number, dialogue in enumerate(mine):
        request = run.request(dialogue)
        cut += bool(request.turns_cut)
        prompt_tokens.append(budget.count(request.messages) if budget else len(render(request.messages)))
        if number < count:
            print(f"===== prompt {number + 1} of {count}: {dialogue.id} ({prompt_tokens[-1]} "
                  f"{'tokens' if budget else 'characters'}{f', {request.turns_cut} oldest turns cut' if request.turns_cut else ''}) =====")
            print(render(request.messages))
        if per_character is None:
            # The teacher's tokens per character of Korean chat text, from the first dialogue: what a diary of
            # the asked-for length costs.
            text = "\n".join(t.text for t in dialogue.turns)
            per_character = tokens(text) / max(len(text), 1)
        sentences = [int(n) for n in diary_length(dialogue.turns).rstrip("문장").split("~")]
        # A diary sentence runs about 35 characters (the default prompt's examples: 33 to 38).
        diary_tokens.append(min(teacher.max_new_tokens, round(sum(sentences) / 2 * 35 * per_character)))
    fixed = tokens(render([{"role": "system", "content": system}] if system else []) + instruction_of(template))
    unit = "tokens" if budget else "characters"
    summary = {
        "dialogues": len(mine), "counted_in": f"the tokens of {budget.tokenizer.name_or_path}" if budget else
        "characters (no tokenizer: --teacher.tokenizer or a local --teacher.model counts tokens)",
        f"prompt_{unit}": sum(prompt_tokens),
        f"prompt_{unit}_mean": round(sum(prompt_tokens) / len(mine), 1) if mine else 0,
        f"prompt_{unit}_max": max(prompt_tokens, default=0),
        f"fixed_{unit}": fixed,
        f"expected_diary_{unit}": sum(diary_tokens),
        f"expected_diary_{unit}_mean": round(sum(diary_tokens) / len(mine), 1) if mine else 0,
        "context_budget": budget.budget if budget else None, "prompts_cut": cut,
        # Over the budget even with only the newest turn left: the system message and instruction alone are too
        # long for this teacher's context.
        "prompts_over_budget": sum(n > budget.budget for n in prompt_tokens) if budget and budget.budget else 0,
    }
    print_summary(summary)
    return summary


class _Counting:
    """What the dry run's requests need of a teacher: its token budget."""

    def __init__(self, budget: Any) -> None:
        self.prompt_budget = budget


def synthesize(datamodule: Any, output: str | None, teacher: TeacherConfig, checks: CheckConfig, retries: int,
               shard: str, progress: bool, checkpoints: Any = None, report: bool = True) -> dict[str, Any]:
    if not output:
        raise ValueError("synthesize needs --output (the JSONL file of diaries to write or complete)")
    # Before anything is read or repaired: a torn-line repair of a data file would cut its last record.
    check_outputs("synthesize", synthesis_outputs(output), {
        **data_inputs("the data --data.paths", datamodule.hparams.paths),
        "the teacher model": teacher.model if teacher.backend != "openai" else None,
        "the run's checkpoint folder": checkpoints})
    template = resolve_prompt(teacher.prompt)
    system = resolve_system(teacher.system)
    dialogues = read_for_synthesis(datamodule, progress)
    roles = functools.partial(roles_for, bots=datamodule.bots, scheme=datamodule.label_scheme or LabelScheme())
    run = Synthesis(None, output, template=template, system=system, roles=roles, checks=checks,
                    retries=retries, shard=shard, progress=progress, report=report)
    run.teacher = make_teacher(teacher)  # after every setting is checked: loading a model takes minutes
    try:
        summary = run.run(dialogues)
    finally:
        run.teacher.close()
    print_summary(summary)
    return summary


class SynthesizeCommand:
    """The ``synthesize`` subcommand, mixed into the CLI's trainer class (LightningCLI finds subcommands there)."""

    def synthesize(self, model: Any, datamodule: Any, teacher: TeacherConfig = TeacherConfig(),
                   checks: CheckConfig = CheckConfig(), retries: int = 0, shard: str = "0/1",
                   progress: bool = True, output: str | None = None, report: bool = True,
                   dry_run: int | None = None) -> dict[str, Any]:
        """Write the writer's diary for each dialogue of data.paths with a teacher, checked, into --output (JSONL).

        Args:
            teacher: The model (or rules) that writes the diaries.
            checks: What a diary must pass to be kept; the rest go to OUTPUT.rejected.jsonl.
            retries: Ask again this many times for a rejected diary (sampling at ``teacher.retry_temperature``).
            shard: ``i/n``: only the dialogues whose id hashes to shard i of n (several machines share the work).
            progress: Show a progress bar with the rate on stderr.
            report: Write OUTPUT.report.md and its charts (kept and rejected by reason, lengths, random triples).
            dry_run: Call no teacher and write nothing: print this many prompts as the teacher reads them, and
                the whole input's prompt and expected diary tokens (in ``--teacher.tokenizer``'s tokens, else the
                model's own for ``transformers``/``vllm``, else characters); 0 prints only the totals.
        """
        # A setting, the data, the key or the server is the user's to fix: TeacherError and OutputError are
        # UserErrors, reported by the CLI like every other (diary_lightning/errors.py).
        from diary_lightning.training.checkpointing import checkpoint_folder

        if dry_run is not None:
            if dry_run < 0:
                raise ValueError(f"--dry_run {dry_run}: the number of prompts to print, 0 or more")
            return dry_run_prompts(datamodule, teacher, shard, dry_run, progress)
        return synthesize(datamodule, output, teacher, checks, retries, shard, progress,
                          checkpoint_folder(self.checkpoint_callbacks, self.default_root_dir), report)


def make_teacher(config: TeacherConfig) -> Teacher:
    """The teacher for ``config.backend``; heavy packages (openai, vllm, transformers) are imported only here."""
    if config.backend not in BACKENDS:
        raise ValueError(f"--teacher.backend {config.backend!r}: expected one of {', '.join(BACKENDS)}")
    if config.backend != "rules" and not config.model:
        raise ValueError(f"--teacher.backend {config.backend} needs --teacher.model (the model to ask)")
    if config.backend == "rules":
        from diary_lightning.synthesis.rules import RulesTeacher

        return RulesTeacher()
    if config.backend == "openai":
        from diary_lightning.synthesis.openai_teacher import OpenAITeacher

        return OpenAITeacher(config)
    if config.backend == "vllm":
        from diary_lightning.synthesis.local import VLLMTeacher

        return VLLMTeacher(config)
    from diary_lightning.synthesis.local import TransformersTeacher

    return TransformersTeacher(config)

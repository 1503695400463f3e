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
from diary_lightning.synthesis.runner import Roles, Synthesis, print_summary, synthesis_outputs
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


def synthesize(datamodule: Any, output: str | None, teacher: TeacherConfig, checks: CheckConfig, retries: int,
               shard: str, progress: bool, checkpoints: Any = None) -> dict[str, Any]:
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
    roles = functools.partial(roles_for, bots=datamodule.prompt_format.bots,
                              scheme=datamodule.prompt_format.label_scheme or LabelScheme())
    run = Synthesis(None, output, template=template, system=system, roles=roles, checks=checks,
                    retries=retries, shard=shard, progress=progress)
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
                   progress: bool = True, output: str | None = None) -> dict[str, Any]:
        """Write the writer's diary for each dialogue of data.paths with a teacher, checked, into --output (JSONL).

        Args:
            teacher: The model (or rules) that writes the diaries.
            checks: What a diary must pass to be kept; the rest go to OUTPUT.rejected.jsonl.
            retries: Ask again this many times for a rejected diary (sampling at ``teacher.retry_temperature``).
            shard: ``i/n``: only the dialogues whose id hashes to shard i of n (several machines share the work).
            progress: Show a progress bar with the rate on stderr.
        """
        # A setting, the data, the key or the server is the user's to fix: TeacherError and OutputError are
        # UserErrors, reported by the CLI like every other (diary_lightning/errors.py).
        from diary_lightning.training.checkpointing import checkpoint_folder

        return synthesize(datamodule, output, teacher, checks, retries, shard, progress,
                          checkpoint_folder(self.checkpoint_callbacks, self.default_root_dir))


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

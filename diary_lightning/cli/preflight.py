"""The command line checked before torch is imported: a newcomer's typo is answered in a second, not after the
half a minute torch, Lightning and the seed banner take.

What is checked needs no model and no Lightning import: the subcommand's name, every ``--group.key`` option and
every key of each ``--config`` file against the settings the classes declare (read from their source with
``ast``, so nothing heavy is imported), and predict's ``data.predict_path``. Every problem is reported at once,
each with the file it is in and the closest known name. What this cannot know (a value's type, a class path)
is left to the parser behind LightningCLI, which runs next; an option this module does not know of is only
reported when it is close to one it does, so a flag it has not heard of still reaches that parser.
"""

from __future__ import annotations

import ast
import difflib
import glob
import importlib.util
import os
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from diary_lightning.errors import ConfigError, check_config_syntax, config_files

PACKAGE = Path(__file__).resolve().parents[1]
PROG = "python -m diary_lightning"
# Keys of a group that name no setting of the class: jsonargparse's own.
PARSER_KEYS = {"class_path", "init_args", "dict_kwargs", "help"}


@lru_cache(maxsize=None)
def _tree(source: Path) -> ast.Module:
    # Parsed once: commands.py and Lightning's trainer.py are each asked for six methods.
    return ast.parse(source.read_text(encoding="utf-8"))


def _init_parameters(source: Path, class_name: str, method: str = "__init__") -> set[str]:
    """The parameter names of ``class_name.method`` in ``source``, or of the class's annotated fields when it
    is a dataclass without that method."""
    for node in ast.walk(_tree(source)):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == method:
                    args = item.args
                    return {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]} - {"self"}
            return {item.target.id for item in node.body
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)}
    return set()


def _lightning_file(*parts: str) -> Path | None:
    """A file of the installed Lightning, found without importing it (its import pulls in torch)."""
    spec = importlib.util.find_spec("lightning")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.is_file() else None


@lru_cache(maxsize=1)
def known_settings() -> dict[str, set[str]]:
    """Each option group's keys (``model``, ``data``, ``trainer``, synthesize's ``teacher`` and ``checks``)."""
    groups = {
        "model": _init_parameters(PACKAGE / "training" / "lora_module.py", "DiaryLoRAModule"),
        "data": _init_parameters(PACKAGE / "training" / "datamodule.py", "DiaryDataModule"),
        "teacher": _init_parameters(PACKAGE / "synthesis" / "teacher.py", "TeacherConfig"),
        "checks": _init_parameters(PACKAGE / "synthesis" / "checks.py", "CheckConfig"),
    }
    trainer = _lightning_file("pytorch", "trainer", "trainer.py")
    if trainer is not None:
        groups["trainer"] = _init_parameters(trainer, "Trainer")
    return {name: keys for name, keys in groups.items() if keys}


def _commands_source() -> str:
    return (PACKAGE / "cli" / "commands.py").read_text(encoding="utf-8")


PLAIN_SUBCOMMANDS = ("merge", "evaluate", "app")
"""The subcommands that are plain functions on the CLI's parser (``DiaryCLI.plain_subcommands``), named here so
that a typo is answered before torch is imported; their own options are the parser's to check
(tests/test_preflight.py holds the two lists together)."""


@lru_cache(maxsize=1)
def subcommands() -> tuple[str, ...]:
    """Lightning's four, the ones the CLI adds (as cli/commands.py names them) and the plain ones."""
    added = re.findall(r'"(\w+)": \{"model"', _commands_source())
    return tuple(dict.fromkeys(["fit", "validate", "test", "predict", *added, *PLAIN_SUBCOMMANDS]))


@lru_cache(maxsize=1)
def top_level_options() -> set[str]:
    """The options without a group: the CLI's own, LightningCLI's, and the subcommand methods' parameters."""
    commands = PACKAGE / "cli" / "commands.py"
    own = set(re.findall(r'add_argument\(\s*"--(\w+)"', commands.read_text(encoding="utf-8")))
    # DiaryTrainer's own methods: the subcommands it adds, and Lightning's four with this tool's options
    # (--output, --resume_predictions, --zero_shot, --resume_other_data).
    methods = set().union(*(_init_parameters(commands, "DiaryTrainer", method) for method in (
        "preprocess", "export", "fit", "validate", "test", "predict"))) | _init_parameters(
        PACKAGE / "synthesis" / "command.py", "SynthesizeCommand", "synthesize")
    trainer = _lightning_file("pytorch", "trainer", "trainer.py")
    if trainer is not None:
        for method in ("fit", "validate", "test", "predict"):
            methods |= _init_parameters(trainer, "Trainer", method)
    return own | methods | set(known_settings()) | {"config", "print_config", "seed_everything", "help",
                                                     "optimizer", "lr_scheduler"}


def _closest(name: str, candidates: Sequence[str]) -> str | None:
    found = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def _dotted_problem(group: str, key: str, spelled: str) -> str | None:
    """The problem with ``group.key`` (``spelled`` as the user wrote it), or None when it is known or unknowable."""
    keys = known_settings().get(group)
    if keys is None or key in keys or key in PARSER_KEYS:
        return None
    close = _closest(key, keys)
    prefix = "--" if spelled.startswith("--") else ""
    return f"unknown option {spelled}" + (f"; did you mean {prefix}{group}.{close}?" if close else "")


def command_line_problems(argv: Sequence[str]) -> list[str]:
    """What is wrong with the options on the command line, one message each."""
    problems = []
    for arg in argv:
        if not arg.startswith("--") or arg in ("--",):
            continue
        name = arg[2:].split("=", 1)[0].rstrip("+")  # --trainer.callbacks+=... appends
        group, _, rest = name.partition(".")
        if rest:
            problem = _dotted_problem(group, rest.split(".")[0], f"--{group}.{rest.split('.')[0]}")
            if problem is None and group not in known_settings() and group not in top_level_options():
                close = _closest(group, sorted(known_settings()))
                problem = f"unknown option --{name}" + (f"; did you mean --{close}.{rest}?" if close else "")
        elif name not in top_level_options():
            close = _closest(name, sorted(top_level_options()))
            # Unheard of and close to nothing: the real parser has the last word.
            problem = f"unknown option --{name}; did you mean --{close}?" if close else None
        else:
            problem = None
        if problem:
            problems.append(problem)
    return problems


def config_problems(path: str) -> list[str]:
    """What is wrong with the keys of the config file ``path``, each message naming the file."""
    import yaml  # plain Python, already a dependency of the parser

    if not os.path.isfile(path):
        return [f"--config {path}: no such file"]
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f)  # a syntax error was reported before (check_config_syntax)
    if not isinstance(config, dict):
        return []
    problems = []
    for top, value in config.items():
        top = str(top)
        if top in known_settings():
            if isinstance(value, dict) and not PARSER_KEYS & set(value):
                for key in value:
                    problem = _dotted_problem(top, str(key), f"{top}.{key}")
                    if problem:
                        problems.append(f"{path}: {problem.replace('unknown option', 'unknown key')}")
        elif top not in top_level_options():
            close = _closest(top, sorted(top_level_options()))
            problems.append(f"{path}: unknown key {top}" + (f"; did you mean {close}?" if close else ""))
    return problems


def predict_path_problems(argv: Sequence[str]) -> list[str]:
    """predict's input, where it is given and missing: named as the input, not as a data problem."""
    given, source = None, None
    for path in config_files(argv):
        if os.path.isfile(path):
            import yaml

            with open(path, encoding="utf-8") as f:
                config = yaml.safe_load(f)
            data = config.get("data") if isinstance(config, dict) else None
            if isinstance(data, dict) and data.get("predict_path"):
                given, source = str(data["predict_path"]), path
    for i, arg in enumerate(argv):
        if arg == "--data.predict_path" and i + 1 < len(argv):
            given, source = argv[i + 1], None
        elif arg.startswith("--data.predict_path="):
            given, source = arg.split("=", 1)[1], None
    if not given or glob.has_magic(given) or os.path.exists(given):
        return []
    where = f"{source}: data.predict_path" if source else "--data.predict_path"
    return [f"{where} {given}: no such file or folder (the chats to write diaries for; the working directory is "
            f"{os.getcwd()})"]


def check_command_line(argv: Sequence[str]) -> None:
    """Raise one ConfigError listing every problem this module can find in ``argv``, or return."""
    argv = list(argv)
    if not argv or argv[0].startswith("-"):
        return
    command, rest = argv[0], argv[1:]
    if command not in subcommands():
        close = _closest(command, subcommands())
        raise ConfigError(f"unknown subcommand {command!r}" + (f"; did you mean {close}?" if close else "")
                          + f" (subcommands: {', '.join(subcommands())}; {PROG} --help)")
    if command in PLAIN_SUBCOMMANDS or "--help" in rest or "-h" in rest:
        return
    check_config_syntax(rest)
    problems = command_line_problems(rest)
    for path in config_files(rest):
        problems += config_problems(path)
    if problems:
        problems[-1] += f" (all options: {PROG} {command} --help)"
    if command == "predict":
        problems += predict_path_problems(rest)
    if problems:
        raise ConfigError("\n".join(problems))


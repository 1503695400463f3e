"""``python -m diary_lightning``: the pre-parse checks first, which answer a typo before torch is imported, then
the command line proper."""

import os
import sys

PROGRESS_DELAY_S = "2"
"""Seconds before a tqdm bar (transformers' loading and saving, datasets' tokenizing) shows: one that is done
sooner (every one of the CPU demo's) is only noise, and a long one (loading a 10.8B base) still shows."""


def delay_progress_bars() -> None:
    """tqdm's own setting, through its environment (read once, when tqdm is first imported); the user's wins."""
    os.environ.setdefault("TQDM_DELAY", PROGRESS_DELAY_S)


def main() -> None:
    delay_progress_bars()
    from diary_lightning.cli.preflight import check_command_line
    from diary_lightning.errors import run_reporting_user_errors

    run_reporting_user_errors(check_command_line, sys.argv[1:])
    from diary_lightning.cli.commands import main as run

    run()


if __name__ == "__main__":
    main()

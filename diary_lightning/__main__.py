"""``python -m diary_lightning``: the pre-parse checks first, which answer a typo before torch is imported, then
the command line proper."""

import sys


def main() -> None:
    from diary_lightning.cli.preflight import check_command_line
    from diary_lightning.errors import run_reporting_user_errors

    run_reporting_user_errors(check_command_line, sys.argv[1:])
    from diary_lightning.cli.commands import main as run

    run()


if __name__ == "__main__":
    main()

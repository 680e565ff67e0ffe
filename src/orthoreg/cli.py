"""The `orthoreg` command.

Every subcommand is a Django management command of one of the apps (demo, serve, worker, synth,
createuser, instruments, score, imaging, report, ...), so `orthoreg X ...` runs command X and
`orthoreg manage X ...` passes anything through to Django's own commands.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orthoreg.settings")
    if args and args[0] == "manage":
        args = args[1:]
    if not args or args[0] in {"-h", "--help"}:
        args = ["help"]
    from django.core.management import execute_from_command_line

    execute_from_command_line(["orthoreg", *args])


if __name__ == "__main__":
    main()

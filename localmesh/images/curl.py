"""curlimages/curl's ``/entrypoint.sh``: when the first argument is an option or not a
program, it is curl's (``curl "$@"``); otherwise that program runs."""

from __future__ import annotations

import os
import shutil
import sys


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-") or shutil.which(argv[0]) is None:
        argv = ["curl", *argv]
    program = shutil.which(argv[0])
    if program is None:
        print(f"exec: {argv[0]}: not found", file=sys.stderr)
        return 127
    os.execv(program, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

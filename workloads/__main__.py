"""Entry point: ``python -m workloads composer|vp0|membersrvc|client``.

One image, one entry point, the program chosen by the first argument: the manifests say
``args: ["vp0"]`` and the local emulator runs the same command line.
"""

from __future__ import annotations

import importlib
import sys

from . import log
from .settings import ConfigError

PROGRAMS: dict[str, str] = {
    "composer": "workloads.composer",
    "vp0": "workloads.vp0",
    "membersrvc": "workloads.membersrvc",
    "client": "workloads.client",
}


def main(argv: list[str]) -> int:
    """Run the named program; exit 2 on a usage or configuration error."""
    if len(argv) != 1 or argv[0] not in PROGRAMS:
        print(f"usage: python -m workloads {{{'|'.join(PROGRAMS)}}}", file=sys.stderr)
        return 2
    name = argv[0]
    program = importlib.import_module(PROGRAMS[name])
    try:
        status: int = program.main()
    except ConfigError as error:
        log.problem(name, f"configuration error: {error}")
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

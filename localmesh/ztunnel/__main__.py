"""``ztunnel proxy ztunnel`` (the ztunnel chart's arguments), for localmesh's
``istio/ztunnel`` image; see agent.py."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] != ["proxy"]:
        print("usage: ztunnel proxy ztunnel", file=sys.stderr)
        return 2
    from localmesh.ztunnel.agent import run

    return run(args[1:])


if __name__ == "__main__":
    sys.exit(main())

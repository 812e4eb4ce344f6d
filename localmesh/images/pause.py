"""registry.k8s.io/pause: sleep until told to stop, then exit 0 (the real ``/pause`` does
the same on SIGINT or SIGTERM)."""

from __future__ import annotations

import signal
import sys


def main() -> int:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())

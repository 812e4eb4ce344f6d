"""The signals that stop localmesh, and a latch that records them instead of acting at once.

SIGTERM is how a CI runner (or ``timeout``, or ``localmesh down``) stops a job, SIGINT is
Ctrl-C, SIGHUP is the terminal going away: each stops localmesh cleanly, and a program
stopped by one exits with the shell's convention, 128 + the signal's number (143, 130,
129).

Python's defaults would not do: SIGTERM and SIGHUP end the process on the spot, and
SIGINT raises KeyboardInterrupt wherever the program happens to be (in the middle of
starting a child process, say). The latch only records the first signal; the program
looks at it where stopping is safe.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def exit_status(signum: int) -> int:
    """The conventional exit status of a program stopped by ``signum``."""
    return 128 + signum


class SignalLatch:
    """While active (a ``with`` block), the first stop signal is recorded in ``signum``;
    later ones are ignored. The previous handlers come back at the end of the block."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum

    def __enter__(self) -> SignalLatch:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._record)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

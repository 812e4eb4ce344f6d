"""Process lifecycle: run until SIGTERM/SIGINT, then stop everything quickly and exit 0.

Kubernetes sends SIGTERM and waits ``terminationGracePeriodSeconds`` (5 s in our
manifests) before SIGKILL; the local emulator does the same with a shorter fuse. A prompt,
clean exit keeps namespace teardown fast and makes exit code 0 the normal outcome, so a
non-zero exit in a failure bundle always means something went wrong.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from . import log


class Lifecycle:
    """Signal handling plus an ordered list of closers run on the way out.

    Create it first thing in ``main`` (signal handlers can only be installed from the
    main thread, and a SIGTERM that arrives before installation would kill the process
    with a non-zero status).
    """

    def __init__(self, program: str) -> None:
        self.program = program
        self.stopping = threading.Event()
        self._closers: list[tuple[str, Callable[[], None]]] = []
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self.stopping.is_set():
            log.info(self.program, f"received {signal.Signals(signum).name}, stopping")
        self.stopping.set()

    def on_stop(self, what: str, closer: Callable[[], None]) -> None:
        """Register ``closer``; closers run in reverse registration order."""
        self._closers.append((what, closer))

    def run(self) -> int:
        """Block until a stop signal, run the closers and return the exit status (0)."""
        while not self.stopping.wait(1.0):
            pass
        started = time.monotonic()
        for what, closer in reversed(self._closers):
            try:
                closer()
            except Exception as error:  # noqa: BLE001 - keep closing the rest
                log.problem(self.program, f"stopping {what} failed: {type(error).__name__}")
        log.info(self.program, f"stopped in {(time.monotonic() - started) * 1000:.0f}ms")
        return 0

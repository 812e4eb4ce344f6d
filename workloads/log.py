"""One-line log records on stdout (events, access lines) and stderr (problems).

Pod logs are the failure bundle's first evidence, and the local emulator captures each
stream into a file, so every record is one flushed line: no interleaving between the
server's threads, and nothing stuck in a pipe buffer when the pod is killed.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

_lock = threading.Lock()


def _stamp() -> str:
    now = time.time()
    millis = int(now * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{millis:03d}Z"


def _write(stream: TextIO, program: str, message: str) -> None:
    line = f"{_stamp()} {program} {message}".replace("\n", "\\n") + "\n"
    with _lock:
        stream.write(line)
        stream.flush()


def info(program: str, message: str) -> None:
    """Record an event or an access line on stdout."""
    _write(sys.stdout, program, message)


def problem(program: str, message: str) -> None:
    """Record a failure on stderr, where operators and the failure bundle look first."""
    _write(sys.stderr, program, message)

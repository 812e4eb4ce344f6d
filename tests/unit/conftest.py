"""tests/unit runs in-process: no subprocess, no server, no localmesh.

The folder's name is a promise (fast, no machine state, runs anywhere, including the
lowest-versions job): a test that starts a process or listens on a socket fails here and
belongs in tests/integration, tests/localmesh or tests/e2e.
"""

from __future__ import annotations

import socket
import subprocess
from typing import NoReturn

import pytest


def _refuse(what: str) -> NoReturn:
    raise AssertionError(f"tests/unit runs in-process, and this test {what}: move it to "
                         "tests/integration (or tests/localmesh, tests/e2e)")


@pytest.fixture(autouse=True)
def _in_process_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def popen(self: subprocess.Popen, *args: object, **kwargs: object) -> NoReturn:
        _refuse(f"starts a process ({args[0] if args else kwargs.get('args')!r})")

    def listen(self: socket.socket, *args: object) -> NoReturn:
        _refuse(f"listens on {self.getsockname()}")

    monkeypatch.setattr(subprocess.Popen, "__init__", popen)
    monkeypatch.setattr(socket.socket, "listen", listen)

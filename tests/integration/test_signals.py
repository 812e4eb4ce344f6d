"""SIGTERM stops a run even when the KeyboardInterrupt its handler raises is lost.

Python runs a signal handler wherever the main thread is; raised inside a ``__del__`` or
a library's broad ``except``, the exception goes nowhere. A tiny project loads the suite's
lifecycle plugin (which installs the handler), swallows the interrupt on purpose, and must
still stop before its next test, with the shell's status for SIGTERM (143).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import child_env

CONFTEST = ('pytest_plugins = ["fixtures.plugins.options", "fixtures.plugins.scheduling", '
            '"fixtures.plugins.lifecycle"]\n')

TESTS = '''\
import os
import signal
from pathlib import Path


def test_first():
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs at the next bytecode boundary
            pass
    except BaseException:  # noqa: BLE001 - what a careless library does
        pass
    Path("first.txt").write_text("ran")


def test_second():
    Path("second.txt").write_text("ran")
'''


def test_a_swallowed_sigterm_still_stops_the_run(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_signalled.py").write_text(TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-p", "no:xdist",
         f"--artifacts={tmp_path / 'artifacts'}", "test_signalled.py"],
        cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=60)
    out = result.stdout + result.stderr
    assert (tmp_path / "first.txt").exists(), out
    assert not (tmp_path / "second.txt").exists(), f"the run went on after SIGTERM:\n{out}"
    assert result.returncode == 143, out
    assert "Interrupted: signal 15 received" in out, out

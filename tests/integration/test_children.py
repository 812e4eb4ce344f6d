"""Child processes stop the way a CI runner stops a job (meshgate.children).

A real parent process (the way ``meshgate run`` runs pytest) runs a real child; the test
signals the parent's PID only, as a CI runner does, and checks what the child was told,
the parent's exit status, and that no child is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meshgate import children

REPO = Path(__file__).resolve().parents[2]

CHILD = '''\
import signal, sys, time
from pathlib import Path
out = Path(sys.argv[1])
ignore = sys.argv[2] == "ignore"
def on_signal(signum, frame):
    out.write_text(f"signal {signum}")
    if not ignore:
        raise SystemExit(0)
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, on_signal)
(out.parent / "child.pid").write_text(str(__import__("os").getpid()))
for _ in range(600):
    time.sleep(0.05)
'''

PARENT = '''\
import sys
from meshgate import children
grace = float(sys.argv[3])
code = children.run([sys.executable, sys.argv[1], sys.argv[2], sys.argv[4]], grace=grace)
raise SystemExit(code)
'''


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def _wait_for(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _start(tmp_path: Path, *, ignore: bool, grace: float = 30.0) -> subprocess.Popen[str]:
    (tmp_path / "child.py").write_text(CHILD)
    (tmp_path / "parent.py").write_text(PARENT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen(
        [sys.executable, str(tmp_path / "parent.py"), str(tmp_path / "child.py"),
         str(tmp_path / "said"), str(grace), "ignore" if ignore else "obey"],
        env=env, text=True)
    _wait_for(tmp_path / "child.pid")
    return parent


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_to_the_parent_reaches_the_child_and_sets_the_status(
        tmp_path: Path, sig: signal.Signals) -> None:
    parent = _start(tmp_path, ignore=False)
    parent.send_signal(sig)
    assert parent.wait(timeout=20) == 128 + sig
    assert (tmp_path / "said").read_text() == f"signal {int(sig)}"
    assert not _alive(int((tmp_path / "child.pid").read_text()))


def test_a_second_signal_kills_a_child_that_does_not_stop(tmp_path: Path) -> None:
    parent = _start(tmp_path, ignore=True)
    parent.send_signal(signal.SIGTERM)
    _wait_for(tmp_path / "said")
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=20) == 143
    assert not _alive(int((tmp_path / "child.pid").read_text()))


def test_a_child_that_outlives_the_grace_period_is_killed(tmp_path: Path) -> None:
    parent = _start(tmp_path, ignore=True, grace=0.5)
    parent.send_signal(signal.SIGINT)
    assert parent.wait(timeout=20) == 130
    assert not _alive(int((tmp_path / "child.pid").read_text()))


def test_a_child_dies_with_a_killed_parent(tmp_path: Path) -> None:
    if children.SETPRIV is None:
        pytest.skip("util-linux's setpriv is not installed: the child cannot be told to "
                    "die with its parent")
    parent = _start(tmp_path, ignore=False)
    parent.kill()
    parent.wait(timeout=20)
    _wait_for(tmp_path / "said")
    assert (tmp_path / "said").read_text() == f"signal {int(signal.SIGTERM)}"


def test_run_captured_is_subprocess_run_with_stdin_and_a_bound() -> None:
    done = children.run_captured([sys.executable, "-c", "import sys; "
                                  "print(sys.stdin.read().upper()); "
                                  "print('err', file=sys.stderr); raise SystemExit(4)"],
                                 input="kubectl apply", timeout=20)
    assert (done.returncode, done.stdout, done.stderr) == (4, "KUBECTL APPLY\n", "err\n")
    with pytest.raises(subprocess.TimeoutExpired):
        children.run_captured([sys.executable, "-c", "import time; time.sleep(30)"],
                              timeout=0.5, grace=5)

"""Interrupting a run leaves nothing behind: no process, no listening port, no namespace,
no temporary folder; and the next run starts cleanly.

Each test starts the suite as a user or a CI runner would — through each documented entry
point: ``pytest steps`` (what ``./dev acceptance`` execs), ``./dev acceptance``,
``meshgate run``, ``meshgate bench``, ``meshgate soak`` — interrupts it in the middle of
a scenario by signalling the PID it started (SIGINT as Ctrl-C sends it, SIGTERM as a CI
cancelling the job, SIGHUP as a closed terminal, ``timeout``; SIGKILL of an xdist worker),
then looks at the exit status, the process table, the sockets and the temporary folders.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from localmesh.network import LOCK_DIR
from tests.support import (
    REPO,
    StopWaiting,
    child_env,
    descendants,
    listening_ports,
    needs_prometheus,
    poll,
    process_table,
)

pytestmark = needs_prometheus
# The runs' id, this process's own: another pytest on the machine running these tests
# (another worktree's) must not see its discovery caches as this one's leftovers.
RUN_ID = f"intr{secrets.token_hex(3)}"


def _of_run(state: str) -> list[str]:
    """Command lines of the processes that name this run's state folder."""
    return [p.command for p in process_table().values()
            if state in p.command and p.pid != os.getpid()]


SUITE_ARGS = ("-p", "no:cacheprovider", "-q", "--no-html-report")
MESHGATE = (sys.executable, "-m", "meshgate")
# How each entry point starts the suite on its own localmesh.
ENTRY_POINTS = {
    "pytest steps": (sys.executable, "-m", "pytest", "steps", *SUITE_ARGS, "--target",
                     "local"),
    "./dev acceptance": ("./dev", "acceptance", *SUITE_ARGS, "--target", "local"),
    "meshgate run": (*MESHGATE, "run", "--target", "local", "--", *SUITE_ARGS),
    "meshgate bench": (*MESHGATE, "bench", "--"),
    "meshgate soak": (*MESHGATE, "soak", "--runs", "3"),
}


def _start(tmp: Path, *extra: str, entry: str = "pytest steps",
           prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    """The suite in a subprocess; its output goes to a file (a pipe nobody reads while it
    runs would fill up and block the run)."""
    artifacts = (f"--artifacts={tmp / 'soak'}",) if entry == "meshgate soak" else \
        () if entry == "meshgate bench" else (f"--artifacts={tmp}",)
    cmd = [*prefix, *ENTRY_POINTS[entry], *artifacts, *extra]
    tmp.mkdir(parents=True, exist_ok=True)
    log = (tmp / "output.txt").open("w")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True,
                            env=child_env(MESHGATE_RUN_ID=RUN_ID))
    log.close()
    proc.output_path = tmp / "output.txt"  # type: ignore[attr-defined]
    return proc


def _output(proc: subprocess.Popen) -> str:
    return proc.output_path.read_text(errors="replace")  # type: ignore[attr-defined]


def _wait_for_pods(proc: subprocess.Popen, timeout: float = 180) -> dict:
    """Until the run's workloads are up (their Envoys exist), bounded; returns the run's
    localmesh instance.json (its loopback block and API port)."""

    def composer_envoy() -> str | None:
        if proc.poll() is not None:
            raise StopWaiting(f"the run ended before it could be interrupted: {_output(proc)}")
        table = process_table()
        mine = descendants(table, proc.pid)  # only this run's processes, not others'
        return next((table[p].command for p in mine
                     if "/envoy " in table[p].command and "_composer-" in table[p].command
                     and "meshgate-localmesh-" in table[p].command), None)

    try:
        envoy = poll(composer_envoy, timeout=timeout, interval=0.1,
                     what="the run's composer Envoy started")
    except StopWaiting:
        raise
    except AssertionError as exc:
        proc.kill()
        proc.wait(timeout=30)
        raise AssertionError(f"{exc}\nthe run's output:\n{_output(proc)[-3000:]}") from exc
    before, after = envoy.split("meshgate-localmesh-", 1)
    state = before.rsplit(" ", 1)[-1] + "meshgate-localmesh-" + after.split("/")[0]
    return json.loads((Path(state) / "instance.json").read_text())


def _wait_gone(proc: subprocess.Popen, timeout: float = 60) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        pytest.fail(f"the run did not exit within {timeout}s: {_output(proc)[-2000:]}")
    return _output(proc)


def _assert_clean(instance: dict) -> None:
    """Nothing of the run whose localmesh ``instance`` was is left: no process, no listening
    socket of its own, no temporary folder, no discovery cache."""
    state = Path(instance["kubeconfig"]).parent

    def no_process() -> bool:
        left = _of_run(state.name)
        assert left == [], f"processes of the run are still alive: {left[:3]}"
        return True

    poll(no_process, timeout=20, interval=0.1, what="the run's processes gone")
    # The run's own addresses: its API server's port and its loopback block. (Other
    # localmesh instances may run beside it; their sockets are not this run's.)
    api_port = int(instance["server"].rsplit(":", 1)[1])
    assert ("127.0.0.1", api_port) not in listening_ports(), \
        f"the run's API port {api_port} is still listening"
    fd = os.open(LOCK_DIR / f"{instance['block']}.lock", os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # Another localmesh (another run on this machine) has claimed the block since
            # this run released it: its sockets there are not this run's, whose processes
            # are all gone (above). The block is judged only while this test holds it.
            pass
        else:
            block = f"127.{instance['block']}."
            left = {(ip, port) for ip, port in listening_ports() if ip.startswith(block)}
            assert left == set(), f"listening sockets of the run left: {sorted(left)[:10]}"
    finally:
        os.close(fd)
    assert not state.exists(), f"the run's temporary folder {state} is left"
    caches = list(Path(tempfile.gettempdir()).glob(f"meshgate-discovery-{RUN_ID}-*"))
    assert caches == [], f"the run's discovery caches are left: {caches}"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_a_run_leaves_nothing(tmp_path: Path, sig: signal.Signals) -> None:
    proc = _start(tmp_path)
    instance = _wait_for_pods(proc)
    proc.send_signal(sig)
    out = _wait_gone(proc)
    assert proc.returncode == 128 + sig, out[-2000:]
    _assert_clean(instance)
    # And the next run starts cleanly.
    again = _start(tmp_path / "again", "-k", "composer and route and registered")
    instance = _wait_for_pods(again)
    out = _wait_gone(again, timeout=240)
    assert again.returncode == 0, out[-3000:]
    _assert_clean(instance)


def test_killed_xdist_worker_leaves_nothing(tmp_path: Path) -> None:
    proc = _start(tmp_path, "-n", "2")
    instance = _wait_for_pods(proc)
    workers = [p.pid for p in process_table().values() if p.ppid == proc.pid
               and p.pid not in _localmesh_pids(proc.pid)]
    assert workers, "no xdist worker found"
    os.kill(workers[0], signal.SIGKILL)
    out = _wait_gone(proc, timeout=240)
    # xdist notices the dead worker ("node down") and carries on without leaking it.
    assert "node down" in out, out[-2000:]
    _assert_clean(instance)
    # The scenario namespaces of the run are gone too: the surviving worker and the
    # controller cleaned up, and the killed worker's namespace went with localmesh.


def _localmesh_pids(parent: int) -> set[int]:
    """Children of ``parent`` that are localmesh (started with setpriv or python -m)."""
    return {p.pid for p in process_table().values()
            if p.ppid == parent and (" -m localmesh " in p.command
                                     or "setpriv" in p.command)}


@pytest.mark.parametrize(("entry", "sig"), [
    ("meshgate run", signal.SIGTERM),
    ("meshgate run", signal.SIGINT),
    ("meshgate run", signal.SIGHUP),
    ("./dev acceptance", signal.SIGTERM),
    ("meshgate bench", signal.SIGTERM),
    ("meshgate soak", signal.SIGINT),
], ids=lambda v: v.name if isinstance(v, signal.Signals) else v.replace(" ", "-"))
def test_every_entry_point_stops_on_a_signal_to_its_pid(tmp_path: Path, entry: str,
                                                        sig: signal.Signals) -> None:
    """The signal goes to the PID the runner started, and only there: the entry point
    must pass it on, wait for the cleanup and exit with the shell's status for it."""
    proc = _start(tmp_path, entry=entry)
    instance = _wait_for_pods(proc)
    proc.send_signal(sig)
    out = _wait_gone(proc)
    assert proc.returncode == 128 + sig, out[-2000:]
    _assert_clean(instance)


def _never_ready_manifests(tmp: Path) -> Path:
    """The workloads with vp0's readiness probe on a path it does not serve: the run waits
    for vp0 (for as long as --timeout-deploy says) and cannot finish before a signal."""
    out = tmp / "manifests"
    shutil.copytree(REPO / "manifests", out)
    vp0 = out / "vp0.yaml"
    vp0.write_text(vp0.read_text().replace("path: /healthz", "path: /never-ready", 1))
    return out


def test_timeout_stops_meshgate_run_and_leaves_nothing(tmp_path: Path) -> None:
    """``timeout 30 meshgate run``: timeout's SIGTERM stops the run, wherever it is then
    (here: waiting for vp0, which never becomes Ready); timeout says 124."""
    manifests = _never_ready_manifests(tmp_path)
    proc = _start(tmp_path, "--manifests", str(manifests), "--timeout-deploy", "600",
                  entry="meshgate run", prefix=("timeout", "30"))
    instance = _wait_for_pods(proc)
    out = _wait_gone(proc)
    assert proc.returncode == 124, out[-2000:]
    assert "KeyboardInterrupt: signal 15" in out, out[-2000:]
    _assert_clean(instance)

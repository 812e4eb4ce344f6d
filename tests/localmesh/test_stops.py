"""localmesh stops everything it started on SIGTERM, SIGINT and SIGHUP, and ``localmesh
down`` cleans up after a ``serve`` that was killed with SIGKILL.

Each test starts ``localmesh up`` or ``localmesh serve`` as a real subprocess, the way a
CI runner does, and signals the PID it started (never a process group of its choosing).
Before the signal it collects what localmesh had started — the process tree under that
PID and the members of the process groups recorded in the state directory's pid
registry — and afterwards it checks: the conventional exit status (128 + the signal),
none of those processes alive, nothing listening on the instance's loopback block (or
its API port), the block's lock not held by any of them, and no ``ready``,
``instance.json`` or ``pid`` file left. Every wait is a bounded poll.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kubernetes import client, config

from localmesh.network import LOCK_DIR
from tests.localmesh.conftest import busybox_pod
from tests.localmesh.test_kubelet import _group
from tests.support import descendants, listening_ports, poll, process_table

REPO = Path(__file__).resolve().parents[2]
LOCALMESH = (sys.executable, "-m", "localmesh")
STATE_FILES = ("ready", "instance.json", "pid")
needs_prometheus = pytest.mark.skipif(not Path("/usr/bin/prometheus").exists(),
                                      reason="Debian's prometheus is not installed "
                                             "(./dev setup)")
SIGNALS = [pytest.param(s, id=s.name) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)]


# -- what a localmesh started ----------------------------------------------------------------
def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/pid/stat), None if it is gone or a
    zombie: with it a recorded PID is told apart from a new process that reuses it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


@dataclass(frozen=True)
class Started:
    """The processes a localmesh had started (each with its start time), its block."""

    processes: frozenset[tuple[int, str]]
    block: int

    def alive(self) -> list[int]:
        return [pid for pid, started in self.processes if _start_time(pid) == started]


def _block_of(pid: int) -> int | None:
    """The loopback block whose lock file (localmesh/network.py) ``pid`` holds open."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(LOCK_DIR) + "/") and target.endswith(".lock"):
            return int(Path(target).stem)
    return None


def _registered_groups(state: Path) -> set[int]:
    pids = state / "pids"
    return {int(f.name) for f in pids.iterdir() if f.name.isdigit()} if pids.is_dir() else set()


def _started(root: int, serve: int, state: Path) -> Started:
    """Everything under ``root`` now, plus the members of the recorded process groups."""
    pids = {root} | descendants(process_table(), root)
    pids |= {p for g in _registered_groups(state) for p in _group(g)}
    block = _block_of(serve)
    assert block is not None, f"localmesh (pid {serve}) holds no loopback block lock"
    return Started(frozenset((p, t) for p in pids if (t := _start_time(p)) is not None), block)


def _serve_pid(root: int) -> int | None:
    """The ``localmesh serve`` process: ``root`` itself, or its descendant."""
    table = process_table()
    for pid in [root, *sorted(descendants(table, root))]:
        if pid in table and table[pid].command.startswith(" ".join((*LOCALMESH, "serve "))):
            return pid
    return None


def _has_program(root: int, name: str) -> bool:
    table = process_table()
    return any(Path(table[p].command.split(" ", 1)[0]).name == name
               for p in descendants(table, root) if p in table)


@dataclass
class Cleanup:
    """What a test started, stopped at its end if it is still running (the test failed):
    the localmesh commands by SIGTERM, then every process recorded in ``started`` by
    SIGKILL — by PID, with its start time checked."""

    commands: list[subprocess.Popen] = field(default_factory=list)
    started: list[Started] = field(default_factory=list)

    def stop(self) -> None:
        # Whatever a command has started so far, recorded before it is stopped: a test that
        # fails before it recorded ``started`` (a poll timed out on a loaded machine) would
        # otherwise leave ``up``'s serve running — serve is detached to outlive ``up``.
        table = process_table()
        below = frozenset((pid, started) for proc in self.commands if proc.poll() is None
                          for pid in descendants(table, proc.pid)
                          if (started := _start_time(pid)) is not None)
        self.started.append(Started(below, -1))
        for proc in self.commands:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        for started in self.started:
            for pid in started.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def cleanup() -> Iterator[Cleanup]:
    c = Cleanup()
    try:
        yield c
    finally:
        c.stop()


# -- checks ----------------------------------------------------------------------------------
def _assert_nothing_left(started: Started, state: Path, api_port: int | None = None) -> None:
    poll(lambda: not started.alive(), timeout=20,
         what=f"every process localmesh started to exit (alive: {started.alive()})")
    # Also those started after the snapshot: every one of them names the state folder.
    poll(lambda: not [p for p in process_table().values()
                      if str(state) in p.command and p.pid != os.getpid() and p.alive],
         timeout=20, what=f"no process left that names {state}")

    left = [name for name in STATE_FILES if (state / name).exists()]
    assert left == [], f"state files left in {state}: {left}"
    api = {("127.0.0.1", api_port)} & listening_ports() if api_port else set()
    assert api == set(), f"the API port is still listening: {api}"
    fd = os.open(LOCK_DIR / f"{started.block}.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        # Another localmesh on this machine has claimed the block since ours released it;
        # its sockets there are not ours to judge. It must not be one of ours.
        holders = {pid for pid in process_table() if _block_of(pid) == started.block}
        assert not holders & {pid for pid, _ in started.processes}, holders
        return
    try:
        # The block is free, and held by this test while it looks: nothing may listen
        # on it (a process localmesh started and lost track of would).
        block = f"127.{started.block}."
        listening = {(ip, port) for ip, port in listening_ports() if ip.startswith(block)}
        assert listening == set(), f"still listening on localmesh's block: {listening}"
    finally:
        os.close(fd)


def _run(args: list[str], log: Path, prefix: tuple[str, ...] = (),
         env: dict[str, str] | None = None) -> subprocess.Popen:
    """A localmesh command as a CI job runs it; its output in ``log``."""
    with log.open("w") as out:
        return subprocess.Popen([*prefix, *LOCALMESH, *args], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def _never_ready(tmp: Path) -> tuple[dict[str, str], Path]:
    """An environment whose ``prometheus`` never starts serving: the mesh cannot become
    Ready, so a test signals a localmesh that is still booting — deterministically, however
    loaded the machine is (racing a boot of a second or less is not)."""
    shim = tmp / "bin" / "prometheus"
    shim.parent.mkdir(parents=True, exist_ok=True)
    shim.write_text("#!/bin/sh\n# a Prometheus that never becomes ready\n"
                    "while :; do sleep 0.1; done\n")
    shim.chmod(0o755)
    return {**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"}, shim


def _runs(root: int, path: Path) -> bool:
    """Is a process under ``root`` running the program at ``path``?"""
    table = process_table()
    return any(str(path) in table[p].command for p in descendants(table, root) if p in table)


def _exit_status(proc: subprocess.Popen, log: Path, timeout: float = 60) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        pytest.fail(f"localmesh did not exit within {timeout}s:\n{log.read_text()[-3000:]}")


def _instance(state: Path, proc: subprocess.Popen, log: Path, timeout: float = 30) -> dict:
    """instance.json once localmesh is ready (failing early if it exits instead)."""
    def ready() -> dict | None:
        assert proc.poll() is None, f"localmesh exited: {log.read_text()[-3000:]}"
        if (state / "ready").exists():
            return json.loads((state / "instance.json").read_text())
        return None

    return poll(ready, timeout=timeout, what="localmesh ready")


def _sleeping_pod(kubeconfig: str, name: str, state: Path) -> int:
    """A pod whose shell forks ``sleep`` (two processes in its group); its group id."""
    api = config.new_client_from_config(config_file=kubeconfig)
    try:
        client.CoreV1Api(api).create_namespaced_pod("default",
                                                    busybox_pod(name, "sleep 300; echo x"))
    finally:
        api.close()
    return poll(lambda: next((g for g in _registered_groups(state)
                                    if len(_group(g)) == 2), None),
                      timeout=20, what="the pod's shell and its sleep running")


# -- serve -----------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", SIGNALS)
def test_serve_stops_everything_on_signal(tmp_path: Path, sig: signal.Signals,
                                          cleanup: Cleanup) -> None:
    state, log = tmp_path / "state", tmp_path / "serve.log"
    proc = _run(["serve", "--no-mesh", "--state-dir", str(state)], log)
    cleanup.commands.append(proc)
    info = _instance(state, proc, log)
    _sleeping_pod(info["kubeconfig"], "sleeper", state)
    started = _started(proc.pid, proc.pid, state)
    cleanup.started.append(started)
    os.kill(proc.pid, sig)
    assert _exit_status(proc, log) == 128 + sig, log.read_text()[-3000:]
    _assert_nothing_left(started, state, int(info["server"].rsplit(":", 1)[1]))


def test_serve_signalled_while_starting_stops_what_it_started(tmp_path: Path,
                                                              cleanup: Cleanup) -> None:
    """The signal comes while the mesh boots (Envoy and Prometheus running, not ready)."""
    state, log = tmp_path / "state", tmp_path / "serve.log"
    env, prometheus = _never_ready(tmp_path)
    proc = _run(["serve", "--state-dir", str(state)], log, env=env)
    cleanup.commands.append(proc)
    poll(lambda: proc.poll() is None and _has_program(proc.pid, "envoy")
         and _runs(proc.pid, prometheus), timeout=60, interval=0.02,
         what="Envoy and Prometheus started by localmesh")
    assert not (state / "ready").exists(), "localmesh was ready with a Prometheus that is not"
    started = _started(proc.pid, proc.pid, state)
    cleanup.started.append(started)
    os.kill(proc.pid, signal.SIGTERM)
    assert _exit_status(proc, log) == 143, log.read_text()[-3000:]
    assert "SIGTERM while starting" in log.read_text(), log.read_text()[-3000:]
    _assert_nothing_left(started, state)


def test_serve_under_timeout_stops_everything(tmp_path: Path, cleanup: Cleanup) -> None:
    """``timeout 5 localmesh serve``: timeout's SIGTERM after 5 s, as a CI step limit."""
    state, log = tmp_path / "state", tmp_path / "serve.log"
    proc = _run(["serve", "--no-mesh", "--state-dir", str(state)], log, prefix=("timeout", "5"))
    cleanup.commands.append(proc)
    info = _instance(state, proc, log, timeout=4)
    _sleeping_pod(info["kubeconfig"], "sleeper", state)
    serve = _serve_pid(proc.pid)
    assert serve is not None, "no localmesh serve under timeout"
    started = _started(proc.pid, serve, state)
    cleanup.started.append(started)
    assert proc.poll() is None, "localmesh ended before timeout signalled it"
    assert _exit_status(proc, log, timeout=30) == 124, log.read_text()[-3000:]
    assert "stopped (SIGTERM)" in log.read_text(), log.read_text()[-3000:]
    _assert_nothing_left(started, state, int(info["server"].rsplit(":", 1)[1]))


# -- up --------------------------------------------------------------------------------------
def test_up_signalled_while_waiting_stops_its_serve(tmp_path: Path, cleanup: Cleanup) -> None:
    """A CI job cancelled while ``localmesh up`` waits for the mesh to become ready."""
    state, log = tmp_path / "state", tmp_path / "up.log"
    env, prometheus = _never_ready(tmp_path)
    proc = _run(["up", "--state-dir", str(state)], log, env=env)
    cleanup.commands.append(proc)
    poll(lambda: proc.poll() is None and _has_program(proc.pid, "envoy")
         and _runs(proc.pid, prometheus), timeout=60, interval=0.02,
         what="Envoy and Prometheus started by the localmesh that up started")
    serve = _serve_pid(proc.pid)
    assert serve is not None and not (state / "ready").exists()
    started = _started(proc.pid, serve, state)
    cleanup.started.append(started)
    os.kill(proc.pid, signal.SIGTERM)
    assert _exit_status(proc, log) == 143, log.read_text()
    assert f"stopped the localmesh it had started (pid {serve})" in log.read_text()
    _assert_nothing_left(started, state)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["SIGINT", "SIGHUP"])
def test_up_signalled_at_once_stops_its_serve(tmp_path: Path, sig: signal.Signals,
                                              cleanup: Cleanup) -> None:
    """Ctrl-C (or a closed terminal) right after ``localmesh up`` started serve."""
    state, log = tmp_path / "state", tmp_path / "up.log"
    env, _ = _never_ready(tmp_path)
    proc = _run(["up", "--state-dir", str(state)], log, env=env)
    cleanup.commands.append(proc)
    serve = poll(lambda: _block_of(pid) and pid
                 if (pid := _serve_pid(proc.pid)) is not None else None,
                 timeout=30, interval=0.01, what="serve started, with its block")
    started = _started(proc.pid, serve, state)
    cleanup.started.append(started)
    os.kill(proc.pid, sig)
    assert _exit_status(proc, log) == 128 + sig, log.read_text()
    assert f"interrupted by {sig.name}" in log.read_text(), log.read_text()
    _assert_nothing_left(started, state)


# -- down ------------------------------------------------------------------------------------
def test_down_after_kill_9_of_serve_leaves_nothing(tmp_path: Path, cleanup: Cleanup) -> None:
    """serve and its watchdog are SIGKILLed (an OOM kill, say), so only the processes'
    parent-death signal runs: the pod's shell dies, the sleep it forked lives on. ``down``
    stops the recorded groups by their PIDs and removes the state files."""
    state, log = tmp_path / "state", tmp_path / "up.log"
    up = _run(["up", "--no-mesh", "--state-dir", str(state)], log)
    cleanup.commands.append(up)
    assert _exit_status(up, log) == 0, log.read_text()
    info = json.loads((state / "instance.json").read_text())
    serve = info["pid"]
    group = _sleeping_pod(info["kubeconfig"], "sleeper", state)
    started = _started(serve, serve, state)
    cleanup.started.append(started)
    table = process_table()
    watchdogs = [p for p, row in table.items()
                 if row.ppid == serve and "localmesh-watchdog" in row.command]
    assert len(watchdogs) == 1, f"no watchdog under serve: {watchdogs}"
    os.kill(watchdogs[0], signal.SIGKILL)
    os.kill(serve, signal.SIGKILL)
    poll(lambda: _start_time(serve) is None, what="serve gone")
    assert _group(group), "nothing of the pod outlived serve: down would have nothing to do"
    down = subprocess.run([*LOCALMESH, "down", "--state-dir", str(state)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert down.returncode == 0, down.stderr
    assert f"localmesh was not running (pid {serve} is gone)" in down.stdout, down.stdout
    assert f"pgid {group}" in down.stdout and "instance.json" in down.stdout, down.stdout
    _assert_nothing_left(started, state)
    again = subprocess.run([*LOCALMESH, "down", "--state-dir", str(state)], cwd=REPO,
                           capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0 and "is not running" in again.stdout, again.stdout

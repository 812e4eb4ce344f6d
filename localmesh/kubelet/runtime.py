"""Containers as process groups: start, watch, signal, and their logs on disk.

Each container is one process in its own session (so a signal reaches the whole group),
started with ``PR_SET_PDEATHSIG`` = SIGKILL so nothing outlives the localmesh process even
if it is killed with SIGKILL; the process groups are also recorded in the state directory
(the pid registry) so that the next ``localmesh serve``, or ``localmesh down``, can reap
any survivor (docs/localmesh.md, "Process hygiene").
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SETPRIV = shutil.which("setpriv")


def die_with_parent(argv: list[str], sig: str = "KILL") -> list[str]:
    """Prefix argv so the process gets ``sig`` when its parent dies (PR_SET_PDEATHSIG).

    util-linux's setpriv sets it and execs the program; a Python ``preexec_fn`` cannot be
    used because forking a process that runs gRPC threads and then running Python code in
    the child crashes intermittently (SIGSEGV) — gRPC's fork handlers are skipped.
    """
    if SETPRIV is None:
        return argv
    return [SETPRIV, "--pdeathsig", sig, "--", *argv]


@dataclass
class Process:
    """One running container process."""

    proc: asyncio.subprocess.Process
    log_path: Path
    started_at: str
    pgid: int
    waiter: asyncio.Task | None = None
    exit_code: int | None = None
    finished_at: str | None = None
    signalled: set[int] = field(default_factory=set)

    @property
    def container_id(self) -> str:
        """The status' ``containerID``: ``<runtime>://<id>``, here the process group."""
        return f"localmesh://{self.pgid}"

    def signal(self, sig: int) -> None:
        """Signal the container's whole process group."""
        try:
            os.killpg(self.pgid, sig)
            self.signalled.add(sig)
        except ProcessLookupError:
            pass

    def signal_main(self, sig: int) -> None:
        """Signal only the container's main process (its PID 1), as a runtime's stop does:
        a process it started (pilot-agent's Envoy) gets only what that process decides."""
        try:
            os.kill(self.pgid, sig)
            self.signalled.add(sig)
        except ProcessLookupError:
            pass


async def spawn(argv: list[str], env: dict[str, str], cwd: Path, log_path: Path,
                started_at: str) -> Process:
    """Start a container process; stdout and stderr both go to its log file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        proc = await asyncio.create_subprocess_exec(
            *die_with_parent(argv), env=env, cwd=str(cwd), stdin=asyncio.subprocess.DEVNULL,
            stdout=fd, stderr=fd, start_new_session=True,
        )
    finally:
        os.close(fd)
    return Process(proc, log_path, started_at, proc.pid)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# Waits for EOF on stdin — the localmesh process holds the only write end, so EOF means it
# has exited, however it died — then SIGKILLs every process group it recorded. Parent-death
# signals reach only a container's first process; this also catches what that process
# started (a shell's children), right away rather than at the next `localmesh up`.
_WATCHDOG = """
cat >/dev/null
for f in "$2"/*; do
  [ -f "$f" ] || continue
  [ "$(cat "$f" 2>/dev/null)" = "$1" ] || continue
  kill -KILL "-${f##*/}" 2>/dev/null
  rm -f "$f"
done
"""


def start_watchdog(pids_dir: Path) -> subprocess.Popen:
    """Start the watchdog for this process's recorded groups (see ``_WATCHDOG``)."""
    return subprocess.Popen(
        ["/bin/sh", "-c", _WATCHDOG, "localmesh-watchdog", str(os.getpid()), str(pids_dir)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True)


class PidRegistry:
    """Process groups started by this instance, on disk for reaping after a crash."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.mkdir(parents=True, exist_ok=True)

    def add(self, pgid: int) -> None:
        (self.path / str(pgid)).write_text(str(os.getpid()))

    def remove(self, pgid: int) -> None:
        try:
            (self.path / str(pgid)).unlink()
        except FileNotFoundError:
            pass

    def reap_leftovers(self) -> list[int]:
        """Kill groups recorded by a previous, dead instance; return them."""
        killed = []
        for f in self.path.iterdir():
            if not f.name.isdigit():
                continue
            pgid = int(f.name)
            try:
                owner = int(f.read_text() or "0")
            except ValueError:
                owner = 0
            if owner and owner != os.getpid() and pid_alive(owner):
                continue
            if group_alive(pgid):
                try:
                    os.killpg(pgid, signal.SIGKILL)
                    killed.append(pgid)
                except (ProcessLookupError, PermissionError):
                    pass
            f.unlink(missing_ok=True)
        return killed


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie: a SIGKILLed localmesh whose parent has not reaped it yet
    still answers kill(pid, 0), but its pods are orphans and must be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True

"""Child processes of meshgate's commands, stopped the way a CI runner stops a job.

A cancelled CI job, ``timeout`` and a deleted Kubernetes Job all send SIGTERM (or SIGINT,
SIGHUP) to the process they started — here ``meshgate run``, ``bench`` or ``soak`` — and
to nothing else. So every command that starts a child (pytest, a cluster's tools) runs it
through :func:`run`:

- the child gets its own process group, so a terminal's Ctrl-C reaches it once, through
  us, not twice;
- SIGINT, SIGTERM and SIGHUP received by us are forwarded to the child, and we wait for
  it (bounded by ``grace``) so that its own cleanup — namespaces, the local mesh — ends
  before we do;
- a second signal, or the grace running out, escalates: the child's whole process group
  gets SIGKILL, so an impatient user is never stuck;
- the child is told to die with us (``PR_SET_PDEATHSIG`` through util-linux's
  ``setpriv``, where it exists) should we be killed outright;
- after a signal, the exit status is the shell's convention, 128 + the signal number
  (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).

Stopping is by the PID we started (its process group), never by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DEFAULT_GRACE = 60.0
SLICE = 0.2  # seconds between checks of the grace period while waiting
SETPRIV = shutil.which("setpriv")


class ChildError(RuntimeError):
    """The child could not be started (the message says which program and why)."""


class Interrupted(Exception):
    """A forwarded signal stopped the work: raised once the child has exited (or at once
    where no child runs), so that the command's own cleanup runs before it exits with
    ``status``."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum
        self.status = exit_status(signum)


def exit_status(signum: int) -> int:
    """The shell's exit status for a process ended by ``signum``."""
    return 128 + signum


def dies_with_us(argv: Sequence[str]) -> list[str]:
    """Prefix ``argv`` so the child gets SIGTERM if this process dies without forwarding
    (SIGKILL). A Python ``preexec_fn`` would do the same but is unsafe in a process that
    runs threads; setpriv sets the flag and execs the program."""
    if SETPRIV is None:
        return list(argv)
    return [SETPRIV, "--pdeathsig", "TERM", "--", *argv]


@dataclass
class Child:
    """A running child in its own process group, and the signals forwarded to it."""

    process: subprocess.Popen[str]
    grace: float
    received: list[int] = field(default_factory=list)
    escalated: bool = False
    signalled_at: float | None = None

    def forward(self, signum: int) -> None:
        """First signal: pass it on. A second: kill the child's process group."""
        self.received.append(signum)
        if len(self.received) == 1:
            self._signal_group(signum)
        else:
            self.kill()

    def kill(self) -> None:
        self.escalated = True
        self._signal_group(signal.SIGKILL)

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def wait(self) -> int:
        """Wait for the child; once a signal was forwarded, at most ``grace`` seconds more
        before its process group is killed. Waits in slices, because a signal handler
        runs between them: a blocking wait would not notice the grace running out."""
        while True:
            try:
                return self.process.wait(timeout=SLICE)
            except subprocess.TimeoutExpired:
                self.check_grace()

    def check_grace(self) -> None:
        if self.signalled_at is None and self.received:
            self.signalled_at = time.monotonic()
        if (self.signalled_at is not None and not self.escalated
                and time.monotonic() - self.signalled_at > self.grace):
            self.kill()

    def terminate(self) -> None:
        """Ask the child to stop (a timeout of ours, not a signal we received)."""
        self._signal_group(signal.SIGTERM)
        if self.signalled_at is None:
            self.signalled_at = time.monotonic()

    @property
    def status(self) -> int:
        """The exit status to report: 128 + the first signal, else the child's own."""
        if self.received:
            return exit_status(self.received[0])
        return self.process.returncode


@contextmanager
def interruptible() -> Iterator[None]:
    """For a whole command: SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` where no
    child runs (between two runs of ``meshgate soak``, say), so its cleanup still runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupted(signum: int, _frame: object) -> None:
        raise Interrupted(signum)

    previous = {s: signal.getsignal(s) for s in FORWARDED}
    for s in FORWARDED:
        signal.signal(s, raise_interrupted)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def forwarding(child: Child) -> Iterator[None]:
    """Forward the signals to ``child`` while the block runs (main thread only: Python
    delivers signals there; elsewhere the block runs without forwarding)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in FORWARDED}
    for s in FORWARDED:
        signal.signal(s, lambda signum, _frame: child.forward(signum))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def start(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
          cwd: Path | None = None, stdout: IO[str] | int | None = None,
          stderr: IO[str] | int | None = None, stdin: IO[str] | int | None = None,
          grace: float = DEFAULT_GRACE, detached: bool = False) -> Child:
    """Start ``argv`` in its own process group, to die with us — or, ``detached``, in a
    session of its own that outlives us (a process a later command stops by its PID)."""
    try:
        if detached:
            process = subprocess.Popen(list(argv), env=dict(env) if env else None, cwd=cwd,
                                       stdin=subprocess.DEVNULL, stdout=stdout,
                                       stderr=stderr, text=True, start_new_session=True)
        else:
            process = subprocess.Popen(dies_with_us(argv), env=dict(env) if env else None,
                                       cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr,
                                       text=True, process_group=0)
    except OSError as error:
        raise ChildError(f"cannot start {argv[0]}: {error.strerror or error}") from None
    return Child(process, grace)


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
        cwd: Path | None = None, grace: float = DEFAULT_GRACE) -> int:
    """Run ``argv`` in the foreground with the signals forwarded; its exit status (or
    128 + the signal that stopped us)."""
    child = start(argv, env=env, cwd=cwd, grace=grace)
    with forwarding(child):
        child.wait()
    return child.status


def run_or_interrupt(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                     cwd: Path | None = None, grace: float = DEFAULT_GRACE) -> int:
    """:func:`run`, but a forwarded signal raises :class:`Interrupted` once the child has
    exited, so that a command of several steps does not go on to the next one."""
    child = start(argv, env=env, cwd=cwd, grace=grace)
    with forwarding(child):
        child.wait()
    if child.received:
        raise Interrupted(child.received[0])
    return child.status


def communicate(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                cwd: Path | None = None, timeout: float, grace: float = DEFAULT_GRACE,
                ) -> tuple[int, str, bool]:
    """Run ``argv`` with its output (stdout and stderr merged) captured and the signals
    forwarded, bounded by ``timeout`` (then asked to stop, and killed after ``grace``);
    (status, output, timed out)."""
    child = start(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                  stderr=subprocess.STDOUT, grace=grace)
    return collect(child, timeout)


def collect(child: Child, timeout: float, input: str | None = None,
            ) -> tuple[int, str, bool]:
    """Read a started child's output until it exits, with the signals forwarded and
    bounded by ``timeout``; (status, stdout, timed out). A forwarded signal raises
    :class:`Interrupted` once the child has exited."""
    stdout, _, timed_out = _communicate(child, timeout, input)
    return child.process.returncode, stdout, timed_out


def _communicate(child: Child, timeout: float, input: str | None,
                 ) -> tuple[str, str, bool]:
    deadline = time.monotonic() + timeout
    timed_out = False
    pending = input
    with forwarding(child):
        while True:
            try:
                # Retrying communicate after a timeout loses no output, but input may only
                # be given to the first call (subprocess docs).
                out, err = child.process.communicate(input=pending, timeout=SLICE)
                break
            except subprocess.TimeoutExpired:
                pending = None
                if not timed_out and time.monotonic() >= deadline:
                    timed_out = True
                    child.terminate()
                child.check_grace()
    if child.received:
        raise Interrupted(child.received[0])
    return out or "", err or "", timed_out


def run_captured(argv: Sequence[str], *, input: str | None = None,
                 env: Mapping[str, str] | None = None, timeout: float,
                 grace: float = 30.0, **_: object) -> subprocess.CompletedProcess[str]:
    """:func:`subprocess.run` with ``capture_output=True, text=True``, but with the
    signals forwarded: a drop-in runner for the commands that create and install a
    cluster (``kind create cluster`` must be told, not SIGKILLed, to stop). Raises
    :class:`subprocess.TimeoutExpired` after ``timeout`` (the child is stopped first)."""
    child = start(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                  stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                  grace=grace)
    out, err, timed_out = _communicate(child, timeout, input)
    if timed_out:
        raise subprocess.TimeoutExpired(list(argv), timeout, out, err)
    return subprocess.CompletedProcess(list(argv), child.process.returncode, out, err)

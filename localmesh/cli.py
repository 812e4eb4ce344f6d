"""``localmesh up | serve | down | status``: the embedded cluster's command line.

``up`` starts ``serve`` in the background (a new session, its output in the state
directory's ``localmesh.log``), waits until it is ready and prints where the kubeconfig
is; signalled while it waits, it stops the ``serve`` it started. ``down`` stops it by the
PID it recorded (never by name), also cleans up after a ``serve`` that was killed, and is
idempotent. The same is available to Python as :func:`launch` / :class:`Handle`, which
the suite's local target uses.

Exit statuses: 0 success; 1 could not start; 3 ``status`` found nothing running; after
SIGTERM, SIGINT or SIGHUP, 128 + the signal's number (143, 130, 129) once everything
started has stopped.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localmesh.istio.names import ISTIO_NAMESPACE
from localmesh.kubelet.podman import ContainerRegistry
from localmesh.kubelet.runtime import PidRegistry, die_with_parent, pid_alive
from localmesh.shape import Shape, ShapeError, from_arguments
from localmesh.shape import add_arguments as add_shape_arguments
from localmesh.signals import SignalLatch, exit_status

DEFAULT_STATE = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) \
    / "localmesh"
# What a running localmesh keeps in its state directory about itself: ``pid`` (written by
# whoever starts ``serve``, and by ``serve`` itself), ``instance.json`` (where it serves,
# written once started), ``ready`` and, with --api-faults token-expiry, the exec credential
# plugin's signing key ``credential-key``. Its pods' process groups are in ``pids/``.
STATE_FILES = ("ready", "instance.json", "pid", "credential-key")


class LaunchError(RuntimeError):
    """localmesh could not start; the message says why and what to do."""


class Interrupted(LaunchError):
    """A stop signal arrived while ``launch`` waited; what it had started is stopped."""

    def __init__(self, signum: int, pid: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}; stopped the "
                         f"localmesh it had started (pid {pid})")
        self.signum = signum


@dataclass
class Handle:
    """A running localmesh: where it is and how to stop it."""

    state_dir: Path
    kubeconfig: Path
    pid: int
    server: str
    boot_seconds: float

    def stop(self, timeout: float = 20.0) -> None:
        stop_pid(self.pid, timeout)
        clean_up(self.state_dir)


def _alive(pid: int) -> bool:
    """Alive and not a zombie (the kubelet's check, shared)."""
    return pid_alive(pid)


def _serves(pid: int, state_dir: Path) -> bool:
    """Is ``pid`` a ``localmesh serve`` of this state directory? A recorded PID can be
    reused by an unrelated process once localmesh is gone; that one is never signalled."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return _alive(pid)
    if "serve" not in argv or "--state-dir" not in argv:
        return False
    recorded = argv[argv.index("--state-dir") + 1:argv.index("--state-dir") + 2]
    if not recorded:
        return False
    try:  # a relative --state-dir is relative to the serve process's own directory
        where = Path(os.readlink(f"/proc/{pid}/cwd")) / recorded[0]
    except OSError:
        where = Path(recorded[0])
    return where.resolve() == state_dir.resolve()


def stop_pid(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM the serve process we started (it stops its pods), SIGKILL if it hangs."""
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)


def recorded_pid(state_dir: Path) -> int | None:
    try:
        return int((state_dir / "pid").read_text())
    except (OSError, ValueError):
        return None


def current(state_dir: Path) -> dict | None:
    """The running localmesh of ``state_dir`` (its instance.json and pid), or None."""
    pid = recorded_pid(state_dir)
    if pid is None or not _alive(pid) or not _serves(pid, state_dir):
        return None
    info = state_dir / "instance.json"
    data = json.loads(info.read_text()) if info.exists() else {}
    data["pid"] = pid
    return data


def clean_up(state_dir: Path) -> tuple[list[int], list[str]]:
    """After its serve process has gone: kill the process groups it recorded and left
    (by the PIDs recorded in ``pids/``, never by name) and remove its state files.
    Returns what it did: (process groups killed, files removed)."""
    reaped = PidRegistry(state_dir / "pids").reap_leftovers() \
        if (state_dir / "pids").is_dir() else []
    # --runtime podman: the containers it recorded, removed by ID (kubelet/podman.py).
    ContainerRegistry(state_dir / "containers").reap()
    removed = []
    for name in STATE_FILES:
        try:
            (state_dir / name).unlink()
        except FileNotFoundError:
            continue
        removed.append(name)
    return reaped, removed


def launch(state_dir: Path, kubeconfig: Path | None = None, *, mesh: bool = True,
           port: int = 0, timeout: float = 60.0, tied: bool = False,
           stop_requested: Callable[[], int | None] = lambda: None,
           shape: Shape | None = None) -> Handle:
    """Start ``localmesh serve`` in the background and wait until it is ready.

    ``tied`` (for a test run's own instance): localmesh gets SIGTERM when the launching
    process dies, however it dies, and then stops every pod it started.
    ``stop_requested`` is polled while waiting; a signal number from it stops the serve
    process started here and raises :class:`Interrupted`. Any other way out before ready
    (timeout, an exception such as KeyboardInterrupt) also stops it.
    """
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    running = current(state_dir)
    if running is not None:
        raise LaunchError(
            f"localmesh is already running from {state_dir} (pid {running['pid']}); run "
            f"`localmesh down --state-dir {state_dir}` first or choose another --state-dir")
    kubeconfig = (kubeconfig or state_dir / "kubeconfig").resolve()
    (state_dir / "ready").unlink(missing_ok=True)
    shape = (shape or Shape(mesh="sidecar" if mesh else "none")).check().seeded()
    cmd = [sys.executable, "-m", "localmesh", "serve", "--state-dir", str(state_dir),
           "--kubeconfig", str(kubeconfig), "--port", str(port), *shape.argv()]
    log = open(state_dir / "localmesh.log", "ab")
    t0 = time.monotonic()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if tied:
        cmd = die_with_parent(cmd, "TERM")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    log.close()
    try:
        (state_dir / "pid").write_text(str(proc.pid))
        return _wait_ready(proc, state_dir, kubeconfig, t0, timeout, stop_requested)
    except BaseException:
        stop_pid(proc.pid)
        clean_up(state_dir)
        raise


def _wait_ready(proc: subprocess.Popen, state_dir: Path, kubeconfig: Path, t0: float,
                timeout: float, stop_requested: Callable[[], int | None]) -> Handle:
    """Poll for the ready file until ``timeout`` seconds after ``t0``."""
    while time.monotonic() < t0 + timeout:
        signum = stop_requested()
        if signum is not None:
            raise Interrupted(signum, proc.pid)
        if (state_dir / "ready").exists():
            info = json.loads((state_dir / "instance.json").read_text())
            return Handle(state_dir, kubeconfig, proc.pid, info["server"],
                          time.monotonic() - t0)
        code = proc.poll()
        if code is not None:
            tail = (state_dir / "localmesh.log").read_text(errors="replace").strip()
            last = tail.splitlines()[-1] if tail else "(no output)"
            raise LaunchError(f"localmesh exited with code {code} while starting: {last} "
                              f"(full log: {state_dir / 'localmesh.log'})")
        time.sleep(0.01)
    raise LaunchError(f"localmesh did not become ready within {timeout:.0f}s; see "
                      f"{state_dir / 'localmesh.log'}")


# -- subcommands -------------------------------------------------------------------------
def _serve(args: argparse.Namespace) -> int:
    try:
        from_arguments(args)
    except ShapeError as exc:
        print(f"localmesh serve: {exc}", file=sys.stderr)
        return 1
    with SignalLatch() as latch:
        return _serve_latched(args, latch)


def _serve_latched(args: argparse.Namespace, latch: SignalLatch) -> int:
    import asyncio

    from localmesh.instance import Instance

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state = Path(args.state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    other = current(state)
    if other is not None and other["pid"] != os.getpid():
        print(f"localmesh: cannot start: localmesh is already running from {state} "
              f"(pid {other['pid']})", file=sys.stderr)
        return 1
    (state / "pid").write_text(str(os.getpid()))
    try:
        reaped = PidRegistry(state / "pids").reap_leftovers()
        if reaped:
            logging.getLogger("localmesh").warning(
                "reaped %d process group(s) left by a previous localmesh", len(reaped))
        kubeconfig = Path(args.kubeconfig).resolve() if args.kubeconfig \
            else state / "kubeconfig"
        inst = Instance(state, kubeconfig, port=args.port, shape=from_arguments(args))
        signum = asyncio.run(inst.run(latch))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"localmesh: cannot start: 127.0.0.1:{args.port} is already in use; "
                  "choose another --port, or omit --port to get a free one", file=sys.stderr)
        else:
            print(f"localmesh: cannot start: {exc}", file=sys.stderr)
        return 1
    finally:
        if recorded_pid(state) == os.getpid():
            (state / "pid").unlink(missing_ok=True)
    return exit_status(signum) if signum is not None else 0


def _up(args: argparse.Namespace) -> int:
    state = Path(args.state_dir)
    with SignalLatch() as latch:
        try:
            shape = from_arguments(args).seeded()
            h = launch(state, Path(args.kubeconfig) if args.kubeconfig else None,
                       port=args.port, stop_requested=lambda: latch.signum, shape=shape)
        except Interrupted as exc:
            print(f"localmesh up: {exc}", file=sys.stderr)
            return exit_status(exc.signum)
        except (LaunchError, ShapeError) as exc:
            print(f"localmesh up: {exc}", file=sys.stderr)
            return 1
        if latch.signum is not None:
            # The signal came as launch returned: up had not finished, so it still stops
            # what it started, as a signal a moment earlier would have.
            h.stop()
            print(f"localmesh up: {Interrupted(latch.signum, h.pid)}", file=sys.stderr)
            return exit_status(latch.signum)
    print(f"localmesh is ready in {h.boot_seconds:.2f}s at {h.server} "
          f"({shape.describe()})")
    info = current(state) or {}
    if info.get("mesh_not_ready"):
        print(f"warning: these {ISTIO_NAMESPACE} components are not ready: "
              f"{', '.join(info['mesh_not_ready'])} (kubectl -n {ISTIO_NAMESPACE} get pods; "
              "describe them for the reason)", file=sys.stderr)
    print(f"export KUBECONFIG={h.kubeconfig}")
    return 0


def _down(args: argparse.Namespace) -> int:
    state = Path(args.state_dir)
    pid = recorded_pid(state)
    info = current(state)
    if info is not None:
        stop_pid(info["pid"])
    reaped, removed = clean_up(state)
    left = []
    if reaped:
        left.append(f"{len(reaped)} process group(s) it left (pgid "
                    f"{', '.join(map(str, reaped))})")
    left += removed
    if info is not None:
        extra = f"; also removed {', '.join(left)}" if reaped else ""
        print(f"localmesh stopped (pid {info['pid']}){extra}")
    elif left:
        gone = f"pid {pid} is gone" if pid is not None else "no serve process recorded"
        print(f"localmesh was not running ({gone}); removed {', '.join(left)} "
              f"(state dir {state})")
    else:
        print(f"localmesh is not running (state dir {state})")
    return 0


def _status(args: argparse.Namespace) -> int:
    state = Path(args.state_dir)
    info = current(state)
    if args.json:
        print(json.dumps({"running": info is not None, "state_dir": str(state.resolve()),
                          **(info or {})}, indent=2))
        return 0 if info is not None else 3
    if info is None:
        print(f"localmesh is not running (state dir {state})")
        return 3
    print(f"localmesh is running: pid {info['pid']}, API {info.get('server')}, "
          f"kubeconfig {info.get('kubeconfig')}, loopback block 127.{info.get('block')}.0.0/16")
    for svc, note in (info.get("load_balancer_ports") or {}).items():
        print(f"  LoadBalancer {svc}: {note}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="localmesh", description="An embedded Kubernetes cluster with Istio, on "
        "loopback: the API on 127.0.0.1, pods as local processes, real Envoy sidecars and "
        "a real Prometheus.",
        epilog="Exit statuses: 0 success, 1 could not start, 3 `status` found nothing "
               "running; 128+N after signal N (SIGTERM 143, SIGINT 130, SIGHUP 129). "
               "See docs/localmesh.md.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    state_help = ("where the instance keeps its state, logs and kubeconfig "
                  f"(default {DEFAULT_STATE})")
    for name, summary in (
            ("up", "start localmesh in the background and wait until it is ready; prints "
                   "the KUBECONFIG to use"),
            ("serve", "run localmesh in the foreground until SIGTERM, SIGINT or SIGHUP")):
        s = sub.add_parser(name, help=summary, description=summary)
        s.add_argument("--state-dir", default=str(DEFAULT_STATE), help=state_help)
        s.add_argument("--kubeconfig", default=None,
                       help="where to write the kubeconfig (default: STATE_DIR/kubeconfig)")
        s.add_argument("--port", type=int, default=0,
                       help="the API server's port on 127.0.0.1 (default: a free one)")
        add_shape_arguments(s)
    down = sub.add_parser(
        "down", help="stop localmesh and remove what it left",
        description="Stop the localmesh of a state directory by the PID it recorded "
                    "(SIGTERM, then SIGKILL after 20 s); after one that was killed, stop "
                    "the process groups it recorded and remove its state files.")
    down.add_argument("--state-dir", default=str(DEFAULT_STATE), help=state_help)
    status = sub.add_parser(
        "status", help="say whether localmesh is running, and where",
        description="Say whether the localmesh of a state directory is running, and "
                    "where (exit 3 when it is not).")
    status.add_argument("--state-dir", default=str(DEFAULT_STATE), help=state_help)
    status.add_argument("--json", action="store_true",
                        help='print the instance as JSON ({"running": false, ...} when it '
                             "is not running)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"serve": _serve, "up": _up, "down": _down, "status": _status}
    return commands[args.cmd](args)

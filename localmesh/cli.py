"""``localmesh up | down | status | serve``.

``up`` starts ``serve`` in the background (a new session, its output in the state
directory's ``localmesh.log``), waits until it is ready and prints where the kubeconfig is.
``down`` stops it by the PID it recorded (never by name) and is idempotent. The same is
available to Python as :func:`launch` / :class:`Handle`, which the suite's local target uses.
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
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) \
    / "localmesh"


class LaunchError(RuntimeError):
    """localmesh could not start; the message says why and what to do."""


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
        for name in ("ready", "instance.json", "pid"):
            (self.state_dir / name).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """Alive and not a zombie (the kubelet's check, shared)."""
    from localmesh.kubelet.runtime import pid_alive

    return pid_alive(pid)


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


def current(state_dir: Path) -> dict | None:
    info = state_dir / "instance.json"
    pidfile = state_dir / "pid"
    if not pidfile.exists():
        return None
    try:
        pid = int(pidfile.read_text())
    except ValueError:
        return None
    if not _alive(pid):
        return None
    data = json.loads(info.read_text()) if info.exists() else {}
    data["pid"] = pid
    return data


def launch(state_dir: Path, kubeconfig: Path | None = None, *, mesh: bool = True,
           port: int = 0, timeout: float = 60.0, tied: bool = False) -> Handle:
    """Start ``localmesh serve`` in the background and wait until it is ready.

    ``tied`` (for a test run's own instance): localmesh gets SIGTERM when the launching
    process dies, however it dies, and then stops every pod it started.
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
    cmd = [sys.executable, "-m", "localmesh", "serve", "--state-dir", str(state_dir),
           "--kubeconfig", str(kubeconfig), "--port", str(port)]
    if not mesh:
        cmd.append("--no-mesh")
    log = open(state_dir / "localmesh.log", "ab")
    t0 = time.monotonic()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if tied:
        from localmesh.kubelet.runtime import die_with_parent

        cmd = die_with_parent(cmd, "TERM")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    log.close()
    (state_dir / "pid").write_text(str(proc.pid))
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        if (state_dir / "ready").exists():
            info = json.loads((state_dir / "instance.json").read_text())
            return Handle(state_dir, kubeconfig, proc.pid, info["server"],
                          time.monotonic() - t0)
        code = proc.poll()
        if code is not None:
            tail = (state_dir / "localmesh.log").read_text(errors="replace").strip()
            last = tail.splitlines()[-1] if tail else "(no output)"
            (state_dir / "pid").unlink(missing_ok=True)
            raise LaunchError(f"localmesh exited with code {code} while starting: {last} "
                              f"(full log: {state_dir / 'localmesh.log'})")
        time.sleep(0.01)
    stop_pid(proc.pid)
    raise LaunchError(f"localmesh did not become ready within {timeout:.0f}s; see "
                      f"{state_dir / 'localmesh.log'}")


def _serve(args: argparse.Namespace) -> int:
    import asyncio

    from localmesh.instance import Instance
    from localmesh.kubelet.runtime import PidRegistry

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state = Path(args.state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    reaped = PidRegistry(state / "pids").reap_leftovers()
    if reaped:
        logging.getLogger("localmesh").warning(
            "reaped %d process group(s) left by a previous localmesh", len(reaped))
    kubeconfig = Path(args.kubeconfig).resolve() if args.kubeconfig else state / "kubeconfig"
    inst = Instance(state, kubeconfig, port=args.port, mesh=not args.no_mesh)
    try:
        asyncio.run(inst.run())
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"localmesh: cannot start: 127.0.0.1:{args.port} is already in use; choose "
                  "another --port, or omit --port to get a free one", file=sys.stderr)
        else:
            print(f"localmesh: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="localmesh", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("up", "serve"):
        s = sub.add_parser(name)
        s.add_argument("--state-dir", default=str(DEFAULT_STATE))
        s.add_argument("--kubeconfig", default=None)
        s.add_argument("--port", type=int, default=0)
        s.add_argument("--no-mesh", action="store_true")
    for name in ("down", "status"):
        s = sub.add_parser(name)
        s.add_argument("--state-dir", default=str(DEFAULT_STATE))
    args = p.parse_args(argv)
    state = Path(args.state_dir)
    if args.cmd == "serve":
        return _serve(args)
    if args.cmd == "up":
        try:
            h = launch(state, Path(args.kubeconfig) if args.kubeconfig else None,
                       mesh=not args.no_mesh, port=args.port)
        except LaunchError as exc:
            print(f"localmesh up: {exc}", file=sys.stderr)
            return 1
        print(f"localmesh is ready in {h.boot_seconds:.2f}s at {h.server}")
        info = current(state) or {}
        if info.get("mesh_not_ready"):
            print("warning: these istio-system components are not ready: "
                  f"{', '.join(info['mesh_not_ready'])} (kubectl -n istio-system get pods; "
                  "describe them for the reason)", file=sys.stderr)
        print(f"export KUBECONFIG={h.kubeconfig}")
        return 0
    if args.cmd == "down":
        info = current(state)
        if info is None:
            print(f"localmesh is not running (state dir {state})")
            return 0
        stop_pid(info["pid"])
        for name in ("ready", "instance.json", "pid"):
            (state / name).unlink(missing_ok=True)
        print(f"localmesh stopped (pid {info['pid']})")
        return 0
    if args.cmd == "status":
        info = current(state)
        if info is None:
            print(f"localmesh is not running (state dir {state})")
            return 3
        print(f"localmesh is running: pid {info['pid']}, API {info.get('server')}, "
              f"kubeconfig {info.get('kubeconfig')}, loopback block 127.{info.get('block')}.0.0/16")
        for svc, note in (info.get("load_balancer_ports") or {}).items():
            print(f"  LoadBalancer {svc}: {note}")
        return 0
    return 2

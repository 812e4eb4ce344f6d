"""What every test folder shares: where things are, how to wait, how to boot a localmesh,
where the tools are, and what a child process of a test inherits.

One home for these so that a change of layout, of a tool's location or of how localmesh
starts is one edit, not nine. Fixtures stay in the folders' conftest files; this module
holds plain functions and constants that fixtures and tests call.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from localmesh.cli import Handle, launch
from localmesh.kubelet import podman
from localmesh.kubelet.runtime import die_with_parent
from localmesh.shape import Shape

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
"""The repository root: the folder holding pyproject.toml, steps/ and manifests/."""

GOLDEN = Path(os.environ.get("MESHGATE_GOLDEN_DIR") or REPO.parent / "shared" / "golden")
"""Upstream test data (config dumps, a Kiali graph), read in place from the shared folder
beside the checkout, or from wherever MESHGATE_GOLDEN_DIR points; never copied here."""

needs_golden = pytest.mark.skipif(
    not GOLDEN.is_dir(),
    reason=f"golden inputs not found at {GOLDEN}: they live in the shared folder beside the "
    "checkout; set MESHGATE_GOLDEN_DIR to run these tests elsewhere")

PROMETHEUS = shutil.which("prometheus")
"""Debian's Prometheus, which localmesh's mesh runs as its telemetry backend."""

needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="prometheus is not on the PATH: install Debian's package "
    "(apt-get install --no-install-recommends prometheus, or ./dev setup)")

PODMAN_PROBLEM = podman.unusable()
"""Why podman cannot run containers here (None: it can). Read without starting anything."""

needs_podman = pytest.mark.skipif(
    PODMAN_PROBLEM is not None,
    reason=f"the container tests need podman as root: {PODMAN_PROBLEM} (./dev test installs "
    "podman, runc and mmdebstrap when it runs as root)")

HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
"""Debian's HAProxy, the OpenShift flavor's router."""

needs_haproxy = pytest.mark.skipif(
    HAPROXY is None,
    reason="haproxy is not installed: the OpenShift flavor's router is Debian's HAProxy "
    "(apt-get install --no-install-recommends haproxy, or ./dev setup)")


# --------------------------------------------------------------------------- waiting


class StopWaiting(AssertionError):
    """Raised by a check when waiting longer cannot help (the process it waits for has
    exited): :func:`poll` lets it through at once instead of polling until the timeout."""


def poll(check: Callable[[], T], *, what: str, timeout: float = 10.0,
         interval: float = 0.05) -> T:
    """Call ``check`` until it returns something truthy, and return that.

    The tests' one way to wait for a condition. Bounded twice: by ``timeout`` seconds and
    by the number of polls that fit in it (so a check that returns at once cannot spin).
    An exception from ``check`` is an observation ("not yet": a 404 before the object
    exists, a refused connection before the server listens), except :class:`StopWaiting`.
    On timeout the AssertionError names ``what`` and the last observation, value or
    exception, so a failure says what was seen rather than only that time ran out.

    (``meshgate.waiting.wait_until`` is the suite's primitive under test, with areas and
    a convergence log; tests use it only where they test it.)
    """
    deadline = time.monotonic() + timeout
    most = max(1, math.ceil(timeout / interval)) + 1
    last: object = None
    polls = 0
    while True:
        polls += 1
        try:
            value = check()
        except StopWaiting:
            raise
        except Exception as exc:  # noqa: BLE001 - an observation, reported on timeout
            last = exc
        else:
            if value:
                return value
            last = value
        remaining = deadline - time.monotonic()
        if remaining <= 0 or polls >= most:
            break
        time.sleep(min(interval, remaining))
    raise AssertionError(f"{what}: not true within {timeout:g}s ({polls} polls); "
                         f"last observation: {last!r}")


# --------------------------------------------------------------------------- localmesh


@contextmanager
def boot_localmesh(state_dir: Path, *, mesh: bool, timeout: float = 60.0,
                   shape: Shape | None = None) -> Iterator[Handle]:
    """A localmesh serving from ``state_dir`` for the ``with`` block; always stopped.

    ``mesh=True`` boots Istio, the addons and Prometheus, and skips the test (with the
    reason) where Prometheus is not installed; ``mesh=False`` is the Kubernetes API only;
    ``shape`` another shape (localmesh/shape.py, e.g. ``Shape(mesh="ambient")``), which then
    decides the mesh.
    The instance is tied to this process: it gets SIGTERM when the test process dies,
    however it dies, so an interrupted test run leaves no localmesh behind.
    """
    if (shape.with_mesh if shape is not None else mesh) and PROMETHEUS is None:
        pytest.skip("localmesh's mesh needs prometheus on the PATH: install Debian's "
                    "package (apt-get install --no-install-recommends prometheus)")
    if shape is not None and shape.flavor == "openshift" and HAPROXY is None:
        pytest.skip("the OpenShift flavor's router needs haproxy: install Debian's package "
                    "(apt-get install --no-install-recommends haproxy)")
    handle = launch(state_dir, mesh=mesh, timeout=timeout, tied=True, shape=shape)
    try:
        yield handle
    finally:
        handle.stop()


# --------------------------------------------------------------------------- containers


WORKLOADS_IMAGE = "ghcr.io/meshgate/workloads:0.1.0"
"""What images/build.sh builds by default (child_env() hands it no MESHGATE_* override)."""


@functools.cache
def workloads_image() -> str:
    """The workloads image in podman's store, built by images/build.sh the first time in
    this process (about a minute on a new machine; a second when its content hash is
    unchanged, which is how the image stays cached between runs). Skips without
    mmdebstrap; fails with the script's output when the build fails."""
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed: the workloads image cannot be built "
                    "(./dev images installs it)")
    r = subprocess.run([str(REPO / "images" / "build.sh")], cwd=REPO, capture_output=True,
                       text=True, timeout=900, env=child_env())
    if r.returncode != 0:
        pytest.fail(f"images/build.sh failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return WORKLOADS_IMAGE


@contextmanager
def podman_service(folder: Path) -> Iterator[str]:
    """podman's Docker-compatible API on a socket in ``folder`` for the ``with`` block:
    yields its ``unix://`` URL; the service is stopped by its PID at the end.

    Its containers.conf carries what this machine needs (runc, the caller's hard ulimits:
    localmesh/kubelet/podman.py) and makes host networking the default, so a client that
    names no network gets the host's and never a bridge."""
    conf = folder / "containers.conf"
    limits = ", ".join(f'"{name}={soft}:{hard}"'
                       for name, (soft, hard) in podman.ulimits().items())
    runtime = podman.global_flags()[1:]
    conf.write_text(f'[containers]\ndefault_ulimits = [{limits}]\nnetns = "host"\n'
                    + (f'[engine]\nruntime = "{runtime[0]}"\n' if runtime else ""))
    sock = folder / "podman.sock"
    log = (folder / "podman-service.log").open("wb")
    service = subprocess.Popen(
        die_with_parent([podman.binary() or "podman", "system", "service", "--time", "0",
                         f"unix://{sock}"], "TERM"),
        env={**os.environ, "CONTAINERS_CONF": str(conf)}, stdin=subprocess.DEVNULL,
        stdout=log, stderr=log, start_new_session=True)
    log.close()
    try:
        poll(sock.exists, what=f"podman's API socket {sock}", timeout=20)
        yield f"unix://{sock}"
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(timeout=20)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()


def podman_out(*args: str) -> str:
    """A podman command's output (with this machine's flags), failing the test on error."""
    r = subprocess.run(podman.command(*args), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"podman {' '.join(args)}: {r.stderr.strip()}"
    return r.stdout


# --------------------------------------------------------------------------- tools


def kubectl_binary(version: str | None = None) -> str | None:
    """``kubectl`` (or ``kubectl.<version>``, e.g. ``kubectl.1.28``) found through the
    PATH, else None.

    Versioned binaries are looked up on the PATH and then beside the real file of the
    ``kubectl`` on the PATH: the machine image links ``kubectl`` into /usr/bin and keeps
    ``kubectl.1.27`` … ``kubectl.1.33`` in the folder the link points to.
    """
    name = f"kubectl.{version}" if version else "kubectl"
    found = shutil.which(name)
    if found or version is None:
        return found
    default = shutil.which("kubectl")
    if default is None:
        return None
    return shutil.which(name, path=str(Path(default).resolve().parent))


def require_kubectl(version: str | None = None) -> str:
    """:func:`kubectl_binary`, or skip the test saying which kubectl is missing."""
    found = kubectl_binary(version)
    if found is None:
        what = f"kubectl {version}" if version else "kubectl"
        pytest.skip(f"{what} is not installed: neither on the PATH nor beside its kubectl "
                    f"({shutil.which('kubectl') or 'no kubectl on the PATH either'})")
    return found


def unused_port() -> int:
    """A loopback port nothing listens on now (connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --------------------------------------------------------------------------- children


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a test's own pytest, meshgate or localmesh child process.

    Without this run's MESHGATE_* (its kubeconfig, run id or timeouts would point the child
    at another cluster or change its waits), PYTEST_* (xdist's worker identity), COV_* and
    KUBECONFIG; with the repository first on PYTHONPATH so a child started in a temporary
    folder imports this checkout's packages. ``extra`` is added last.
    """
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MESHGATE_", "PYTEST_", "COV_")) and k != "KUBECONFIG"}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


@dataclass(frozen=True)
class Process:
    """One row of the process table, from /proc/<pid>/stat and cmdline."""

    pid: int
    ppid: int
    pgid: int
    state: str  # R, S, D, Z (zombie), …
    command: str  # the command line, arguments joined by spaces

    @property
    def alive(self) -> bool:
        return self.state != "Z"


def process_table() -> dict[int, Process]:
    """Every process of the machine, by pid (those that exit while it is read are left
    out)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace").strip()
            fields = stat.rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
            out[int(entry.name)] = Process(int(entry.name), int(fields[1]), int(fields[2]),
                                           fields[0], command)
        except (OSError, ValueError, IndexError):
            continue
    return out


def descendants(table: dict[int, Process], root: int) -> set[int]:
    """The pids below ``root`` in ``table`` (children, their children, …)."""
    children: dict[int, list[int]] = {}
    for proc in table.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def listening_ports() -> set[tuple[str, int]]:
    """Listening TCP sockets on 127.0.0.0/8 (from /proc/net/tcp): (address, port)."""
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[3] != "0A":  # LISTEN
            continue
        hexip, hexport = parts[1].split(":")
        ip = ".".join(str(int(hexip[i:i + 2], 16)) for i in (6, 4, 2, 0))
        out.add((ip, int(hexport, 16)))
    return out

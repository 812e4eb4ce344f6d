"""podman as localmesh drives it: its command line on this kind of machine, and the record
of the containers an instance started, so that none outlives it.

The flags are the ones a machine without a Docker engine needs (measured in the project's
lab notes): the ``runc`` OCI runtime (``crun`` cannot run containers on a cgroup
v1/hybrid host), and the caller's own hard limits for open files and processes (podman
otherwise asks for more than an unprivileged sandbox may set, and runc fails with EPERM).
``images/build.sh`` uses the same flags. Containers use the host's network namespace
only, on the pod's loopback address: never a bridge, which would put traffic on 10.88.x.

The record (``ContainerRegistry``) mirrors the kubelet's pid registry: one file per
container, written *before* the container is created and holding the PID of the
localmesh that created it, beside podman's ``--cidfile``. A normal stop removes what is
left of the instance's own containers; a watchdog removes them the moment localmesh
exits however it died; the next ``localmesh serve`` and ``localmesh down`` remove what a
dead instance recorded. Always by container ID (by the instance-unique name only when
podman never got to write the ID), never by a pattern.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from pathlib import Path

from localmesh.kubelet.runtime import pid_alive

RUNC = "runc"
# Labels on every container localmesh starts (the CRI's own keys, so `podman ps` reads
# like `crictl ps`), plus the state directory of the instance that owns it.
LABEL_STATE_DIR = "io.meshgate.localmesh.state-dir"


def binary() -> str | None:
    return shutil.which("podman")


def global_flags() -> list[str]:
    """``--runtime runc`` where runc is installed (or ``MESHGATE_OCI_RUNTIME``)."""
    runtime = os.environ.get("MESHGATE_OCI_RUNTIME") or (RUNC if shutil.which(RUNC) else "")
    return ["--runtime", runtime] if runtime else []


def command(*args: str) -> list[str]:
    """A podman command line with this machine's global flags."""
    return [binary() or "podman", *global_flags(), *args]


def ulimits() -> dict[str, tuple[int, int]]:
    """The container's limits: this process's own hard limits for open files and
    processes (nproc capped at kernel.pid_max: runc was refused a larger one here)."""
    out: dict[str, tuple[int, int]] = {}
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if nofile != resource.RLIM_INFINITY:
        out["nofile"] = (nofile, nofile)
    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        pid_max = 32768
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = pid_max if nproc == resource.RLIM_INFINITY else min(nproc, pid_max)
    out["nproc"] = (nproc, nproc)
    return out


def ulimit_flags() -> list[str]:
    return [f for name, (soft, hard) in ulimits().items()
            for f in ("--ulimit", f"{name}={soft}:{hard}")]


def unusable() -> str | None:
    """Why podman cannot run localmesh's containers here, or None when it can."""
    if binary() is None:
        return "podman is not installed (apt-get install --no-install-recommends podman runc)"
    if os.geteuid() != 0:
        return "podman runs containers for localmesh as root only (rootless is not set up)"
    return None


class ContainerRegistry:
    """The containers one state directory's localmesh created (see the module's doc)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, name: str) -> Path:
        """Record ``name`` as this process's; returns the cidfile podman should write."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / name).write_text(str(os.getpid()))
        cidfile = self.cidfile(name)
        cidfile.unlink(missing_ok=True)  # podman refuses to overwrite one
        return cidfile

    def cidfile(self, name: str) -> Path:
        return self.path / f"{name}.cid"

    def container_id(self, name: str) -> str | None:
        try:
            return self.cidfile(name).read_text().strip() or None
        except OSError:
            return None

    def forget(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)
        self.cidfile(name).unlink(missing_ok=True)

    def entries(self) -> dict[str, int]:
        """Recorded container name → PID of the localmesh that created it."""
        out: dict[str, int] = {}
        if not self.path.is_dir():
            return out
        for f in self.path.iterdir():
            if f.suffix == ".cid" or f.name.startswith("."):
                continue
            try:
                out[f.name] = int(f.read_text() or "0")
            except (OSError, ValueError):
                out[f.name] = 0
        return out

    def reap(self, *, own: bool = False, timeout: float = 60.0) -> list[str]:
        """Force-remove recorded containers, by ID: those of a localmesh that is no longer
        running, and with ``own`` this process's too. Returns the names removed."""
        me = os.getpid()
        names = [name for name, owner in self.entries().items()
                 if (own and owner == me)
                 or (owner != me and not (owner and pid_alive(owner)))]
        if not names:
            return []
        refs = [self.container_id(n) or n for n in names]
        if binary() is not None:
            subprocess.run(command("rm", "--force", "--ignore", "--time", "0", *refs),
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=timeout, check=False)
        for n in names:
            self.forget(n)
        return names


# Like the kubelet's process watchdog (runtime.py): waits for EOF on stdin, which comes
# when the localmesh holding the pipe's write end exits however it died, then removes the
# containers that localmesh recorded, by ID, in one podman command.
_WATCHDOG = """
cat >/dev/null
dir=$1 owner=$2
shift 2
set -- "$@" rm --force --ignore --time 0
mine() { [ -f "$1" ] && [ "${1%.cid}" = "$1" ] && [ "$(cat "$1" 2>/dev/null)" = "$owner" ]; }
found=""
for f in "$dir"/*; do
  mine "$f" || continue
  id=$(cat "$f.cid" 2>/dev/null)
  set -- "$@" "${id:-${f##*/}}"
  found=1
done
[ -n "$found" ] || exit 0
"$@" >/dev/null 2>&1
for f in "$dir"/*; do
  mine "$f" && rm -f "$f" "$f.cid"
done
exit 0
"""


def start_watchdog(registry: ContainerRegistry) -> subprocess.Popen:
    """Start the container watchdog for this process's recorded containers."""
    registry.path.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        ["/bin/sh", "-c", _WATCHDOG, "localmesh-container-watchdog", str(registry.path),
         str(os.getpid()), *command()],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True)

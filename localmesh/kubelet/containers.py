"""``--runtime podman``: a pod's containers as real containers where podman has the image.

The kubelet's pod worker keeps its whole life cycle (init containers, probes, restarts
with back-off, status, graceful termination); what changes is what runs. For a container
whose image is in podman's local store, :class:`ContainerPodWorker` runs ``podman run``
in the foreground as the container's "process": the image's entrypoint, user,
environment and working directory, Kubernetes' ``command``/``args`` rules, the
``securityContext`` (user and groups, read-only root filesystem *without* podman's
default tmpfs mounts, capabilities, no-new-privileges, runAsNonRoot checked against the
image's user), the pod's volumes bind-mounted, and the host's network namespace on the
pod's loopback address (``BIND_ADDRESS``, as for a process: the pod IP, or the pod-local
address behind a sidecar). Any other image comes from the image catalogue as before, so
the injected Envoy sidecar stays a process beside its container.

What the machinery around a process gets from a container:

- **signals**: ``podman run`` forwards the signals it gets to the container's PID 1
  (``--sig-proxy``), so the worker's SIGTERM is the container's; SIGKILL, which cannot be
  forwarded, is ``podman kill --signal KILL`` by container ID;
- **logs**: ``--log-driver passthrough`` hands the container the log file the worker
  opened, so ``kubectl logs`` reads what the container wrote, unchanged;
- **exit**: the client exits with the container's exit code; the container is then
  removed by ID (``--rm`` does it too; the removal covers a client that died first);
- **exec**: ``podman exec`` in the container, with its PID namespace (``kill 1`` stops
  the container's program), user and working directory.

Container environment variables reach podman through the client's environment (``-e
NAME`` without a value), never on its command line, so ``ps`` shows no secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from localmesh.kubelet import catalogue, podman
from localmesh.kubelet.environment import ConfigError, expanded_command
from localmesh.kubelet.environment import container_env as spec_env
from localmesh.kubelet.pods import BACKOFF_MAX, ContainerState, PodHost, PodWorker
from localmesh.kubelet.runtime import Process, spawn
from localmesh.store import now_rfc3339

# What the process runtime sets for a local program and a container must not get: the
# host's paths, and volume locations (a container has real mounts).
PROCESS_ONLY = {"PATH", "HOME", "LANG", "PYTHONPATH", "PYTHONUNBUFFERED",
                "LOCALMESH_DNS_HOSTS", "LOCALMESH_MOUNTS"}
# Variables podman itself reads: a container's value for one of them goes on the command
# line (``-e NAME=VALUE``) rather than into the client's environment.
PODMAN_READS = re.compile(r"^(PATH|HOME|TMPDIR|LANG|LC_\w+|XDG_\w+|CONTAINERS?_\w+|"
                          r"STORAGE_\w+|BUILDAH_\w+|PODMAN_\w+|DOCKER_\w+|CNI_\w+)$")
# Volumes Kubernetes always mounts read-only (their content is the API's, not the app's).
READ_ONLY_SOURCES = ("configMap", "secret", "downwardAPI", "projected")
_background: set[asyncio.Task] = set()


@dataclass(frozen=True)
class ImageConfig:
    """What podman's store says about an image (``podman image inspect``)."""

    ref: str
    id: str
    user: str


@dataclass
class ContainerProcess(Process):
    """A container run by a ``podman run`` client in the foreground (see the module)."""

    name: str = ""
    registry: podman.ContainerRegistry | None = None

    @property
    def container_id(self) -> str:
        cid = self.registry.container_id(self.name) if self.registry else None
        return f"podman://{cid or self.name}"

    @property
    def ref(self) -> str:
        """The container's ID once podman wrote it, else its (instance-unique) name."""
        return (self.registry.container_id(self.name) if self.registry else None) or self.name

    def signal(self, sig: int) -> None:
        if sig != signal.SIGKILL or self.proc.returncode is not None:
            super().signal(sig)  # podman run forwards it to the container's PID 1
            return
        self.signalled.add(sig)
        task = asyncio.ensure_future(self._kill())
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _kill(self) -> None:
        """SIGKILL by container ID; if podman cannot (not created yet), kill the client:
        the container is then removed when the client's exit is reaped."""
        killer = await asyncio.create_subprocess_exec(
            *podman.command("kill", "--signal", "KILL", self.ref),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        if await killer.wait() != 0:
            super().signal(signal.SIGKILL)


def _user(pod_spec: dict, spec: dict) -> dict:
    """The effective securityContext: the container's fields over the pod's."""
    merged = dict(pod_spec.get("securityContext") or {})
    merged.update(spec.get("securityContext") or {})
    return merged


def security_flags(pod_spec: dict, spec: dict, image_user: str) -> list[str]:
    """``podman run`` flags for the securityContext; ConfigError as the kubelet reports a
    runAsNonRoot it cannot honour (CreateContainerConfigError)."""
    sc = _user(pod_spec, spec)
    pod_sc = pod_spec.get("securityContext") or {}
    flags: list[str] = []
    uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
    if uid is not None:
        flags += ["--user", f"{uid}:{gid}" if gid is not None else str(uid)]
    elif gid is not None:
        flags += ["--user", f"{image_user.split(':', 1)[0] or 0}:{gid}"]
    if sc.get("runAsNonRoot"):
        name = str(uid) if uid is not None else (image_user.split(":", 1)[0] or "0")
        if not name.isdigit():
            raise ConfigError(f"container has runAsNonRoot and image has non-numeric user "
                              f"({name}), cannot verify user is non-root")
        if int(name) == 0:
            raise ConfigError("container has runAsNonRoot and image will run as root")
    for group in [*(pod_sc.get("supplementalGroups") or []),
                  *([pod_sc["fsGroup"]] if pod_sc.get("fsGroup") is not None else [])]:
        flags += ["--group-add", str(group)]
    if sc.get("readOnlyRootFilesystem"):
        # Kubernetes mounts nothing writable over a read-only root; podman would (/tmp, /run).
        flags += ["--read-only", "--read-only-tmpfs=false"]
    if sc.get("privileged"):
        flags.append("--privileged")
    if sc.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    caps = sc.get("capabilities") or {}
    flags += [f for cap in caps.get("drop") or [] for f in ("--cap-drop", cap)]
    flags += [f for cap in caps.get("add") or [] for f in ("--cap-add", cap)]
    if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        flags += ["--security-opt", "seccomp=unconfined"]
    return flags


def mount_flags(pod_spec: dict, spec: dict, volumes: dict[str, Path]) -> list[str]:
    """``--volume`` for each of the container's mounts (a subPath mounts that entry)."""
    kinds = {v["name"]: next((k for k in v if k != "name"), "") for v in
             pod_spec.get("volumes") or []}
    flags = []
    for m in spec.get("volumeMounts") or []:
        src = volumes.get(m["name"])
        if src is None:
            continue
        if m.get("subPath"):
            src = src / m["subPath"]
            if not src.exists():
                src.mkdir(parents=True)  # the kubelet creates a missing subPath directory
        ro = m.get("readOnly") or kinds.get(m["name"]) in READ_ONLY_SOURCES
        flags += ["--volume", f"{src}:{m['mountPath']}{':ro' if ro else ''}"]
    return flags


def share_volumes(pod_spec: dict, volumes: dict[str, Path]) -> None:
    """Give volumes the modes a kubelet gives them, so that a container's own user can
    use them: emptyDir world-writable (0777), files of the API's volumes ``defaultMode``
    (0644 unless the spec says otherwise), directories 0755."""
    for vol in pod_spec.get("volumes") or []:
        root = volumes.get(vol["name"])
        if root is None or not root.is_dir():
            continue
        if "emptyDir" in vol:
            root.chmod(0o777)
            continue
        source = next((vol[k] for k in READ_ONLY_SOURCES if k in vol), None)
        if source is None:
            continue
        mode = int(source.get("defaultMode", 0o644)) & 0o777
        for path in [root, *root.rglob("*")]:
            st = path.lstat()
            if stat.S_ISDIR(st.st_mode):
                path.chmod(0o755)
            elif stat.S_ISREG(st.st_mode):
                path.chmod(mode)


def run_argv(*, name: str, image: ImageConfig, pod: dict, spec: dict, env: dict[str, str],
             volumes: dict[str, Path], cidfile: Path, labels: dict[str, str]) -> list[str]:
    """The ``podman run`` command line of one container (values of ``env`` are passed
    through the client's environment, except those podman reads itself)."""
    pod_spec = pod["spec"]
    argv = podman.command(
        "run", "--rm", "--pull", "never", "--network", "host", "--log-driver", "passthrough",
        "--name", name, "--cidfile", str(cidfile),
        "--hostname", pod_spec.get("hostname") or pod["metadata"]["name"],
        *podman.ulimit_flags())
    for key, value in sorted(labels.items()):
        argv += ["--label", f"{key}={value}"]
    argv += security_flags(pod_spec, spec, image.user)
    argv += mount_flags(pod_spec, spec, volumes)
    if spec.get("workingDir"):
        argv += ["--workdir", spec["workingDir"]]
    for key, value in sorted(env.items()):
        argv += ["--env", f"{key}={value}" if PODMAN_READS.match(key) else key]
    expanded = expanded_command(spec, env)
    if expanded.get("command"):
        argv += ["--entrypoint", json.dumps(expanded["command"])]
    return [*argv, image.ref, *(expanded.get("args") or [])]


def for_container(process_env: dict[str, str], own: dict[str, str]) -> dict[str, str]:
    """The environment the kubelet computed for a process, less what it sets for a local
    program only (the image's own environment comes from the image), keeping whatever
    the container's spec sets itself (``own``)."""
    return {k: v for k, v in process_env.items() if k in own or (
        k not in PROCESS_ONLY and not k.startswith("LOCALMESH_MOUNT_"))}


def container_name(block: int, pod: dict, spec: dict, instance: int) -> str:
    meta = pod["metadata"]
    raw = f"lm{block}-{meta['namespace']}-{meta['name']}-{spec['name']}-{instance}"
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", raw)[:200]


class ContainerRuntime:
    """The instance's podman: which images it has, the record of its containers and the
    watchdog that removes them when localmesh dies (localmesh/kubelet/podman.py)."""

    def __init__(self, state_dir: Path, block: int) -> None:
        self.registry = podman.ContainerRegistry(state_dir / "containers")
        self.block = block
        self.state_dir = state_dir
        self._images: dict[str, ImageConfig] = {}
        self._watchdog: subprocess.Popen | None = None

    def start(self) -> None:
        self.registry.reap()  # what a dead localmesh of this state directory left
        self._watchdog = podman.start_watchdog(self.registry)

    async def stop(self) -> None:
        await asyncio.to_thread(self.registry.reap, own=True)
        if self._watchdog is not None and self._watchdog.stdin is not None:
            self._watchdog.stdin.close()  # nothing left: it finishes without removing
            await asyncio.to_thread(self._watchdog.wait)

    def worker(self, kubelet: PodHost, pod: dict) -> ContainerPodWorker:
        return ContainerPodWorker(kubelet, pod, self)

    async def image(self, ref: str) -> ImageConfig | None:
        """The image if podman's local store has it (nothing is pulled)."""
        if not ref:
            return None
        if ref in self._images:
            return self._images[ref]
        proc = await asyncio.create_subprocess_exec(
            *podman.command("image", "inspect", "--format", "json", ref),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            return None
        found = json.loads(out)[0]
        config = ImageConfig(ref, found["Id"], (found.get("Config") or {}).get("User") or "")
        self._images[ref] = config
        return config

    def exec_argv(self, proc: ContainerProcess, command: list[str], stdin: bool) -> list[str]:
        return podman.command("exec", *(["--interactive"] if stdin else []), proc.ref,
                              *command)

    async def removed(self, proc: ContainerProcess) -> None:
        """After the client exited: make sure the container is gone, then forget it."""
        rm = await asyncio.create_subprocess_exec(
            *podman.command("rm", "--force", "--ignore", "--time", "0", proc.ref),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        await rm.wait()
        self.registry.forget(proc.name)


class ContainerPodWorker(PodWorker):
    """A pod worker whose containers run in podman when their image is in its store."""

    def __init__(self, kubelet: PodHost, pod: dict, runtime: ContainerRuntime) -> None:
        super().__init__(kubelet, pod)
        self.runtime = runtime

    async def _create(self, c: ContainerState) -> Process | None:
        image = await self.runtime.image(c.spec.get("image", ""))
        if image is None:
            return await super()._create(c)
        name = container_name(self.runtime.block, self.pod, c.spec, c.instances)
        try:
            env = for_container(self.env_for(c, catalogue.Image(image.ref, (), "podman")),
                                spec_env(self.kubelet.store, self.pod_with_ip(), c.spec))
            share_volumes(self.pod["spec"], self.volumes)
            argv = run_argv(
                name=name, image=image, pod=self.pod, spec=c.spec, env=env,
                volumes=self.volumes, cidfile=self.runtime.registry.record(name),
                labels={podman.LABEL_STATE_DIR: str(self.runtime.state_dir),
                        "io.kubernetes.pod.namespace": self.ns,
                        "io.kubernetes.pod.name": self.name,
                        "io.kubernetes.pod.uid": self.uid,
                        "io.kubernetes.container.name": c.name})
        except ConfigError as exc:
            self.runtime.registry.forget(name)
            c.waiting = ("CreateContainerConfigError", str(exc))
            c.next_start = time.monotonic() + c.backoff
            self.kubelet.event(self.pod, "Warning", "Failed", f"Error: {exc}")
            self.publish()
            return None
        client_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
        log_path = self.dir / "logs" / c.name / f"{c.instances}.log"
        try:
            p = await spawn(argv, client_env, self.dir, log_path, now_rfc3339())
        except OSError as exc:
            self.runtime.registry.forget(name)
            c.waiting = ("RunContainerError", f"failed to start podman: {exc}")
            c.next_start = time.monotonic() + c.backoff
            c.backoff = min(c.backoff * 2, BACKOFF_MAX)
            self.publish()
            return None
        return ContainerProcess(p.proc, p.log_path, p.started_at, p.pgid, name=name,
                                registry=self.runtime.registry)

    async def _reap(self, c: ContainerState, proc: Process) -> None:
        await super()._reap(c, proc)
        if isinstance(proc, ContainerProcess):
            await self.runtime.removed(proc)

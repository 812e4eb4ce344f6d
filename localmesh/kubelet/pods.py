"""One pod's life on the local "node": init containers, native sidecars, containers,
probes, restarts with back-off, status, and graceful termination.

The status written back follows what a real kubelet reports: phase, the PodScheduled /
Initialized / ContainersReady / Ready conditions, and per-container state (waiting with
ContainerCreating / ErrImagePull / ImagePullBackOff / CrashLoopBackOff /
CreateContainerConfigError, running, terminated), ``restartCount``, ``ready`` and
``started``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

from localmesh.kubelet import catalogue, cni
from localmesh.kubelet.environment import (
    ConfigError,
    TokenIssuer,
    container_env,
    expanded_command,
    materialise_volumes,
    mount_env,
)
from localmesh.kubelet.probes import run_probe
from localmesh.kubelet.runtime import PidRegistry, Process, spawn
from localmesh.network import AddressPlan
from localmesh.store import Store, now_rfc3339

log = logging.getLogger("localmesh.kubelet")

BACKOFF_START = 1.0  # a real kubelet starts at 10 s; see docs/localmesh.md
BACKOFF_MAX = 30.0


@dataclass
class ContainerState:
    """What the kubelet knows about one container of the pod."""

    spec: dict
    init: bool = False
    sidecar: bool = False  # an init container with restartPolicy: Always
    process: Process | None = None
    restart_count: int = 0
    waiting: tuple[str, str] | None = ("ContainerCreating", "")
    last_terminated: dict | None = None
    terminated: dict | None = None
    ready: bool = False
    started: bool = False
    backoff: float = BACKOFF_START
    next_start: float = 0.0
    probe_tasks: list[asyncio.Task] = field(default_factory=list)
    liveness_failures: int = 0
    # How many times a process was started for this container; instance N logs to
    # logs/<name>/<N-1>.log, so "current" is the newest file and "previous" the one before,
    # as the kubelet picks the newest and second-newest container of that name.
    instances: int = 0

    def log_path(self, pod_dir: Path, previous: bool = False) -> Path | None:
        n = self.instances - (2 if previous else 1)
        if n < 0:
            return None
        return pod_dir / "logs" / self.name / f"{n}.log"

    @property
    def name(self) -> str:
        return self.spec["name"]


class PodHost(Protocol):
    """What a pod worker needs from the kubelet that runs it (``node.Kubelet`` is one).

    Spelled out so that the pod worker depends on these few services, not on the kubelet
    module, which in turn creates the workers.
    """

    store: Store
    addresses: AddressPlan
    pids: PidRegistry
    pods_dir: Path
    hosts_file: Path
    tokens: TokenIssuer | None
    network: Sequence[cni.NetworkPlugin]

    def event(self, pod: dict, type_: str, reason: str, message: str) -> None: ...

    def request_status(self, worker: PodWorker) -> None: ...

    async def exec_capture(self, worker: PodWorker, c: ContainerState, command: list[str],
                           timeout: float) -> tuple[int, bytes, bytes]: ...


class PodWorker:
    """Drives one pod; runs as its own asyncio task."""

    def __init__(self, kubelet: PodHost, pod: dict) -> None:
        self.kubelet = kubelet
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.ns = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        self.dir = kubelet.pods_dir / f"{self.ns}_{self.name}_{self.uid[:8]}"
        self.ip = ""
        self.local_ip = ""
        self.containers: list[ContainerState] = []
        self.inits: list[ContainerState] = []
        self.task: asyncio.Task | None = None
        self.terminating = asyncio.Event()
        self.changed = asyncio.Event()
        self.volumes: dict[str, Path] = {}
        self.intercepted = False
        self.started_at = now_rfc3339()
        self.initialized = False
        self.phase = "Pending"
        self.finished = asyncio.Event()

    # -- addresses -----------------------------------------------------------------------
    def bind_address(self, c: ContainerState) -> str:
        """Where a container's program listens: behind the sidecar when one intercepts."""
        image = catalogue.lookup(c.spec.get("image", ""))
        if self.intercepted and not (image and image.intercepts):
            return self.local_ip
        return self.ip

    # -- main loop -----------------------------------------------------------------------
    def start(self) -> None:
        self.task = asyncio.ensure_future(self.run())

    async def run(self) -> None:
        spec = self.pod["spec"]
        self.ip = self.kubelet.addresses.pods.allocate()
        self.local_ip = self.kubelet.addresses.local_address(self.ip)
        self.dir.mkdir(parents=True, exist_ok=True)
        for c in spec.get("initContainers") or []:
            self.inits.append(ContainerState(c, init=True,
                                             sidecar=c.get("restartPolicy") == "Always"))
        for c in spec.get("containers") or []:
            self.containers.append(ContainerState(c))
        self.publish()  # the pod's IP first: a chained plugin waits for what holds it
        self.intercepted = await cni.intercepted(self.kubelet.network, self.pod, self.ip,
                                                 self.local_ip)
        try:
            await self._mount_volumes()
            await self._run_inits()
            if not self.terminating.is_set():
                self.initialized = True
                for c in self.containers:
                    await self._start(c)
                self.publish()
                await self._supervise(self.containers + [i for i in self.inits if i.sidecar])
        finally:
            await self._terminate()

    async def _mount_volumes(self) -> None:
        """Write the pod's volumes; while a source is missing (a ConfigMap not created
        yet), wait and retry as the kubelet's volume manager does: the pod stays
        ContainerCreating, with a FailedMount event."""
        delay = 0.02
        while not self.terminating.is_set():
            try:
                self.volumes = materialise_volumes(self.kubelet.store, self.pod, self.dir,
                                                   self.kubelet.tokens)
                return
            except ConfigError as exc:
                if delay == 0.02:
                    self.kubelet.event(self.pod, "Warning", "FailedMount",
                                       f"MountVolume.SetUp failed: {exc}")
                for c in self.inits + self.containers:
                    c.waiting = ("ContainerCreating", "")
                self.publish()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.terminating.wait(), delay)
            delay = min(delay * 2, 1.0)

    async def _run_inits(self) -> None:
        for c in self.inits:
            while not self.terminating.is_set():
                if c.sidecar:
                    await self._start(c)
                    if c.process is not None and await self._wait_started(c):
                        break
                    await self._wait_backoff(c)
                    continue
                await self._start(c)
                if c.process is None:
                    await self._wait_backoff(c)
                    continue
                code = await self._wait_exit(c)
                if code == 0:
                    break
                if self.pod["spec"].get("restartPolicy") == "Never":
                    self.phase = "Failed"
                    self.publish()
                    await self.terminating.wait()
                    return
                await self._wait_backoff(c)
            self.publish()

    async def _wait_started(self, c: ContainerState) -> bool:
        probe = c.spec.get("startupProbe")
        if probe is None:
            c.started = True
            return True
        while not self.terminating.is_set() and c.process is not None and \
                c.process.exit_code is None:
            if c.started:
                return True
            await asyncio.sleep(0.05)
        return c.started

    async def _wait_exit(self, c: ContainerState) -> int:
        assert c.process is not None and c.process.waiter is not None  # _start set them
        await asyncio.wait([c.process.waiter, asyncio.ensure_future(self.terminating.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
        return c.process.exit_code if c.process.exit_code is not None else -1

    async def _wait_backoff(self, c: ContainerState) -> None:
        delay = max(0.0, c.next_start - time.monotonic())
        if delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.terminating.wait(), delay)

    async def _start(self, c: ContainerState) -> None:
        """Pull (look up), configure and start one container."""
        proc = await self._create(c)
        if proc is None:
            return
        self.kubelet.pids.add(proc.pgid)
        c.instances += 1
        c.process = proc
        c.waiting = None
        c.terminated = None
        c.ready = False
        c.started = c.spec.get("startupProbe") is None
        c.liveness_failures = 0
        proc.waiter = asyncio.ensure_future(self._reap(c, proc))
        self._start_probes(c)
        self.kubelet.event(self.pod, "Normal", "Started", f"Started container {c.name}")
        self.publish()

    async def _create(self, c: ContainerState) -> Process | None:
        """The container's process, from the image catalogue; None, with the container's
        waiting reason set, when it cannot start (a container runtime overrides this)."""
        image = catalogue.lookup(c.spec.get("image", ""))
        if image is None:
            first = c.waiting is None or c.waiting[0] not in ("ErrImagePull", "ImagePullBackOff")
            reason = "ErrImagePull" if first else "ImagePullBackOff"
            backoff = f'Back-off pulling image "{c.spec.get("image")}"'
            msg = (f'Failed to pull image "{c.spec.get("image")}": localmesh cannot run this '
                   "image: it is not in the image catalogue (see docs/images.md); use an image "
                   "listed there or run the suite against a real cluster")
            # In back-off the kubelet keeps the pull's error in the message (image_manager.go
            # wraps it: 'Back-off pulling image "x": ErrImagePull: <error>'); not the event.
            c.waiting = (reason, msg if first else f"{backoff}: ErrImagePull: {msg}")
            self.kubelet.event(self.pod, "Warning", "Failed" if first else "BackOff",
                               msg if first else backoff)
            c.next_start = time.monotonic() + c.backoff
            c.backoff = min(c.backoff * 2, BACKOFF_MAX)
            self.publish()
            return None
        try:
            env = self.env_for(c, image)
        except ConfigError as exc:
            c.waiting = ("CreateContainerConfigError", str(exc))
            c.next_start = time.monotonic() + c.backoff
            self.kubelet.event(self.pod, "Warning", "Failed", f"Error: {exc}")
            self.publish()
            return None
        argv = catalogue.argv_for(expanded_command(c.spec, env), image)
        log_path = self.dir / "logs" / c.name / f"{c.instances}.log"
        try:
            return await spawn(argv, env, self.dir, log_path, now_rfc3339())
        except OSError as exc:
            c.waiting = ("RunContainerError", f"failed to start {argv[0]}: {exc}")
            c.next_start = time.monotonic() + c.backoff
            c.backoff = min(c.backoff * 2, BACKOFF_MAX)
            self.publish()
            return None

    def env_for(self, c: ContainerState, image: catalogue.Image) -> dict[str, str]:
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.dir),
            "HOSTNAME": self.name,
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(catalogue.REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
            # The pod's network identity on loopback (see localmesh/network.py).
            "LOCALMESH_POD_IP": self.ip,
            "LOCALMESH_POD_LOCAL_IP": self.local_ip,
            "LOCALMESH_DNS_HOSTS": str(self.kubelet.hosts_file),
            "BIND_ADDRESS": self.bind_address(c),
            # The image run (a binary knows its build: pilot-agent reports its tag).
            "LOCALMESH_IMAGE": c.spec.get("image", ""),
        }
        if self.intercepted and not image.intercepts:
            # Outbound traffic leaves through the sidecar (an explicit proxy stands in for
            # iptables' REDIRECT); the pod's own addresses stay direct.
            proxy = f"http://{self.local_ip}:15001"
            base.update({"HTTP_PROXY": proxy, "http_proxy": proxy,
                         "MESH_OUTBOUND_PROXY": f"{self.local_ip}:15001",
                         "NO_PROXY": f"localhost,127.0.0.1,{self.ip},{self.local_ip}",
                         "no_proxy": f"localhost,127.0.0.1,{self.ip},{self.local_ip}"})
        env = container_env(self.kubelet.store, self.pod_with_ip(), c.spec)
        base.update(mount_env(c.spec, self.volumes))
        base.update(env)
        return base

    def pod_with_ip(self) -> dict:
        pod = copy.deepcopy(self.pod)
        pod.setdefault("status", {})["podIP"] = self.ip
        pod["status"]["hostIP"] = "127.0.0.1"
        return pod

    async def _reap(self, c: ContainerState, proc: Process) -> None:
        code = await proc.proc.wait()
        self.kubelet.pids.remove(proc.pgid)
        # Anything the program left behind in its group goes with it.
        proc.signal(signal.SIGKILL)
        proc.exit_code = code if code >= 0 else 128 - code  # -N: killed by signal N
        proc.finished_at = now_rfc3339()
        for t in c.probe_tasks:
            t.cancel()
        c.probe_tasks = []
        c.ready = False
        reason = "Completed" if proc.exit_code == 0 else "Error"
        if signal.SIGKILL in proc.signalled and proc.exit_code == 137 and \
                c.liveness_failures == 0 and not self.terminating.is_set():
            reason = "Error"
        c.terminated = {"exitCode": proc.exit_code, "reason": reason,
                        "startedAt": proc.started_at, "finishedAt": proc.finished_at,
                        "containerID": proc.container_id}
        self.changed.set()
        self.publish()

    async def _supervise(self, running: list[ContainerState]) -> None:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        while not self.terminating.is_set():
            self.changed.clear()
            now = time.monotonic()
            for c in running:
                if c.process is not None and c.process.exit_code is None:
                    continue
                exited_ok = c.terminated is not None and c.terminated["exitCode"] == 0
                if c.sidecar or policy == "Always" or (policy == "OnFailure" and not exited_ok):
                    if c.process is not None and c.terminated is not None:
                        # A restart: remember how the last run ended.
                        c.last_terminated = c.terminated
                        c.restart_count += 1
                        c.process = None
                        uptime = 0.0
                        c.waiting = ("CrashLoopBackOff",
                                     f"back-off {int(c.backoff)}s restarting failed container="
                                     f"{c.name} pod={self.name}_{self.ns}({self.uid})")
                        c.next_start = now + (0.0 if uptime > 10 else c.backoff)
                        if c.restart_count == 1:
                            c.next_start = now  # the first restart is immediate
                        c.backoff = min(c.backoff * 2, BACKOFF_MAX)
                        self.publish()
                    if now >= c.next_start and c.process is None:
                        await self._start(c)
            if policy != "Always" and all(
                    c.process is None or c.process.exit_code is not None for c in
                    self.containers) and all(c.terminated for c in self.containers):
                failed = any(c.terminated and c.terminated["exitCode"] != 0
                             for c in self.containers)
                if policy == "Never" or not failed:
                    self.phase = "Failed" if failed else "Succeeded"
                    self.publish()
                    await self.terminating.wait()
                    return
            waits = [c.next_start - now for c in running
                     if c.process is None and c.next_start > now]
            timeout = min(waits) if waits else 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), max(0.05, timeout))
            if self.terminating.is_set():
                return

    def _start_probes(self, c: ContainerState) -> None:
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = c.spec.get(kind)
            if probe:
                c.probe_tasks.append(asyncio.ensure_future(self._probe_loop(c, kind, probe)))
        if not c.spec.get("readinessProbe"):
            c.ready = True

    async def _probe_loop(self, c: ContainerState, kind: str, probe: dict) -> None:
        """Probe as the kubelet does; until the first success, probe fast (docs say why)."""
        period = probe.get("periodSeconds", 10)
        await asyncio.sleep(probe.get("initialDelaySeconds", 0))
        successes = failures = 0
        ever = False
        while c.process is not None and c.process.exit_code is None:
            if kind != "startupProbe" and not c.started:
                await asyncio.sleep(0.05)
                continue
            ok = await run_probe(probe, self.bind_address(c), c.spec,
                                 partial(self._exec_status, c))
            if ok:
                successes, failures = successes + 1, 0
            else:
                failures, successes = failures + 1, 0
            if kind == "startupProbe":
                if successes >= 1:
                    c.started = True
                    self.changed.set()
                    self.publish()
                    return
                if failures >= probe.get("failureThreshold", 3) and ever:
                    c.process.signal(signal.SIGKILL)
                    return
            elif kind == "readinessProbe":
                if ok and successes >= probe.get("successThreshold", 1) and not c.ready:
                    c.ready = True
                    ever = True
                    self.publish()
                elif not ok and failures >= probe.get("failureThreshold", 3) and c.ready:
                    c.ready = False
                    self.publish()
            elif kind == "livenessProbe":
                if ok:
                    ever = True
                if not ok and failures >= probe.get("failureThreshold", 3):
                    c.liveness_failures += 1
                    self.kubelet.event(self.pod, "Warning", "Unhealthy",
                                       f"Liveness probe failed; container {c.name} will be "
                                       "restarted")
                    c.process.signal(signal.SIGTERM)
                    return
            fast = kind != "livenessProbe" and not (c.ready if kind == "readinessProbe"
                                                    else c.started)
            await asyncio.sleep(0.05 if fast else period)

    async def _exec_status(self, c: ContainerState, command: list[str], timeout: float) -> int:
        """An exec probe's command, run in the container; its exit code."""
        code, _, _ = await self.kubelet.exec_capture(self, c, command, timeout)
        return code

    # -- termination ---------------------------------------------------------------------
    async def _terminate(self) -> None:
        """SIGTERM to each container's main process (a runtime signals PID 1), the apps
        first, native sidecars after they exited, in reverse order (KEP-753): a sidecar
        proxy outlives its app. What runs when the grace period ends is SIGKILLed."""
        grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        deadline = time.monotonic() + max(grace, 0.1)
        running = [c for c in self.containers + self.inits
                   if c.process is not None and c.process.exit_code is None]
        first = [c for c in running if not c.sidecar]
        later = [c for c in reversed(self.inits) if c in running and c.sidecar]
        for group in [first, *([c] for c in later)]:
            procs = [c.process for c in group if c.process is not None]
            for p in procs:
                p.signal_main(signal.SIGTERM)
            waiters = [p.waiter for p in procs if p.waiter]
            if waiters:
                await asyncio.wait(waiters, timeout=max(deadline - time.monotonic(), 0.0))
        left = [c.process for c in running
                if c.process is not None and c.process.exit_code is None]
        for p in left:
            p.signal(signal.SIGKILL)
        pending = [p.waiter for p in left if p.waiter and not p.waiter.done()]
        if pending:
            await asyncio.wait(pending, timeout=5)
        for c in self.containers + self.inits:
            for t in c.probe_tasks:
                t.cancel()
        self.kubelet.addresses.pods.release(self.ip)
        self.finished.set()

    def stop(self) -> None:
        self.terminating.set()
        self.changed.set()

    # -- status --------------------------------------------------------------------------
    def publish(self) -> None:
        self.kubelet.request_status(self)

    def _phase(self) -> str:
        """The pod phase as the kubelet's getPhase computes it (pkg/kubelet/kubelet_pods.go):
        a container waiting to restart after it ran counts as stopped, so a crash-looping
        pod with restartPolicy Always is Running, not Pending."""
        if self.phase in ("Succeeded", "Failed") or not self.initialized:
            return self.phase
        running = waiting = stopped = succeeded = 0
        for c in self.containers:
            if c.process is not None and c.process.exit_code is None:
                running += 1
            elif c.terminated is not None and c.process is not None:
                stopped += 1
                succeeded += c.terminated.get("exitCode") == 0
            elif c.last_terminated is not None:
                stopped += 1
            else:
                waiting += 1
        if waiting:
            return "Pending"
        if running:
            return "Running"
        if stopped:
            policy = self.pod["spec"].get("restartPolicy", "Always")
            if policy == "Always" or (policy == "OnFailure" and succeeded < stopped):
                return "Running"
            return "Succeeded" if succeeded == stopped else "Failed"
        return "Pending"

    @staticmethod
    def _ready(c: ContainerState) -> bool:
        """Ready needs the container running, started (startup probe passed) and ready."""
        return c.ready and c.started and c.process is not None and c.process.exit_code is None

    def status(self) -> dict:
        ready_all = bool(self.containers) and all(self._ready(c) for c in self.containers)
        phase = self._phase()
        now = now_rfc3339()
        prev = {c["type"]: c for c in self.pod.get("status", {}).get("conditions") or []}

        def cond(t: str, ok: bool, reason: str = "") -> dict:
            status = "True" if ok else "False"
            old = prev.get(t)
            out = {"type": t, "status": status,
                   "lastProbeTime": None,
                   "lastTransitionTime": old["lastTransitionTime"]
                   if old and old["status"] == status else now}
            if not ok and reason:
                out["reason"] = reason
            return out

        st = {
            "phase": phase,
            "conditions": [
                cond("PodReadyToStartContainers", bool(self.ip)),
                cond("Initialized", self.initialized, "ContainersNotInitialized"),
                cond("Ready", ready_all and phase == "Running", "ContainersNotReady"),
                cond("ContainersReady", ready_all, "ContainersNotReady"),
                cond("PodScheduled", True),
            ],
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}] if self.ip else [],
            "startTime": self.started_at,
            "qosClass": "BestEffort",
            "containerStatuses": [self._cstatus(c) for c in self.containers],
        }
        if self.inits:
            st["initContainerStatuses"] = [self._cstatus(c) for c in self.inits]
        if not self.ip:
            for k in ("podIP", "podIPs"):
                st.pop(k)
        return st

    def _cstatus(self, c: ContainerState) -> dict:
        state: dict
        if c.process is not None and c.process.exit_code is None:
            state = {"running": {"startedAt": c.process.started_at}}
        elif c.waiting is not None:
            state = {"waiting": {"reason": c.waiting[0],
                                 **({"message": c.waiting[1]} if c.waiting[1] else {})}}
        elif c.terminated is not None:
            state = {"terminated": c.terminated}
        else:
            state = {"waiting": {"reason": "ContainerCreating"}}
        out = {
            "name": c.name,
            "image": c.spec.get("image", ""),
            "imageID": "",
            "ready": self._ready(c),
            "restartCount": c.restart_count,
            "started": c.started and "running" in state,
            "state": state,
            "lastState": {"terminated": c.last_terminated} if c.last_terminated else {},
        }
        if c.process is not None:
            out["containerID"] = c.process.container_id
        return out

    def container(self, name: str | None) -> ContainerState | None:
        everyone = self.containers + self.inits
        if not name:
            default = (self.pod["metadata"].get("annotations") or {}).get(
                "kubectl.kubernetes.io/default-container")
            name = default or (self.containers[0].name if self.containers else None)
        return next((c for c in everyone if c.name == name), None)


"""The kubelet of the node ``localmesh``: pods become process groups.

It watches Pods bound to its node, runs a :class:`PodWorker` per pod, writes pod status
back through the same object API remote clients use, and finishes graceful deletion
(SIGTERM, grace period, SIGKILL, then the Pod object goes). It also answers the pod
subresources that need the node: exec, log, portforward and proxy (see streams.py).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from localmesh.api.objects import ObjectAPI
from localmesh.api.status import ApiError
from localmesh.kubelet import catalogue, containerfs
from localmesh.kubelet.cni import NetworkPlugin
from localmesh.kubelet.containers import ContainerProcess, ContainerRuntime
from localmesh.kubelet.environment import TokenIssuer, container_env, mount_env
from localmesh.kubelet.pods import ContainerState, PodWorker
from localmesh.kubelet.runtime import PidRegistry, start_watchdog
from localmesh.network import AddressPlan
from localmesh.store import Store, now_rfc3339

log = logging.getLogger("localmesh.kubelet")

NODE_NAME = "localmesh"
PODS = ("", "pods")


class Kubelet:
    """Reconciles Pods on the node ``localmesh``."""

    def __init__(self, api: ObjectAPI, addresses: AddressPlan, state_dir: Path,
                 tokens: TokenIssuer | None = None,
                 network: Sequence[NetworkPlugin] = (),
                 containers: ContainerRuntime | None = None) -> None:
        self.api = api
        # Chained CNI plugins asked when a pod's network is set up (istio-cni in ambient).
        self.network: Sequence[NetworkPlugin] = tuple(network)
        # --runtime podman: containers whose image podman has run in it (containers.py).
        self.containers = containers
        # TokenRequest, for projected ServiceAccount token volumes.
        self.tokens = tokens
        self.store: Store = api.store
        self.addresses = addresses
        self.pods_dir = state_dir / "pods"
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self.hosts_file = state_dir / "hosts"
        self.pids = PidRegistry(state_dir / "pids")
        self.workers: dict[str, PodWorker] = {}
        self._dirty: set[str] = set()
        self._flush = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._event_count = 0
        # exec / attach / portforward WebSockets being served, closed on stop() so a client
        # that keeps one open cannot hold localmesh's shutdown.
        self.open_streams: set = set()

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._watchdog = start_watchdog(self.pids.path)
        if self.containers is not None:
            self.containers.start()
        self._ensure_node()
        self._watch = self.store.watch(PODS)
        for pod in self.store.list(PODS):
            self._observe(pod)
        self._tasks.append(asyncio.ensure_future(self._pump()))
        self._tasks.append(asyncio.ensure_future(self._status_writer()))

    def _ensure_node(self) -> None:
        rt = self.api.rt("v1", "Node")
        if self.store.get(rt.key, "", NODE_NAME) is not None:
            return
        self.api.create(rt, "", {
            "metadata": {"name": NODE_NAME, "labels": {
                "kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux",
                "node-role.kubernetes.io/control-plane": ""}},
            "spec": {},
        })
        node = self.store.get(rt.key, "", NODE_NAME)
        assert node is not None
        self.api.set_status(rt, node, {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": NODE_NAME}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "localmesh kubelet is posting ready status",
                            "lastHeartbeatTime": now_rfc3339(),
                            "lastTransitionTime": now_rfc3339()}],
            "nodeInfo": {"kubeletVersion": "v1.33.0-localmesh", "operatingSystem": "linux",
                         "architecture": "amd64", "containerRuntimeVersion": "localmesh://1",
                         "kernelVersion": platform.release(), "osImage": "localmesh",
                         "kubeProxyVersion": "",
                         "machineID": "", "systemUUID": "", "bootID": ""},
            "capacity": {"cpu": "2", "memory": "24Gi", "pods": "500"},
            "allocatable": {"cpu": "2", "memory": "24Gi", "pods": "500"},
        })

    async def _pump(self) -> None:
        while True:
            ev = await self._watch.queue.get()
            if ev.type == "DELETED":
                w = self.workers.get(ev.obj["metadata"]["uid"])
                if w is not None:
                    w.stop()
                continue
            self._observe(ev.obj)

    def _observe(self, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if pod["spec"].get("nodeName", NODE_NAME) != NODE_NAME:
            return
        if worker is None:
            if pod["metadata"].get("deletionTimestamp"):
                self._finish_delete(pod)
                return
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed") and \
                    pod.get("status", {}).get("podIP"):
                return  # ran before this kubelet started; leave as is
            worker = self.containers.worker(self, pod) if self.containers is not None \
                else PodWorker(self, pod)
            self.workers[uid] = worker
            worker.start()
            self._tasks.append(asyncio.ensure_future(self._after(worker)))
            return
        worker.pod["metadata"] = pod["metadata"]
        if pod["metadata"].get("deletionTimestamp") and not worker.terminating.is_set():
            worker.pod = pod
            worker.stop()

    async def _after(self, worker: PodWorker) -> None:
        await worker.finished.wait()
        if worker.task is not None:
            try:
                await worker.task
            except Exception:
                log.exception("pod %s/%s worker failed", worker.ns, worker.name)
        self.workers.pop(worker.uid, None)
        pod = self.store.get(PODS, worker.ns, worker.name)
        if pod is not None and pod["metadata"]["uid"] == worker.uid and \
                pod["metadata"].get("deletionTimestamp"):
            self._finish_delete(pod)

    def _finish_delete(self, pod: dict) -> None:
        """All containers have stopped: the pod object can go (grace period 0)."""
        rt = self.api.rt("v1", "Pod")
        try:
            self.api.delete(rt, pod["metadata"]["namespace"], pod["metadata"]["name"], grace=0)
        except ApiError as exc:
            if exc.code != 404:
                raise

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self.open_streams:
            await asyncio.wait([asyncio.ensure_future(ws.close(code=1001))
                                for ws in list(self.open_streams)], timeout=2)
        workers = list(self.workers.values())
        for w in workers:
            w.stop()
        await asyncio.gather(*(w.finished.wait() for w in workers), return_exceptions=True)
        self.pids.reap_leftovers()
        if self.containers is not None:
            await self.containers.stop()
        watchdog = getattr(self, "_watchdog", None)
        if watchdog is not None and watchdog.stdin is not None:
            watchdog.stdin.close()  # nothing left to kill: let it finish now
            try:
                watchdog.wait(timeout=2)
            except subprocess.TimeoutExpired:
                watchdog.kill()

    # -- status --------------------------------------------------------------------------
    def request_status(self, worker: PodWorker) -> None:
        self._dirty.add(worker.uid)
        self._flush.set()

    async def _status_writer(self) -> None:
        rt = self.api.rt("v1", "Pod")
        while True:
            await self._flush.wait()
            self._flush.clear()
            dirty, self._dirty = self._dirty, set()
            for uid in dirty:
                w = self.workers.get(uid)
                if w is None:
                    continue
                pod = self.store.get(PODS, w.ns, w.name)
                if pod is None or pod["metadata"]["uid"] != uid:
                    continue
                w.pod["metadata"] = pod["metadata"]
                w.pod["status"] = pod.get("status", {})
                try:
                    self.api.set_status(rt, pod, w.status())
                except ApiError as exc:
                    if exc.code != 404:
                        log.warning("status of %s/%s: %s", w.ns, w.name, exc.message)

    # -- events --------------------------------------------------------------------------
    def event(self, pod: dict, type_: str, reason: str, message: str) -> None:
        rt = self.api.rt("v1", "Event")
        self._event_count += 1
        ns = pod["metadata"]["namespace"]
        now = now_rfc3339()
        body = {
            "metadata": {"name": f"{pod['metadata']['name']}.{self._event_count:x}",
                         "namespace": ns},
            "involvedObject": {"kind": "Pod", "namespace": ns, "name": pod["metadata"]["name"],
                               "uid": pod["metadata"]["uid"], "apiVersion": "v1"},
            "reason": reason, "message": message, "type": type_,
            "source": {"component": "kubelet", "host": NODE_NAME},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": "kubelet", "reportingInstance": NODE_NAME,
        }
        try:
            self.api.create(rt, ns, body)
        except ApiError:
            pass  # the namespace may be going away; events are best effort, as upstream

    # -- exec ----------------------------------------------------------------------------
    def exec_argv(self, c: ContainerState, command: list[str],
                  mounts: dict[str, str] | None = None) -> list[str]:
        """The host argv of an exec: the image's tools, then tar through the container's
        mounts (what ``kubectl cp`` runs), then the host's program; arguments naming a
        mounted path are translated (localmesh/kubelet/containerfs.py)."""
        image = catalogue.lookup(c.spec.get("image", ""))
        if command and command[0] == "tar" and (image is None or "tar" not in image.tools):
            # containerfs reads the mounts itself: the archive names container paths.
            return [sys.executable, "-m", "localmesh.kubelet.containerfs", *command]
        command = containerfs.translate_argv(command, mounts or {})
        if image is not None and command and command[0] in image.tools:
            return [*image.tools[command[0]], *command[1:]]
        return list(command)

    async def exec_process(self, worker: PodWorker, c: ContainerState, command: list[str],
                           stdin: bool) -> asyncio.subprocess.Process:
        if self.containers is not None and isinstance(c.process, ContainerProcess):
            return await asyncio.create_subprocess_exec(
                *self.containers.exec_argv(c.process, command, stdin), cwd=str(worker.dir),
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True)
        image = catalogue.lookup(c.spec.get("image", ""))
        assert image is not None
        env = worker.env_for(c, image)
        env.update(mount_env(c.spec, worker.volumes))
        env.update(container_env(self.store, worker.pod_with_ip(), copy.deepcopy(c.spec)))
        if c.process is not None:
            # What "PID 1" is for the container's `kill` tool (no PID namespace here).
            env["LOCALMESH_CONTAINER_PGID"] = str(c.process.pgid)
        argv = self.exec_argv(c, command, containerfs.mounts(env))
        return await asyncio.create_subprocess_exec(
            *argv, env=env, cwd=str(worker.dir),
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True)

    async def exec_capture(self, worker: PodWorker, c: ContainerState, command: list[str],
                           timeout: float) -> tuple[int, bytes, bytes]:
        try:
            proc = await self.exec_process(worker, c, command, stdin=False)
        except OSError as exc:
            return 126, b"", str(exc).encode()
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return 124, b"", b"probe timed out"
        return proc.returncode or 0, out, err

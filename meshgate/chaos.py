"""Faults, injected the way one injects them on any cluster: through the API.

- an app process: ``kubectl exec -c <app> -- kill 1`` (PID 1 of the container is the
  program; the workloads image ships ``kill``);
- a sidecar's Envoy: ``pilot-agent request POST quitquitquit`` (Envoy's admin endpoint
  that makes it exit; pilot-agent then exits and the kubelet restarts istio-proxy);
- a control-plane or addon pod: delete it and wait for its replacement to be Ready.
While a fault is injected, background traffic keeps flowing through the ingress
(bounded in count and time) so recovery is observed under load.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from meshgate import ingress
from meshgate.cluster import Cluster, ClusterError
from meshgate.sidecars import PROXY_CONTAINER


def restart_counts(cluster: Cluster, namespace: str, pod: str) -> dict[str, int]:
    p = cluster.get("v1", "Pod", pod, namespace)
    if p is None:
        raise ClusterError(f"pod {namespace}/{pod} is gone")
    st = p.get("status") or {}
    return {c["name"]: c.get("restartCount", 0)
            for c in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses")
                                                                 or [])}


def container_ready(cluster: Cluster, namespace: str, pod: str, container: str) -> bool:
    p = cluster.get("v1", "Pod", pod, namespace) or {}
    st = p.get("status") or {}
    for c in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
        if c["name"] == container:
            return bool(c.get("ready"))
    return False


def kill_app(cluster: Cluster, namespace: str, pod: str, container: str) -> None:
    res = cluster.exec(namespace, pod, container, ["kill", "1"], timeout=15)
    if res.returncode not in (0, 137, 143):
        raise ClusterError(f"kill 1 in {namespace}/{pod} -c {container} failed "
                           f"(exit {res.returncode}): {res.stderr.strip()}")


def kill_envoy(cluster: Cluster, namespace: str, pod: str) -> None:
    # Envoy exits as it answers, so the exec may report an error; the restart is what
    # the scenario checks.
    try:
        cluster.exec(namespace, pod, PROXY_CONTAINER,
                     ["pilot-agent", "request", "POST", "quitquitquit"], timeout=15)
    except ClusterError:
        pass


def delete_pods(cluster: Cluster, namespace: str, selector: str) -> list[str]:
    pods = cluster.list("v1", "Pod", namespace, label_selector=selector)
    for p in pods:
        cluster.delete("v1", "Pod", p["metadata"]["name"], namespace)
    return [p["metadata"]["name"] for p in pods]


def replaced_and_ready(cluster: Cluster, namespace: str, selector: str,
                       old: list[str]) -> bool:
    pods = [p for p in cluster.list("v1", "Pod", namespace, label_selector=selector)
            if not p["metadata"].get("deletionTimestamp")]
    fresh = [p for p in pods if p["metadata"]["name"] not in old]
    return bool(fresh) and all(
        {c["type"]: c["status"] for c in (p.get("status") or {}).get("conditions") or []}
        .get("Ready") == "True" for p in fresh)


@dataclass
class Traffic:
    """Requests in the background during a fault; bounded by count and time."""

    entry: ingress.EntryPoint
    path: str
    host: str
    max_requests: int = 2000
    max_seconds: float = 120.0
    answers: list[ingress.Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Traffic:
        def run() -> None:
            start = time.monotonic()
            while (not self._stop.is_set() and len(self.answers) < self.max_requests
                   and time.monotonic() - start < self.max_seconds):
                self.answers.append(ingress.get(self.entry, self.path, self.host, timeout=2))
                self._stop.wait(0.05)

        self._thread = threading.Thread(target=run, name="meshgate-chaos-traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[ingress.Answer]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        return self.answers

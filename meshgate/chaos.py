"""Faults, injected the way one injects them on any cluster: through the API.

- an app process: ``kubectl exec -c <app> -- kill 1`` (PID 1 of the container is the
  program; the workloads image ships ``kill``);
- a sidecar's Envoy: ``pilot-agent request POST quitquitquit`` (Envoy's admin endpoint
  that makes it exit; pilot-agent then exits and the kubelet restarts istio-proxy);
- a control-plane or addon pod: delete it and wait for its replacement to be Ready.
While a fault is injected, background traffic keeps flowing through the ingress
(bounded in count and time) so recovery is observed under load.

Every wait here is in the ``recovery`` area: the time the mesh needs to heal from a fault
the suite injected is a number of its own, not part of route or deploy convergence.
A fault is returned as a :class:`Fault`, which the scenario keeps for its Then steps.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field

from meshgate import ingress
from meshgate.cluster import Cluster, ClusterError
from meshgate.manifests import pods_of
from meshgate.mesh import MeshInfo
from meshgate.sidecars import PROXY_CONTAINER
from meshgate.waiting import Waits

# Control-plane components a scenario may replace, by their pods' labels.
COMPONENTS = {"istiod": "app=istiod", "Prometheus": "app=prometheus"}
FAULTS = {"app process": "the app's PID 1 gets `kill 1`",
          "Envoy": "Envoy is told to exit (`quitquitquit`)"}


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


def delete_pods(cluster: Cluster, namespace: str, selector: str, *,
                grace_period: int | None = None) -> list[str]:
    pods = cluster.list("v1", "Pod", namespace, label_selector=selector)
    for p in pods:
        cluster.delete("v1", "Pod", p["metadata"]["name"], namespace,
                       grace_period=grace_period)
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


@dataclass(frozen=True)
class Fault:
    """A fault injected into one container, and what the traffic saw meanwhile."""

    workload: str
    pod: str
    container: str
    restarts_before: int
    traffic_sent: int
    traffic_ok: int


def _first_pod(cluster: Cluster, namespace: str, workload: str) -> str:
    pods = pods_of(cluster, namespace, workload)
    if not pods:
        raise AssertionError(f"no pod of {workload} in {namespace}")
    return pods[0]["metadata"]["name"]


def kill_during_traffic(cluster: Cluster, namespace: str, workload: str, what: str,
                        gateway: ingress.Ingress, path: str, waits: Waits) -> Fault:
    """Kill ``what`` (a key of :data:`FAULTS`) in the first pod of ``workload`` while
    traffic flows to ``path`` through the ingress; wait until the container restarted and
    is Ready again."""
    if what not in FAULTS:
        raise AssertionError(f"unknown fault {what!r}: use one of {', '.join(FAULTS)}")
    pod = _first_pod(cluster, namespace, workload)
    container = workload if what == "app process" else PROXY_CONTAINER
    before = restart_counts(cluster, namespace, pod)[container]
    traffic = Traffic(gateway.entry, path, gateway.host).start()
    try:
        if what == "app process":
            kill_app(cluster, namespace, pod, container)
        else:
            kill_envoy(cluster, namespace, pod)
        waits.until(lambda: restart_counts(cluster, namespace, pod)[container] > before
                    and container_ready(cluster, namespace, pod, container),
                    area="recovery", what=f"{container} of {pod} restarted and Ready")
    finally:
        answers = traffic.stop()
    return Fault(workload, pod, container, before, len(answers),
                 sum(1 for a in answers if a.status == 200))


def expect_restart_visible(cluster: Cluster, namespace: str, fault: Fault | None,
                           container: str) -> int:
    """The killed container's restartCount went up; returns it."""
    if fault is None:
        raise AssertionError("no fault was injected in this scenario (a When step is missing)")
    if container != fault.container:
        raise AssertionError(f"the fault was injected into {fault.container}, not {container}")
    now = restart_counts(cluster, namespace, fault.pod)[container]
    if now <= fault.restarts_before:
        raise AssertionError(f"restartCount of {container} in {namespace}/{fault.pod} is "
                             f"{now}, was {fault.restarts_before}: the kill did not restart it")
    return now


def replace_component(cluster: Cluster, mesh: MeshInfo, component: str,
                      waits: Waits) -> list[str]:
    """Delete the pods of a control-plane component and wait until a replacement is
    Ready; returns the deleted pods' names."""
    if component not in COMPONENTS:
        raise AssertionError(f"unknown component {component!r}: use one of "
                             f"{', '.join(COMPONENTS)}")
    return replace_pods(cluster, mesh.namespace, COMPONENTS[component], waits)


def replace_pods(cluster: Cluster, namespace: str, selector: str, waits: Waits, *,
                 grace_period: int | None = None) -> list[str]:
    """Delete the pods ``selector`` selects (``grace_period=0``: at once, without a
    graceful stop) and wait until their replacements are Ready and behind the Services
    that select them (the endpoints controller adds a Ready pod a moment later, and the
    suite reaches a component through its Service); the deleted pods' names."""
    old = delete_pods(cluster, namespace, selector, grace_period=grace_period)
    waits.until(lambda: replaced_and_ready(cluster, namespace, selector, old),
                area="recovery", what=f"new pods of {selector} Ready")
    waits.until(lambda: replacements_served(cluster, namespace, selector, old),
                area="recovery", what=f"new pods of {selector} in their Services' endpoints")
    return old


def replacements_served(cluster: Cluster, namespace: str, selector: str,
                        old: list[str]) -> bool:
    """Every Service in ``namespace`` that selects the replacement pods lists one of them
    among its ready endpoint addresses."""
    fresh = [p for p in cluster.list("v1", "Pod", namespace, label_selector=selector)
             if p["metadata"]["name"] not in old and not p["metadata"].get("deletionTimestamp")]
    ips = {(p.get("status") or {}).get("podIP") for p in fresh} - {None}
    if not ips:
        return False
    for svc in cluster.list("v1", "Service", namespace):
        chooses = (svc.get("spec") or {}).get("selector") or {}
        if not chooses or not any(
                all((p["metadata"].get("labels") or {}).get(k) == v for k, v in chooses.items())
                for p in fresh):
            continue
        ep = cluster.get("v1", "Endpoints", svc["metadata"]["name"], namespace) or {}
        ready = {a.get("ip") for sub in ep.get("subsets") or [] for a in sub.get("addresses")
                 or []}
        if not ready & ips:
            return False
    return True


def expect_proxies_ready(cluster: Cluster, namespace: str, workloads: tuple[str, ...],
                         waits: Waits) -> None:
    """The istio-proxy of every workload's first pod is Ready (after a fault)."""
    for workload in workloads:
        pod = _first_pod(cluster, namespace, workload)
        waits.until(functools.partial(container_ready, cluster, namespace, pod,
                                      PROXY_CONTAINER),
                    area="recovery", what=f"istio-proxy of {pod} Ready")

"""``meshgate bench --mesh-sizes``: what the suite's checks and the mesh cost as it grows.

A gate on a mesh of thousands of services must cost about what it costs on a small one:
the suite's proxy checks read filtered config dumps (one route configuration, one
cluster), and istiod's pushes should not grow with the whole mesh for a change to one
Service. Each size is a fresh localmesh with ``--synthetic-services N`` and the blockchain
deployed in one namespace; per size this measures:

- the routes check, twice: composer's sidecar routes vp0:7050 (route configuration
  "7050", which a larger mesh leaves alone) and membersrvc's routes composer:8080 (route
  configuration "8080", where every synthetic service adds a virtual host, as web services
  on one port do on a real mesh: Envoy filters a dump by resource name, not by virtual
  host, so this one grows with the mesh however it is read); each its median time over a
  few calls and the bytes read from the proxy;
- a new Service's propagation: from its creation to its cluster in every proxy of the
  namespace and in the ingress gateway, as the suite sees it (each proxy polled through
  ``pilot-agent request``, so the figure carries the polls' own latency);
- istiod's convergence for that change, from istiod's own
  ``pilot_proxy_convergence_time`` histogram (Istio's name: the delay from a config change
  to its push to a proxy), where istiod exposes it;
- localmesh's memory (PSS of its whole process tree) and composer's full config dump size
  (the context: what an unfiltered check would have read).

Each figure is also given as a ratio to its value at the smallest size, one line each.
"""

from __future__ import annotations

import functools
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from meshgate import manifests, namespaces, rollout, routes, sidecars
from meshgate.bench import process_tree, pss_mib
from meshgate.cluster import Cluster
from meshgate.waiting import Timeouts, Waits, wait_until

SIZES_LIMIT = 5000
PROBE = "scale-probe"


@dataclass
class SizeResult:
    services: int
    boot_seconds: float | None
    routes_check_seconds: float
    routes_check_bytes: int
    shared_port_check_seconds: float
    shared_port_check_bytes: int
    full_dump_bytes: int
    propagation_seconds: float
    istiod_convergence_seconds: float | None
    memory_mib: float

    def to_json(self) -> dict:
        return asdict(self)


# (attribute, label, unit) of the figures compared across sizes, in print order.
FIGURES = (
    ("routes_check_seconds", "routes check (vp0:7050)", "s"),
    ("routes_check_bytes", "bytes read per routes check (vp0:7050)", "B"),
    ("shared_port_check_seconds", "routes check (composer:8080, the shared port)", "s"),
    ("shared_port_check_bytes", "bytes read per routes check (composer:8080)", "B"),
    ("propagation_seconds", "new Service in every proxy", "s"),
    ("istiod_convergence_seconds", "istiod's convergence (pilot_proxy_convergence_time)", "s"),
    ("memory_mib", "localmesh memory", "MiB"),
    ("full_dump_bytes", "composer's whole config dump", "B"),
)


def parse_sizes(text: str) -> list[int]:
    """``10,500,2000`` → [10, 500, 2000]; ValueError with what to give otherwise."""
    try:
        sizes = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(not 0 <= s <= SIZES_LIMIT for s in sizes) or \
            sizes != sorted(set(sizes)):
        raise ValueError(f"--mesh-sizes {text!r} is not a rising list of service counts: give "
                         f"counts from 0 to {SIZES_LIMIT}, smallest first, e.g. 10,500,2000")
    return sizes


def _convergence(cluster: Cluster, control_plane: str) -> tuple[float, int] | None:
    """istiod's ``pilot_proxy_convergence_time`` (sum, count), or None without it."""
    status, body = cluster.service_get(control_plane, "istiod", 15014, "/metrics")
    if status != 200:
        return None
    total, count = 0.0, -1
    for family in text_string_to_metric_families(body.decode("utf-8", "replace")):
        if family.name == "pilot_proxy_convergence_time":
            for s in family.samples:
                if s.name.endswith("_sum"):
                    total += s.value
                elif s.name.endswith("_count"):
                    count = max(count, 0) + int(s.value)
    return (total, count) if count >= 0 else None


def _probe_service(namespace: str) -> list[tuple[str, str, dict]]:
    """A Service without a selector on 8080 and its Endpoints (a loopback address nothing
    binds on localmesh; never sent to)."""
    port = {"name": "http", "port": 8080, "protocol": "TCP"}
    return [
        ("v1", "Service", {"apiVersion": "v1", "kind": "Service",
                           "metadata": {"name": PROBE, "namespace": namespace},
                           "spec": {"ports": [{**port, "targetPort": 8080}]}}),
        ("v1", "Endpoints", {"apiVersion": "v1", "kind": "Endpoints",
                             "metadata": {"name": PROBE, "namespace": namespace},
                             "subsets": [{"addresses": [{"ip": "127.0.0.254"}],
                                          "ports": [port]}]}),
    ]


def _propagation(cluster: Cluster, namespace: str, proxies: list[tuple[str, str]]) -> float:
    """Seconds from creating the probe Service to its cluster in every proxy."""
    wanted = f"outbound|8080||{PROBE}.{namespace}.svc.cluster.local"
    regex = rf".*\|{PROBE}\.{namespace}\..*"
    start = time.monotonic()
    for _, _, body in _probe_service(namespace):
        cluster.apply(body, namespace)

    def has_probe(ns: str, pod: str) -> bool:
        return any(c.get("name") == wanted for c in sidecars.clusters(cluster, ns, pod, regex))

    for ns, pod in proxies:
        wait_until(functools.partial(has_probe, ns, pod), area="routes",
                   what=f"{wanted} in {ns}/{pod}", timeout=120, interval=0.01, max_interval=0.02)
    return time.monotonic() - start


def _timed(repeat: int, cluster: Cluster, check: Callable[[], object]) -> tuple[float, int]:
    """The median seconds and bytes read of ``repeat`` calls of a check."""
    times, sizes = [], []
    for _ in range(repeat):
        before, start = cluster.received, time.monotonic()
        check()
        times.append(time.monotonic() - start)
        sizes.append(cluster.received - before)
    return statistics.median(times), int(statistics.median(sizes))


def measure(services: int, repeat: int = 5) -> SizeResult:
    """One size, on a fresh localmesh."""
    from meshgate.targets.local import LocalTarget

    folder = Path(tempfile.mkdtemp(prefix="meshgate-scale-"))
    target = LocalTarget(folder, shape={"synthetic_services": services})
    try:
        provided = target.start()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    run_id = uuid.uuid4().hex[:8]
    try:
        cluster = Cluster(provided.kubeconfig, provided.context, run_id=run_id)
        namespace = f"mg-scale-{run_id}"
        namespaces.create(cluster, namespace, run_id)
        waits = Waits(Timeouts.from_sources({"deploy": 300.0, "routes": 120.0}))
        rollout.deploy_blockchain(cluster, namespace, waits)
        own = _timed(repeat, cluster, lambda: routes.expect_sidecar_route(
            cluster, namespace, "composer", "vp0", 7050, waits))
        shared = _timed(repeat, cluster, lambda: routes.expect_sidecar_route(
            cluster, namespace, "membersrvc", "composer", 8080, waits))
        composer = manifests.pods_of(cluster, namespace, "composer")[0]["metadata"]["name"]
        full = len(sidecars.admin_get(cluster, namespace, composer, "config_dump"))
        proxies = [(namespace, p["metadata"]["name"])
                   for app in ("composer", "vp0", "membersrvc")
                   for p in manifests.pods_of(cluster, namespace, app)]
        gateway = cluster.list("v1", "Pod", "istio-system", label_selector="istio=ingressgateway")
        proxies += [("istio-system", p["metadata"]["name"]) for p in gateway]
        converged_before = _convergence(cluster, "istio-system")
        propagation = _propagation(cluster, namespace, proxies)
        converged_after = _convergence(cluster, "istio-system")
        convergence = None
        if converged_before and converged_after and converged_after[1] > converged_before[1]:
            convergence = (converged_after[0] - converged_before[0]) / (
                converged_after[1] - converged_before[1])
        pid = target.pid
        memory = pss_mib(process_tree(pid)) if pid is not None else 0.0
        return SizeResult(services, target.boot_seconds, *own, *shared, full, propagation,
                          convergence, memory)
    finally:
        target.stop()
        shutil.rmtree(folder, ignore_errors=True)  # the target's own folder went with it


def format_sizes(results: list[SizeResult]) -> str:
    """A table per size, then one line per figure and size with its ratio to the
    smallest size's value."""
    head = (f"{'services':>8} {'boot s':>7} {'7050 s':>7} {'7050 B':>8} {'8080 s':>7} "
            f"{'8080 B':>9} {'dump B':>10} {'new svc s':>10} {'istiod s':>9} {'MiB':>6}")
    lines = [head]
    for r in results:
        istiod = f"{r.istiod_convergence_seconds:9.3f}" \
            if r.istiod_convergence_seconds is not None else f"{'n/a':>9}"
        lines.append(f"{r.services:8d} {r.boot_seconds or 0:7.2f} {r.routes_check_seconds:7.3f} "
                     f"{r.routes_check_bytes:8d} {r.shared_port_check_seconds:7.3f} "
                     f"{r.shared_port_check_bytes:9d} {r.full_dump_bytes:10d} "
                     f"{r.propagation_seconds:10.3f} {istiod} {r.memory_mib:6.0f}")
    lines.append("")
    smallest = results[0]
    for attr, label, unit in FIGURES:
        base = getattr(smallest, attr)
        for r in results[1:]:
            value = getattr(r, attr)
            if value is None or not base:
                continue
            shown = f"{value:.3f} s" if unit == "s" else f"{value:.0f} {unit}"
            lines.append(f"{label} at {r.services} services: {shown} "
                         f"({value / base:.1f}× the smallest)")
    return "\n".join(lines)

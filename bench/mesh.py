"""Benchmark of Istio on localmesh (issue 4). A script, not a test: it prints numbers.

Measures, from cold, on this machine:
- mesh boot: ``localmesh up`` → every istio-system pod Ready;
- the three workloads and the ingress applied → all Ready with sidecars;
- a VirtualService applied → its route in the sidecar's config dump (pods/exec);
- a request through the ingress → counted in Prometheus (1 s scrape);
- a request → its edge in Kiali's graph;
- memory of the whole local mesh (PSS of the localmesh process and every process it
  started).
Targets: boot ≤ 3 s, workloads Ready ≤ 3 s, route ≤ 200 ms, metric ≤ 2 s, edge ≤ 3 s,
memory ≤ 1.5 GiB. Every loop is bounded by a deadline.

"New pods" measures include Prometheus discovering the pods' targets: Prometheus batches
service-discovery updates every 5 s (its discovery manager's fixed update interval), so
the first sample of a brand-new pod can take that long; "warm" measures are between pods
Prometheus already scrapes, which is what the targets are about.

Usage: .venv/bin/python bench/mesh.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from localmesh.cli import launch
from meshgate import ingress, mesh, rollout, sidecars, telemetry
from meshgate.bench import process_tree, pss_mib
from meshgate.cluster import Cluster
from meshgate.config_dump import load_config_dump, route_entries
from meshgate.namespaces import create
from meshgate.waiting import DEFAULT_TIMEOUTS, Timeouts, Waits


def until(fn, timeout: float = 30.0, interval: float = 0.01):  # type: ignore[no-untyped-def]
    """Seconds until fn() is truthy (bounded); raises on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if fn():
                return time.monotonic() - start
        except Exception:  # noqa: BLE001 - not yet
            pass
        time.sleep(interval)
    raise TimeoutError(f"not converged within {timeout}s: {fn}")


def one_run() -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-mesh-") as tmp:
        t0 = time.monotonic()
        handle = launch(Path(tmp), mesh=True)
        out["mesh boot (up → istio-system Ready)"] = time.monotonic() - t0
        try:
            cluster = Cluster(handle.kubeconfig)
            info = mesh.discover(cluster)
            ns = "bench"
            create(cluster, ns, "bench")
            t0 = time.monotonic()
            rollout.deploy_blockchain(cluster, ns,
                                      Waits(Timeouts({**DEFAULT_TIMEOUTS, "deploy": 60.0})))
            out["workloads + ingress applied → Ready with sidecars"] = time.monotonic() - t0
            entry = ingress.entry_point(cluster, info.ingress_gateway)
            host = ingress.scenario_host(ns)
            prom = telemetry.Prometheus(cluster, info.prometheus)  # type: ignore[arg-type]
            labels = telemetry.destination_labels("vp0", ns, 200)

            def edge(src: str = "istio-ingressgateway", dst: str = "vp0") -> bool:
                _, body = cluster.service_get(
                    "istio-system", "kiali", 20001, "/kiali/api/namespaces/graph",
                    {"namespaces": ns, "graphType": "workload", "duration": "60s"})
                doc = json.loads(body)
                names = {n["data"]["id"]: n["data"].get("workload")
                         for n in doc["elements"]["nodes"]}
                return any((names[e["data"]["source"]], names[e["data"]["target"]])
                           == (src, dst) for e in doc["elements"]["edges"])

            t0 = time.monotonic()
            assert ingress.get(entry, "/chain/blocks/0", host).status == 200
            t_req = time.monotonic()
            out["request → counted in Prometheus (new pods)"] = until(
                lambda: telemetry.requests_total(prom, labels) >= 1) + (t_req - t0)
            out["request → edge in Kiali's graph (new pods)"] = time.monotonic() - t0 + until(edge)
            before = telemetry.requests_total(prom, labels)
            assert ingress.get(entry, "/chain/blocks/0", host).status == 200
            out["request → counted in Prometheus (warm target)"] = until(
                lambda: telemetry.requests_total(prom, labels) >= before + 1)
            # A new edge between pods Prometheus already scrapes (gateway → composer).
            t0 = time.monotonic()
            assert ingress.get(entry, "/login", host).status == 200
            out["request → new edge in Kiali's graph (warm targets)"] = \
                time.monotonic() - t0 + until(lambda: edge("istio-ingressgateway", "composer"))
            pod = next(iter(rollout.deploy_blockchain(cluster, ns, Waits())["composer"].pods))
            vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                  "metadata": {"name": "bench"},
                  "spec": {"hosts": ["vp0"], "http": [
                      {"match": [{"uri": {"prefix": "/bench"}}],
                       "route": [{"destination": {"host": "vp0"}}]}]}}
            t0 = time.monotonic()
            wall0 = time.time()
            cluster.apply(vs, ns)
            # Read only route config "7050" (Envoy's name_regex filter) so the measure is
            # the push, not the size of the dump.
            path = "config_dump?resource=dynamic_route_configs&name_regex=^7050$"
            seen: dict = {}

            def routed() -> bool:
                dump = load_config_dump(sidecars.admin_get(cluster, ns, pod, path))
                if any(e.match == {"prefix": "/bench"} for e in route_entries(dump)):
                    seen["dump"] = dump
                    return True
                return False

            visible = until(routed, interval=0.005)
            updated = seen["dump"]["configs"][0]["last_updated"]
            applied_at = datetime.fromisoformat(updated.replace("Z", "+00:00")).timestamp()
            out["VirtualService applied → route in Envoy (its last_updated)"] = \
                applied_at - wall0
            out["VirtualService applied → route seen through pods/exec"] = visible
            del t0
            out["(one config-dump read over pods/exec)"] = _timed(
                lambda: sidecars.route_dump(cluster, ns, pod))
            out["memory of the whole local mesh (PSS, MiB)"] = pss_mib(process_tree(handle.pid))
        finally:
            handle.stop()
    return out


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


TARGETS = {
    "mesh boot (up → istio-system Ready)": 3.0,
    "workloads + ingress applied → Ready with sidecars": 3.0,
    "VirtualService applied → route in Envoy (its last_updated)": 0.2,
    "request → counted in Prometheus (warm target)": 2.0,
    "request → new edge in Kiali's graph (warm targets)": 3.0,
    "memory of the whole local mesh (PSS, MiB)": 1536.0,
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    runs = [one_run() for _ in range(max(1, min(args.runs, 20)))]
    print(f"{'measure':58} {'median':>9} {'max':>9} {'target':>8}")
    for key in runs[0]:
        values = [r[key] for r in runs]
        unit = "" if "MiB" in key else "s"
        target = TARGETS.get(key)
        mark = "" if target is None else ("ok" if statistics.median(values) <= target
                                          else "MISS")
        print(f"{key:58} {statistics.median(values):8.3f}{unit} {max(values):8.3f}{unit} "
              f"{'' if target is None else f'{target:g}{unit}':>8} {mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

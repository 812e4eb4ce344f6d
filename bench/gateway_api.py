"""Benchmark of the Gateway API on localmesh (issue 12). A script, not a test: it prints
numbers and asserts none.

Measures, from cold, on this machine:
- the Gateway of manifests/overlays/gateway-api.yaml applied → ``Programmed`` (istiod's
  status: its ``<gateway>-istio`` deployment has a ready pod) and → its first 200 for
  ``/login`` through the gateway;
- an HTTPRoute applied (a new hostname each time, so nothing is cached) → it answers 200
  through the gateway: the apply, istiod's push over xDS and the gateway Envoy's update;
- that HTTPRoute changed (its backend swapped) → the new backend answers;
- the HTTPRoute applied → its ``Accepted`` status.

Every wait is bounded. The workloads and the overlay are applied with kubectl (set-up,
not measured); the measured applies are server-side applies through the official client,
as the suite makes them, and requests go straight to the Gateway's address.

Usage: .venv/bin/python bench/gateway_api.py [--runs N] [--routes M]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from localmesh.cli import launch
from meshgate.cluster import Cluster

REPO = Path(__file__).resolve().parents[1]
GROUP = "gateway.networking.k8s.io"
GW = "blockchain-gateway"
NS = "bench-gwapi"
PATH = "/network/peers"  # vp0 answers it; the overlay's route (every host) does not
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def until(fn: Callable[[], object], timeout: float = 30.0, interval: float = 0.005) -> float:
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


def first_times(t0: float, checks: dict[str, Callable[[], object]],
                timeout: float = 30.0) -> dict[str, float]:
    """Seconds from ``t0`` until each check first holds, all polled in one loop (bounded)."""
    seen: dict[str, float] = {}
    while len(seen) < len(checks):
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"not converged within {timeout}s: {set(checks) - set(seen)}")
        for key, check in checks.items():
            if key not in seen:
                try:
                    if check():
                        seen[key] = time.monotonic() - t0
                except Exception:  # noqa: BLE001 - not yet
                    pass
        time.sleep(0.002)
    return seen


def answer(url: str, host: str | None = None) -> tuple[int, str]:
    """(status, content type) of a GET; connection errors are status 0."""
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with _OPENER.open(req, timeout=2) as r:
            return r.status, r.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type", "")
    except OSError:
        return 0, ""


def route(name: str, host: str, service: str, port: int) -> dict:
    return {"apiVersion": f"{GROUP}/v1", "kind": "HTTPRoute", "metadata": {"name": name},
            "spec": {"hostnames": [host], "parentRefs": [{"name": GW}],
                     "rules": [{"matches": [{"path": {"type": "Exact", "value": PATH}}],
                                "backendRefs": [{"name": service, "port": port}]}]}}


def low_ports_bindable() -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 80))
        except PermissionError:
            return False
        except OSError:
            return True
    return True


def one_run(routes: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-gwapi-") as tmp:
        handle = launch(Path(tmp), mesh=True)
        try:
            def kubectl(*args: str) -> str:
                return subprocess.run(["kubectl", "--kubeconfig", str(handle.kubeconfig),
                                       *args], check=True, capture_output=True,
                                      text=True).stdout

            kubectl("create", "namespace", NS)
            kubectl("label", "namespace", NS, "istio-injection=enabled")
            for f in ("composer", "vp0", "membersrvc"):
                kubectl("apply", "-n", NS, "-f", str(REPO / "manifests" / f"{f}.yaml"))
            for d in ("composer", "vp0", "membersrvc"):
                kubectl("rollout", "status", "-n", NS, f"deployment/{d}", "--timeout=60s")
            cluster = Cluster(handle.kubeconfig)
            t0 = time.monotonic()
            kubectl("apply", "-n", NS, "-f", str(REPO / "manifests/overlays/gateway-api.yaml"))

            def gateway() -> dict:
                return cluster.get(f"{GROUP}/v1", "Gateway", GW, NS) or {}

            def programmed() -> bool:
                conds = (gateway().get("status") or {}).get("conditions") or []
                return any(c["type"] == "Programmed" and c["status"] == "True" for c in conds)

            until(programmed)
            out["Gateway applied → Programmed"] = [time.monotonic() - t0]
            address = gateway()["status"]["addresses"][0]["value"]
            port = 80
            if not low_ports_bindable():
                svc = cluster.get("v1", "Service", f"{GW}-istio", NS) or {}
                port = next(p["node_port"] for p in svc["spec"]["ports"] if p["port"] == 80)
            base = f"http://{address}:{port}"
            until(lambda: answer(base + "/login")[0] == 200)
            out["Gateway applied → first 200 through it"] = [time.monotonic() - t0]
            for i in range(routes):
                host, name = f"r{i}.bench.example", f"r{i}"

                def accepted(n: str = name) -> bool:
                    r = cluster.get(f"{GROUP}/v1", "HTTPRoute", n, NS) or {}
                    return any(c["type"] == "Accepted" and c["status"] == "True"
                               for p in (r.get("status") or {}).get("parents") or []
                               for c in p["conditions"])

                assert answer(base + PATH, host)[0] == 404, "answered before its route"
                def served(h: str = host) -> bool:
                    return answer(base + PATH, h)[0] == 200

                def changed(h: str = host) -> bool:
                    return "text/html" in answer(base + PATH, h)[1]

                t0 = time.monotonic()
                cluster.apply(route(name, host, "vp0", 7050), NS)
                seen = first_times(t0, {
                    "HTTPRoute applied → answers through the gateway": served,
                    "HTTPRoute applied → Accepted in its status": accepted})
                for key, seconds in seen.items():
                    out.setdefault(key, []).append(seconds)
                t0 = time.monotonic()
                cluster.apply(route(name, host, "composer", 8080), NS)
                out.setdefault("HTTPRoute changed → the new backend answers", []).append(
                    until(changed))
        finally:
            handle.stop()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--routes", type=int, default=10)
    args = p.parse_args()
    merged: dict[str, list[float]] = {}
    for _ in range(max(1, min(args.runs, 20))):
        for key, values in one_run(max(1, min(args.routes, 100))).items():
            merged.setdefault(key, []).extend(values)
    print(f"{'measure':52} {'n':>4} {'median':>9} {'max':>9}")
    for key, values in merged.items():
        print(f"{key:52} {len(values):4d} {statistics.median(values):8.3f}s "
              f"{max(values):8.3f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

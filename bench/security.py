"""Benchmark of Istio's security on localmesh (issue 12). A script, not a test: it prints
numbers.

On one localmesh with the blockchain deployed, measures how long a policy takes from its
apply (the API server's answer) to being in force in Envoy, each way and each several
times:

- a namespace ``STRICT`` PeerAuthentication → a plaintext request to composer's ClusterIP
  is refused (observed through traffic), and the PeerAuthentication deleted → plaintext
  answered again;
- the same, observed in composer's config dump (``virtualInbound`` has no plaintext chain
  on 8080; read over pods/exec, so it includes one exec round trip);
- a ``DENY`` AuthorizationPolicy on vp0's ``/chain/blocks/*`` → ``403`` through the ingress
  gateway, and deleted → ``200``;
- the same DENY observed on new connections (plaintext to vp0's ClusterIP), which see a
  changed filter chain at once, where the gateway's pooled connection to vp0 finishes on
  the old chain within Envoy's drain time;
- the cost of mTLS on a hop: ``/chain/blocks/0`` through the gateway with auto mTLS on,
  and with ``enableAutoMtls: false`` in ConfigMap ``istio`` (medians of 100 requests,
  alternated three times, on kept-alive connections from the gateway's pools).

Every wait is bounded by a deadline. Usage: .venv/bin/python bench/security.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests
import yaml
from kubernetes import config
from kubernetes.dynamic import DynamicClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from localmesh.cli import launch

REPO = Path(__file__).resolve().parents[1]
STRICT = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
          "metadata": {"name": "default"}, "spec": {"mtls": {"mode": "STRICT"}}}
DENY = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
        "metadata": {"name": "deny-blocks"},
        "spec": {"selector": {"matchLabels": {"app": "vp0"}}, "action": "DENY",
                 "rules": [{"to": [{"operation": {"paths": ["/chain/blocks/*"]}}]}]}}


def until(fn: Callable[[], object], timeout: float = 30.0, interval: float = 0.005) -> None:
    """Return once fn() is truthy (bounded); raise on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if fn():
                return
        except Exception:  # noqa: BLE001 - not yet
            pass
        time.sleep(interval)
    raise TimeoutError(f"not converged within {timeout}s: {fn}")


def timed(change: Callable[[], object], in_force: Callable[[], object]) -> float:
    """Seconds from just before ``change`` (an apply or delete) until ``in_force``."""
    t0 = time.monotonic()
    change()
    until(in_force)
    return time.monotonic() - t0


def status(session: requests.Session, url: str) -> int:
    """The status of a GET on a new connection; 0 when the connection is refused or cut."""
    try:
        return session.get(url, timeout=2, headers={"Connection": "close"}).status_code
    except requests.ConnectionError:
        return 0


class Mesh:
    """The bench's clients of one localmesh: kubectl and the dynamic client."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        api = config.new_client_from_config(config_file=str(kubeconfig))
        self.dyn = DynamicClient(api)

    def kubectl(self, *args: str) -> str:
        return subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
                              check=True, capture_output=True, text=True, timeout=120).stdout

    def apply(self, obj: dict, ns: str) -> None:
        self.dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"]).create(
            body=obj, namespace=ns)

    def delete(self, obj: dict, ns: str) -> None:
        self.dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"]).delete(
            name=obj["metadata"]["name"], namespace=ns)

    def plaintext_chain(self, ns: str, pod: str) -> bool:
        out = self.kubectl("exec", "-n", ns, pod, "-c", "istio-proxy", "--", "pilot-agent",
                           "request", "GET", "config_dump?resource=dynamic_listeners&"
                           "name_regex=^virtualInbound$")
        for cfg in json.loads(out)["configs"]:
            for chain in cfg["active_state"]["listener"]["filter_chains"]:
                m = chain.get("filter_chain_match") or {}
                if m.get("destination_port") == 8080 and \
                        m.get("transport_protocol") == "raw_buffer":
                    return True
        return False

    def set_auto_mtls(self, enabled: bool) -> None:
        cms = self.dyn.resources.get(api_version="v1", kind="ConfigMap")
        cm = cms.get(name="istio", namespace="istio-system").to_dict()
        mesh = yaml.safe_load(cm["data"]["mesh"])
        mesh["enableAutoMtls"] = enabled
        cms.patch(name="istio", namespace="istio-system", content_type=
                  "application/merge-patch+json", body={"data": {"mesh": yaml.safe_dump(mesh)}})


def latency(session: requests.Session, url: str, n: int = 50) -> float:
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        assert session.get(url, timeout=5).status_code == 200
        times.append(time.monotonic() - t0)
    return statistics.median(times)


def one_run(repeats: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}

    def record(key: str, seconds: float) -> None:
        out.setdefault(key, []).append(seconds)

    with tempfile.TemporaryDirectory(prefix="bench-security-") as tmp:
        handle = launch(Path(tmp), mesh=True)
        try:
            m = Mesh(handle.kubeconfig)
            ns = "bench"
            m.kubectl("create", "namespace", ns)
            m.kubectl("label", "namespace", ns, "istio-injection=enabled")
            for f in ("composer", "vp0", "membersrvc", "ingress"):
                m.kubectl("apply", "-n", ns, "-f", str(REPO / "manifests" / f"{f}.yaml"))
            for d in ("composer", "vp0", "membersrvc"):
                m.kubectl("rollout", "status", "-n", ns, f"deployment/{d}", "--timeout=60s")
            composer = m.kubectl("get", "pods", "-n", ns, "-l", "app=composer", "-o",
                                 "jsonpath={.items[0].metadata.name}")
            cluster_ip = m.kubectl("get", "svc", "-n", ns, "composer", "-o",
                                   "jsonpath={.spec.clusterIP}")
            gw_ip = m.kubectl("get", "svc", "-n", "istio-system", "istio-ingressgateway", "-o",
                              "jsonpath={.status.loadBalancer.ingress[0].ip}")
            plain = f"http://{cluster_ip}:8080/login"
            vp0_ip = m.kubectl("get", "svc", "-n", ns, "vp0", "-o", "jsonpath={.spec.clusterIP}")
            vp0_direct = f"http://{vp0_ip}:7050/chain/blocks/0"
            blocks = f"http://{gw_ip}:80/chain/blocks/0"
            s = requests.Session()
            s.trust_env = False
            until(lambda: status(s, blocks) == 200)
            for _ in range(repeats):
                record("PeerAuthentication STRICT → plaintext refused",
                       timed(lambda: m.apply(STRICT, ns), lambda: status(s, plain) == 0))
                record("PeerAuthentication deleted → plaintext answered",
                       timed(lambda: m.delete(STRICT, ns), lambda: status(s, plain) == 200))
                record("PeerAuthentication STRICT → no plaintext chain (dump, + exec)",
                       timed(lambda: m.apply(STRICT, ns),
                             lambda: not m.plaintext_chain(ns, composer)))
                m.delete(STRICT, ns)
                until(lambda: status(s, plain) == 200)
                record("AuthorizationPolicy DENY → 403 through the gateway",
                       timed(lambda: m.apply(DENY, ns), lambda: status(s, blocks) == 403))
                record("AuthorizationPolicy deleted → 200 again",
                       timed(lambda: m.delete(DENY, ns), lambda: status(s, blocks) == 200))
                # New connections see a changed chain at once; the gateway's pooled
                # connection finishes on the old chain within Envoy's drain time.
                record("AuthorizationPolicy DENY → 403 on new connections (vp0's ClusterIP)",
                       timed(lambda: m.apply(DENY, ns), lambda: status(s, vp0_direct) == 403))
                record("AuthorizationPolicy deleted → 200 on new connections",
                       timed(lambda: m.delete(DENY, ns), lambda: status(s, vp0_direct) == 200))
            keep = requests.Session()
            keep.trust_env = False
            gw = m.kubectl("get", "pods", "-n", "istio-system", "-l", "app=istio-ingressgateway",
                           "-o", "jsonpath={.items[0].metadata.name}")

            def auto_mtls(enabled: bool) -> None:
                m.set_auto_mtls(enabled)
                until(lambda: ("transport_socket_matches" in m.kubectl(
                    "exec", "-n", "istio-system", gw, "--", "pilot-agent", "request", "GET",
                    "config_dump?resource=dynamic_active_clusters&name_regex=.*vp0.*"))
                    == enabled)
                latency(keep, blocks, 10)  # warm the new pools

            for _ in range(3):  # alternated, so load from elsewhere hits both alike
                auto_mtls(True)
                record("gateway → vp0 hop, auto mTLS (median of 100 requests)",
                       latency(keep, blocks, 100))
                auto_mtls(False)
                record("gateway → vp0 hop, plaintext (median of 100 requests)",
                       latency(keep, blocks, 100))
            m.set_auto_mtls(True)
        finally:
            handle.stop()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=1, help="localmesh boots (default 1)")
    p.add_argument("--repeats", type=int, default=5, help="applies per boot (default 5)")
    args = p.parse_args()
    merged: dict[str, list[float]] = {}
    for _ in range(max(1, min(args.runs, 10))):
        for key, values in one_run(max(1, min(args.repeats, 50))).items():
            merged.setdefault(key, []).extend(values)
    print(f"{'measure':58} {'median':>9} {'max':>9} {'n':>4}")
    for key, values in merged.items():
        print(f"{key:58} {statistics.median(values) * 1000:7.1f}ms "
              f"{max(values) * 1000:7.1f}ms {len(values):4d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

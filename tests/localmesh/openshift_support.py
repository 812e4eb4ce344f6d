"""What the OpenShift flavor's tests share: kubectl and curl against one instance, and the
way a client reaches a Route (the router's LoadBalancer address, with the Route's host)."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localmesh.cli import Handle
from tests.support import REPO, poll, require_kubectl


@dataclass
class Cluster:
    """kubectl and curl bound to one instance's kubeconfig."""

    handle: Handle

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run([require_kubectl(), "--kubeconfig", str(self.handle.kubeconfig),
                               *args], input=input, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): "
                                 f"{proc.stdout}{proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def apply(self, namespace: str, manifest: str) -> None:
        self.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)

    def deploy(self, namespace: str, name: str, annotations: dict | None = None) -> None:
        """A workload of manifests/ (its pods annotated), rolled out."""
        self.kubectl("apply", "-n", namespace, "-f", str(REPO / "manifests" / f"{name}.yaml"))
        if annotations:
            self.kubectl("patch", "-n", namespace, f"deployment/{name}", "--type", "merge",
                         "-p", json.dumps({"spec": {"template": {"metadata": {
                             "annotations": annotations}}}}))
        self.kubectl("rollout", "status", "-n", namespace, f"deployment/{name}",
                     "--timeout=60s", timeout=90)

    def pod(self, namespace: str, selector: str) -> dict:
        pods = self.json("get", "pods", "-n", namespace, "-l", selector)["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        assert len(live) == 1, f"expected one pod {selector} in {namespace}: {live}"
        return live[0]

    def router(self) -> tuple[str, int, int]:
        """The router's LoadBalancer address and its HTTP and HTTPS ports there (80 and
        443, or their nodePorts where localmesh cannot bind those)."""
        svc = self.json("get", "service", "-n", "openshift-ingress", "router-default")
        ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
        info = json.loads((self.handle.state_dir / "instance.json").read_text())
        moved = "openshift-ingress/router-default" in info.get("load_balancer_ports", {})
        ports = {p["name"]: p["nodePort"] if moved else p["port"]
                 for p in svc["spec"]["ports"]}
        return ip, ports["http"], ports["https"]


def curl(*args: str, timeout: float = 10) -> subprocess.CompletedProcess:
    binary = shutil.which("curl")
    if binary is None:
        pytest.skip("curl is not installed")
    return subprocess.run([binary, "-sS", "--noproxy", "*", "--max-time", str(timeout),
                           *args], capture_output=True, text=True, timeout=timeout + 5)


def through_router(cluster: Cluster, host: str, path: str, *, https: bool = False,
                   cacert: Path | None = None, extra: tuple[str, ...] = ()) -> tuple[int, str]:
    """GET ``path`` of ``host`` through the router, as a client without DNS for the apps
    domain does it: ``--resolve`` the Route's host to the router's LoadBalancer address.
    Returns (status, body); 0 when the connection failed."""
    ip, http_port, https_port = cluster.router()
    port = https_port if https else http_port
    scheme = "https" if https else "http"
    args = ["--resolve", f"{host}:{port}:{ip}", "-o", "-", "-w", "\n%{http_code}", *extra]
    if cacert is not None:
        args += ["--cacert", str(cacert)]
    proc = curl(*args, f"{scheme}://{host}:{port}{path}")
    body, _, code = proc.stdout.rpartition("\n")
    return (int(code) if code.isdigit() else 0), body


def admitted(cluster: Cluster, namespace: str, name: str) -> dict:
    """The Route once the default router has decided about it."""
    def decided() -> dict | None:
        route = cluster.json("get", "route", "-n", namespace, name)
        for ingress in (route.get("status") or {}).get("ingress") or []:
            if ingress.get("routerName") == "default" and ingress.get("conditions"):
                return route
        return None
    return poll(decided, what=f"the router's decision on route {namespace}/{name}",
                timeout=20)

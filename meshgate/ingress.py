"""The ingress: isolating a scenario's Ingress, finding the gateway's entry point, probing.

Isolation: on a shared gateway, two namespaces' host-less Ingresses for ``/login`` would
collide (Istio merges them into one ``*:80`` virtual host and the first wins), so the
suite gives each namespace's Ingress rules its own host (``<namespace>.meshgate.test``) and
sends that Host header. The path semantics stay those of the manifest.

Entry point, by what the platform exposes (docs/architecture.md, "Ingress"): a LoadBalancer's
``status.loadBalancer.ingress`` address on the Service port (or on its nodePort there
when the port is not served); a NodePort on a node address; on OpenShift, a Route of the
suite's for the scenario's host, through the router (meshgate/openshift_route.py).
Probing requires N consecutive expected answers within T, not one lucky response.

:class:`Ingress` is one scenario's client of the gateway: it sends and probes with the
scenario's Host and remembers what it sent and what came back, for the failure bundle.
"""

from __future__ import annotations

import copy
import hashlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from meshgate import openshift_route, tls_client
from meshgate.cluster import Cluster, ClusterError
from meshgate.mesh import Gateway, MeshInfo
from meshgate.waiting import Sample, Waits

HOST_SUFFIX = "meshgate.test"


def scenario_host(namespace: str, domain: str | None = None) -> str:
    """The namespace's own host: under ``domain`` (on OpenShift the cluster's apps domain,
    which the router's wildcard certificate and DNS record cover), else meshgate.test."""
    return f"{namespace}.{domain or HOST_SUFFIX}"


def variant_host(prefix: str, host: str) -> str:
    """Another host of the same namespace (``istio-<ns>.<domain>`` for ``istio``): one
    label, so a wildcard certificate ``*.<domain>`` still covers it; a label that would
    pass 63 characters is shortened with a digest."""
    label, _, rest = host.partition(".")
    name = f"{prefix}-{label}"
    if len(name) > 63:
        name = f"{prefix}-{hashlib.sha1(label.encode()).hexdigest()[:16]}"
    return f"{name}.{rest}"


def isolate(obj: dict, host: str) -> dict:
    """Give an object that routes by host on a shared gateway the scenario's host: every
    rule of an Ingress, every server of an Istio Gateway, a VirtualService's hosts; other
    objects unchanged."""
    kind = obj.get("kind")
    if kind not in ("Ingress", "Gateway", "VirtualService") or (
            kind == "Gateway" and not str(obj.get("apiVersion", "")).startswith(
                "networking.istio.io/")):
        return obj
    out = copy.deepcopy(obj)
    spec = out.get("spec") or {}
    if kind == "Ingress":
        for rule in spec.get("rules") or []:
            rule["host"] = host
    elif kind == "Gateway":
        for server in spec.get("servers") or []:
            server["hosts"] = [host]
    else:
        spec["hosts"] = [host]
    return out


def by_annotation(obj: dict) -> dict:
    """Select Istio with the class annotation instead of an IngressClass object."""
    out = copy.deepcopy(obj)
    cls = (out.get("spec") or {}).pop("ingressClassName", None) or "istio"
    out.setdefault("metadata", {}).setdefault("annotations", {})[
        "kubernetes.io/ingress.class"] = cls
    return out


@dataclass(frozen=True)
class EntryPoint:
    """Where requests go (``base_url``), said in words (``how``); through a TLS router,
    the name the handshake must carry and the CA (PEM) that signs its certificate."""

    base_url: str
    how: str
    server_name: str | None = None
    ca_pem: str | None = None


def _reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


STATUS_PORT = 15021  # Istio gateways' health port, never the traffic's


def http_port(svc: dict) -> dict | None:
    """The gateway Service's port for HTTP traffic: ``http2``/``http`` by name (Istio's
    ingress gateway), else one whose name or appProtocol says HTTP, else the first that is
    not the status port (Istio's automated Gateway API deployments name ports after the
    Gateway's listeners)."""
    ports = [p for p in (svc.get("spec") or {}).get("ports") or []
             if p.get("port") != STATUS_PORT]
    for want in (lambda p: p.get("name") in ("http2", "http"),
                 lambda p: str(p.get("name", "")).startswith("http")
                 or str(p.get("appProtocol", "")).startswith("http"),
                 lambda p: True):
        found = next((p for p in ports if want(p)), None)
        if found is not None:
            return found
    return None


def _address(svc: dict, port: dict, scheme: str) -> tuple[EntryPoint | None, list[str]]:
    """The Service's port reached from here: its LoadBalancer address on the port (or the
    nodePort there), else the nodePort on loopback; with what was tried."""
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    tried: list[str] = []
    for ing in ingress:
        host = ing.get("ip") or ing.get("hostname")
        if not host:
            continue
        for p in (port["port"], port.get("nodePort")):
            if p and _reachable(host, p):
                return EntryPoint(f"{scheme}://{host}:{p}", f"LoadBalancer {host}:{p}"), tried
            tried.append(f"{host}:{p}")
    if port.get("nodePort"):
        for host in ("127.0.0.1",):
            if _reachable(host, port["nodePort"]):
                return EntryPoint(f"{scheme}://{host}:{port['nodePort']}",
                                  f"NodePort {host}:{port['nodePort']}"), tried
            tried.append(f"{host}:{port['nodePort']}")
    return None, tried


def entry_point(cluster: Cluster, gateway: Gateway) -> EntryPoint:
    namespace, service = gateway.namespace, gateway.service
    svc = cluster.get("v1", "Service", service, namespace)
    if svc is None:
        raise ClusterError(f"no Service {namespace}/{service}: is Istio's ingress gateway "
                           "installed?")
    port = http_port(svc)
    if port is None:
        raise ClusterError(f"Service {namespace}/{service} has no HTTP port")
    found, tried = _address(svc, port, "http")
    if found is not None:
        return found
    raise ClusterError(f"cannot reach the ingress gateway {namespace}/{service} (tried "
                       f"{', '.join(tried) or 'no LoadBalancer address or NodePort'}): expose "
                       "it with a LoadBalancer or a NodePort mapped to this machine (on "
                       "OpenShift the suite uses a Route of its own)")


def entry_for(cluster: Cluster, mesh: MeshInfo, host: str, owner: str) -> EntryPoint:
    """How requests for ``host`` reach the mesh's ingress gateway: on OpenShift through a
    Route of that host (made for ``owner``, a namespace of the run) and the router,
    elsewhere at the gateway's own address."""
    if mesh.openshift:
        return route_entry(cluster, mesh.ingress_gateway, host, owner)
    return entry_point(cluster, mesh.ingress_gateway)


def route_entry(cluster: Cluster, gateway: Gateway, host: str, owner: str) -> EntryPoint:
    """OpenShift: the gateway exposed for ``host`` by an edge Route of the suite's (made
    for ``owner``, the scenario's namespace), reached over TLS at the router's https
    address with ``host`` as SNI and ``Host``, the certificate checked against the
    router's CA (meshgate/openshift_route.py, meshgate/tls_client.py)."""
    svc = cluster.get("v1", "Service", gateway.service, gateway.namespace)
    port = http_port(svc) if svc is not None else None
    if port is None:
        raise ClusterError(f"no Service {gateway.namespace}/{gateway.service} with an HTTP "
                           "port: is Istio's ingress gateway installed?")
    canonical = openshift_route.expose(cluster, gateway, host,
                                       str(port.get("name") or port["port"]), owner)
    name = f"{gateway.namespace}/{openshift_route.route_name(host)}"
    ca = openshift_route.router_ca(cluster)
    router = cluster.get("v1", "Service", openshift_route.ROUTER_SERVICE,
                         openshift_route.ROUTER_NAMESPACE)
    https = next((p for p in ((router or {}).get("spec") or {}).get("ports") or []
                  if p.get("name") == "https" or p.get("port") == 443), None)
    found, tried = _address(router, https, "https") if router and https else (None, [])
    if found is not None:
        return EntryPoint(found.base_url, f"OpenShift edge Route {name} via the router at "
                                          f"{found.how}", server_name=host, ca_pem=ca)
    if canonical:
        return EntryPoint(f"https://{canonical}", f"OpenShift edge Route {name} via "
                                                  f"{canonical}", server_name=host, ca_pem=ca)
    raise ClusterError(f"cannot reach OpenShift's router {openshift_route.ROUTER_NAMESPACE}/"
                       f"{openshift_route.ROUTER_SERVICE} for Route {name} (tried "
                       f"{', '.join(tried) or 'no LoadBalancer address or NodePort'}), and "
                       "the Route's status names no canonical router hostname")


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes
    seconds: float
    error: str | None = None

    def summary(self) -> str:
        if self.error:
            return f"error {self.error}"
        return f"{self.status} {self.content_type or '-'} {self.body[:80]!r}"


def get(entry: EntryPoint, path: str, host: str | None, timeout: float = 5.0,
        headers: dict | None = None) -> Answer:
    h = dict(headers or {})
    if host:
        h["Host"] = host
    start = time.monotonic()
    with tls_client.session(entry.server_name, entry.ca_pem) as s:
        try:
            r = s.get(entry.base_url + path, headers=h, timeout=timeout, allow_redirects=False)
        except requests.RequestException as exc:
            return Answer(0, "", b"", time.monotonic() - start,
                          f"{exc.__class__.__name__}: {exc}")
        return Answer(r.status_code, r.headers.get("content-type", ""), r.content,
                      time.monotonic() - start)


@dataclass
class ProbeResult:
    ok: bool
    streak: int
    attempts: int
    seconds: float
    answers: list[Answer] = field(default_factory=list)


def probe(entry: EntryPoint, path: str, host: str | None, check: Callable[[Answer], bool],
          *, consecutive: int, within: float, max_attempts: int = 500) -> ProbeResult:
    """Require ``consecutive`` expected answers in a row within ``within`` seconds."""
    start = time.monotonic()
    streak = attempts = 0
    answers: list[Answer] = []
    while attempts < max_attempts and time.monotonic() - start < within:
        attempts += 1
        ans = get(entry, path, host, timeout=max(0.5, min(5.0, within / 2)))
        answers = [*answers, ans][-10:]
        if check(ans):
            streak += 1
            if streak >= consecutive:
                return ProbeResult(True, streak, attempts, time.monotonic() - start, answers)
        else:
            streak = 0
            time.sleep(0.1)
    return ProbeResult(False, streak, attempts, time.monotonic() - start, answers)


def send(entry: EntryPoint, path: str, host: str | None, count: int,
         headers: dict | None = None) -> list[Answer]:
    """Send ``count`` requests (bounded), returning every answer."""
    return [get(entry, path, host, headers=headers) for _ in range(max(0, min(count, 1000)))]


def _json_has(answer: Answer, key: str) -> bool:
    try:
        return key in json.loads(answer.body or b"{}")
    except ValueError:
        return False


# What an answer's body must be, as the feature files name it.
EXPECTED_CONTENT: dict[str, Callable[[Answer], bool]] = {
    "HTML from composer": lambda a: "text/html" in a.content_type and b"Composer" in a.body,
    "a JSON block from vp0": lambda a: "application/json" in a.content_type
    and _json_has(a, "previousBlockHash"),
    "RBAC's denial": lambda a: a.body.startswith(b"RBAC: access denied"),
    "nothing": lambda a: True,
}


@dataclass
class Ingress:
    """One scenario's client of the ingress gateway, with the scenario's Host."""

    entry: EntryPoint
    host: str
    waits: Waits
    sent: list[dict] = field(default_factory=list)
    probes: list[dict] = field(default_factory=list)

    def send(self, path: str, count: int) -> list[Answer]:
        """``count`` requests (bounded), every answer returned and remembered."""
        answers = send(self.entry, path, self.host, count)
        self.sent.append({"path": path, "host": self.host, "via": self.entry.how,
                          "answers": [a.summary() for a in answers]})
        return answers

    def expect_ok(self, path: str, count: int) -> list[Answer]:
        """Send ``count`` requests to ``path``; every one must answer 200."""
        answers = self.send(path, count)
        failed = [a.summary() for a in answers if a.status != 200]
        if failed:
            raise AssertionError(f"{len(failed)} of {count} requests to {path} (Host "
                                 f"{self.host}) via {self.entry.how} failed: {failed[:3]}")
        return answers

    def expect_answers(self, path: str, status: int, content: str, *, consecutive: int,
                       within: float) -> ProbeResult:
        """``consecutive`` answers in a row of ``status`` with ``content`` (a name of
        :data:`EXPECTED_CONTENT`) within ``within`` seconds (at most the ingress area's
        timeout); the probe is recorded as a convergence sample of the ingress area."""
        within = min(within, self.waits.timeout("ingress"))
        check_content = EXPECTED_CONTENT.get(content)
        if check_content is None:
            raise AssertionError(f"unknown expected content {content!r}; the feature may "
                                 f"use: {', '.join(EXPECTED_CONTENT)}")
        result = probe(self.entry, path, self.host,
                       lambda a: a.status == status and check_content(a),
                       consecutive=consecutive, within=within)
        self.waits.log.add(Sample("ingress", f"{consecutive}× {path} → {status}",
                                  result.seconds, result.ok, result.attempts))
        self.probes.append({"path": path, "host": self.host, "via": self.entry.how,
                            "last": [a.summary() for a in result.answers]})
        if not result.ok:
            raise AssertionError(
                f"expected {consecutive} answers in a row of {status} with {content} for "
                f"{path} (Host {self.host}) via {self.entry.how} within {within:g}s; best "
                f"streak {result.streak} in {result.attempts} attempts; last answers: "
                f"{[a.summary() for a in result.answers[-3:]]}")
        return result

"""Mutual TLS and authorization: what Istio's security promises, read from the live mesh.

- **Mutual TLS on the wire.** With auto mTLS (Istio ≥ 1.5's default), a sidecar's
  outbound cluster for a mesh service carries a ``transport_socket_matches`` entry for
  endpoints labelled ``tlsMode: istio`` (Istio names it ``tlsMode-istio``) whose
  ``UpstreamTlsContext`` presents the workload certificate (SDS secret ``default``),
  validates the peer against the mesh root (``ROOTCA``), offers ALPN ``istio``, and sends
  SNI ``outbound_.<port>_.<subset>_.<fqdn>`` (istio/istio
  pilot/pkg/networking/core/cluster_tls.go). A DestinationRule with ``ISTIO_MUTUAL`` puts
  the same context on the cluster's own ``transport_socket``. Istio 1.5 read the
  certificate from files (``/etc/certs/cert-chain.pem``); that counts as well.
- **Mutual TLS as telemetry sees it.** The receiving sidecar reports
  ``connection_security_policy="mutual_tls"`` and the caller's SPIFFE identity in
  ``source_principal``.
- **Policies.** PeerAuthentication and AuthorizationPolicy objects as the scenarios apply
  them (security.istio.io/v1), always in the scenario's own namespace.
- **Callers.** A client inside the mesh (a sidecar, its own identity) and one outside it
  (no sidecar: plaintext, no identity), from which requests are made with ``kubectl exec``
  as Istio's own tests do with their ``curl`` sample.

A check on a mesh whose auto mTLS is off says so rather than fail obscurely.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meshgate import manifests, sidecars
from meshgate.cluster import Cluster
from meshgate.mesh import MeshInfo, NotOnThisCluster, spiffe_id
from meshgate.routes import fqdn
from meshgate.waiting import Waits, WaitTimeout

SECURITY_API = "security.istio.io/v1"
MTLS_MATCH = {"tlsMode": "istio"}
ISTIO_ALPN = "istio"
CLIENT_IMAGE = "ghcr.io/meshgate/workloads:0.1.0"


def _get(d: dict[str, Any], key: str) -> Any:
    """A protobuf field from a dump in either naming (Envoy's admin writes snake_case,
    istioctl's ``-o json`` camelCase)."""
    if key in d:
        return d[key]
    camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)
    return d.get(camel)


@dataclass(frozen=True)
class UpstreamTls:
    """What one ``UpstreamTlsContext`` does, in the terms a reader checks."""

    sni: str
    alpn: tuple[str, ...]
    certificates: tuple[str, ...]  # SDS secret names, or certificate file names
    validation: tuple[str, ...]  # SDS validation secret names, or trusted CA files
    subject_alt_names: tuple[str, ...]

    def describe(self) -> str:
        return (f"SNI {self.sni or '-'}, ALPN {list(self.alpn)}, certificates "
                f"{list(self.certificates)}, validation {list(self.validation)}, SANs "
                f"{list(self.subject_alt_names)}")


def _secret_names(configs: list[dict[str, Any]] | None) -> tuple[str, ...]:
    return tuple(str(_get(c, "name")) for c in configs or [] if _get(c, "name"))


def upstream_tls(socket: dict[str, Any] | None) -> UpstreamTls | None:
    """The TLS of a transport socket, or None when it is plaintext."""
    if not socket:
        return None
    typed = _get(socket, "typed_config") or {}
    if "UpstreamTlsContext" not in str(typed.get("@type", "")):
        return None
    common = _get(typed, "common_tls_context") or {}
    certificates = _secret_names(_get(common, "tls_certificate_sds_secret_configs"))
    certificates += tuple(
        str(_get(_get(c, "certificate_chain") or {}, "filename") or "")
        for c in _get(common, "tls_certificates") or [])
    combined = _get(common, "combined_validation_context") or {}
    validation = _secret_names([_get(combined, "validation_context_sds_secret_config")
                                or {}])
    validation += _secret_names([_get(common, "validation_context_sds_secret_config") or {}])
    plain = _get(common, "validation_context") or _get(combined,
                                                       "default_validation_context") or {}
    trusted = _get(_get(plain, "trusted_ca") or {}, "filename")
    if trusted:
        validation += (str(trusted),)
    sans = tuple(str(m.get("exact") or m.get("prefix") or m)
                 for m in _get(plain, "match_subject_alt_names") or [])
    sans += tuple(str(s) for s in _get(plain, "verify_subject_alt_name") or [])
    return UpstreamTls(str(_get(typed, "sni") or ""),
                       tuple(str(a) for a in _get(common, "alpn_protocols") or []),
                       certificates, validation, sans)


@dataclass(frozen=True)
class ClusterTls:
    """An outbound cluster's transport sockets: per endpoint match, and its own."""

    name: str
    matches: tuple[tuple[str, dict[str, Any], UpstreamTls | None], ...]
    own: UpstreamTls | None

    def for_mesh_endpoints(self) -> UpstreamTls | None:
        """The TLS used toward endpoints labelled ``tlsMode: istio`` (auto mTLS), else the
        cluster's own (a DestinationRule's ISTIO_MUTUAL)."""
        for _, match, tls in self.matches:
            if match == MTLS_MATCH:
                return tls
        return self.own

    def describe(self) -> str:
        parts = [f"{name or '?'} {json.dumps(match)}: "
                 f"{tls.describe() if tls else 'plaintext'}" for name, match, tls in self.matches]
        parts.append(f"own socket: {self.own.describe() if self.own else 'plaintext'}")
        return f"cluster {self.name}: " + "; ".join(parts)


def cluster_tls(cluster: dict[str, Any]) -> ClusterTls:
    matches = tuple((str(_get(m, "name") or ""), dict(_get(m, "match") or {}),
                     upstream_tls(_get(m, "transport_socket")))
                    for m in _get(cluster, "transport_socket_matches") or [])
    return ClusterTls(str(cluster.get("name", "")), matches,
                      upstream_tls(_get(cluster, "transport_socket")))


def mtls_problem(tls: ClusterTls, port: int, host: str) -> str | None:
    """What keeps ``tls`` from being Istio's mutual TLS to ``host:port`` (None: nothing)."""
    mesh = tls.for_mesh_endpoints()
    if mesh is None:
        return "no TLS toward mesh endpoints (no tlsMode-istio match, no own TLS socket)"
    if not mesh.certificates:
        return "the TLS context presents no client certificate"
    if not mesh.validation:
        return "the TLS context does not validate the server against the mesh's root"
    if ISTIO_ALPN not in mesh.alpn:
        return f"ALPN {list(mesh.alpn)} lacks {ISTIO_ALPN!r}"
    if not re.fullmatch(rf"outbound_\.{port}_\.[^_]*_\.{re.escape(host)}", mesh.sni):
        return f"SNI {mesh.sni!r} is not outbound_.{port}_.<subset>_.{host}"
    return None


def expect_mtls_cluster(cluster: Cluster, mesh: MeshInfo, namespace: str, client: str,
                        service: str, port: int, waits: Waits) -> UpstreamTls:
    """The sidecar of ``client``'s first pod sends Istio's mutual TLS to ``service:port``:
    its outbound cluster's transport socket for mesh endpoints is an Istio mTLS context."""
    if not mesh.auto_mtls:
        raise NotOnThisCluster(f"auto mTLS is off in this mesh (enableAutoMtls: false in the "
                             f"mesh config of {mesh.namespace}/istio): sidecars send mutual "
                             "TLS only where a DestinationRule asks for ISTIO_MUTUAL")
    pods = manifests.pods_of(cluster, namespace, client)
    if not pods:
        raise AssertionError(f"no pod of {client} in {namespace}")
    pod = pods[0]["metadata"]["name"]
    host = fqdn(service, namespace)
    name = f"outbound|{port}||{host}"
    seen: list[str] = ["not read yet"]

    def probe() -> UpstreamTls | None:
        found = [c for c in sidecars.clusters(cluster, namespace, pod, re.escape(name))
                 if c.get("name") == name]
        if not found:
            seen[0] = f"the proxy has no cluster {name}"
            return None
        tls = cluster_tls(found[0])
        problem = mtls_problem(tls, port, host)
        seen[0] = f"{problem}; {tls.describe()}" if problem else tls.describe()
        return None if problem else tls.for_mesh_endpoints()

    try:
        return waits.until(probe, area="policy", what=f"mutual TLS from {client} to {name}",
                           describe=lambda _: seen[0])
    except WaitTimeout:
        raise AssertionError(
            f"expected the sidecar of {client} ({namespace}/{pod}) to send Istio's mutual TLS "
            f"to {service}:{port}; found: {seen[0]}. Look at `kubectl exec -n {namespace} "
            f"{pod} -c istio-proxy -- pilot-agent request GET 'config_dump?resource="
            "dynamic_active_clusters'`") from None


def mtls_labels(mesh: MeshInfo, source_namespace: str, source_account: str,
                source_workload: str) -> dict[str, str]:
    """The labels the receiving sidecar reports for a caller over mutual TLS."""
    return {"connection_security_policy": "mutual_tls", "source_workload": source_workload,
            "source_principal": spiffe_id(mesh.trust_domain, source_namespace, source_account)}


# --------------------------------------------------------------------------- policies


def peer_authentication(mode: str, *, name: str = "default",
                        selector: dict[str, str] | None = None) -> dict[str, Any]:
    """A PeerAuthentication for the namespace it is applied in (or its workloads)."""
    if mode not in ("STRICT", "PERMISSIVE", "DISABLE", "UNSET"):
        raise AssertionError(f"unknown mTLS mode {mode!r}: STRICT, PERMISSIVE, DISABLE, UNSET")
    spec: dict[str, Any] = {"mtls": {"mode": mode}}
    if selector:
        spec["selector"] = {"matchLabels": selector}
    return {"apiVersion": SECURITY_API, "kind": "PeerAuthentication",
            "metadata": {"name": name}, "spec": spec}


def deny_paths(workload: str, methods: list[str], paths: list[str], *,
               name: str) -> dict[str, Any]:
    """A DENY AuthorizationPolicy: ``methods`` on ``paths`` of ``workload``."""
    return {"apiVersion": SECURITY_API, "kind": "AuthorizationPolicy",
            "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": workload}}, "action": "DENY",
                     "rules": [{"to": [{"operation": {"methods": methods,
                                                      "paths": paths}}]}]}}


def allow_principals(workload: str, principals: list[str], *, name: str) -> dict[str, Any]:
    """An ALLOW AuthorizationPolicy admitting only ``principals`` to ``workload``."""
    return {"apiVersion": SECURITY_API, "kind": "AuthorizationPolicy",
            "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": workload}}, "action": "ALLOW",
                     "rules": [{"from": [{"source": {"principals": principals}}]}]}}


# --------------------------------------------------------------------------- callers


@dataclass(frozen=True)
class Caller:
    """A pod requests are made from: inside the mesh (its sidecar, its identity) or
    outside it (no sidecar: plaintext, no identity)."""

    name: str
    in_mesh: bool

    def objects(self) -> list[dict[str, Any]]:
        """Its ServiceAccount and Deployment (the workloads image's idle ``client``)."""
        labels = {"app": self.name, "version": "v1"}
        annotations = {} if self.in_mesh else {"sidecar.istio.io/inject": "false"}
        # Outside the mesh in an ambient namespace too: istio-cni leaves it alone.
        pod_labels = labels if self.in_mesh else {**labels, "istio.io/dataplane-mode": "none"}
        return [
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": self.name, "labels": {"app": self.name}},
             "automountServiceAccountToken": False},
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": self.name, "labels": labels},
             "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                      "template": {"metadata": {"labels": pod_labels,
                                                "annotations": annotations},
                                   "spec": {"serviceAccountName": self.name,
                                            "terminationGracePeriodSeconds": 5,
                                            "containers": [{
                                                "name": "client", "image": CLIENT_IMAGE,
                                                "imagePullPolicy": "IfNotPresent",
                                                "args": ["client"]}]}}}},
        ]


@dataclass
class Answer:
    """What a request from a caller got: an HTTP answer, or none (refused, reset)."""

    status: int | None
    body: str = ""
    error: str = ""

    def describe(self) -> str:
        if self.status is None:
            return f"no HTTP answer ({self.error})"
        return f"{self.status} {self.body[:80]!r}"


def request_from(cluster: Cluster, namespace: str, pod: str, url: str,
                 timeout: float = 5.0) -> Answer:
    """One GET from inside ``pod`` (``python -m workloads.fetch``, the workloads image's
    ``curl``), as Istio's tests request from their ``curl`` sample."""
    res = cluster.exec(namespace, pod, "client", ["python", "-m", "workloads.fetch", url,
                                                  "--timeout", f"{timeout:g}"],
                       timeout=timeout + 15)
    try:
        doc = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return Answer(None, error=f"exit {res.returncode}: {(res.stderr or res.stdout)[:200]}")
    return Answer(doc.get("status"), str(doc.get("body") or ""), str(doc.get("error") or ""))


def service_url(cluster: Cluster, namespace: str, service: str, port: int, path: str,
                *, by_address: bool) -> str:
    """The URL a caller uses: the Service's name, or its ClusterIP for a caller outside the
    mesh (which on localmesh resolves no names: its traffic meets no sidecar)."""
    if not by_address:
        return f"http://{fqdn(service, namespace)}:{port}{path}"
    svc = cluster.get("v1", "Service", service, namespace) or {}
    ip = (svc.get("spec") or {}).get("clusterIP")
    if not ip or ip == "None":
        raise AssertionError(f"Service {namespace}/{service} has no ClusterIP")
    return f"http://{ip}:{port}{path}"


@dataclass
class Requests:
    """Requests from one caller to one URL until they answer as wanted; what they got."""

    cluster: Cluster
    namespace: str
    pod: str
    caller: Caller
    answers: list[Answer] = field(default_factory=list)

    def expect(self, url: str, wanted: str, check: Callable[[Answer], bool],
               waits: Waits) -> Answer:
        """Poll requests until ``check(answer)`` holds (bounded by the policy area)."""
        def probe() -> Answer | None:
            answer = request_from(self.cluster, self.namespace, self.pod, url)
            self.answers = [*self.answers, answer][-10:]
            return answer if check(answer) else None

        try:
            return waits.until(probe, area="policy", what=f"{self.caller.name} → {url}: "
                               f"{wanted}", describe=lambda _: self.answers[-1].describe()
                               if self.answers else "no answer yet")
        except WaitTimeout:
            raise AssertionError(
                f"expected a request from {self.caller.name} "
                f"({'in' if self.caller.in_mesh else 'outside'} the mesh, {self.namespace}/"
                f"{self.pod}) to {url} to be {wanted}; the last answers: "
                f"{[a.describe() for a in self.answers[-3:]]}. Look at the PeerAuthentication"
                f" and AuthorizationPolicy objects in force (`kubectl get peerauthentications"
                f",authorizationpolicies -A`) and the receiving sidecar's inbound chains "
                "(`pilot-agent request GET 'config_dump?resource=dynamic_active_listeners'`)"
            ) from None


def refused(answer: Answer) -> bool:
    """A plaintext client refused by a STRICT sidecar: the connection is closed or reset
    without an HTTP answer (Envoy finds no filter chain for it)."""
    return answer.status is None


def denied(answer: Answer) -> bool:
    """Denied by Envoy's RBAC filter: 403 with its body ``RBAC: access denied``."""
    return answer.status == 403 and answer.body.startswith("RBAC: access denied")


def served(answer: Answer) -> bool:
    """An HTTP answer that is not a policy's refusal: the request reached the workload."""
    return answer.status is not None and not denied(answer)


OUTCOMES: dict[str, Callable[[Answer], bool]] = {
    "served": served, "refused": refused, "denied": denied}

"""istiod's workload discovery for ztunnel: every pod and Service as an ``Address``, every
AuthorizationPolicy as an ``Authorization`` (istio/istio ``pilot/pkg/serviceregistry/
kube/controller/ambient``; istio/ztunnel ``proto/workload.proto``, ``authorization.proto``).

Resource names are Istio's: a workload by its uid (``Kubernetes//Pod/<ns>/<name>``), a
Service by ``<namespace>/<hostname>``, a policy by ``<namespace>/<name>``. A workload
speaks HBONE (``tunnel_protocol``) when istio-cni redirected it; its ``waypoint`` is the
one its namespace names with ``istio.io/use-waypoint`` (a Service's, its own label or its
namespace's). The resources are sent state-of-the-world, as JSON dicts that istiod packs
with the descriptors of workloadapi.py.
"""

from __future__ import annotations

import base64
import ipaddress

from localmesh.istio.ambient import enrolment
from localmesh.istio.ambient.model import CLUSTER_ID, AmbientPod, AmbientState, Waypoint
from localmesh.istio.ambient.workloadapi import T_ADDRESS, T_AUTHORIZATION
from localmesh.istio.xds.model import MeshState, Service

HBONE_PORT = 15008


def ip_bytes(ip: str) -> str:
    """An IP address as proto3 JSON ``bytes`` (base64 of its packed form)."""
    return base64.b64encode(ipaddress.ip_address(ip).packed).decode()


def waypoint_of(ambient: AmbientState, namespace: str,
                own_labels: dict[str, str] | None = None) -> Waypoint | None:
    """The waypoint a Service (or pod) uses: its ``istio.io/use-waypoint`` label, else its
    namespace's; ``none`` opts out (Istio's ``WaypointFor`` lookup, same namespace)."""
    name = (own_labels or {}).get(enrolment.USE_WAYPOINT) or \
        ambient.namespace_labels.get(namespace, {}).get(enrolment.USE_WAYPOINT)
    if not name or name == "none":
        return None
    return ambient.waypoints.get((namespace, name))


def _gateway_address(wp: Waypoint) -> dict:
    return {"address": {"network": "", "address": ip_bytes(wp.address)},
            "hboneMtlsPort": HBONE_PORT}


def service_waypoint(ambient: AmbientState, service: Service) -> Waypoint | None:
    wp = waypoint_of(ambient, service.namespace, service.labels)
    if wp is None or not wp.address or wp.name == service.name:
        return None  # a waypoint's own Service does not use a waypoint
    return wp


def _services_of(state: MeshState, pod: AmbientPod) -> dict[str, dict]:
    out: dict[str, dict] = {}
    labels = pod.label_map
    for s in state.services:
        if s.namespace != pod.namespace or not s.selector or any(
                labels.get(k) != v for k, v in s.selector.items()):
            continue
        ports = []
        for p in s.ports:
            target = p.target if isinstance(p.target, int) or str(p.target).isdigit() else None
            if target is not None:
                ports.append({"servicePort": p.port, "targetPort": int(str(target))})
        out[f"{s.namespace}/{s.host}"] = {"ports": ports}
    return out


def workload(state: MeshState, ambient: AmbientState, pod: AmbientPod) -> dict:
    w: dict = {"uid": pod.uid, "name": pod.name, "namespace": pod.namespace,
               "addresses": [ip_bytes(pod.ip)],
               "tunnelProtocol": "HBONE" if pod.hbone else "NONE",
               "trustDomain": state.mesh_config.trust_domain,
               "serviceAccount": pod.service_account, "node": pod.node,
               "canonicalName": pod.canonical_name,
               "canonicalRevision": pod.canonical_revision,
               "workloadType": pod.workload_type.upper() if pod.workload_type.upper() in (
                   "DEPLOYMENT", "CRONJOB", "POD", "JOB") else "POD",
               "workloadName": pod.workload_name,
               "status": "HEALTHY" if pod.ready else "UNHEALTHY", "clusterId": CLUSTER_ID,
               "services": _services_of(state, pod)}
    wp = waypoint_of(ambient, pod.namespace, pod.label_map) if pod.hbone else None
    if wp is not None and wp.address and wp.name != pod.label_map.get(
            "gateway.networking.k8s.io/gateway-name"):
        w["waypoint"] = _gateway_address(wp)
    policies = [f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                for p in state.authorization_policies
                if p["metadata"]["namespace"] == pod.namespace
                and ((p.get("spec") or {}).get("selector") or {}).get("matchLabels")
                and all(pod.label_map.get(k) == v for k, v in
                        p["spec"]["selector"]["matchLabels"].items())]
    if policies:
        w["authorizationPolicies"] = policies
    return {"workload": w}


def service(ambient: AmbientState, s: Service) -> dict:
    svc: dict = {"name": s.name, "namespace": s.namespace, "hostname": s.host,
                 "addresses": [{"network": "", "address": ip_bytes(s.cluster_ip)}]
                 if s.cluster_ip and s.cluster_ip != "None" else [],
                 "ports": [{"servicePort": p.port,
                            "targetPort": int(str(p.target)) if str(p.target).isdigit()
                            else 0} for p in s.ports]}
    wp = service_waypoint(ambient, s)
    if wp is not None:
        svc["waypoint"] = _gateway_address(wp)
    return {"service": svc}


def _string_matches(values: list[str]) -> list[dict]:
    out = []
    for v in values:
        if v == "*":
            out.append({"prefix": ""})
        elif v.endswith("*"):
            out.append({"prefix": v[:-1]})
        elif v.startswith("*"):
            out.append({"suffix": v[1:]})
        else:
            out.append({"exact": v})
    return out


def authorization(policy: dict, root_namespace: str) -> dict:
    """An AuthorizationPolicy's L4 part (istio/istio ``pilot/pkg/model/authorization.go``
    ``convertAuthorizationPolicy``, for the keys ztunnel enforces)."""
    meta, spec = policy["metadata"], policy.get("spec") or {}
    scope = "WORKLOAD_SELECTOR" if spec.get("selector") else (
        "GLOBAL" if meta["namespace"] == root_namespace else "NAMESPACE")
    rules = []
    for rule in spec.get("rules") or []:
        clauses = []
        for source in [f.get("source") or {} for f in rule.get("from") or []]:
            match: dict = {}
            if source.get("namespaces"):
                match["namespaces"] = _string_matches(source["namespaces"])
            if source.get("principals"):
                match["principals"] = _string_matches(
                    [p.removeprefix("spiffe://") for p in source["principals"]])
            if match:
                clauses.append({"matches": [match]})
        ports = [int(p) for to in rule.get("to") or []
                 for p in (to.get("operation") or {}).get("ports") or [] if str(p).isdigit()]
        if ports:
            clauses.append({"matches": [{"destinationPorts": ports}]})
        rules.append({"clauses": clauses})
    return {"name": meta["name"], "namespace": meta["namespace"], "scope": scope,
            "action": "DENY" if str(spec.get("action", "ALLOW")).upper() == "DENY" else "ALLOW",
            "rules": rules}


def wds_resources(state: MeshState) -> dict[str, dict[str, dict]]:
    """Every Address and Authorization of the mesh, by type URL and resource name."""
    ambient = state.ambient or AmbientState()
    addresses = {p.uid: workload(state, ambient, p) for p in ambient.pods.values()}
    for s in state.services:
        addresses[f"{s.namespace}/{s.host}"] = service(ambient, s)
    root = state.mesh_config.root_namespace
    policies = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": authorization(p, root)
                for p in state.authorization_policies}
    return {T_ADDRESS: addresses, T_AUTHORIZATION: policies}

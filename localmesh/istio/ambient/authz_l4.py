"""AuthorizationPolicy at L4 in ztunnel: the network RBAC filter of a pod's inbound.

ztunnel enforces the L4 part of AuthorizationPolicies (``from.source`` principals,
namespaces and IP blocks, ``to.operation.ports``; a policy with L7 attributes cannot be
enforced at L4, and ztunnel treats such an ALLOW rule as matching nothing and such a DENY
as denying, istio.io "ztunnel and L4 policy"). localmesh builds the policies with the
sidecar's generator (localmesh/istio/xds/authz.py, for TCP: its L7 keys already fall out
of a TCP rule that way) and, as the HBONE terminator hands the connection to an internal
listener without TLS, matches principals on the peer identity the terminator put in the
filter state ``io.istio.peer_principal`` (what Istio's own generated RBAC matches since
1.20) instead of the connection's certificate.
"""

from __future__ import annotations

from localmesh.istio.ambient.model import AmbientPod
from localmesh.istio.xds import authz
from localmesh.istio.xds.model import MeshState, Proxy

PEER_PRINCIPAL = "io.istio.peer_principal"


def _as_filter_state(node: object) -> object:
    if isinstance(node, list):
        return [_as_filter_state(n) for n in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"authenticated"} and "principal_name" in (node["authenticated"] or {}):
        return {"filter_state": {"key": PEER_PRINCIPAL,
                                 "string_match": node["authenticated"]["principal_name"]}}
    return {k: _as_filter_state(v) for k, v in node.items()}


def proxy_of(pod: AmbientPod) -> Proxy:
    """The pod as the policy generator's selection sees it."""
    return Proxy(kind="ztunnel", ip=pod.ip, local_ip=pod.local_ip, pod=pod.name,
                 namespace=pod.namespace, labels=pod.label_map, workload=pod.workload_name,
                 container_ports=[{"containerPort": p} for p in pod.ports])


def network_filters(state: MeshState, pod: AmbientPod) -> list[dict]:
    """The pod's network RBAC filters (DENY before ALLOW), principals read from the
    filter state."""
    out = _as_filter_state(authz.network_filters(state, proxy_of(pod)))
    assert isinstance(out, list)
    return out

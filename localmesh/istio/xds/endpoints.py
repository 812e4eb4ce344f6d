"""Endpoints (EDS): the ClusterLoadAssignment of an outbound cluster, from the Service's
Endpoints and, for a subset cluster, the labels of the DestinationRule subset. An
endpoint of an injected pod says ``tlsMode: istio`` in its metadata, which the cluster's
transport socket matches read (auto mTLS; localmesh/istio/xds/tls.py).
"""

from __future__ import annotations

from localmesh.istio import names
from localmesh.istio.xds.model import MeshState
from localmesh.istio.xds.tls import endpoint_metadata


def endpoints_for(state: MeshState, cluster: str) -> dict:
    """The ClusterLoadAssignment of an outbound cluster from the Service's Endpoints;
    built once per distinct input (memo.py)."""
    svc = state.service(cluster.split("|")[3])
    if svc is None:
        return _endpoints_for(state, cluster)
    return state.memo.get(("eds", state.config_key, cluster, state.service_digest(svc)),
                          lambda: _endpoints_for(state, cluster))


def outbound_endpoints(state: MeshState, clusters: dict[str, dict]) -> dict[str, dict]:
    """The endpoints of every EDS cluster of ``clusters`` (the outbound ones, the same for
    every proxy of a state: looked up once per state)."""
    names = frozenset(n for n, c in clusters.items() if c.get("type") == "EDS")
    shared = state.local.get(("eds", names))
    if shared is None:
        shared = state.local[("eds", names)] = {n: endpoints_for(state, n) for n in names}
    return dict(shared)


def _endpoints_for(state: MeshState, cluster: str) -> dict:
    _, port_s, subset, host = cluster.split("|")
    svc = state.service(host)
    lb: list[dict] = []
    if svc is not None:
        sp = next((p for p in svc.ports if str(p.port) == port_s), None)
        wanted = subset_labels(state, host, subset) if subset else None
        for sub in state.endpoints.get((svc.namespace, svc.name), []):
            port = next((p["port"] for p in sub.get("ports") or []
                         if sp is not None and p.get("name", "") == sp.name), None)
            if port is None:
                continue
            for addr in sub.get("addresses") or []:
                if wanted is not None:
                    labels = addr.get("_labels") or {}
                    if any(labels.get(k) != v for k, v in wanted.items()):
                        continue
                entry = {"endpoint": {"address": {"socket_address": {
                    "address": addr["ip"], "port_value": port}}},
                    "health_status": "HEALTHY", "load_balancing_weight": 1}
                metadata = endpoint_metadata(addr.get("_labels") or {})
                if metadata is not None:
                    entry["metadata"] = metadata
                lb.append(entry)
    lb.sort(key=lambda e: e["endpoint"]["address"]["socket_address"]["address"])
    return {"cluster_name": cluster, "endpoints": [{"lb_endpoints": lb,
                                                    "load_balancing_weight": max(1, len(lb))}]
            if lb else []}


def subset_labels(state: MeshState, host: str, subset: str) -> dict | None:
    for dr in state.destination_rules:
        if names.resolve_host(dr["spec"].get("host", ""), dr["metadata"]["namespace"]) != host:
            continue
        for s in dr["spec"].get("subsets") or []:
            if s.get("name") == subset:
                return s.get("labels") or {}
    return {}

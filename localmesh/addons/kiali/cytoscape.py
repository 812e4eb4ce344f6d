"""The graph's JSON (kiali/kiali ``graph/config/common/common.go``, the cytoscape
document of ``graph/config/cytoscape`` before Kiali 2): node and edge data with Kiali's
ids, rates as strings with Kiali's precision, response percentages, app / namespace /
cluster boxes, and Kiali's sort order.
"""

from __future__ import annotations

from typing import Any

from localmesh.addons.kiali.graph import (
    NODE_BOX,
    PROTOCOLS,
    UNKNOWN,
    Edge,
    Node,
    TrafficMap,
    sha256_hex,
)
from localmesh.addons.kiali.options import (
    BOX_APP,
    BOX_CLUSTER,
    BOX_NAMESPACE,
    GRAPH_APP,
    GRAPH_VERSIONED_APP,
    Options,
)


def rate_to_string(min_precision: int, value: float) -> str:
    """common.go rateToString: at least one significant digit, up to 5 decimals."""
    precision, scaled = 0, value
    while value > 0 and precision < 5 and scaled < 1:
        scaled *= 10
        precision += 1
    return f"{value:.{max(min_precision, precision)}f}"


# NodeData's JSON field order (common.go), for the fields this emulation can set.
_NODE_FIELDS = ("id", "parent", "nodeType", "cluster", "namespace", "workload", "app",
                "version", "service", "destServices", "traffic", "healthData", "isBox",
                "isInaccessible", "isOutside", "isRoot")
_ALWAYS = ("id", "nodeType", "cluster", "namespace", "healthData")


def _node_json(data: dict[str, Any]) -> dict[str, Any]:
    """Go's omitempty: unset strings, false flags and empty lists are left out."""
    return {k: data.get(k) for k in _NODE_FIELDS if k in _ALWAYS or data.get(k)}


def _node_data(node: Node) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": sha256_hex(node.id), "nodeType": node.node_type, "cluster": node.cluster,
        "namespace": node.namespace, "workload": node.workload, "app": node.app,
        "version": node.version, "service": node.service, "healthData": None,
    }
    services = node.metadata.get("destServices")
    if services:
        data["destServices"] = sorted(services.values(), key=lambda s: (
            s["cluster"], s["namespace"], s["name"]))
    traffic = []
    for protocol in PROTOCOLS:
        rates = {r.name: rate_to_string(r.precision, node.metadata[r.name])
                 for r in protocol.node_rates if node.metadata.get(r.name, 0.0) > 0}
        if rates:
            traffic.append({"protocol": protocol.name, "rates": dict(sorted(rates.items()))})
    data["traffic"] = traffic
    for flag in ("isInaccessible", "isOutside", "isRoot"):
        data[flag] = bool(node.metadata.get(flag))
    return data


def _edge_data(edge: Edge, owner: Node) -> dict[str, Any]:
    """common.go convertEdge + addEdgeTelemetry.

    The source is the node whose edge list holds the edge (``convertEdge(*e, n.ID)``):
    in a reduced service graph that is the service, while ``edge.source`` is still the
    workload whose outgoing traffic ``httpPercentReq`` is relative to, as in Kiali.
    """
    source_id, target_id = sha256_hex(owner.id), sha256_hex(edge.dest.id)
    protocol_name = edge.metadata.get("protocol") or ""
    traffic: dict[str, Any] = {"protocol": protocol_name} if protocol_name else {}
    md = edge.metadata
    for protocol in PROTOCOLS:
        rates: dict[str, str] = {}
        total = errors = 0.0
        percent_err = percent_req = None
        for rate in protocol.edge_rates:
            value = md.get(rate.name, 0.0)
            if rate.is_total:
                total = value
            elif rate.is_err:
                errors += value
            elif rate.is_percent_err:
                percent_err = rate
            elif rate.is_percent_req:
                percent_req = rate
            if value > 0:
                rates[rate.name] = rate_to_string(rate.precision, value)
        if not rates:
            continue
        if total > 0:
            if percent_err is not None and errors > 0:
                rates[percent_err.name] = f"{errors / total * 100:.{percent_err.precision}f}"
            out_rate = next(r for r in protocol.node_rates if r.is_out)
            source_out = edge.source.metadata.get(out_rate.name, 0.0)
            if percent_req is not None and source_out > 0:
                rates[percent_req.name] = f"{total / source_out * 100:.{percent_req.precision}f}"
            responses: dict[str, Any] = {}
            for code, detail in sorted(md.get(protocol.edge_responses, {}).items()):
                entry: dict[str, Any] = {}
                if detail["flags"]:
                    entry["flags"] = {f: f"{v / total * 100:.1f}"
                                      for f, v in sorted(detail["flags"].items())}
                if detail["hosts"]:
                    entry["hosts"] = {h: f"{v / total * 100:.1f}"
                                      for h, v in sorted(detail["hosts"].items())}
                responses[code] = entry
            traffic = {"protocol": protocol_name, "rates": dict(sorted(rates.items()))}
            if responses:
                traffic["responses"] = responses
        break
    return {
        "id": sha256_hex(f"{source_id}.{target_id}.{protocol_name}"),
        "source": source_id,
        "target": target_id,
        "traffic": traffic,
    }


def _box(nodes: list[dict[str, Any]], box_by: str) -> None:
    """common.go boxByApp / boxByNamespace / boxByCluster: compound parent nodes."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for data in nodes:
        if box_by == BOX_APP:
            if data.get("app") not in ("", UNKNOWN, None):
                key = f"box_{data['cluster']}_{data['namespace']}_{data['app']}"
                groups.setdefault(key, []).append(data)
        elif box_by == BOX_NAMESPACE:
            if not data.get("parent") and data["namespace"] != UNKNOWN:
                groups.setdefault(f"box_{data['cluster']}_{data['namespace']}", []).append(data)
        elif not data.get("parent") and data["cluster"] != UNKNOWN:
            groups.setdefault(f"box_{data['cluster']}", []).append(data)
    if box_by != BOX_APP and len(groups) <= 1:
        return
    for key, members in groups.items():
        if len(members) <= 1:
            continue
        first = members[0]
        box = {"id": sha256_hex(key), "nodeType": NODE_BOX, "cluster": first["cluster"],
               "namespace": first["namespace"] if box_by != BOX_CLUSTER else "",
               "app": first["app"] if box_by == BOX_APP else "", "healthData": None,
               "isBox": box_by}
        for member in members:
            member["parent"] = box["id"]
            if box_by == BOX_APP:
                for flag in ("isInaccessible", "isOutside"):
                    box[flag] = box.get(flag) or member.get(flag)
        nodes.append(box)


_BOX_RANK = {BOX_CLUSTER: 0, BOX_NAMESPACE: 1, BOX_APP: 2}


def to_config(traffic: TrafficMap, o: Options) -> dict[str, Any]:
    """common.go NewConfig: the response document, sorted as Kiali sorts it."""
    nodes = [_node_data(n) for n in traffic.values()]
    edges = [_edge_data(e, n) for n in traffic.values() for e in n.edges]
    if BOX_APP in o.box_by or o.graph_type in (GRAPH_APP, GRAPH_VERSIONED_APP):
        _box(nodes, BOX_APP)
    if BOX_NAMESPACE in o.box_by:
        _box(nodes, BOX_NAMESPACE)
    if BOX_CLUSTER in o.box_by:
        _box(nodes, BOX_CLUSTER)
    nodes.sort(key=lambda d: (_BOX_RANK.get(d.get("isBox", ""), 3), d["cluster"],
                              d["namespace"], d.get("app", ""), d.get("version", ""),
                              d.get("service", ""), d.get("workload", "")))
    edges.sort(key=lambda d: (d["source"], d["target"], d["traffic"].get("protocol", "")))
    return {
        "timestamp": o.query_time,
        "duration": int(o.duration_seconds),
        "graphType": o.graph_type,
        "elements": {"nodes": [{"data": _node_json(d)} for d in nodes],
                     "edges": [{"data": d} for d in edges]},
    }

"""The graph's nodes, edges and rates (kiali/kiali ``graph/types.go`` and
``graph/protocol.go``): node identity per graph type (``Id``), the fields each node type
keeps (``NewNodeExplicit``), and how one series' value adds to node and edge rates
(``AddToMetadata``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from localmesh.addons.kiali.options import GRAPH_SERVICE, GRAPH_VERSIONED_APP, GRAPH_WORKLOAD

UNKNOWN = "unknown"  # Istio's label value for "not known" (graph/types.go Unknown)
PASSTHROUGH_CLUSTER = "PassthroughCluster"
BLACKHOLE_CLUSTER = "BlackHoleCluster"
NODE_APP, NODE_BOX, NODE_SERVICE, NODE_UNKNOWN, NODE_WORKLOAD = (
    "app", "box", "service", "unknown", "workload")


def is_ok(value: str) -> bool:
    """graph.IsOK: a telemetry label value that is set and not "unknown"."""
    return value not in ("", UNKNOWN)


def is_ok_version(value: str) -> bool:
    """graph.IsOKVersion: also rejects "latest", canonical_revision's "unknown"."""
    return value not in ("", UNKNOWN, "latest")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- protocols


@dataclass(frozen=True)
class Rate:
    """One rate a protocol reports (graph/protocol.go Rate)."""

    name: str
    precision: int = 2
    is_total: bool = False
    is_err: bool = False
    is_out: bool = False
    is_percent_err: bool = False
    is_percent_req: bool = False


@dataclass(frozen=True)
class Protocol:
    """graph/protocol.go Protocol: the edge and node rates of one protocol."""

    name: str
    edge_rates: tuple[Rate, ...]
    edge_responses: str
    node_rates: tuple[Rate, ...]


GRPC = Protocol(
    "grpc",
    (Rate("grpc", is_total=True), Rate("grpcErr", is_err=True),
     Rate("grpcPercentErr", 1, is_percent_err=True),
     Rate("grpcPercentReq", 1, is_percent_req=True)),
    "grpcResponses",
    (Rate("grpcIn"), Rate("grpcInErr", is_err=True), Rate("grpcOut", is_out=True)),
)
HTTP = Protocol(
    "http",
    (Rate("http", is_total=True), Rate("http3xx"), Rate("http4xx", is_err=True),
     Rate("http5xx", is_err=True), Rate("httpPercentErr", 1, is_percent_err=True),
     Rate("httpPercentReq", 1, is_percent_req=True)),
    "httpResponses",
    (Rate("httpIn"), Rate("httpIn3xx"), Rate("httpIn4xx", is_err=True),
     Rate("httpIn5xx", is_err=True), Rate("httpOut", is_out=True)),
)
TCP = Protocol(
    "tcp",
    (Rate("tcp", is_total=True),),
    "tcpResponses",
    (Rate("tcpIn"), Rate("tcpOut", is_out=True)),
)
PROTOCOLS = (GRPC, HTTP, TCP)  # Kiali's order, which is also the node "traffic" order


# --------------------------------------------------------------------------- nodes


@dataclass(eq=False)
class Node:
    """graph/types.go Node; ``id`` is the traffic-map key, hashed only in the JSON."""

    id: str
    node_type: str
    cluster: str
    namespace: str
    workload: str
    app: str
    version: str
    service: str
    edges: list[Edge] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class Edge:
    """graph/types.go Edge: traffic from ``source`` to ``dest``, its rates in ``metadata``."""

    source: Node
    dest: Node
    metadata: dict[str, Any] = field(default_factory=dict)


TrafficMap = dict[str, Node]


def node_id(cluster: str, service_ns: str, service: str, workload_ns: str, workload: str,
            app: str, version: str, graph_type: str) -> tuple[str, str]:
    """graph/types.go Id: the node's identity and type for the graph type.

    ValueError where Kiali's Id returns an error (the series is then skipped).
    """
    namespace = workload_ns if is_ok(workload_ns) else service_ns
    if namespace == UNKNOWN and workload == UNKNOWN and app == UNKNOWN and service == "":
        return f"{cluster}_unknown_source", NODE_UNKNOWN
    if workload == UNKNOWN and app == UNKNOWN and service == UNKNOWN:
        return f"svc_{cluster}_{namespace}_unknown", NODE_SERVICE
    workload_ok, app_ok, service_ok = is_ok(workload), is_ok(app), is_ok(service)
    if not (workload_ok or app_ok or service_ok):
        raise ValueError(f"no workload, app or service for a node in namespace {namespace!r}")
    if graph_type in (GRAPH_WORKLOAD, GRAPH_SERVICE):
        if not workload_ok and not service_ok:
            raise ValueError(f"no workload or service for a node in namespace {namespace!r}")
        if not workload_ok:
            return f"svc_{cluster}_{namespace}_{service}", NODE_SERVICE
        return f"wl_{cluster}_{namespace}_{workload}", NODE_WORKLOAD
    if app_ok:
        if graph_type == GRAPH_VERSIONED_APP:
            if workload_ok:
                return f"vapp_{cluster}_{namespace}_{workload}", NODE_APP
            if is_ok_version(version):
                return f"vapp_{cluster}_{namespace}_{app}_{version}", NODE_APP
        return f"app_{cluster}_{namespace}_{app}", NODE_APP
    if workload_ok:
        return f"wl_{cluster}_{namespace}_{workload}", NODE_WORKLOAD
    return f"svc_{cluster}_{namespace}_{service}", NODE_SERVICE


def new_node(id_: str, cluster: str, namespace: str, workload: str, app: str, version: str,
             service: str, node_type: str, graph_type: str) -> Node:
    """graph/types.go NewNodeExplicit: keep only the fields that identify this node type."""
    metadata: dict[str, Any] = {}
    if node_type == NODE_APP:
        if graph_type != GRAPH_VERSIONED_APP:
            workload = version = ""
        service = ""
    elif node_type == NODE_SERVICE:
        app = workload = version = ""
        if service in (PASSTHROUGH_CLUSTER, BLACKHOLE_CLUSTER):
            metadata["isEgressCluster"] = True
    elif node_type == NODE_WORKLOAD:
        app = "" if app == UNKNOWN else app
        version = "" if version == UNKNOWN else version
        service = ""
    return Node(id_, node_type, cluster, namespace, workload, app, version, service,
                metadata=metadata)


def add_value(metadata: dict[str, Any], key: str, value: float) -> None:
    if value > 0:
        metadata[key] = metadata.get(key, 0.0) + value


def add_response(metadata: dict[str, Any], key: str, code: str, flags: str, host: str,
                  value: float) -> None:
    detail = metadata.setdefault(key, {}).setdefault(code, {"flags": {}, "hosts": {}})
    if flags:
        detail["flags"][flags] = detail["flags"].get(flags, 0.0) + value
    if host:
        detail["hosts"][host] = detail["hosts"].get(host, 0.0) + value


def add_to_metadata(protocol: str, value: float, code: str, flags: str, host: str,
                    source: dict[str, Any], dest: dict[str, Any], edge: dict[str, Any]) -> None:
    """graph/protocol.go AddToMetadata: one series' value into node and edge rates."""
    if value <= 0:
        return
    if protocol == "grpc":
        add_value(source, "grpcOut", value)
        add_value(dest, "grpcIn", value)
        add_value(edge, "grpc", value)
        add_response(edge, "grpcResponses", code, flags, host, value)
        # Istio may report HTTP codes for gRPC: a 3-digit code is judged as HTTP.
        is_err = (code[:1] in ("4", "5")) if len(code) == 3 else code not in ("0", "")
        if is_err:
            add_value(dest, "grpcInErr", value)
            add_value(edge, "grpcErr", value)
    elif protocol == "http":
        add_value(source, "httpOut", value)
        add_value(dest, "httpIn", value)
        add_value(edge, "http", value)
        add_response(edge, "httpResponses", code, flags, host, value)
        for prefix in ("3", "4", "5"):
            if code.startswith(prefix):
                add_value(dest, f"httpIn{prefix}xx", value)
                add_value(edge, f"http{prefix}xx", value)
    elif protocol == "tcp":
        add_value(source, "tcpOut", value)
        add_value(dest, "tcpIn", value)
        add_value(edge, "tcp", value)
        add_response(edge, "tcpResponses", "-", flags, host, value)

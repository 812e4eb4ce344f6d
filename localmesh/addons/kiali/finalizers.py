"""The finalizers of a traffic map (kiali/kiali ``graph/telemetry/common.go``): merge the
namespaces' maps, mark outsiders and inaccessible nodes, mark traffic generators (roots),
and reduce to service-to-service edges for ``graphType=service``. Kiali's appenders
(``graph/telemetry/istio/appender``) read the cluster and are not run (see
localmesh/addons/kiali/__init__.py).
"""

from __future__ import annotations

from localmesh.addons.kiali.graph import (
    NODE_SERVICE,
    NODE_UNKNOWN,
    PROTOCOLS,
    UNKNOWN,
    Edge,
    TrafficMap,
    add_response,
    add_value,
)


def merge_traffic_maps(traffic: TrafficMap, namespace: str, ns_traffic: TrafficMap) -> None:
    """telemetry/common.go MergeTrafficMaps: one node per id, no duplicate edges."""
    for id_, ns_node in ns_traffic.items():
        node = traffic.get(id_)
        if node is None:
            traffic[id_] = ns_node
            continue
        if ns_node.namespace == namespace:  # prefer the requested namespace's own node
            traffic[id_] = ns_node
            node, ns_node = ns_node, node
        for ns_edge in ns_node.edges:
            if any(ns_edge.dest.id == e.dest.id
                   and ns_edge.metadata.get("protocol") == e.metadata.get("protocol")
                   for e in node.edges):
                continue
            node.edges.append(ns_edge)
            for protocol, out in (("grpc", "grpcOut"), ("http", "httpOut"), ("tcp", "tcpOut")):
                if protocol in ns_edge.metadata:
                    add_value(node.metadata, out, ns_edge.metadata[protocol])


def mark_outside_or_inaccessible(traffic: TrafficMap, namespaces: tuple[str, ...]) -> None:
    """common.go MarkOutsideOrInaccessible (every namespace is accessible here)."""
    for node in traffic.values():
        outside = node.namespace != UNKNOWN and node.namespace not in namespaces
        if node.node_type == NODE_UNKNOWN:
            node.metadata["isInaccessible"] = True
        elif node.node_type == NODE_SERVICE:
            if node.namespace == UNKNOWN and node.service == UNKNOWN:
                node.metadata["isInaccessible"] = True
            elif node.metadata.get("isEgressCluster"):
                node.metadata["isInaccessible"] = True
            elif outside:
                node.metadata["isOutside"] = True
        elif outside:
            node.metadata["isOutside"] = True


def mark_traffic_generators(traffic: TrafficMap) -> None:
    """common.go MarkTrafficGenerators: a node with edges out and none in is a root."""
    destinations = {e.dest.id for n in traffic.values() for e in n.edges}
    for node in traffic.values():
        if node.edges and node.id not in destinations:
            node.metadata["isRoot"] = True


def reduce_to_service_graph(traffic: TrafficMap) -> TrafficMap:
    """common.go ReduceToServiceGraph: service-to-service edges, plus non-service roots."""
    reduced: TrafficMap = {}
    for id_, node in traffic.items():
        if node.node_type != NODE_SERVICE:
            if node.metadata.get("isRoot"):
                node.edges = [e for e in node.edges if e.dest.node_type == NODE_SERVICE]
                reduced[id_] = node
            continue
        reduced[id_] = node
        workload_edges, node.edges = node.edges, []
        for workload_edge in workload_edges:
            # by id: after a namespace merge the map holds the node with all the edges
            workload = traffic.get(workload_edge.dest.id, workload_edge.dest)
            for service_edge in workload.edges:
                if service_edge.dest.node_type != NODE_SERVICE:
                    continue
                protocol = service_edge.metadata.get("protocol")
                edge = next((e for e in node.edges if e.dest.id == service_edge.dest.id
                             and e.metadata.get("protocol") == protocol), None)
                if edge is None:
                    node.edges.append(service_edge)
                else:
                    _aggregate_edge_traffic(service_edge, edge)
    return reduced


def _aggregate_edge_traffic(edge: Edge, into: Edge) -> None:
    """graph/protocol.go AggregateEdgeTraffic."""
    protocol = next((p for p in PROTOCOLS if p.name == edge.metadata.get("protocol")), None)
    if protocol is None:
        return
    for rate in protocol.edge_rates:
        if rate.name in edge.metadata:
            add_value(into.metadata, rate.name, edge.metadata[rate.name])
    for code, detail in edge.metadata.get(protocol.edge_responses, {}).items():
        for flags, value in detail["flags"].items():
            add_response(into.metadata, protocol.edge_responses, code, flags, "", value)
        for host, value in detail["hosts"].items():
            add_response(into.metadata, protocol.edge_responses, code, "", host, value)

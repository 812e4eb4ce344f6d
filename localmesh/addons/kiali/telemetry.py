"""The traffic map from Prometheus (kiali/kiali ``graph/telemetry/istio/istio.go``):
Kiali's per-namespace queries, and each series turned into (at most) one edge's traffic
between nodes identified as Kiali identifies them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from localmesh.addons.kiali.graph import (
    NODE_SERVICE,
    PASSTHROUGH_CLUSTER,
    UNKNOWN,
    Edge,
    Node,
    TrafficMap,
    add_to_metadata,
    is_ok,
    new_node,
    node_id,
    sha256_hex,
)
from localmesh.addons.kiali.options import (
    AMBIENT_NONE,
    AMBIENT_TOTAL,
    AMBIENT_WAYPOINT,
    RATE_RECEIVED,
    RATE_REQUESTS,
    RATE_SENT,
    RATE_TOTAL,
    Options,
)
from localmesh.addons.promql import (
    NEW_SERIES_TEMPLATE,
    RateQueries,
    Sample,
    label_matcher,
    rate_queries,
)

# graph/telemetry/istio/istio.go, buildNamespaceTrafficMap: the group-by label lists.
REQUESTS_GROUP_BY = (
    "source_cluster,source_workload_namespace,source_workload,source_canonical_service,"
    "source_canonical_revision,destination_cluster,destination_service_namespace,"
    "destination_service,destination_service_name,destination_workload_namespace,"
    "destination_workload,destination_canonical_service,destination_canonical_revision,"
    "request_protocol,response_code,grpc_response_status,response_flags"
)
GRPC_MESSAGES_GROUP_BY = (
    "source_cluster,source_workload_namespace,source_workload,source_canonical_service,"
    "source_canonical_revision,destination_cluster,destination_service_namespace,"
    "destination_service,destination_service_name,destination_workload_namespace,"
    "destination_workload,destination_canonical_service,destination_canonical_revision"
)
TCP_GROUP_BY = "app," + GRPC_MESSAGES_GROUP_BY + ",response_flags"

# Kiali's query text (istio.go) wrapped as util.PromQuery wraps it: round(<query>,0.001).
RATE_TEMPLATE = "round(sum(rate({metric}{selector} [{seconds}s])) by ({by}){idle},0.001)"
NEW_SERIES_KIALI_TEMPLATE = "round(" + NEW_SERIES_TEMPLATE + ",0.001)"

_GRPC_MESSAGES = re.compile(r"istio_.*_messages")
_IP_SERVICE = re.compile(r"^\d+\.\d+\.\d+\.\d+(:\d+)?$")  # util.go badServiceMatcher


@dataclass(frozen=True)
class TrafficQuery:
    """One of Kiali's per-namespace queries: which counter, and its two expressions."""

    namespace: str
    metric: str
    queries: RateQueries


def _reporter(reporter: str, ambient: str) -> str:
    """util.GetReporter: waypoint-reported telemetry counts unless ambient traffic is off."""
    if ambient in (AMBIENT_WAYPOINT, AMBIENT_TOTAL):
        return label_matcher("reporter", "=~", f"waypoint|{reporter}")
    return label_matcher("reporter", "=", reporter)


def namespace_queries(namespace: str, o: Options) -> list[TrafficQuery]:
    """istio.go buildNamespaceTrafficMap's queries for one namespace, in Kiali's order."""
    window = f"{max(int(o.duration_seconds), 1)}s"
    unserviced = [
        label_matcher("source_workload_namespace", "!=", namespace),
        label_matcher("destination_workload_namespace", "=", UNKNOWN),
        label_matcher("destination_workload", "=", UNKNOWN),
        label_matcher("destination_service", "=~", rf"^.+\.{namespace}\..+$"),
    ]
    incoming = [label_matcher("destination_workload_namespace", "=", namespace)]
    outgoing = [label_matcher("source_workload_namespace", "=", namespace)]
    source, dest = _reporter("source", o.ambient), _reporter("destination", o.ambient)
    plan: list[tuple[str, str, list[list[str]]]] = []
    if RATE_REQUESTS in (o.rate_http, o.rate_grpc):
        # 0) unserviced (source-reported, never reached a workload), 2) incoming
        # (destination-reported), 3) outgoing (source-reported).
        plan.append(("istio_requests_total", REQUESTS_GROUP_BY,
                     [[source, *unserviced], [dest, *incoming], [source, *outgoing]]))
    grpc_metrics = {RATE_RECEIVED: ["istio_response_messages_total"],
                    RATE_SENT: ["istio_request_messages_total"],
                    RATE_TOTAL: ["istio_request_messages_total",
                                 "istio_response_messages_total"]}.get(o.rate_grpc, [])
    for metric in grpc_metrics:
        plan.append((metric, GRPC_MESSAGES_GROUP_BY,
                     [[source, *unserviced], [dest, *incoming], [source, *outgoing]]))
    # "L4 telemetry is backwards" (istio/istio#32399): bytes sent are the received counter.
    tcp_metrics = {RATE_RECEIVED: ["istio_tcp_sent_bytes_total"],
                   RATE_SENT: ["istio_tcp_received_bytes_total"],
                   RATE_TOTAL: ["istio_tcp_received_bytes_total",
                                "istio_tcp_sent_bytes_total"]}.get(o.rate_tcp, [])
    app = ([label_matcher("app", "!=", "ztunnel")]
           if o.ambient in (AMBIENT_WAYPOINT, AMBIENT_NONE) else [])
    for metric in tcp_metrics:
        plan.append((metric, TCP_GROUP_BY, [[*app, source, *unserviced],
                                            [*app, dest, *incoming],
                                            [*app, source, *outgoing]]))
    return [
        TrafficQuery(namespace, metric, rate_queries(
            metric, matchers, window, o.duration_seconds, by,
            keep_idle=o.include_idle_edges, rate_template=RATE_TEMPLATE,
            new_series_template=NEW_SERIES_KIALI_TEMPLATE))
        for metric, by, selections in plan
        for matchers in selections
    ]


_REQUIRED_LABELS = (
    "source_workload_namespace", "source_workload", "source_canonical_service",
    "source_canonical_revision", "destination_service_namespace", "destination_service",
    "destination_service_name", "destination_workload_namespace", "destination_workload",
    "destination_canonical_service", "destination_canonical_revision",
)


class TrafficBuilder:
    """Kiali's populateTrafficMap / addTraffic for one namespace's traffic map.

    ``istio_namespace`` is the control plane's namespace (Kiali's ``istio_namespace``
    setting), where the egress gateway lives.
    """

    def __init__(self, options: Options, istio_namespace: str) -> None:
        self.o = options
        self.istio_namespace = istio_namespace
        self.skipped: list[str] = []

    def populate(self, traffic: TrafficMap, samples: list[Sample], metric: str) -> None:
        """istio.go populateTrafficMap: each series becomes (at most) one edge's traffic."""
        o = self.o
        is_requests, protocol = True, ""
        if _GRPC_MESSAGES.match(metric):
            is_requests, protocol = False, "grpc"
        elif metric.startswith("istio_tcp"):
            is_requests, protocol = False, "tcp"
        skip_grpc = is_requests and o.rate_grpc != RATE_REQUESTS
        skip_http = is_requests and o.rate_http != RATE_REQUESTS
        for sample in samples:
            m = sample.labels
            if any(label not in m for label in _REQUIRED_LABELS):
                self.skipped.append(f"missing labels: {dict(m)}")
                continue
            flags = ""
            if is_requests or protocol == "tcp":
                if "response_flags" not in m:
                    self.skipped.append(f"missing response_flags: {dict(m)}")
                    continue
                flags = m["response_flags"]
            source_cluster = m.get("source_cluster", UNKNOWN)
            dest_cluster = m.get("destination_cluster", UNKNOWN)
            source_ns, source_wl = m["source_workload_namespace"], m["source_workload"]
            source_app = m["source_canonical_service"]
            source_ver = m["source_canonical_revision"]
            # util.IsBadSourceTelemetry
            if is_ok(source_ns) and not is_ok(source_wl) and not is_ok(source_app):
                self.skipped.append(f"bad source telemetry (no workload, no app): {dict(m)}")
                continue
            if is_ok(source_ns) and "source_cluster" in m and not is_ok(source_cluster):
                self.skipped.append(f"bad source telemetry (source_cluster unknown): {dict(m)}")
                continue
            (dest_cluster, dest_svc_ns, dest_svc_name, dest_wl_ns, dest_wl, dest_app,
             dest_ver) = self._handle_destination(source_cluster, dest_cluster, m)
            dest_svc = m["destination_service"]
            # util.IsBadDestTelemetry
            if (not is_ok(dest_wl) and is_ok(dest_svc) and is_ok(dest_svc_name)
                    and dest_svc == dest_svc_name and _IP_SERVICE.match(dest_svc_name)):
                self.skipped.append(f"bad destination telemetry (IP service): {dict(m)}")
                continue
            if is_ok(dest_svc_ns) and "destination_cluster" in m and not is_ok(dest_cluster):
                self.skipped.append(f"bad destination telemetry (cluster unknown): {dict(m)}")
                continue
            code = ""
            if is_requests:
                if "request_protocol" not in m or "response_code" not in m:
                    self.skipped.append(f"missing protocol/code: {dict(m)}")
                    continue
                protocol = m["request_protocol"]
                if (skip_grpc and protocol == "grpc") or (skip_http and protocol == "http"):
                    continue
                code = _response_code(protocol, m["response_code"],
                                      m.get("grpc_response_status"))
            inject = False
            if (o.inject_service_nodes and is_ok(dest_svc_name)
                    and dest_svc_name != PASSTHROUGH_CLUSTER):
                try:
                    _, dest_type = node_id(dest_cluster, dest_svc_ns, dest_svc_name, dest_wl_ns,
                                           dest_wl, dest_app, dest_ver, o.graph_type)
                except ValueError as error:
                    self.skipped.append(f"{error}: {dict(m)}")
                    continue
                inject = dest_type != NODE_SERVICE
            self._add_traffic(traffic, metric, inject, sample.value, protocol, code, flags,
                              dest_svc, (source_cluster, source_ns, "", source_wl, source_app,
                                         source_ver),
                              (dest_cluster, dest_svc_ns, dest_svc_name, dest_wl_ns, dest_wl,
                               dest_app, dest_ver))

    def _handle_destination(self, source_cluster: str, dest_cluster: str,
                            m: Mapping[str, str]) -> tuple[str, ...]:
        """util.HandleDestination: the egress gateway, and istio/istio#29373's cluster."""
        dest_svc, dest_svc_name = m["destination_service"], m["destination_service_name"]
        istio_ns = self.istio_namespace
        egress = f"istio-egressgateway.{istio_ns}.svc.cluster.local"
        if dest_svc == egress and dest_svc == dest_svc_name:
            return (source_cluster, istio_ns, "istio-egressgateway", istio_ns,
                    "istio-egressgateway", "istio-egressgateway", "latest")
        dest_svc_ns = m["destination_service_namespace"]
        if not is_ok(dest_cluster) and is_ok(source_cluster) and is_ok(dest_svc_ns):
            dest_cluster = source_cluster
        return (dest_cluster, dest_svc_ns, dest_svc_name, m["destination_workload_namespace"],
                m["destination_workload"], m["destination_canonical_service"],
                m["destination_canonical_revision"])

    def _add_node(self, traffic: TrafficMap, cluster: str, service_ns: str, service: str,
                  workload_ns: str, workload: str, app: str, version: str) -> Node:
        """istio.go addNode (ValueError propagates where Kiali skips the series)."""
        id_, node_type = node_id(cluster, service_ns, service, workload_ns, workload, app,
                                 version, self.o.graph_type)
        node = traffic.get(id_)
        if node is None:
            namespace = workload_ns if is_ok(workload_ns) else service_ns
            node = new_node(id_, cluster, namespace, workload, app, version, service,
                            node_type, self.o.graph_type)
            traffic[id_] = node
        node.metadata["tsHash"] = sha256_hex(":".join(
            (cluster, service_ns, service, workload_ns, workload, app, version)))
        return node

    def _add_traffic(self, traffic: TrafficMap, metric: str, inject: bool, value: float,
                     protocol: str, code: str, flags: str, host: str,
                     src: tuple[str, ...], dst: tuple[str, ...]) -> None:
        """istio.go addTraffic: source and dest nodes, optionally an injected service."""
        s_cluster, s_ns, s_svc, s_wl, s_app, s_ver = src
        d_cluster, d_svc_ns, d_svc, d_wl_ns, d_wl, d_app, d_ver = dst
        try:
            source = self._add_node(traffic, s_cluster, s_ns, s_svc, s_ns, s_wl, s_app, s_ver)
            dest = self._add_node(traffic, d_cluster, d_svc_ns, d_svc, d_wl_ns, d_wl, d_app,
                                  d_ver)
        except ValueError as error:
            self.skipped.append(f"{error}: {src} -> {dst}")
            return
        # Istio reports a request from both proxies; this hash keeps it from counting twice.
        edge_hash = sha256_hex(":".join((metric, source.metadata["tsHash"],
                                         dest.metadata["tsHash"], code, flags, host)))
        if inject:
            service = self._add_node(traffic, d_cluster, d_svc_ns, d_svc, "", "", "", "")
            service.metadata["isInjected"] = True
            if _add_edge_traffic(value, protocol, code, flags, host, source, service, edge_hash):
                _add_dest_service(service, d_cluster, d_svc_ns, d_svc)
                _add_edge_traffic(value, protocol, code, flags, host, service, dest, edge_hash)
                _add_dest_service(dest, d_cluster, d_svc_ns, d_svc)
        elif _add_edge_traffic(value, protocol, code, flags, host, source, dest, edge_hash):
            _add_dest_service(dest, d_cluster, d_svc_ns, d_svc)


def _response_code(protocol: str, code: str, grpc_status: str | None) -> str:
    """util.HandleResponseCode: "-" for no response, the gRPC status for good gRPC calls."""
    if code == "0":
        return "-"
    if protocol != "grpc" or code[:1] in ("4", "5") or grpc_status is None:
        return code
    return grpc_status


def _add_edge_traffic(value: float, protocol: str, code: str, flags: str, host: str,
                      source: Node, dest: Node, edge_hash: str) -> bool:
    """istio.go addEdgeTraffic: apply a series once per edge; False if already applied."""
    edge = next((e for e in source.edges
                 if e.dest.id == dest.id and e.metadata.get("protocol") == protocol), None)
    if edge is None:
        edge = Edge(source, dest, {"protocol": protocol, "tsHashMap": set()})
        source.edges.append(edge)
    if edge_hash in edge.metadata["tsHashMap"]:
        return False
    edge.metadata["tsHashMap"].add(edge_hash)
    add_to_metadata(protocol, value, code, flags, host, source.metadata, dest.metadata,
                    edge.metadata)
    return True


def _add_dest_service(node: Node, cluster: str, namespace: str, service: str) -> None:
    if is_ok(service):
        node.metadata.setdefault("destServices", {})[f"{cluster} {namespace} {service}"] = {
            "cluster": cluster, "namespace": namespace, "name": service}

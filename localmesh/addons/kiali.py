"""Kiali's namespace graph API, computed from Prometheus the way Kiali computes it.

Served as Istio's addon serves it (istio/istio ``samples/addons/kiali.yaml``: port 20001,
``web_root: /kiali``, anonymous auth), so ``GET /kiali/api/namespaces/graph?namespaces=ns``
reached through the API server's services/proxy answers with Kiali's JSON
(kiali/kiali ``graph/config/common/common.go``). The pipeline is a port of Kiali's, file by
file, so that nodes, edges, ids and rates are the ones real Kiali would return for the
same series:

1. options — ``graph/options.go`` ``NewOptions``: parameters, defaults, 400 messages;
2. queries — ``graph/telemetry/istio/istio.go`` ``buildNamespaceTrafficMap``: per
   namespace, the source-reported "unserviced" query, the destination-reported incoming
   query and the source-reported outgoing query, for ``istio_requests_total`` and the TCP
   byte counters, each wrapped in ``round(…,0.001)`` (``util.PromQuery``);
3. traffic map — ``populateTrafficMap`` / ``addTraffic`` / ``addEdgeTraffic`` with
   ``graph/types.go`` ``Id`` for node identity per graph type and the time-series hash
   that keeps a request reported by both proxies from being counted twice;
4. finalizers — ``graph/telemetry/common.go``: merge namespaces, mark outsiders and
   roots (traffic generators), reduce to services for ``graphType=service``;
5. JSON — ``graph/config/common/common.go``: ``sha256`` ids (identical to Kiali's, so
   the same node has the same id as in a real Kiali), rates as decimal strings with
   Kiali's precision, response-code/flags/hosts percentages, app boxes, sort order.

Differences from real Kiali, on purpose (and why):

* **New series count from zero.** Each query also runs a new-series variant (see
  localmesh/addons/promql.py): where Kiali's ``rate`` has no positive value for a group,
  the counter's growth since it appeared in the window is used. A scenario that sends a
  handful of requests and asks for the graph seconds later gets its edges; real Kiali
  would show them only once a series has two increasing samples in the window.
* **No Kubernetes.** Appenders that read cluster config or health (dead nodes, sidecar
  checks, gateways, service entries, health, response time, security policy) are not
  run; ``appenders`` is accepted and ignored. Every namespace counts as accessible
  (anonymous auth with cluster-wide access), so outsiders are never ``isInaccessible``;
  the namespace's creation time does not shorten the window.
* No ambient namespaces (no waypoint/ztunnel detection); the ambient-only query is
  never needed. ``boxBy=none`` is accepted (Kiali rejects it although it is the default).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from localmesh.addons import (
    AddonConfig,
    error_json,
    log_info,
    log_problem,
    main,
    problem_middleware,
)
from localmesh.addons.promql import (
    NEW_SERIES_TEMPLATE,
    Prometheus,
    PrometheusUnavailable,
    RateQueries,
    Sample,
    counter_rates,
    label_matcher,
    parse_duration,
    rate_queries,
)

PROGRAM = "kiali"
DEFAULT_PORT = 20001
WEB_ROOT = "/kiali"
KIALI_VERSION = "v2.x-localmesh"  # what /api reports; this is an emulation of the graph API
ISTIO_NAMESPACE = "istio-system"

UNKNOWN = "unknown"  # Istio's label value for "not known" (graph/types.go Unknown)
PASSTHROUGH_CLUSTER = "PassthroughCluster"
BLACKHOLE_CLUSTER = "BlackHoleCluster"

GRAPH_APP, GRAPH_SERVICE, GRAPH_VERSIONED_APP, GRAPH_WORKLOAD = (
    "app", "service", "versionedApp", "workload")
GRAPH_TYPES = (GRAPH_APP, GRAPH_SERVICE, GRAPH_VERSIONED_APP, GRAPH_WORKLOAD)
NODE_APP, NODE_BOX, NODE_SERVICE, NODE_UNKNOWN, NODE_WORKLOAD = (
    "app", "box", "service", "unknown", "workload")
BOX_APP, BOX_CLUSTER, BOX_NAMESPACE = "app", "cluster", "namespace"

RATE_NONE, RATE_RECEIVED, RATE_REQUESTS, RATE_SENT, RATE_TOTAL = (
    "none", "received", "requests", "sent", "total")
AMBIENT_NONE, AMBIENT_TOTAL, AMBIENT_WAYPOINT, AMBIENT_ZTUNNEL = (
    "none", "total", "waypoint", "ztunnel")

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
    is_in: bool = False
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
    (Rate("grpcIn", is_in=True), Rate("grpcInErr", is_err=True), Rate("grpcOut", is_out=True)),
)
HTTP = Protocol(
    "http",
    (Rate("http", is_total=True), Rate("http3xx"), Rate("http4xx", is_err=True),
     Rate("http5xx", is_err=True), Rate("httpPercentErr", 1, is_percent_err=True),
     Rate("httpPercentReq", 1, is_percent_req=True)),
    "httpResponses",
    (Rate("httpIn", is_in=True), Rate("httpIn3xx"), Rate("httpIn4xx", is_err=True),
     Rate("httpIn5xx", is_err=True), Rate("httpOut", is_out=True)),
)
TCP = Protocol(
    "tcp",
    (Rate("tcp", is_total=True),),
    "tcpResponses",
    (Rate("tcpIn", is_in=True), Rate("tcpOut", is_out=True)),
)
PROTOCOLS = (GRPC, HTTP, TCP)  # Kiali's order, which is also the node "traffic" order


# --------------------------------------------------------------------------- options


class BadRequest(Exception):
    """A graph parameter Kiali would reject with 400; the message is Kiali's."""


@dataclass(frozen=True)
class Options:
    """The parsed graph request (graph/options.go Options, the parts used here)."""

    namespaces: tuple[str, ...]
    graph_type: str
    duration_seconds: float
    query_time: int
    inject_service_nodes: bool
    include_idle_edges: bool
    box_by: frozenset[str]
    rate_http: str
    rate_grpc: str
    rate_tcp: str
    ambient: str


def _parse_bool(name: str, text: str) -> bool:
    """strconv.ParseBool, Kiali's parser for the boolean parameters."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise BadRequest(f"Invalid {name} [{text}]")


def _choice(text: str, allowed: tuple[str, ...], default: str, message: str) -> str:
    if text == "":
        return default
    if text not in allowed:
        raise BadRequest(message.format(text))
    return text


def parse_options(params: Mapping[str, str], now: float | None = None) -> Options:
    """graph/options.go NewOptions for the namespaces graph: defaults and 400 messages."""
    duration_text = params.get("duration", "") or "10m"
    try:
        duration = parse_duration(duration_text)
    except ValueError:
        raise BadRequest(f"Invalid duration [{duration_text}]") from None
    graph_type = _choice(params.get("graphType", ""), GRAPH_TYPES, GRAPH_WORKLOAD,
                         "Invalid graphType [{}]")
    box_text = params.get("boxBy", "")
    box_by: set[str] = set()
    for box in (b.strip() for b in box_text.split(",") if box_text):
        if box not in (BOX_APP, BOX_CLUSTER, BOX_NAMESPACE, "none"):
            raise BadRequest(f"Invalid boxBy [{box_text}]")
        if box != "none":
            box_by.add(box)
    idle_text = params.get("includeIdleEdges", "")
    include_idle = _parse_bool("includeIdleEdges", idle_text) if idle_text else False
    inject_text = params.get("injectServiceNodes", "")
    inject = _parse_bool("injectServiceNodes", inject_text) if inject_text else False
    if graph_type == GRAPH_SERVICE:
        inject = True  # "Service graphs require service injection"
    query_text = params.get("queryTime", "")
    if query_text:
        try:
            query_time = int(query_text)
        except ValueError:
            raise BadRequest(f"Invalid queryTime [{query_text}]") from None
    else:
        query_time = int(time.time() if now is None else now)
    ambient = _choice(params.get("ambientTraffic", ""),
                      (AMBIENT_NONE, AMBIENT_TOTAL, AMBIENT_WAYPOINT, AMBIENT_ZTUNNEL),
                      AMBIENT_TOTAL, "Invalid Ambient Traffic [{}]")
    rate_grpc = _choice(params.get("rateGrpc", ""),
                        (RATE_NONE, RATE_RECEIVED, RATE_REQUESTS, RATE_SENT, RATE_TOTAL),
                        RATE_REQUESTS, "Invalid gRPC Rate [{}]")
    rate_http = _choice(params.get("rateHttp", ""), (RATE_NONE, RATE_REQUESTS),
                        RATE_REQUESTS, "Invalid HTTP Rate [{}]")
    rate_tcp = _choice(params.get("rateTcp", ""),
                       (RATE_NONE, RATE_RECEIVED, RATE_SENT, RATE_TOTAL),
                       RATE_SENT, "Invalid TCP Rate [{}]")
    namespaces = tuple(dict.fromkeys(
        n.strip() for n in params.get("namespaces", "").split(",") if n.strip()))
    if not namespaces:
        raise BadRequest(
            "At least one namespace must be specified via the namespaces query parameter.")
    return Options(namespaces, graph_type, duration, query_time, inject, include_idle,
                   frozenset(box_by), rate_http, rate_grpc, rate_tcp, ambient)


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


def _add_value(metadata: dict[str, Any], key: str, value: float) -> None:
    if value > 0:
        metadata[key] = metadata.get(key, 0.0) + value


def _add_response(metadata: dict[str, Any], key: str, code: str, flags: str, host: str,
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
        _add_value(source, "grpcOut", value)
        _add_value(dest, "grpcIn", value)
        _add_value(edge, "grpc", value)
        _add_response(edge, "grpcResponses", code, flags, host, value)
        # Istio may report HTTP codes for gRPC: a 3-digit code is judged as HTTP.
        is_err = (code[:1] in ("4", "5")) if len(code) == 3 else code not in ("0", "")
        if is_err:
            _add_value(dest, "grpcInErr", value)
            _add_value(edge, "grpcErr", value)
    elif protocol == "http":
        _add_value(source, "httpOut", value)
        _add_value(dest, "httpIn", value)
        _add_value(edge, "http", value)
        _add_response(edge, "httpResponses", code, flags, host, value)
        for prefix in ("3", "4", "5"):
            if code.startswith(prefix):
                _add_value(dest, f"httpIn{prefix}xx", value)
                _add_value(edge, f"http{prefix}xx", value)
    elif protocol == "tcp":
        _add_value(source, "tcpOut", value)
        _add_value(dest, "tcpIn", value)
        _add_value(edge, "tcp", value)
        _add_response(edge, "tcpResponses", "-", flags, host, value)


# --------------------------------------------------------------------------- queries


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


# --------------------------------------------------------------------------- traffic map

_REQUIRED_LABELS = (
    "source_workload_namespace", "source_workload", "source_canonical_service",
    "source_canonical_revision", "destination_service_namespace", "destination_service",
    "destination_service_name", "destination_workload_namespace", "destination_workload",
    "destination_canonical_service", "destination_canonical_revision",
)


class TrafficBuilder:
    """Kiali's populateTrafficMap / addTraffic for one namespace's traffic map."""

    def __init__(self, options: Options) -> None:
        self.o = options
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

    @staticmethod
    def _handle_destination(source_cluster: str, dest_cluster: str,
                            m: Mapping[str, str]) -> tuple[str, ...]:
        """util.HandleDestination: the egress gateway, and istio/istio#29373's cluster."""
        dest_svc, dest_svc_name = m["destination_service"], m["destination_service_name"]
        egress = f"istio-egressgateway.{ISTIO_NAMESPACE}.svc.cluster.local"
        if dest_svc == egress and dest_svc == dest_svc_name:
            return (source_cluster, ISTIO_NAMESPACE, "istio-egressgateway", ISTIO_NAMESPACE,
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


# --------------------------------------------------------------------------- finalizers


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
                    _add_value(node.metadata, out, ns_edge.metadata[protocol])


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
            _add_value(into.metadata, rate.name, edge.metadata[rate.name])
    for code, detail in edge.metadata.get(protocol.edge_responses, {}).items():
        for flags, value in detail["flags"].items():
            _add_response(into.metadata, protocol.edge_responses, code, flags, "", value)
        for host, value in detail["hosts"].items():
            _add_response(into.metadata, protocol.edge_responses, code, "", host, value)


# --------------------------------------------------------------------------- JSON


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


# --------------------------------------------------------------------------- the graph


async def build_graph(prometheus: Prometheus, o: Options, *,
                      log_queries: bool = False) -> dict[str, Any]:
    """BuildNamespacesTrafficMap then NewConfig: the whole graph request.

    All queries of all namespaces run concurrently; their answers are then applied in
    Kiali's order (namespace by namespace, query by query), because the first series
    applied to an edge is the one the de-duplication keeps.
    """
    plans = [namespace_queries(ns, o) for ns in o.namespaces]
    flat = [q for plan in plans for q in plan]
    if log_queries:
        for q in flat:
            log_info(PROGRAM, f"query {q.queries.rate} | new-series {q.queries.new_series}")
    answers = await asyncio.gather(*(
        counter_rates(prometheus, q.queries, o.query_time, keep_idle=o.include_idle_edges)
        for q in flat))
    builder = TrafficBuilder(o)
    traffic: TrafficMap = {}
    index = 0
    for namespace, plan in zip(o.namespaces, plans, strict=True):
        ns_traffic: TrafficMap = {}
        for query in plan:
            builder.populate(ns_traffic, answers[index], query.metric)
            index += 1
        merge_traffic_maps(traffic, namespace, ns_traffic)
    mark_outside_or_inaccessible(traffic, o.namespaces)
    mark_traffic_generators(traffic)
    if o.graph_type == GRAPH_SERVICE:
        traffic = reduce_to_service_graph(traffic)
    for reason in builder.skipped[:5]:
        log_problem(PROGRAM, f"skipped a series as Kiali does: {reason}")
    if len(builder.skipped) > 5:
        log_problem(PROGRAM, f"... and {len(builder.skipped) - 5} more skipped series")
    return to_config(traffic, o)


# --------------------------------------------------------------------------- HTTP

PROMETHEUS_KEY = web.AppKey("prometheus", Prometheus)
CONFIG_KEY = web.AppKey("config", AddonConfig)


async def graph_namespaces(request: web.Request) -> web.Response:
    """``GET /kiali/api/namespaces/graph`` (routing/routes.go "GraphNamespaces")."""
    try:
        options = parse_options(request.query)
    except BadRequest as error:
        return error_json(400, str(error))
    log_queries = os.environ.get("LOG_QUERIES", "") not in ("", "0", "false")
    try:
        doc = await build_graph(request.app[PROMETHEUS_KEY], options, log_queries=log_queries)
    except PrometheusUnavailable as error:
        log_problem(PROGRAM, f"graph unavailable: {error}")
        return error_json(503, f"Prometheus is unavailable: {error}")
    return web.json_response(doc)


async def api_status(request: web.Request) -> web.Response:
    """``GET /kiali/api``: Kiali's status document (handlers/root.go Root)."""
    prometheus = request.app[PROMETHEUS_KEY]
    info = await prometheus.build_info()
    external = [{"name": "Prometheus", "version": info.get("version", "")} if info
                else {"name": "Prometheus", "version": "unreachable"}]
    return web.json_response({
        "status": {"Kiali state": "running", "Kiali version": KIALI_VERSION,
                   "Kiali commit hash": "localmesh", "Kiali container version": KIALI_VERSION},
        "externalServices": external,
        "warningMessages": [] if info else [f"Prometheus at {prometheus.url} is unreachable"],
        "istioEnvironment": {"isMaistra": False, "istioAPIEnabled": True},
    })


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def build_app(config: AddonConfig) -> web.Application:
    """The aiohttp application: Kiali's routes under its web_root, JSON errors elsewhere."""
    app = web.Application(middlewares=[problem_middleware(PROGRAM)])
    app[CONFIG_KEY] = config

    async def prometheus_client(app: web.Application) -> AsyncIterator[None]:
        app[PROMETHEUS_KEY] = Prometheus(config.prometheus_url, config.prometheus_timeout)
        yield
        await app[PROMETHEUS_KEY].close()

    app.cleanup_ctx.append(prometheus_client)
    app.router.add_get(f"{WEB_ROOT}/api/namespaces/graph", graph_namespaces)
    app.router.add_get(f"{WEB_ROOT}/api", api_status)
    app.router.add_get(f"{WEB_ROOT}/api/", api_status)
    app.router.add_get(f"{WEB_ROOT}/healthz", healthz)
    app.router.add_get("/healthz", healthz)
    return app


if __name__ == "__main__":
    sys.exit(main(build_app, PROGRAM, DEFAULT_PORT))

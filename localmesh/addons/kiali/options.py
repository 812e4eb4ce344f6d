"""The graph request's options (kiali/kiali ``graph/options.go`` ``NewOptions``):
parameters, their defaults, and the 400 messages Kiali gives for bad ones.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from localmesh.addons.promql import parse_duration

GRAPH_APP, GRAPH_SERVICE, GRAPH_VERSIONED_APP, GRAPH_WORKLOAD = (
    "app", "service", "versionedApp", "workload")
GRAPH_TYPES = (GRAPH_APP, GRAPH_SERVICE, GRAPH_VERSIONED_APP, GRAPH_WORKLOAD)
BOX_APP, BOX_CLUSTER, BOX_NAMESPACE = "app", "cluster", "namespace"

RATE_NONE, RATE_RECEIVED, RATE_REQUESTS, RATE_SENT, RATE_TOTAL = (
    "none", "received", "requests", "sent", "total")
AMBIENT_NONE, AMBIENT_TOTAL, AMBIENT_WAYPOINT, AMBIENT_ZTUNNEL = (
    "none", "total", "waypoint", "ztunnel")


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

"""Read service-graph edges from Kiali's graph API and from the Istio 0.x servicegraph addon.

"Service-graph edges exist" is asserted as edges between *named* workloads. Kiali's graph
refers to nodes by opaque hashes and the old servicegraph addon by display strings, so both
are turned into the same Node/Edge values here; steps then compare those and print the
edges that were found when one is missing.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Edge", "GraphError", "Node", "edges_from_kiali", "servicegraph_edges"]

NODE_FIELDS: tuple[str, ...] = ("nodeType", "namespace", "workload", "app", "version", "service")

# Kiali's per-edge rate keys by protocol: requests/s for http and grpc, bytes/s for tcp.
_RATE_KEYS: tuple[str, ...] = ("http", "grpc", "tcp")

# servicegraph labels its edges with the PromQL rate it computed; reqs/sec came from
# istio_requests_total (HTTP and gRPC alike), bytes/sec from the TCP byte counters.
_SERVICEGRAPH_RATES: tuple[tuple[str, str], ...] = (("reqs/sec", "http"), ("bytes/sec", "tcp"))

_FQDN = re.compile(r"(?P<service>[^.]+)\.(?P<namespace>[^.]+)\.svc(?:\..*)?")
_DISPLAY = re.compile(r"(?P<head>.*) \((?P<inner>[^()]*)\)")


class GraphError(ValueError):
    """The document is not a graph we can read; the message says what is wrong and where."""


@dataclass(frozen=True)
class Node:
    """A graph node by the names that identify it in the mesh (None where unknown).

    Field names follow Kiali's node data so that the JSON printed by ``meshgate edges``
    reads the same as Kiali's own.
    """

    nodeType: str | None = None  # Kiali's spelling, kept for the JSON output
    namespace: str | None = None
    workload: str | None = None
    app: str | None = None
    version: str | None = None
    service: str | None = None

    def to_json(self) -> dict[str, str | None]:
        """The node as printed by ``meshgate edges --json``: all six fields, null if absent."""
        return asdict(self)

    def label(self) -> str:
        """A short human name: ``namespace/workload`` (or service, or app:version)."""
        name = self.workload or self.service or self.app or "?"
        if self.workload is None and self.service is None and self.version:
            name = f"{name}:{self.version}"
        return f"{self.namespace}/{name}" if self.namespace else name


@dataclass(frozen=True)
class Edge:
    """Traffic observed from ``source`` to ``target``; rate in the protocol's Kiali unit."""

    source: Node
    target: Node
    protocol: str | None
    rate: float | None

    def to_json(self) -> dict[str, Any]:
        """The edge as printed by ``meshgate edges --json`` (README.md's stable shape)."""
        return {
            "source": self.source.to_json(),
            "target": self.target.to_json(),
            "protocol": self.protocol,
            "rate": self.rate,
        }


# --------------------------------------------------------------------------- Kiali


def edges_from_kiali(doc: Any) -> list[Edge]:
    """Edges of a Kiali ``/api/namespaces/graph`` response, node ids resolved to Nodes.

    An edge whose source or target id is not in the node list is an error rather than
    skipped: it means the document was cut or mangled, and a silently shorter edge list
    would turn into a misleading "edge missing" failure.
    """
    if not isinstance(doc, dict):
        raise GraphError(f"not a Kiali graph response: the top level is {_kind(doc)}")
    elements = doc.get("elements")
    if not isinstance(elements, dict):
        keys = ", ".join(repr(k) for k in list(doc)[:5]) or "none"
        raise GraphError(
            f"not a Kiali graph response: no 'elements' object (top-level keys: {keys})"
        )
    nodes: dict[str, Node] = {}
    for index, wrapper in enumerate(_list(elements.get("nodes"), "elements.nodes")):
        where = f"elements.nodes[{index}]"
        data = _data(wrapper, where)
        node_id = data.get("id")
        if not isinstance(node_id, str) or not node_id:
            raise GraphError(f"{where}.data has no 'id'")
        nodes[node_id] = Node(
            **{name: _text(data.get(name), f"{where}.data.{name}") for name in NODE_FIELDS}
        )
    edges: list[Edge] = []
    for index, wrapper in enumerate(_list(elements.get("edges"), "elements.edges")):
        where = f"elements.edges[{index}]"
        data = _data(wrapper, where)
        source = _resolve(nodes, data.get("source"), f"{where}.data.source")
        target = _resolve(nodes, data.get("target"), f"{where}.data.target")
        traffic = data.get("traffic") or {}
        if not isinstance(traffic, dict):
            raise GraphError(f"{where}.data.traffic is {_kind(traffic)}, expected an object")
        protocol = _text(traffic.get("protocol"), f"{where}.data.traffic.protocol")
        rate = _kiali_rate(traffic.get("rates"), protocol, f"{where}.data.traffic.rates")
        edges.append(Edge(source=source, target=target, protocol=protocol, rate=rate))
    return edges


def _resolve(nodes: dict[str, Node], node_id: Any, where: str) -> Node:
    if not isinstance(node_id, str) or node_id not in nodes:
        raise GraphError(f"{where} refers to unknown node id {node_id!r}")
    return nodes[node_id]


def _kiali_rate(rates: Any, protocol: str | None, where: str) -> float | None:
    """The edge's rate for its protocol; with no protocol, the first of http/grpc/tcp.

    Only the protocol's own key is read when the protocol is known, so a TCP edge never
    reports requests/s or an HTTP edge bytes/s.
    """
    if rates is None:
        return None
    if not isinstance(rates, dict):
        raise GraphError(f"{where} is {_kind(rates)}, expected an object")
    keys = (protocol,) if protocol in _RATE_KEYS else () if protocol else _RATE_KEYS
    for key in keys:
        if rates.get(key) is not None:
            return _number(rates[key], f"{where}.{key}")
    return None


# --------------------------------------------------------------------------- servicegraph


def servicegraph_edges(doc: Any) -> list[Edge]:
    """Edges of the Istio 0.x-1.1 servicegraph addon, from ``/d3graph`` or ``/graph``.

    ``/d3graph`` is ``{"nodes": [{"name"}], "links": [{"source": i, "target": j,
    "labels"}]}`` with list indexes; ``/graph`` is ``{"nodes": {name: {}}, "edges":
    [{"source": name, "target": name, "labels"}]}``. Node names are display strings and
    are mapped back to names by _servicegraph_node.
    """
    if isinstance(doc, dict) and isinstance(doc.get("links"), list):
        names = []
        for index, item in enumerate(_list(doc.get("nodes"), "nodes")):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise GraphError(f"nodes[{index}] has no 'name'")
            names.append(item["name"])
        edges = []
        for index, link in enumerate(doc["links"]):
            link = _object(link, f"links[{index}]")
            source = _index(names, link.get("source"), f"links[{index}].source")
            target = _index(names, link.get("target"), f"links[{index}].target")
            edges.append(_servicegraph_edge(source, target, link.get("labels"), index))
        return edges
    if isinstance(doc, dict) and isinstance(doc.get("nodes"), dict) and "edges" in doc:
        known = doc["nodes"]
        edges = []
        for index, item in enumerate(_list(doc.get("edges"), "edges")):
            item = _object(item, f"edges[{index}]")
            for end in ("source", "target"):
                if not isinstance(item.get(end), str) or item[end] not in known:
                    raise GraphError(f"edges[{index}].{end} names unknown node {item.get(end)!r}")
            edges.append(
                _servicegraph_edge(item["source"], item["target"], item.get("labels"), index)
            )
        return edges
    raise GraphError(
        "not a servicegraph response: expected /d3graph's 'nodes' list and 'links', "
        "or /graph's 'nodes' object and 'edges'"
    )


def _index(names: list[str], value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(names):
        raise GraphError(f"{where} is {value!r}, not an index into the {len(names)} nodes")
    return names[value]


def _servicegraph_edge(source: str, target: str, labels: Any, index: int) -> Edge:
    labels = labels or {}
    if not isinstance(labels, dict):
        raise GraphError(f"edge {index} labels are {_kind(labels)}, expected an object")
    protocol, rate = None, None
    for label, label_protocol in _SERVICEGRAPH_RATES:
        if labels.get(label) is not None:
            protocol = label_protocol
            rate = _number(labels[label], f"edge {index} label {label!r}")
            break
    return Edge(_servicegraph_node(source), _servicegraph_node(target), protocol, rate)


def _servicegraph_node(name: str) -> Node:
    """Map a servicegraph display name back to the names it was built from.

    The addon's names changed with Istio's metrics: 0.x wrote ``<service FQDN> (<version>)``,
    1.0/1.1 ``<app> (<workload>)``; a plain ``<workload>.<namespace>`` is read as such (a
    namespace cannot contain a dot, so the last dot splits them).
    """
    display = _DISPLAY.fullmatch(name)
    if display:
        head, inner = display.group("head"), display.group("inner") or None
        fqdn = _FQDN.fullmatch(head)
        if fqdn:
            return Node(nodeType="service", namespace=fqdn["namespace"],
                        service=fqdn["service"], version=inner)
        return Node(nodeType="workload", app=head or None, workload=inner)
    fqdn = _FQDN.fullmatch(name)
    if fqdn:
        return Node(nodeType="service", namespace=fqdn["namespace"], service=fqdn["service"])
    workload, dot, namespace = name.rpartition(".")
    if dot and workload and namespace:
        return Node(nodeType="workload", workload=workload, namespace=namespace)
    return Node(nodeType="workload", workload=name)


# --------------------------------------------------------------------------- helpers


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "null" if value is None else f"a {type(value).__name__}"


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []  # Go encodes an empty slice as null
    if not isinstance(value, list):
        raise GraphError(f"{where} is {_kind(value)}, expected a list")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GraphError(f"{where} is {_kind(value)}, expected an object")
    return value


def _data(wrapper: Any, where: str) -> dict[str, Any]:
    """Kiali wraps every element as ``{"data": {...}}`` (Cytoscape's format)."""
    return _object(_object(wrapper, where).get("data"), f"{where}.data")


def _text(value: Any, where: str) -> str | None:
    """A name field as text; numbers (a YAML ``version: 1``) are accepted as their text."""
    if isinstance(value, dict | list):
        raise GraphError(f"{where} is {_kind(value)}, expected a string")
    return None if value is None else str(value)


def _number(value: Any, where: str) -> float:
    """Kiali and servicegraph write rates as decimal strings ("20.00")."""
    if isinstance(value, bool):
        raise GraphError(f"{where} is {value!r}, not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise GraphError(f"{where} is {value!r}, not a number") from None
    if math.isnan(number):
        raise GraphError(f"{where} is {value!r}, not a number")
    return number

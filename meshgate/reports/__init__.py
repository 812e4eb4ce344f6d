"""The suite's reports: JUnit XML (pytest's own), cucumber JSON and a self-contained HTML page.

What a scenario saw reaches the reports through ``item.user_properties`` (pytest's
standard channel, which also lands in the JUnit XML and survives pytest-xdist): the
service-graph edges it observed and the failure bundle it captured. The property names
and value shapes below are the contract, documented in docs/reports.md. The plugins add
them from the scenario's typed state (fixtures.plugins.reporting, fixtures.plugins.bundle)
with the helpers below, so nobody spells the JSON by hand; steps do nothing for the
reports. The waits (meshgate.waiting's Convergence samples) are collected by the
reporting plugin itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "BUNDLE_PROPERTY",
    "CONVERGENCE_PROPERTY",
    "GRAPH_PROPERTY",
    "bundle_property",
    "edge_entry",
    "graph_property",
]

GRAPH_PROPERTY = "meshgate_graph"
BUNDLE_PROPERTY = "meshgate_bundle"
CONVERGENCE_PROPERTY = "meshgate_convergence"


def _node_label(node: Any, namespace: str | None) -> str:
    """A node's display label: the bare workload inside the scenario's namespace.

    Scenario namespaces differ per worker (``mg-<run>-<worker>-<hash>``); labelling their
    nodes by workload alone lets the run's picture merge "composer" from every scenario into
    one node, while nodes elsewhere (``istio-system/istio-ingressgateway``) keep their
    namespace.
    """
    if isinstance(node, str):
        return node
    label = node.label() if hasattr(node, "label") else str(node)
    node_ns = getattr(node, "namespace", None)
    if namespace and node_ns == namespace and label.startswith(f"{namespace}/"):
        return label[len(namespace) + 1:]
    return label


def edge_entry(edge: Any, namespace: str | None = None, *, missing: bool = False
               ) -> dict[str, Any]:
    """One entry of a ``meshgate_graph`` list from a :class:`meshgate.graph.Edge`, or a
    mapping with ``source``/``target`` (labels or nodes), ``rate`` and ``protocol``."""
    if isinstance(edge, Mapping):
        source, target = edge.get("source"), edge.get("target")
        rate, protocol = edge.get("rate"), edge.get("protocol")
        missing = bool(edge.get("missing", missing))
    else:
        source, target = edge.source, edge.target
        rate, protocol = getattr(edge, "rate", None), getattr(edge, "protocol", None)
    entry: dict[str, Any] = {
        "source": _node_label(source, namespace),
        "target": _node_label(target, namespace),
        "rate": None if rate is None else float(rate),
    }
    if protocol:
        entry["protocol"] = protocol
    if missing:
        entry["missing"] = True
    return entry


def graph_property(edges: Iterable[Any], namespace: str | None = None, *,
                   missing: Iterable[Any] = ()) -> tuple[str, str]:
    """The ``("meshgate_graph", json)`` user property for the edges a scenario observed.

    ``missing`` are the expected edges that were not observed; the report draws them
    dashed in red so a failed graph scenario shows what is absent, not just a count.
    """
    entries = [edge_entry(e, namespace) for e in edges]
    entries += [edge_entry(e, namespace, missing=True) for e in missing]
    return (GRAPH_PROPERTY, json.dumps(entries, sort_keys=True))


def bundle_property(path: str | os.PathLike[str]) -> tuple[str, str]:
    """The ``("meshgate_bundle", path)`` user property for a captured failure bundle."""
    return (BUNDLE_PROPERTY, os.fspath(path))

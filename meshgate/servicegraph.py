"""The mesh's service graph, from the best source the cluster offers.

Kiali's graph API when Kiali is installed; else the Istio 0.x servicegraph addon; else
edges derived from Prometheus with Kiali's own query (docs/architecture.md, "Graph").
The expected edges name workloads; a failure lists the missing edges and the series
behind the edges found.

:class:`Graph` holds the check and remembers the last graph it read and the edges it
missed, which the report draws and the failure bundle keeps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from meshgate.cluster import Cluster, ClusterError
from meshgate.graph import Edge, Node, edges_from_kiali, servicegraph_edges
from meshgate.mesh import MeshInfo
from meshgate.telemetry import QueryBackend
from meshgate.waiting import Waits, WaitTimeout


@dataclass(frozen=True)
class WantedEdge:
    source: str
    target: str

    def describe(self) -> str:
        return f"{self.source} → {self.target}"


@dataclass
class Observed:
    source_name: str
    edges: list[Edge]
    raw: object
    note: str = ""

    def names(self) -> list[tuple[str, str]]:
        return sorted({(node_name(e.source), node_name(e.target)) for e in self.edges})


def node_name(n: Node) -> str:
    return n.workload or n.app or n.service or "unknown"


def from_kiali(cluster: Cluster, mesh: MeshInfo, namespaces: list[str],
               duration: str = "60s") -> Observed:
    assert mesh.kiali is not None
    status, body = cluster.service_get(
        mesh.kiali.namespace, mesh.kiali.service, mesh.kiali.port,
        "/kiali/api/namespaces/graph",
        {"namespaces": ",".join(namespaces), "graphType": "workload", "duration": duration})
    if status != 200:
        raise ClusterError(f"Kiali's graph API answered {status}: {body[:300]!r}")
    doc = json.loads(body)
    return Observed("kiali", edges_from_kiali(doc), doc)


def from_servicegraph(cluster: Cluster, mesh: MeshInfo) -> Observed:
    assert mesh.servicegraph is not None
    status, body = cluster.service_get(mesh.servicegraph.namespace, mesh.servicegraph.service,
                                       mesh.servicegraph.port, "/d3graph",
                                       {"time_horizon": "5m"})
    if status != 200:
        raise ClusterError(f"the servicegraph addon answered {status}: {body[:300]!r}")
    doc = json.loads(body)
    return Observed("servicegraph", servicegraph_edges(doc), doc)


def from_prometheus(prom: QueryBackend, namespace: str, window: str = "5m") -> Observed:
    """Edges from Kiali's own query (destination reports, plus source reports for the
    namespace's outgoing traffic)."""
    by = ("source_workload_namespace,source_workload,destination_service_namespace,"
          "destination_service_name,destination_workload_namespace,destination_workload,"
          "request_protocol")
    series = []
    for rep, ns_label in (("destination", "destination_workload_namespace"),
                          ("source", "source_workload_namespace")):
        series += prom.query(
            f'sum(increase(istio_requests_total{{reporter="{rep}",{ns_label}="{namespace}"}}'
            f"[{window}])) by ({by}) > 0")
    edges = []
    seen = set()
    for s in series:
        m = s.get("metric") or {}
        key = (m.get("source_workload_namespace"), m.get("source_workload"),
               m.get("destination_workload_namespace"), m.get("destination_workload"))
        if key in seen:
            continue
        seen.add(key)
        src = Node("workload", m.get("source_workload_namespace"), m.get("source_workload"),
                   None, None, None)
        dst = Node("workload", m.get("destination_workload_namespace"),
                   m.get("destination_workload"), None, None,
                   m.get("destination_service_name"))
        edges.append(Edge(src, dst, m.get("request_protocol"), float(s["value"][1])))
    return Observed("prometheus", edges, series)


def observe(cluster: Cluster, mesh: MeshInfo, prom: QueryBackend | None,
            namespace: str) -> Observed:
    """Kiali if installed, else the servicegraph addon, else Prometheus; says which. On a
    Mixer-era mesh the servicegraph addon comes first: it is that era's graph (Istio 1.x
    shipped it beside Mixer, reading Mixer's counts)."""
    if mesh.mixer_era and mesh.servicegraph is not None:
        out = from_servicegraph(cluster, mesh)
        out.note = "the servicegraph addon, the Mixer-era mesh's graph"
        return out
    if mesh.kiali is not None:
        return from_kiali(cluster, mesh, [namespace])
    if mesh.servicegraph is not None:
        out = from_servicegraph(cluster, mesh)
        out.note = "Kiali is not installed; the graph comes from the servicegraph addon"
        return out
    if prom is None:
        raise ClusterError("no graph source: the cluster has neither Kiali, the servicegraph "
                           f"addon nor Prometheus in {mesh.namespace}")
    out = from_prometheus(prom, namespace)
    out.note = ("neither Kiali nor the servicegraph addon is installed; the graph is "
                "derived from Prometheus with Kiali's query")
    return out


def missing(observed: Observed, wanted: list[WantedEdge]) -> list[WantedEdge]:
    have = set(observed.names())
    return [w for w in wanted if (w.source, w.target) not in have]


def describe_found(observed: Observed) -> str:
    note = f" ({observed.note})" if observed.note else ""
    if not observed.edges:
        return f"{observed.source_name}{note} shows no edges at all"
    parts = [f"{node_name(e.source)} → {node_name(e.target)}"
             + (f" ({e.protocol}, {e.rate:g}/s)" if e.rate is not None else "")
             for e in observed.edges]
    return f"{observed.source_name}{note} shows: " + "; ".join(sorted(set(parts)))


@dataclass
class Graph:
    """The service graph of one scenario's namespace, read from the best source."""

    cluster: Cluster
    mesh: MeshInfo
    prometheus: QueryBackend | None
    namespace: str
    waits: Waits
    observed: Observed | None = None
    missed: list[WantedEdge] = field(default_factory=list)

    def read(self) -> Observed:
        self.observed = observe(self.cluster, self.mesh, self.prometheus, self.namespace)
        return self.observed

    def expect_edges(self, wanted: list[WantedEdge]) -> Observed:
        """Every wanted edge is in the graph; a miss lists the absent edges and what the
        graph shows instead."""
        def probe() -> bool:
            self.missed = missing(self.read(), wanted)
            return not self.missed

        try:
            self.waits.until(probe, area="graph", what=f"{len(wanted)} edges in the service "
                             "graph", describe=lambda ok: ok or [w.describe() for w in
                                                                  self.missed])
        except WaitTimeout:
            gone = self.missed if self.observed is not None else wanted
            raise AssertionError(
                f"missing edges: {', '.join(w.describe() for w in gone)}; "
                f"{describe_found(self.observed) if self.observed else 'no graph was read'}"
            ) from None
        assert self.observed is not None
        return self.observed


def wanted_edges(table: list[list[str]]) -> list[WantedEdge]:
    """The edges of a Gherkin data table with ``source`` and ``target`` columns."""
    header, *rows = table
    idx = {name.strip(): i for i, name in enumerate(header)}
    if "source" not in idx or "target" not in idx:
        raise AssertionError(f"the edge table needs 'source' and 'target' columns; it has "
                             f"{[h.strip() for h in header]}")
    return [WantedEdge(r[idx["source"]].strip(), r[idx["target"]].strip()) for r in rows]

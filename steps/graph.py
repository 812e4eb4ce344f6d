"""Steps about the mesh's service graph."""

from __future__ import annotations

import pytest
from pytest_bdd import parsers, then

from fixtures.world import World
from meshgate import servicegraph, telemetry
from meshgate.cluster import Cluster
from meshgate.mesh import MeshInfo
from meshgate.reports import graph_property
from meshgate.servicegraph import WantedEdge
from meshgate.waiting import Convergence, Timeouts, WaitTimeout, wait_until


@then(parsers.parse("the service graph has these edges:"))
def graph_has_edges(datatable: list[list[str]], cluster: Cluster, world: World,
                    mesh_info: MeshInfo, timeouts: Timeouts, convergence: Convergence,
                    request: pytest.FixtureRequest) -> None:
    """Every row of the table is an edge of the graph (Kiali, else servicegraph, else
    Prometheus); a miss lists the absent edges and what the graph shows."""
    header, *rows = datatable
    idx = {name.strip(): i for i, name in enumerate(header)}
    wanted = [WantedEdge(r[idx["source"]].strip(), r[idx["target"]].strip()) for r in rows]
    prom = telemetry.prometheus_for(cluster, world, mesh_info) if mesh_info.prometheus \
        else None

    def probe() -> object:
        world.graph = servicegraph.observe(cluster, mesh_info, prom, world.namespace)
        return not servicegraph.missing(world.graph, wanted)

    try:
        wait_until(probe, area="graph", what=f"{len(wanted)} edges in the service graph",
                   timeout=timeouts["graph"], log=convergence,
                   describe=lambda ok: ok or [w.describe() for w in
                                              servicegraph.missing(world.graph, wanted)])
    except WaitTimeout:
        observed = world.graph
        gone = servicegraph.missing(observed, wanted) if observed else wanted
        raise AssertionError(
            f"missing edges: {', '.join(w.describe() for w in gone)}; "
            f"{servicegraph.describe_found(observed) if observed else 'no graph was read'}"
        ) from None
    finally:
        if world.graph is not None and world.graph.note:
            print(f"meshgate: {world.graph.note}")
            world.evidence["graph_source"] = world.graph.note
        if world.graph is not None:
            gone = servicegraph.missing(world.graph, wanted)
            request.node.user_properties.append(graph_property(
                world.graph.edges, world.namespace,
                missing=[{"source": w.source, "target": w.target} for w in gone]))

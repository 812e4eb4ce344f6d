"""Steps about the mesh's service graph."""

from __future__ import annotations

from pytest_bdd import parsers, then

from meshgate import servicegraph
from meshgate.scenario import Scenario


@then(parsers.parse("the service graph has these edges:"))
def graph_has_edges(datatable: list[list[str]], scenario: Scenario) -> None:
    """Every row of the table is an edge of the graph (Kiali, else servicegraph, else
    Prometheus); a miss lists the absent edges and what the graph shows."""
    scenario.graph.expect_edges(servicegraph.wanted_edges(datatable))

"""Steps that deploy workloads into the scenario's namespace."""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers

from meshgate import rollout
from meshgate.cluster import Cluster
from meshgate.waiting import Convergence, Timeouts


@pytest.fixture
def deployed() -> dict:
    """Workloads deployed by this scenario, by name."""
    return {}


@given(parsers.re(r"the (?P<name>[a-z0-9-]+) workload is deployed with a sidecar"))
def workload_deployed(name: str, cluster: Cluster, namespace: str, timeouts: Timeouts,
                      convergence: Convergence, deployed: dict) -> None:
    deployed.update(rollout.deploy(cluster, namespace, [name], timeout=timeouts["deploy"],
                                   log=convergence))

"""Steps that deploy the workloads and check that the mesh took them in."""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers, then

from meshgate import rollout, sidecars
from meshgate.scenario import Scenario


@given("the blockchain workloads are deployed with sidecars")
def blockchain_deployed(scenario: Scenario) -> None:
    """composer, vp0, membersrvc and their Ingress, in the worker's namespace.

    When they cannot be deployed (a kind the cluster does not serve, an image that cannot
    run), no scenario can pass: the run stops with that one message.
    """
    try:
        scenario.deploy_blockchain()
    except rollout.DEPLOY_ERRORS as exc:
        pytest.exit(f"meshgate: cannot deploy the workloads: {exc}", returncode=3)


@given(parsers.re(r"the (?P<name>[a-z0-9-]+) workload is deployed with a sidecar"))
def workload_deployed(name: str, scenario: Scenario) -> None:
    """Only the named workload, for scenarios that need one (the thin slice)."""
    scenario.deploy([name])


@then(parsers.parse("every pod of {workload} is Ready with an injected istio-proxy sidecar"))
def pods_have_sidecars(workload: str, scenario: Scenario) -> None:
    """Injection is recognised by the ``sidecar.istio.io/status`` annotation and an istio-proxy
    container (native sidecar or classic), never by position."""
    sidecars.expect_injected_and_ready(scenario.cluster, scenario.namespace, workload)

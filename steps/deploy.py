"""Steps that deploy the workloads and check that the mesh took them in."""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers, then

from meshgate import rollout, sidecars
from meshgate.scenario import Scenario


@given("the blockchain workloads are deployed in the mesh")
def blockchain_deployed(scenario: Scenario) -> None:
    """composer, vp0, membersrvc and their Ingress, in the worker's namespace, Ready in its
    data plane (sidecars, or ambient: ztunnel and the namespace's waypoint).

    When they cannot be deployed (a kind the cluster does not serve, an image that cannot
    run), no scenario can pass: the run stops with that one message.
    """
    try:
        scenario.deploy_blockchain()
    except rollout.DEPLOY_ERRORS as exc:
        pytest.exit(f"meshgate: cannot deploy the workloads: {exc}", returncode=3)


@given("the blockchain workloads are deployed with sidecars")
def blockchain_deployed_with_sidecars(scenario: Scenario) -> None:
    """The same, for scenarios whose checks read sidecars: in an ambient namespace they are
    skipped, saying so."""
    scenario.require_sidecars("this scenario")
    blockchain_deployed(scenario)


@given(parsers.re(r"the (?P<name>[a-z0-9-]+) workload is deployed with a sidecar"))
def workload_deployed(name: str, scenario: Scenario) -> None:
    """Only the named workload, for scenarios that need one (the thin slice)."""
    scenario.deploy([name])


@then(parsers.parse("every pod of {workload} is Ready with an injected istio-proxy sidecar"))
def pods_have_sidecars(workload: str, scenario: Scenario) -> None:
    """Injection is recognised by the ``sidecar.istio.io/status`` annotation and an istio-proxy
    container (native sidecar or classic), never by position."""
    scenario.require_sidecars("an injected istio-proxy")
    sidecars.expect_injected_and_ready(scenario.cluster, scenario.namespace, workload)


@then(parsers.parse("every pod of {workload} is Ready in the mesh"))
def pods_in_mesh(workload: str, scenario: Scenario) -> None:
    """With sidecars: injected (annotation and istio-proxy container) and Ready. Ambient:
    Ready, without a sidecar, redirected to ztunnel (istio-cni's annotation)."""
    scenario.expect_in_mesh(workload)

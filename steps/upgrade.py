"""Steps that gate a change with live traffic: requests flow through it, and afterwards
they, and the sidecars, say what it did."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from meshgate import chaos, disruption, manifests
from meshgate.change import REPO
from meshgate.lifecycle import Run
from meshgate.scenario import Scenario

# How long a change command may take (an upgrade restarts every workload).
CHANGE_TIMEOUT = 600.0


@given("requests flow through the ingress gateway")
def traffic_flows(scenario: Scenario, run: Run) -> None:
    """New and kept connections to ``/login`` and ``/chain/blocks/0``, every request's
    outcome recorded, from now until a Then step judges them."""
    scenario.start_traffic(run.settings.artifacts)


@when(parsers.parse('the control plane is upgraded to revision "{revision}" by {script}'))
def upgraded(revision: str, script: str, scenario: Scenario) -> None:
    """The change: the script (a path in the checkout) with the revision, as `meshgate
    change` runs a change (KUBECONFIG, MESHGATE_NAMESPACE)."""
    scenario.run_change([str(REPO / script), revision], CHANGE_TIMEOUT)


@when("vp0's pods are deleted without a grace period")
def vp0_killed(scenario: Scenario) -> None:
    """A change that is disruptive by design (the negative control): `kubectl delete pod
    --grace-period=0 --force`, until the replacement is Ready (the traffic sees it all)."""
    chaos.replace_pods(scenario.cluster, scenario.namespace, "app=vp0", scenario.waits,
                       grace_period=0)


@then("no request through the ingress gateway failed")
def none_failed(scenario: Scenario) -> None:
    """Zero failed requests on every flow, or the flows' numbers."""
    verdict = disruption.judge(scenario.traffic_flows())
    assert verdict.ok, "; ".join(verdict.reasons)


@then("the requests through the ingress gateway show the disruption")
def disruption_shown(scenario: Scenario) -> None:
    """The gate bites: a disruptive change fails it, with the failed requests and the
    longest gap named."""
    verdict = disruption.judge(scenario.traffic_flows())
    assert not verdict.ok and "failed requests" in verdict.reasons[0], verdict.reasons


@then(parsers.parse('every sidecar of the blockchain workloads is on revision "{revision}"'))
def on_revision(revision: str, scenario: Scenario) -> None:
    """Injected by the new revision and connected to its istiod."""
    disruption.expect_on_revision(scenario.cluster, scenario.mesh, scenario.namespace,
                                  manifests.WORKLOADS, revision)

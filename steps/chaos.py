"""Steps that inject faults and check that the mesh recovers."""

from __future__ import annotations

from pytest_bdd import parsers, then, when

from meshgate import chaos, manifests
from meshgate.scenario import Scenario


@when(parsers.parse('the {what} of {workload} is killed while traffic flows to "{path}" '
                    "through the ingress gateway"))
def kill_during_traffic(what: str, workload: str, path: str, scenario: Scenario) -> None:
    """Kill the app (``kill 1`` in its container) or the sidecar's Envoy (``quitquitquit``) while
    background traffic flows, and wait for the container to restart and be Ready."""
    if what.lower().startswith("envoy"):
        scenario.require_sidecars("killing a sidecar's Envoy")
    scenario.fault = chaos.kill_during_traffic(scenario.cluster, scenario.namespace, workload,
                                               what, scenario.ingress, path, scenario.waits)


@then(parsers.parse("the restart is visible in the {container} container's restartCount"))
def restart_visible(container: str, scenario: Scenario) -> None:
    """The kill shows in the container's restartCount."""
    chaos.expect_restart_visible(scenario.cluster, scenario.namespace, scenario.fault,
                                 container)


@when(parsers.parse("the {component} pod is deleted and its replacement is Ready"))
def restart_component(component: str, scenario: Scenario) -> None:
    """Delete a control-plane component's pod and wait until its replacement is Ready."""
    scenario.replaced[component] = chaos.replace_component(scenario.cluster, scenario.mesh,
                                                           component, scenario.waits)


@then("every sidecar of the blockchain workloads is Ready")
def sidecars_ready(scenario: Scenario) -> None:
    """Every workload's istio-proxy is Ready again."""
    scenario.require_sidecars("every sidecar's readiness")
    chaos.expect_proxies_ready(scenario.cluster, scenario.namespace, manifests.WORKLOADS,
                               scenario.waits)


@when(parsers.parse('a service "{name}" with HTTP port {port:d} is created'))
def service_created(name: str, port: int, scenario: Scenario) -> None:
    """A new Service makes istiod push a new route to every sidecar."""
    scenario.cluster.apply(manifests.http_service(name, port), scenario.namespace)

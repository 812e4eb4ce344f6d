"""Steps about mutual TLS and authorization policies."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from meshgate import security
from meshgate.scenario import Scenario

# The clients a scenario may deploy, by where they stand.
CLIENTS = {"inside": "client", "outside": "outside"}


@then(parsers.parse('the sidecar of {client} sends Istio\'s mutual TLS to "{service}" port '
                    "{port:d}"))
def sends_mtls(client: str, service: str, port: int, scenario: Scenario) -> None:
    """The client's outbound cluster for the service uses Istio's mTLS transport socket
    toward mesh endpoints: its workload certificate over SDS, the mesh root, ALPN
    ``istio``, SNI ``outbound_.<port>_._.<fqdn>``."""
    scenario.require_sidecars("a sidecar's mTLS cluster")
    security.expect_mtls_cluster(scenario.cluster, scenario.mesh, scenario.namespace, client,
                                 service, port, scenario.waits)


@then(parsers.parse("Prometheus counts the {count:d} requests to {service} from {caller} "
                    "over mutual TLS"))
def counted_over_mtls(count: int, service: str, caller: str, scenario: Scenario) -> None:
    """The receiving sidecar reports ``connection_security_policy="mutual_tls"`` with the
    caller's SPIFFE identity as ``source_principal``; on ambient, the destination's ztunnel
    does for the connections (or the waypoint, for the requests it carried)."""
    scenario.expect_requests_counted(service, count, 200,
                                     labels=scenario.principal_labels(caller))


@given(parsers.parse("a client {where} the mesh"))
def client_deployed(where: str, scenario: Scenario) -> None:
    """A pod that only waits, with a sidecar (inside: its own identity) or without one
    (outside: plaintext, no identity), to make requests from."""
    scenario.caller(CLIENTS[where], in_mesh=where == "inside")


@given(parsers.parse("the client {where} the mesh is {outcome} by {service}"))
@then(parsers.parse("the client {where} the mesh is {outcome} by {service}"))
def client_answered(where: str, outcome: str, service: str, scenario: Scenario) -> None:
    """Requests from the client to the service until they are served, refused (no HTTP
    answer: a STRICT sidecar) or denied (``403 RBAC: access denied``)."""
    scenario.expect_from_caller(CLIENTS[where], service, outcome)


@when("the namespace requires mutual TLS")
def strict_mtls(scenario: Scenario) -> None:
    """A STRICT PeerAuthentication for the namespace, until the scenario ends (where the
    mesh has auto mTLS: without it STRICT would cut the mesh's own hops)."""
    scenario.require_mutual_tls("STRICT")


@when(parsers.parse('an authorization policy denies {method} "{path}" on {workload}'))
def deny_policy(method: str, path: str, workload: str, scenario: Scenario) -> None:
    """A DENY AuthorizationPolicy for the workload, until the scenario ends."""
    scenario.apply_for_scenario(security.deny_paths(workload, [method], [path],
                                                    name=f"deny-{workload}"))


@when(parsers.parse("an authorization policy allows only {caller} to call {workload}"))
def allow_policy(caller: str, workload: str, scenario: Scenario) -> None:
    """An ALLOW AuthorizationPolicy admitting only the caller's identity to the workload."""
    principal = scenario.principal_labels(caller)["source_principal"]
    scenario.apply_for_scenario(security.allow_principals(workload, [principal],
                                                          name=f"allow-{workload}"))


@when("the authorization policy is removed")
def policy_removed(scenario: Scenario) -> None:
    """Every AuthorizationPolicy the scenario applied is deleted."""
    scenario.remove("AuthorizationPolicy")

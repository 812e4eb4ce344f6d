"""Steps about requests through the ingress gateway."""

from __future__ import annotations

from pytest_bdd import given, parsers, then

from meshgate.scenario import Scenario


@then(parsers.parse('"{path}" through the ingress gateway answers {status:d} with {content} '
                    "{n:d} times in a row within {seconds:d} seconds"))
def ingress_answers(path: str, status: int, content: str, n: int, seconds: int,
                    scenario: Scenario) -> None:
    """N consecutive expected answers within T seconds, not one lucky response."""
    scenario.ingress.expect_answers(path, status, content, consecutive=n, within=seconds)


@given(parsers.parse("the blockchain's ingress is {kind}"))
def ingress_kind(kind: str, scenario: Scenario) -> None:
    """Serve the ingress paths through this kind of ingress object from now on: applied in
    the namespace for the scenario, and for the Gateway API, its Gateway ``Programmed``
    and its HTTPRoute ``Accepted`` first. Where the cluster has no Gateway API, the
    scenario is skipped with that reason."""
    scenario.use_ingress(kind)

"""Steps about requests through the ingress gateway."""

from __future__ import annotations

from pytest_bdd import parsers, then

from meshgate.scenario import Scenario


@then(parsers.parse('"{path}" through the ingress gateway answers {status:d} with {content} '
                    "{n:d} times in a row within {seconds:d} seconds"))
def ingress_answers(path: str, status: int, content: str, n: int, seconds: int,
                    scenario: Scenario) -> None:
    """N consecutive expected answers within T seconds, not one lucky response."""
    scenario.ingress.expect_answers(path, status, content, consecutive=n, within=seconds)

"""Steps that send traffic through the ingress gateway."""

from __future__ import annotations

from pytest_bdd import parsers, when

from meshgate.scenario import Scenario


@when(parsers.parse('{count:d} requests are sent to "{path}" through the ingress gateway'))
@when(parsers.parse('{count:d} request is sent to "{path}" through the ingress gateway'))
def send_requests(count: int, path: str, scenario: Scenario) -> None:
    """Requests through the ingress gateway with the namespace's Host, every one answered
    200; the counters before the traffic are recorded so later checks wait for a scrape
    newer than it."""
    scenario.send(path, count)

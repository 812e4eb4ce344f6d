"""Steps about requests through the ingress gateway."""

from __future__ import annotations

import json

from pytest_bdd import parsers, then

from fixtures.world import World
from meshgate import ingress
from meshgate.cluster import Cluster
from meshgate.waiting import Convergence, Sample, Timeouts

CONTENT_CHECKS = {
    "HTML from composer": lambda a: "text/html" in a.content_type
    and b"Composer" in a.body,
    "a JSON block from vp0": lambda a: "application/json" in a.content_type
    and "previousBlockHash" in json.loads(a.body or b"{}"),
    "nothing": lambda a: True,
}


@then(parsers.parse('"{path}" through the ingress gateway answers {status:d} with {content} '
                    "{n:d} times in a row within {seconds:d} seconds"))
def ingress_answers(path: str, status: int, content: str, n: int, seconds: int,
                    cluster: Cluster, world: World, timeouts: Timeouts,
                    convergence: Convergence) -> None:
    """N consecutive expected answers within T seconds, not one lucky response."""
    check_content = CONTENT_CHECKS.get(content)
    assert check_content is not None, (f"unknown expected content {content!r}; the feature "
                                       f"may use: {', '.join(CONTENT_CHECKS)}")
    if world.entry is None:
        world.entry = ingress.entry_point(cluster)

    def good(a: ingress.Answer) -> bool:
        try:
            return a.status == status and check_content(a)
        except ValueError:
            return False

    within = min(float(seconds), timeouts["ingress"])
    result = ingress.probe(world.entry, path, world.host, good, consecutive=n, within=within)
    convergence.add(Sample("ingress", f"{n}× {path} → {status}", result.seconds, result.ok,
                           result.attempts))
    world.evidence.setdefault("ingress", []).append(  # type: ignore[union-attr]
        {"path": path, "host": world.host, "via": world.entry.how,
         "last": [a.summary() for a in result.answers]})
    assert result.ok, (
        f"expected {n} answers in a row of {status} with {content} for {path} (Host "
        f"{world.host}) via {world.entry.how} within {within:g}s; best streak {result.streak} "
        f"in {result.attempts} attempts; last answers: "
        f"{[a.summary() for a in result.answers[-3:]]}")

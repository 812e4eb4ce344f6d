"""Steps that send traffic through the ingress gateway."""

from __future__ import annotations

from pytest_bdd import parsers, when

from fixtures.world import Sent, World
from meshgate import ingress, telemetry
from meshgate.cluster import Cluster
from meshgate.mesh import MeshInfo


@when(parsers.parse('{count:d} requests are sent to "{path}" through the ingress gateway'))
@when(parsers.parse('{count:d} request is sent to "{path}" through the ingress gateway'))
def send_requests(count: int, path: str, cluster: Cluster, world: World,
                  mesh_info: MeshInfo) -> None:
    """Requests through the ingress gateway with the namespace's Host; the counters before the
    traffic are recorded so later checks wait for a scrape newer than it."""
    if world.entry is None:
        world.entry = ingress.entry_point(cluster)
    baselines = telemetry.baselines(cluster, world, mesh_info)
    answers = ingress.send(world.entry, path, world.host, count)
    world.sent.append(Sent(path, count, answers, baselines))
    failed = [a.summary() for a in answers if a.status != 200]
    world.evidence.setdefault("requests", []).append(  # type: ignore[union-attr]
        {"path": path, "host": world.host, "via": world.entry.how,
         "answers": [a.summary() for a in answers]})
    assert not failed, (f"{len(failed)} of {count} requests to {path} (Host {world.host}) via "
                        f"{world.entry.how} failed: {failed[:3]}")

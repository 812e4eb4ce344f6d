"""Telemetry on a Mixer-era mesh (Istio 1.x before 1.8), checked the way the seed did.

In 2017 the check was ``oc logs istio-mixer -c mixer | grep composer``. Istio 1.x kept
that: every proxy reports each request's attributes to ``istio-telemetry`` (container
``mixer``), whose default ``stdio`` handler writes the ``accesslog`` instance as one JSON
line per report on stdout (Istio 1.4 ``mixer/adapter/stdio``, the ``accesslog`` instance
of the 1.x charts: ``destinationServiceHost``, ``destinationNamespace``, ``url``,
``responseCode``, ``reporter``, …). Each request is reported twice, by the caller's proxy
(``reporter: source``) and the receiver's (``reporter: destination``); the check reads the
receiver's.

Which lines are the scenario's requests: the receiver's reports for the scenario's
namespace, the service's host (``<service>.<namespace>.svc.<domain>``), the path and the
code, whose ``time`` (the request's start at the proxy, UTC) is not before the requests
were sent. The times compare the mixer's clock with the suite's (no slack: a slack would
let an earlier scenario's requests count); on a cluster whose clock runs behind the
suite's machine that reads as "not logged", and the message says to check the clocks.

The modern half — Mixer's Prometheus adapter counting the requests in
``istio_requests_total`` scraped as job ``istio-mesh`` — is the telemetry module's check
with ``job="istio-mesh"`` added.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from meshgate.cluster import Cluster, ClusterError
from meshgate.mesh import MeshInfo, NotOnThisCluster
from meshgate.waiting import Waits, WaitTimeout

TELEMETRY_SELECTOR = "istio-mixer-type=telemetry"
CONTAINER = "mixer"
METRICS_JOB = "istio-mesh"  # the 1.x Prometheus addon's job for Mixer's adapter (42422)


def require_mixer(mesh: MeshInfo) -> None:
    """The mixer checks need a mixer: elsewhere the scenario is skipped, saying so."""
    if mesh.telemetry_mixer is None:
        raise NotOnThisCluster(
            f"this mesh has no Mixer (Istio {mesh.istio_version}: no istio-telemetry in "
            f"{mesh.namespace}); its proxies report istio_requests_total themselves, which "
            "the other telemetry scenarios check")


def parse_time(value: str) -> float | None:
    """Mixer's RFC 3339 ``time`` (UTC, microseconds) as a Unix time."""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return None


def accesslog_entries(text: str) -> list[dict]:
    """The stdio handler's ``accesslog`` lines of a mixer log (other lines ignored)."""
    out = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and str(doc.get("instance", "")).startswith("accesslog."):
            out.append(doc)
    return out


@dataclass(frozen=True)
class Wanted:
    namespace: str
    service: str
    path: str
    code: int
    since: float

    def matches(self, entry: dict) -> bool:
        at = parse_time(str(entry.get("time", "")))
        host = str(entry.get("destinationServiceHost", ""))
        return (entry.get("reporter") == "destination"
                and entry.get("destinationNamespace") == self.namespace
                and host.startswith(f"{self.service}.{self.namespace}.")
                and str(entry.get("url", "")).split("?", 1)[0] == self.path
                and str(entry.get("responseCode")) == str(self.code)
                and at is not None and at >= self.since)

    def describe(self) -> str:
        return (f"reporter=destination, destinationNamespace={self.namespace}, "
                f"destinationServiceHost={self.service}.{self.namespace}.…, url={self.path}, "
                f"responseCode={self.code}")


def mixer_log(cluster: Cluster, mesh: MeshInfo) -> str:
    """``kubectl logs -n <control plane> -l istio-mixer-type=telemetry -c mixer``."""
    pods = cluster.list("v1", "Pod", mesh.namespace, label_selector=TELEMETRY_SELECTOR)
    if not pods:
        raise ClusterError(f"no pod labelled {TELEMETRY_SELECTOR} in {mesh.namespace}: is "
                           "istio-telemetry running?")
    return "\n".join(cluster.pod_logs(mesh.namespace, p["metadata"]["name"], CONTAINER)
                     for p in pods)


def expect_logged(cluster: Cluster, mesh: MeshInfo, wanted: Wanted, count: int,
                  waits: Waits) -> list[dict]:
    """At least ``count`` accesslog lines of the mixer match ``wanted``; returns them."""
    require_mixer(mesh)
    seen: list[list[dict]] = [[]]

    def logged() -> list[dict]:
        seen[0] = [e for e in accesslog_entries(mixer_log(cluster, mesh)) if wanted.matches(e)]
        return seen[0] if len(seen[0]) >= count else []

    try:
        return waits.until(logged, area="telemetry",
                           what=f"the mixer logs {count} requests to {wanted.service}",
                           describe=lambda _: len(seen[0]))
    except WaitTimeout:
        raise AssertionError(
            f"expected {count} accesslog lines with {wanted.describe()} in `kubectl logs -n "
            f"{mesh.namespace} -l {TELEMETRY_SELECTOR} -c {CONTAINER}` since the requests "
            f"were sent; found {len(seen[0])}. Do the proxies report to istio-telemetry "
            "(mixerReportServer in the mesh config), is the stdio rule installed, and do the "
            "cluster's clock and this machine's agree?"
        ) from None

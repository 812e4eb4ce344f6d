"""Steps about telemetry: Istio's standard metrics in Prometheus, and access logs."""

from __future__ import annotations

from pytest_bdd import parsers, then

from meshgate import telemetry
from meshgate.scenario import Scenario


@then(parsers.parse("Prometheus counts the {count:d} requests to {service} reported by its "
                    "sidecar with response code {code:d}"))
def prometheus_counts(count: int, service: str, code: int, scenario: Scenario) -> None:
    """``istio_requests_total{reporter="destination"}`` grows by the requests sent; on a miss,
    the closest series and the sidecar's own count say where it broke."""
    scenario.require_sidecars("a sidecar's request count")
    scenario.expect_requests_counted(service, count, code)


@then(parsers.parse("Prometheus counts the {count:d} requests to {service} reported by its "
                    "data plane with response code {code:d}"))
def data_plane_counts(count: int, service: str, code: int, scenario: Scenario) -> None:
    """Sidecars: the receiving sidecar's ``istio_requests_total``. Ambient: the destination
    ztunnel's ``istio_tcp_*`` for the service grew (and a waypoint's requests where one
    carries them)."""
    scenario.expect_requests_counted(service, count, code)


@then(parsers.parse('the access log of {workload}\'s sidecar shows the request to "{path}"'))
def access_log_shows(workload: str, path: str, scenario: Scenario) -> None:
    """Istio's access log on the proxy's stdout, read with ``kubectl logs -c istio-proxy``."""
    scenario.require_sidecars("a sidecar's access log")
    scenario.access_log = telemetry.expect_access_log(
        scenario.cluster, scenario.namespace, scenario.pod(workload), path, scenario.waits)

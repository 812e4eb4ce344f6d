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


@then(parsers.parse('the mixer\'s log shows the requests to {service} with response code '
                    '{code:d}'))
def mixer_logs(service: str, code: int, scenario: Scenario) -> None:
    """Mixer-era meshes: the stdio adapter's JSON access log of ``istio-telemetry``
    (``kubectl logs -l istio-mixer-type=telemetry -c mixer``) has the receiver's report of
    each request sent, for the scenario's namespace and the service's host."""
    scenario.expect_mixer_logged(service, code)


@then(parsers.parse("the mixer's metrics count the {count:d} requests to {service} with "
                    "response code {code:d}"))
def mixer_counts(count: int, service: str, code: int, scenario: Scenario) -> None:
    """Mixer-era meshes: ``istio_requests_total`` from Mixer's Prometheus adapter, scraped
    as job ``istio-mesh``, grows by the requests sent."""
    scenario.expect_mixer_counted(service, count, code)

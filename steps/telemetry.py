"""Steps about telemetry: Istio's standard metrics in Prometheus, and access logs."""

from __future__ import annotations

import pytest
from pytest_bdd import parsers, then

from fixtures.world import World
from meshgate import manifests, telemetry
from meshgate.cluster import Cluster
from meshgate.mesh import MeshInfo
from meshgate.waiting import Convergence, Timeouts, WaitTimeout, wait_until


@then(parsers.parse("Prometheus counts the {count:d} requests to {service} reported by its "
                    "sidecar with response code {code:d}"))
def prometheus_counts(count: int, service: str, code: int, cluster: Cluster, world: World,
                      mesh_info: MeshInfo, timeouts: Timeouts,
                      convergence: Convergence) -> None:
    """``istio_requests_total{reporter="destination"}`` grows by the requests sent; on a miss,
    the closest series and the sidecar's own count say where it broke."""
    reason = mesh_info.unsupported_reason()
    if reason:
        pytest.fail(f"unsupported mesh: {reason}", pytrace=False)
    if mesh_info.prometheus is None and not mesh_info.thanos:
        pytest.fail("no telemetry backend: there is no prometheus Service in istio-system "
                    "(nor OpenShift's thanos-querier); install Istio's Prometheus addon "
                    "(samples/addons/prometheus.yaml)", pytrace=False)
    prom = telemetry.prometheus_for(cluster, world, mesh_info)
    wanted = telemetry.destination_labels(service, world.namespace, code)
    sent = world.sent[-1] if world.sent else None
    assert sent is not None, "no traffic was sent in this scenario (a When step is missing)"
    target = sent.baselines.get(service, 0.0) + count
    try:
        wait_until(lambda: telemetry.requests_total(prom, wanted) >= target,
                   area="telemetry", what=f"istio_requests_total for {service} ≥ {target:g}",
                   timeout=timeouts["telemetry"], log=convergence,
                   describe=lambda ok: ok or telemetry.requests_total(prom, wanted))
    except WaitTimeout as exc:
        pods = manifests.pods_of(cluster, world.namespace, service)
        at_proxy = "unknown"
        if pods:
            try:
                at_proxy = f"{telemetry.proxy_requests_total(cluster, world.namespace, pods[0]['metadata']['name'], wanted):g}"  # noqa: E501
            except Exception as err:  # noqa: BLE001 - diagnostic only
                at_proxy = f"unreadable ({err})"
        raise AssertionError(
            f"expected Prometheus to count ≥ {target:g} requests "
            f"{telemetry.selector(wanted)} after sending {count} to {sent.path}; it has "
            f"{exc.last}; the sidecar itself counts {at_proxy}. "
            f"{telemetry.explain_missing(prom, wanted)}") from None


@then(parsers.parse('the access log of {workload}\'s sidecar shows the request to "{path}"'))
def access_log_shows(workload: str, path: str, cluster: Cluster, world: World,
                     timeouts: Timeouts, convergence: Convergence) -> None:
    """Istio's access log on the proxy's stdout, read with ``kubectl logs -c istio-proxy``."""
    pods = manifests.pods_of(cluster, world.namespace, workload)
    assert pods, f"no pod of {workload} in {world.namespace}"
    pod = pods[0]["metadata"]["name"]
    needle = f'"GET {path} '
    try:
        lines = wait_until(lambda: telemetry.access_log_lines(cluster, world.namespace, pod,
                                                              needle),
                           area="telemetry", what=f"access log of {pod} shows {path}",
                           timeout=timeouts["telemetry"], log=convergence,
                           describe=lambda v: v or "no matching line")
    except WaitTimeout:
        raise AssertionError(
            f"expected a line with {needle} in `kubectl logs -n {world.namespace} {pod} -c "
            "istio-proxy`; none found. Is access logging on (meshConfig.accessLogFile: "
            "/dev/stdout)?") from None
    world.evidence["access_log"] = lines[-3:]

"""The suite's side of ambient mode, in-process: a namespace's data plane discovered from its
labels, the labels the run gives its namespaces (``--data-plane``), what an ambient pod
must look like, and ztunnel's view of a service read from a config dump in the shape
istioctl's ztunnel-config reads (istio/istio ``istioctl/pkg/writer/ztunnel/configdump/
testdata/dump.json``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshgate import ambient, namespaces
from meshgate.lifecycle import Run, Settings
from meshgate.mesh import DataPlane, MeshInfo, data_plane_of
from meshgate.profiles import choose


@pytest.mark.parametrize(("labels", "want"), [
    ({"istio-injection": "enabled"}, DataPlane("sidecar")),
    ({"istio.io/rev": "canary"}, DataPlane("sidecar")),
    ({"istio.io/dataplane-mode": "ambient"}, DataPlane("ambient")),
    ({"istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "waypoint"},
     DataPlane("ambient", "waypoint")),
    ({"istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "none"},
     DataPlane("ambient")),
    # Istio never redirects a pod that has a sidecar: injection wins.
    ({"istio-injection": "enabled", "istio.io/dataplane-mode": "ambient"}, DataPlane("sidecar")),
    ({"maistra.io/member-of": "istio-system"}, DataPlane("sidecar")),  # OSSM 2's member
    ({}, DataPlane("none")),
])
def test_a_namespaces_data_plane_is_read_from_its_labels(labels: dict, want: DataPlane) -> None:
    assert data_plane_of(labels) == want


@pytest.mark.parametrize("plane", namespaces.DATA_PLANES)
def test_the_run_labels_its_namespaces_for_the_data_plane_it_reads_back(plane: str) -> None:
    obj = namespaces.namespace_object("mg-x", "run", data_plane=plane)
    found = data_plane_of(obj["metadata"]["labels"])
    assert found.mode == ("sidecar" if plane == "sidecar" else "ambient")
    assert found.waypoint == ("waypoint" if plane == "waypoint" else None)
    if plane == "waypoint":  # the suite's requests come in through the ingress gateway
        assert obj["metadata"]["labels"]["istio.io/ingress-use-waypoint"] == "true"


def _run(data_plane: str) -> Run:
    profile = choose(None, {}, target="local", owns_cluster=True)
    return Run(Settings("local", None, None, Path("artifacts"), "never", "r1", profile,
                        data_plane=data_plane))


@pytest.mark.parametrize(("chosen", "ambient_mesh", "worker", "want"), [
    ("auto", True, "main", "ambient"),
    ("auto", False, "main", "sidecar"),
    ("mixed", True, "gw0", "sidecar"),
    ("mixed", True, "gw1", "ambient"),
    ("mixed", False, "gw1", "sidecar"),
    ("waypoint", True, "gw0", "waypoint"),
])
def test_the_data_plane_of_each_workers_namespace(chosen: str, ambient_mesh: bool, worker: str,
                                                  want: str) -> None:
    mesh = MeshInfo("1.28.0", ambient=ambient_mesh)
    assert _run(chosen).data_plane_for(worker, mesh) == want


@pytest.mark.parametrize("chosen", ["ambient", "waypoint"])
def test_an_ambient_data_plane_on_a_mesh_without_ztunnel_is_refused(chosen: str) -> None:
    """Nothing would capture the pods: one message at once, not every scenario waiting."""
    refusal = _run(chosen).data_plane_refusal(MeshInfo("1.28.0", ambient=False))
    assert refusal is not None and f"--data-plane {chosen} needs Istio's ambient mode" in \
        refusal and "no DaemonSet ztunnel in istio-system" in refusal and \
        "--set profile=ambient" in refusal
    assert _run(chosen).data_plane_refusal(MeshInfo("1.28.0", ambient=True)) is None


@pytest.mark.parametrize("chosen", ["auto", "sidecar", "mixed"])
def test_the_other_data_planes_run_on_any_mesh(chosen: str) -> None:
    assert _run(chosen).data_plane_refusal(MeshInfo("1.28.0", ambient=False)) is None


def _pod(annotations: dict, containers: tuple[str, ...] = ("composer",),
         ready: str = "True") -> dict:
    return {"metadata": {"name": "composer-1", "annotations": annotations},
            "spec": {"containers": [{"name": c} for c in containers]},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def test_an_ambient_pod_is_redirected_ready_and_without_a_sidecar() -> None:
    enrolled = {ambient.REDIRECTION: "enabled"}
    assert ambient.enrolment_problem(_pod(enrolled)) is None
    assert "lacks the annotation" in str(ambient.enrolment_problem(_pod({})))
    assert "has a sidecar" in str(ambient.enrolment_problem(
        _pod(enrolled, ("composer", "istio-proxy"))))
    assert "not Ready" in str(ambient.enrolment_problem(_pod(enrolled, ready="False")))


def _dump(protocol: str = "HBONE") -> dict:
    return {
        "workloads": {"/10.244.2.55": {"workloadIps": ["10.244.2.55"], "protocol": protocol,
                                       "uid": "Kubernetes//Pod/shop/vp0-1", "name": "vp0-1",
                                       "namespace": "shop"}},
        "services": {"/10.96.1.1": {
            "name": "vp0", "namespace": "shop", "hostname": "vp0.shop.svc.cluster.local",
            "vips": ["/10.96.1.1"], "ports": {"7050": 7050},
            "endpoints": {"Kubernetes//Pod/shop/vp0-1:/10.244.2.55": {
                "workloadUid": "Kubernetes//Pod/shop/vp0-1",
                "service": "shop/vp0.shop.svc.cluster.local", "address": "/10.244.2.55",
                "port": {"7050": 7050}}}}}}


def test_ztunnel_routes_a_service_whose_workloads_speak_hbone() -> None:
    found = ambient.ztunnel_route(_dump(), "vp0.shop.svc.cluster.local", 7050)
    assert isinstance(found, ambient.ZtunnelRoute)
    assert found.workloads == (("vp0-1", "HBONE"),)
    assert "vp0-1 (HBONE)" in found.describe()


@pytest.mark.parametrize(("dump", "host", "port", "says"), [
    (_dump(), "composer.shop.svc.cluster.local", 8080, "no service composer"),
    (_dump(), "vp0.shop.svc.cluster.local", 7051, "has no port 7051"),
    (_dump("TCP"), "vp0.shop.svc.cluster.local", 7050, "are not HBONE"),
])
def test_what_ztunnel_lacks_is_said(dump: dict, host: str, port: int, says: str) -> None:
    found = ambient.ztunnel_route(dump, host, port)
    assert isinstance(found, str) and says in found


def test_a_dump_listing_workloads_reads_the_same() -> None:
    """Some ztunnel releases list workloads and services rather than keying them."""
    dump = _dump()
    listed = {"workloads": list(dump["workloads"].values()),
              "services": list(dump["services"].values())}
    assert isinstance(ambient.ztunnel_route(listed, "vp0.shop.svc.cluster.local", 7050),
                      ambient.ZtunnelRoute)


def test_a_waypoints_route_config_is_named_as_istios() -> None:
    assert ambient.waypoint_route_config("vp0", "shop", 7050) == \
        "inbound-vip|7050|http|vp0.shop.svc.cluster.local"


class _Prometheus:
    """Answers a ``sum by`` query with the series it was given (the backend's shape)."""

    def __init__(self, series: list[tuple[dict[str, str], float]]) -> None:
        self.series = series
        self.queries: list[str] = []

    def query(self, promql: str) -> list[dict]:
        self.queries.append(promql)
        return [{"metric": m, "value": [0, str(v)]} for m, v in self.series]


GATEWAY = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"


def test_ambient_baselines_are_kept_per_caller_so_one_callers_count_compares_with_its_own() -> None:
    prom = _Prometheus([
        ({"destination_service_name": "composer", "source_principal": GATEWAY,
          "connection_security_policy": "mutual_tls"}, 100.0),
        ({"destination_service_name": "composer", "source_principal": "unknown",
          "connection_security_policy": "unknown"}, 40.0),
        ({"destination_service_name": "vp0", "source_principal": GATEWAY,
          "connection_security_policy": "mutual_tls"}, 7.0)])
    base = ambient.tcp_baselines(prom, "ns")  # type: ignore[arg-type]
    assert "sum by (destination_service_name, source_principal, connection_security_policy)" \
        in prom.queries[0] and 'destination_service_namespace="ns"' in prom.queries[0]
    labels = {"source_workload": "istio-ingressgateway", "source_principal": GATEWAY,
              "connection_security_policy": "mutual_tls"}
    peer = ambient.peer_of(labels)
    assert peer == {"source_principal": GATEWAY, "connection_security_policy": "mutual_tls"}
    assert ambient.baseline(base, "composer", peer) == 100.0
    assert ambient.baseline(base, "composer", {}) == 140.0  # every caller
    assert ambient.baseline(base, "membersrvc", peer) == 0.0

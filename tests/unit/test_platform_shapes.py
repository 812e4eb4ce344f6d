"""What the suite makes of OpenShift, OpenShift Service Mesh and Mixer-era meshes: the
header's platform line, the namespace labels, the verdict on what it cannot check, the
mixer's log lines, the Route it makes. Pure: the objects are as the APIs return them
(maistra.io SMCP, sailoperator.io Istio, route.openshift.io Route status, Mixer 1.4's
stdio adapter output)."""

from __future__ import annotations

import json

import pytest

from meshgate import membership, mixer, openshift_route
from meshgate.mesh import Gateway, MeshInfo, NotOnThisCluster
from meshgate.platform import Platform, ServiceMesh, injection_labels

OSSM2 = ServiceMesh(2, "2.6", "ServiceMeshControlPlane", "basic")
OSSM3 = ServiceMesh(3, None, "Istio", "default")


def test_the_header_names_the_platform_found() -> None:
    assert Platform().describe() == "Kubernetes"
    assert Platform(True, "4.20.0", OSSM2).describe() == (
        "OpenShift 4.20.0, OpenShift Service Mesh 2.6 (ServiceMeshControlPlane basic)")
    assert Platform(True, None, OSSM3).describe() == (
        "OpenShift 4.x, OpenShift Service Mesh 3 (Istio default)")
    info = MeshInfo("1.28.0", platform=Platform(True, "4.20.0", OSSM2))
    assert info.describe().startswith("platform: OpenShift 4.20.0, OpenShift Service Mesh 2.6")


@pytest.mark.parametrize(("platform", "labels"), [
    (Platform(), {"istio-injection": "enabled"}),
    (Platform(True, "4.20", None), {"istio-injection": "enabled"}),
    (Platform(True, "4.20", OSSM2), {}),
    (Platform(True, "4.20", OSSM3), {"istio-injection": "enabled"}),
    (Platform(True, "4.20", ServiceMesh(3, None, "Istio", "default", "default-v1-24-3")),
     {"istio.io/rev": "default-v1-24-3"}),
])
def test_namespace_labels_follow_the_platforms_injection(platform: Platform,
                                                         labels: dict) -> None:
    """OSSM 2 selects members by its own label; OSSM 3 and Istio by istio-injection, or
    istio.io/rev for a revision other than default."""
    assert injection_labels(platform) == labels
    assert MeshInfo("1.28", platform=platform).opt_in_injection is (platform.service_mesh
                                                                    is OSSM2)


def test_mixer_era_meshes_are_checked_unless_they_have_no_telemetry() -> None:
    with_mixer = MeshInfo("1.4.10", mixer=True, telemetry_mixer="istio-telemetry")
    assert with_mixer.mixer_era and with_mixer.unsupported_reason() is None
    no_telemetry = MeshInfo("1.4.10", mixer=True)
    reason = no_telemetry.unsupported_reason()
    assert reason is not None and "without its telemetry mixer" in reason
    assert "istio-telemetry" in reason
    old = MeshInfo("0.8.0", mixer=True, telemetry_mixer="istio-mixer")
    reason = old.unsupported_reason()
    assert reason is not None and "istio_request_count" in reason
    assert MeshInfo("1.28.0").unsupported_reason() is None
    assert not MeshInfo("1.28.0").mixer_era


def _line(**over: object) -> str:
    entry = {"level": "info", "time": "2026-12-05T09:22:52.369512Z",
             "instance": "accesslog.instance.istio-system", "reporter": "destination",
             "destinationNamespace": "mg-run-main",
             "destinationServiceHost": "composer.mg-run-main.svc.cluster.local",
             "url": "/login", "responseCode": 200, "method": "GET"}
    entry.update(over)
    return json.dumps(entry)


def test_the_mixers_access_log_lines_are_matched_by_namespace_service_path_and_time() -> None:
    since = mixer.parse_time("2026-12-05T09:22:52.000000Z")
    assert since is not None
    wanted = mixer.Wanted("mg-run-main", "composer", "/login", 200, since)
    text = "\n".join([
        "2026-12-05T09:22:50Z info   mixer started",  # not JSON: ignored
        _line(),
        _line(url="/login?x=1"),
        _line(reporter="source"),  # the caller's report of the same request
        _line(destinationNamespace="other"),
        _line(destinationServiceHost="composer-db.mg-run-main.svc.cluster.local"),
        _line(url="/chain"),
        _line(responseCode=503),
        _line(time="2026-12-05T09:22:51.999000Z"),  # before the requests were sent
        _line(instance="requestcount.metric.istio-system"),
        "{not json",
    ])
    entries = mixer.accesslog_entries(text)
    assert len(entries) == 8
    assert [e["url"] for e in entries if wanted.matches(e)] == ["/login", "/login?x=1"]


def test_the_mixer_checks_are_skipped_where_there_is_no_mixer() -> None:
    with pytest.raises(NotOnThisCluster, match="no Mixer"):
        mixer.require_mixer(MeshInfo("1.28.0"))
    mixer.require_mixer(MeshInfo("1.4.10", mixer=True, telemetry_mixer="istio-telemetry"))


def test_the_route_exposes_the_gateway_for_one_host() -> None:
    host = "mg-12050908d54a-main-b28b.meshgate.test"
    obj = openshift_route.route(Gateway("istio-system"), host, "http2", "mg-12050908d54a-main")
    name = obj["metadata"]["name"]
    assert len(name) <= 63 and name.startswith("mg-12050908d54a-main-b28b-meshgate-test-")
    assert obj["spec"] == {"host": host, "to": {"kind": "Service",
                                                "name": "istio-ingressgateway", "weight": 100},
                           "port": {"targetPort": "http2"}, "wildcardPolicy": "None",
                           "tls": {"termination": "edge",
                                   "insecureEdgeTerminationPolicy": "Redirect"}}
    assert obj["metadata"]["labels"]["meshgate.io/namespace"] == "mg-12050908d54a-main"
    long = "istio." + "x" * 60 + ".meshgate.test"
    assert len(openshift_route.route_name(long)) <= 63
    assert openshift_route.route_name(long) != openshift_route.route_name(long + "x")


def test_route_admission_is_read_from_the_routers_status() -> None:
    assert openshift_route.admission({}) == (None, "")
    admitted = {"status": {"ingress": [{"routerName": "default",
                                        "routerCanonicalHostname": "router-default.apps.x",
                                        "conditions": [{"type": "Admitted",
                                                        "status": "True"}]}]}}
    assert openshift_route.admission(admitted) == (True, "router-default.apps.x")
    claimed = {"status": {"ingress": [{"conditions": [{
        "type": "Admitted", "status": "False", "reason": "HostAlreadyClaimed",
        "message": "a route in another namespace holds host h"}]}]}}
    ok, why = openshift_route.admission(claimed)
    assert ok is False and why.startswith("HostAlreadyClaimed")
    msg = openshift_route.claimed_message("istio-system", "r", "h", why)
    assert "Route istio-system/r" in msg and "HostAlreadyClaimed" in msg and "delete it" in msg


def test_membership_is_a_service_mesh_member_in_the_namespace() -> None:
    smm = membership.member("istio-system", "basic")
    assert (smm["apiVersion"], smm["kind"], smm["metadata"]["name"]) == (
        "maistra.io/v1", "ServiceMeshMember", "default")
    assert smm["spec"] == {"controlPlaneRef": {"name": "basic", "namespace": "istio-system"}}
    msg = membership.forbidden_message("mg-a", "istio-system", "403 Forbidden")
    assert "ServiceMeshMember mg-a/default" in msg and "mesh-user" in msg
    assert "-n istio-system" in msg


def test_a_replica_set_refused_by_the_scc_admission_is_the_reason() -> None:
    from meshgate import rollout

    message = ('Error creating: pods "composer-7f-" is forbidden: unable to validate against '
               "any security context constraint: [provider restricted-v2: .containers[0]."
               "runAsUser: Invalid value: 0: must be in the ranges: [1000010000, 1000019999]]")
    refused = {"metadata": {"name": "composer-7f"}, "status": {"conditions": [
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
         "message": message}]}}
    assert rollout.refused([{"metadata": {"name": "ok"}, "status": {}}]) is None
    why = rollout.refused([refused])
    assert why is not None and why.startswith("ReplicaSet composer-7f: Error creating")
    assert "security context constraint" in why


def test_on_openshift_the_hosts_are_under_the_apps_domain() -> None:
    """The router's wildcard certificate (and DNS record) covers one label under the apps
    domain, so the namespace's hosts are single labels there."""
    from meshgate import ingress

    openshift = MeshInfo("1.28", platform=Platform(True, "4.20", OSSM3,
                                                   apps_domain="apps.example.test"))
    assert openshift.openshift is False  # set by discovery, not by the platform alone
    openshift.openshift = True
    host = ingress.scenario_host("mg-a-main-1f3a", openshift.host_domain)
    assert host == "mg-a-main-1f3a.apps.example.test"
    assert ingress.variant_host("istio", host) == "istio-mg-a-main-1f3a.apps.example.test"
    assert ingress.scenario_host("mg-a", MeshInfo("1.28").host_domain) == "mg-a.meshgate.test"
    long = ingress.variant_host("istio", "m" * 60 + ".apps.example.test")
    label = long.split(".")[0]
    assert len(label) <= 63 and long.endswith(".apps.example.test")


def test_tls_sessions_name_the_host_and_trust_the_given_ca() -> None:
    from meshgate import tls_client

    plain = tls_client.session()
    assert plain.trust_env is False
    assert type(plain.get_adapter("https://127.0.0.1:443")).__name__ == "HTTPAdapter"
    named = tls_client.session("mg-a.apps.example.test", None)
    adapter = named.get_adapter("https://127.0.0.1:443")
    assert getattr(adapter, "server_name", None) == "mg-a.apps.example.test"
    pool_kw = adapter.poolmanager.connection_pool_kw  # type: ignore[attr-defined]
    assert pool_kw["server_hostname"] == pool_kw["assert_hostname"] == "mg-a.apps.example.test"

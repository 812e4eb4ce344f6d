"""The OpenShift flavor's rules, in-process: the router's maps and backends, host
ownership, Route validation, SCC order and strategies, the
namespaces' ranges, and OSSM's injection choices. HAProxy's own check of a rendered
configuration is in tests/integration/test_router_config.py."""

from __future__ import annotations

import re

import pytest

from localmesh.openshift import haproxy, projects, scc
from localmesh.openshift.injection import OpenShiftInjection
from localmesh.openshift.router import claims
from localmesh.openshift.routes import validate


def _route(name: str, host: str, *, ns: str = "ns", path: str = "", tls: dict | None = None,
           created: str = "2026-01-01T00:00:00Z", to: str = "composer",
           alternates: list[dict] | None = None) -> dict:
    spec: dict = {"host": host, "to": {"kind": "Service", "name": to, "weight": 100}}
    if path:
        spec["path"] = path
    if tls:
        spec["tls"] = tls
    if alternates:
        spec["alternateBackends"] = alternates
    return {"metadata": {"namespace": ns, "name": name, "creationTimestamp": created},
            "spec": spec}


@pytest.mark.parametrize(("host", "path", "matches", "misses"), [
    ("a.apps.test", "", ["a.apps.test/", "a.apps.test:80/x", "a.apps.test."],
     ["b.apps.test/", "xa.apps.test/"]),
    ("a.apps.test", "/login", ["a.apps.test/login", "a.apps.test/login/x"],
     ["a.apps.test/loginx", "a.apps.test/"]),
    ("a.apps.test", "/api/", ["a.apps.test/api/", "a.apps.test/api/v1"], ["a.apps.test/api"]),
])
def test_route_regexps_match_as_the_routers_do(host: str, path: str, matches: list[str],
                                               misses: list[str]) -> None:
    pattern = re.compile(haproxy.route_regexp(host, path))
    assert all(pattern.match(m) for m in matches)
    assert not any(pattern.match(m) for m in misses)


def test_the_oldest_route_holds_a_host() -> None:
    old = _route("old", "h.test", created="2026-01-01T00:00:00Z")
    new = _route("new", "h.test", created="2026-01-02T00:00:00Z")
    other_path = _route("login", "h.test", path="/login", created="2026-01-03T00:00:00Z")
    foreign = _route("foreign", "h.test", ns="other", created="2025-12-31T00:00:00Z")
    admitted, rejected = claims([new, other_path, old])
    assert [r["metadata"]["name"] for r in admitted] == ["old", "login"]
    assert rejected[("ns", "new")] == ("HostAlreadyClaimed",
                                       "route old already exposes h.test and is older")
    # An older route of another namespace takes the host for its namespace.
    admitted, rejected = claims([new, old, foreign])
    assert [r["metadata"]["name"] for r in admitted] == ["foreign"]
    assert rejected[("ns", "old")] == ("HostAlreadyClaimed",
                                       "a route in another namespace holds host h.test")


def test_each_termination_gets_its_map_and_backend() -> None:
    routes = [
        _route("plain", "plain.test"),
        _route("edge", "edge.test", path="/login",
               tls={"termination": "edge", "insecureEdgeTerminationPolicy": "Redirect"}),
        _route("allow", "allow.test", tls={"termination": "edge",
                                           "insecureEdgeTerminationPolicy": "Allow"}),
        _route("re", "re.test", tls={"termination": "reencrypt",
                                     "destinationCACertificate": "CA"}),
        _route("pt", "pt.test", tls={"termination": "passthrough"}),
    ]
    files = haproxy.render(haproxy.RouterInput(routes, {}, "CERT"))
    assert files["os_http_be.map"].split() == [
        haproxy.route_regexp("allow.test", ""), "be_edge_http:ns:allow",
        haproxy.route_regexp("plain.test", ""), "be_http:ns:plain"]
    assert "be_edge_http:ns:edge" in files["os_edge_reencrypt_be.map"]
    assert "be_secure:ns:re" in files["os_edge_reencrypt_be.map"]
    assert files["os_route_http_redirect.map"].split() == [
        haproxy.route_regexp("edge.test", "/login"), "1"]
    assert files["os_tcp_be.map"].split() == [haproxy.route_regexp("pt.test", ""),
                                              "be_tcp:ns:pt"]
    assert files["cacerts/ns:re.pem"] == "CA\n"
    assert "backend be_tcp:ns:pt\n  balance source" in files["haproxy.config"]


def test_weights_split_traffic_whatever_the_endpoint_counts() -> None:
    eps = {("ns", "a"): [haproxy.Endpoint("a-1", "127.0.1.1", 8080, "http")],
           ("ns", "b"): [haproxy.Endpoint(f"b-{i}", f"127.0.1.{i + 2}", 8080, "http")
                         for i in range(2)]}
    route = _route("split", "s.test", to="a", alternates=[{"kind": "Service", "name": "b",
                                                           "weight": 100}])
    lines = haproxy.servers(route, eps)
    weights = [int(line.split("weight ")[1].split()[0]) for line in lines]
    assert weights == [128, 64, 64]
    assert lines[0].startswith("  server pod:a-1:a:http:127.0.1.1:8080 127.0.1.1:8080 cookie ")


def test_a_target_port_picks_the_endpoints_port_by_name_or_number() -> None:
    eps = {("ns", "a"): [haproxy.Endpoint("a-1", "127.0.1.1", 8080, "http"),
                         haproxy.Endpoint("a-1", "127.0.1.1", 9090, "metrics")]}
    route = _route("r", "r.test", to="a")
    route["spec"]["port"] = {"targetPort": "metrics"}
    assert [line.split()[2] for line in haproxy.servers(route, eps)] == ["127.0.1.1:9090"]
    route["spec"]["port"] = {"targetPort": 8080}
    assert [line.split()[2] for line in haproxy.servers(route, eps)] == ["127.0.1.1:8080"]


@pytest.mark.parametrize(("change", "field", "says"), [
    ({"tls": {"termination": "passthrough"}, "path": "/x"}, "spec.path",
     "passthrough termination does not support paths"),
    ({"tls": {"termination": "bogus"}}, "spec.tls.termination", 'Unsupported value: "bogus"'),
    ({"to": {"kind": "Service", "name": "a", "weight": 300}}, "spec.to.weight",
     "weight must be an integer between 0 and 256"),
    ({"path": "login"}, "spec.path", "path must begin with /"),
    ({"alternateBackends": [{"kind": "Service", "name": str(i), "weight": 1}
                            for i in range(4)]}, "spec.alternateBackends",
     "cannot specify more than 3 additional backends"),
])
def test_invalid_routes_are_refused_with_the_field_named(change: dict, field: str,
                                                        says: str) -> None:
    route = _route("r", "r.test")
    route["spec"].update(change)
    causes = validate(route)
    assert any(f == field and says in message for f, _, message in causes), causes
    assert validate(_route("r", "r.test")) == []


def test_sccs_are_tried_in_openshifts_order() -> None:
    names = [s["metadata"]["name"] for s in scc.ordered(scc.default_sccs())]
    assert names == ["anyuid", "restricted-v2", "restricted", "nonroot-v2", "nonroot",
                     "hostmount-anyuid", "hostnetwork-v2", "hostnetwork", "hostaccess",
                     "privileged"]


def test_restricted_v2_defaults_a_pod_and_names_what_it_refuses() -> None:
    v2 = next(s for s in scc.default_sccs() if s["metadata"]["name"] == "restricted-v2")
    alloc = scc.Allocation(1000000000, 1000009999, 1000000000, 1000009999, "s0:c1,c0")
    pod = {"spec": {"containers": [{"name": "a"}]}}
    scc.defaults(v2, pod, alloc)
    assert scc.violations(v2, pod, alloc) == []
    sc = pod["spec"]["containers"][0]["securityContext"]
    assert sc == {"runAsUser": 1000000000, "runAsNonRoot": True,
                  "capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": False}
    assert pod["spec"]["securityContext"]["seLinuxOptions"] == {"level": "s0:c1,c0"}
    bad = {"spec": {"hostNetwork": True, "volumes": [{"name": "h", "hostPath": {}}],
                    "containers": [{"name": "a", "securityContext": {
                        "privileged": True, "capabilities": {"add": ["NET_ADMIN"]}}}]}}
    found = scc.violations(v2, bad, alloc)
    assert ".containers[0].privileged: Invalid value: true: Privileged containers are not " \
           "allowed" in found
    assert '.containers[0].capabilities.add: Invalid value: "NET_ADMIN": capability may ' \
           "not be added" in found
    assert ".spec.securityContext.hostNetwork: Invalid value: true: Host network is not " \
           "allowed to be used" in found
    assert 'spec.volumes[0]: Invalid value: "hostPath": hostPath volumes are not allowed to ' \
           "be used" in found


def test_namespaces_get_consecutive_blocks_and_mcs_labels() -> None:
    assert [projects.mcs_label(i) for i in range(4)] == ["s0:c1,c0", "s0:c2,c0", "s0:c2,c1",
                                                         "s0:c3,c0"]
    alloc = scc.Allocation.of({"metadata": {"annotations": {
        scc.UID_RANGE: "1000010000/10000", scc.MCS: "s0:c2,c0"}}})
    assert alloc == scc.Allocation(1000010000, 1000019999, 1000010000, 1000019999, "s0:c2,c0")


@pytest.mark.parametrize(("ns_labels", "pod_labels", "pod_annotations", "selected"), [
    ({"maistra.io/member-of": "istio-system"}, {}, {"sidecar.istio.io/inject": "true"}, True),
    ({"maistra.io/member-of": "istio-system"}, {"sidecar.istio.io/inject": "false"},
     {"sidecar.istio.io/inject": "true"}, False),
    ({"maistra.io/member-of": "istio-system"}, {}, {}, False),
    ({"maistra.io/member-of": "istio-system", "istio-injection": "disabled"}, {},
     {"sidecar.istio.io/inject": "true"}, False),
    ({"istio-injection": "enabled"}, {"sidecar.istio.io/inject": "true"}, {}, False),
])
def test_ossm2_injects_only_members_that_opt_in(ns_labels: dict, pod_labels: dict,
                                                pod_annotations: dict, selected: bool) -> None:
    rules = OpenShiftInjection(member_of="istio-system")
    pod = {"metadata": {"labels": pod_labels, "annotations": pod_annotations}}
    assert rules.selected({"metadata": {"labels": ns_labels}}, pod) is selected
    assert OpenShiftInjection().selected({"metadata": {"labels": ns_labels}}, pod) is None


def test_ossm2_injects_the_gateway_of_its_own_control_plane_namespace() -> None:
    """istio-system is no member of its own roll, yet its ingress gateway (opting in with
    the label, as OSSM's gateway chart does) gets its proxy."""
    rules = OpenShiftInjection(member_of="istio-system")
    gateway = {"metadata": {"labels": {"sidecar.istio.io/inject": "true"}}}
    assert rules.selected({"metadata": {"name": "istio-system"}}, gateway) is True
    assert rules.selected({"metadata": {"name": "other"}}, gateway) is False

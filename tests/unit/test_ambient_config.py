"""localmesh's ambient mode in-process: istio-cni's enrolment rules, istiod's workload
discovery (Istio's Address and Authorization on the wire), the Envoy configuration of a
node's ztunnel and of a waypoint (compared with a real waypoint's config dump), and
ztunnel's metrics and config dump. Every generated resource is parsed into its protobuf
message, as istiod does before sending it, so a misspelt field fails here. The same
behaviour through real Envoys and kubectl: tests/localmesh/test_ambient.py.
"""

from __future__ import annotations

import json

import envoy.config.cluster.v3.cluster_pb2 as cluster_pb2
import envoy.config.endpoint.v3.endpoint_pb2 as endpoint_pb2
import envoy.config.listener.v3.listener_pb2 as listener_pb2
import pytest
from google.protobuf import json_format

import localmesh.istio.istiod  # noqa: F401 - registers every type istiod packs in an Any
from localmesh.istio.ambient import enrolment, wds
from localmesh.istio.ambient.ingress import ORIGINATE, through_waypoints
from localmesh.istio.ambient.model import AmbientPod, AmbientState, Waypoint
from localmesh.istio.ambient.waypoint_xds import waypoint_resources
from localmesh.istio.ambient.workloadapi import MESSAGES, T_ADDRESS, T_AUTHORIZATION
from localmesh.istio.ambient.ztunnel_xds import ztunnel_resources
from localmesh.istio.xds.model import (
    T_CLUSTER,
    T_ENDPOINT,
    T_LISTENER,
    MeshState,
    Proxy,
    Service,
    ServicePort,
)
from localmesh.ztunnel.metrics import END, Connection, TcpMetrics, labels_for
from localmesh.ztunnel.state import ProxyState
from tests.support import GOLDEN, needs_golden

NS = "shop"


def pod(name: str, ip: str, *, hbone: bool = True, app: str | None = None,
        labels: dict | None = None, ports: tuple[int, ...] = (8080,)) -> AmbientPod:
    labels = labels or {"app": app or name, "version": "v1"}
    return AmbientPod(name=f"{name}-1", namespace=NS, ip=ip,
                      local_ip=ip.replace(".1.", ".65."), service_account=name,
                      labels=tuple(sorted(labels.items())), workload_name=name,
                      workload_type="deployment", node="localmesh", hbone=hbone,
                      behind_local=True, ports=ports, ready=True)


def state(waypoint: bool = False, **kw: object) -> MeshState:
    services = [Service("composer", NS, "127.9.192.2", [ServicePort("http", 8080, 8080, "http")],
                        {"app": "composer"}, {}),
                Service("vp0", NS, "127.9.192.3", [ServicePort("http-rest", 7050, 7050, "http")],
                        {"app": "vp0"}, {})]
    endpoints = {(NS, "composer"): [{"addresses": [{"ip": "127.9.1.2"}],
                                     "ports": [{"name": "http", "port": 8080}]}],
                 (NS, "vp0"): [{"addresses": [{"ip": "127.9.1.3"}],
                                "ports": [{"name": "http-rest", "port": 7050}]}]}
    ambient = AmbientState(
        pods={"127.9.1.2": pod("composer", "127.9.1.2"),
              "127.9.1.3": pod("vp0", "127.9.1.3", ports=(7050,))},
        namespace_labels={NS: {enrolment.DATAPLANE_MODE: "ambient"}})
    if waypoint:
        ambient.namespace_labels[NS][enrolment.USE_WAYPOINT] = "waypoint"
        ambient.waypoints[(NS, "waypoint")] = Waypoint("waypoint", NS, "127.9.192.9",
                                                      ("127.9.1.9",))
    base: dict = {"services": services, "endpoints": endpoints, "ingresses": [],
                  "ingress_classes": {}, "gateways": [], "virtual_services": [],
                  "destination_rules": [], "ambient": ambient}
    base.update(kw)
    return MeshState(**base)  # type: ignore[arg-type]


def as_protobuf(resources: dict[str, dict[str, dict]]) -> None:
    """Every listener and cluster parses into Envoy's message (istiod's conversion)."""
    for lst in resources[T_LISTENER].values():
        json_format.ParseDict(lst, listener_pb2.Listener())
    for c in resources[T_CLUSTER].values():
        json_format.ParseDict(c, cluster_pb2.Cluster())


def ztunnel() -> Proxy:
    return Proxy("ztunnel", "127.9.1.5", "127.9.65.5", "ztunnel-x", "istio-system",
                 {"app": "ztunnel"}, "ztunnel-x", [], {"NODE_NAME": "localmesh"})


# -- istio-cni's rules ------------------------------------------------------------------
@pytest.mark.parametrize(("ns_labels", "pod_labels", "annotations", "want"), [
    ({"istio.io/dataplane-mode": "ambient"}, {}, {}, True),
    ({}, {"istio.io/dataplane-mode": "ambient"}, {}, True),
    ({"istio.io/dataplane-mode": "ambient"}, {"istio.io/dataplane-mode": "none"}, {}, False),
    ({"istio.io/dataplane-mode": "ambient"}, {}, {"sidecar.istio.io/status": "{}"}, False),
    ({}, {}, {}, False),
])
def test_istio_cni_redirects_what_istio_would(ns_labels: dict, pod_labels: dict,
                                              annotations: dict, want: bool) -> None:
    ns = {"metadata": {"name": NS, "labels": ns_labels}}
    p = {"metadata": {"name": "a", "labels": pod_labels, "annotations": annotations},
         "spec": {"containers": [{"name": "app"}]}}
    assert enrolment.wants_ambient(ns, p) is want


def test_a_pod_on_the_host_network_is_never_redirected() -> None:
    ns = {"metadata": {"labels": {"istio.io/dataplane-mode": "ambient"}}}
    assert not enrolment.wants_ambient(ns, {"metadata": {}, "spec": {"hostNetwork": True}})


# -- workload discovery -----------------------------------------------------------------
def test_workloads_and_services_are_istio_addresses_on_the_wire() -> None:
    st = state(waypoint=True)
    res = wds.wds_resources(st)
    composer = res[T_ADDRESS]["Kubernetes//Pod/shop/composer-1"]["workload"]
    assert composer["tunnelProtocol"] == "HBONE" and composer["serviceAccount"] == "composer"
    assert composer["services"] == {"shop/composer.shop.svc.cluster.local": {
        "ports": [{"servicePort": 8080, "targetPort": 8080}]}}
    assert composer["waypoint"]["hboneMtlsPort"] == 15008
    service = res[T_ADDRESS]["shop/vp0.shop.svc.cluster.local"]["service"]
    assert service["waypoint"]["address"]["address"] == wds.ip_bytes("127.9.192.9")
    for type_url, resources in res.items():
        for body in resources.values():
            message = json_format.ParseDict(body, MESSAGES[type_url]())
            assert message.ByteSize() > 0


def test_an_authorization_policy_is_its_l4_part() -> None:
    policy = {"metadata": {"name": "allow-composer", "namespace": NS},
              "spec": {"selector": {"matchLabels": {"app": "vp0"}}, "action": "ALLOW",
                       "rules": [{"from": [{"source": {"principals": [
                           "cluster.local/ns/shop/sa/composer"]}}],
                           "to": [{"operation": {"ports": ["7050"]}}]}]}}
    res = wds.wds_resources(state(authorization_policies=[policy]))
    authz = res[T_AUTHORIZATION]["shop/allow-composer"]
    assert authz["scope"] == "WORKLOAD_SELECTOR" and authz["action"] == "ALLOW"
    assert authz["rules"][0]["clauses"] == [
        {"matches": [{"principals": [{"exact": "cluster.local/ns/shop/sa/composer"}]}]},
        {"matches": [{"destinationPorts": [7050]}]}]
    json_format.ParseDict(authz, MESSAGES[T_AUTHORIZATION]())
    vp0 = res[T_ADDRESS]["Kubernetes//Pod/shop/vp0-1"]["workload"]
    assert vp0["authorizationPolicies"] == ["shop/allow-composer"]


# -- ztunnel's Envoy --------------------------------------------------------------------
def test_ztunnel_holds_each_redirected_pods_three_sockets() -> None:
    res = ztunnel_resources(state(), ztunnel())
    as_protobuf(res)
    listeners = res[T_LISTENER]
    out = listeners["shop/composer-1/outbound"]
    assert out["address"]["socket_address"] == {"address": "127.9.65.2", "port_value": 15001}
    hbone = listeners["shop/composer-1/inbound"]
    assert hbone["address"]["socket_address"] == {"address": "127.9.1.2", "port_value": 15008}
    tls = hbone["filter_chains"][0]["transport_socket"]["typed_config"]
    assert tls["require_client_certificate"] is True
    assert tls["common_tls_context"]["tls_params"]["tls_minimum_protocol_version"] == "TLSv1_3"
    assert tls["common_tls_context"]["tls_certificate_sds_secret_configs"][0]["name"] == \
        "spiffe://cluster.local/ns/shop/sa/composer"
    plain = listeners["shop/composer-1/inbound_passthrough"]
    assert {a["address"]["socket_address"]["port_value"]
            for a in plain["additional_addresses"]} == {8080}
    # composer → vp0 is tunnelled: vp0 speaks HBONE.
    to_vp0 = res[T_CLUSTER]["shop/composer-1/outbound|7050||vp0.shop.svc.cluster.local"]
    (endpoint,) = to_vp0["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert endpoint["endpoint"]["address"]["envoy_internal_address"][
        "server_listener_name"] == "shop/composer-1/connect_originate"
    assert endpoint["metadata"]["filter_metadata"]["envoy.filters.listener.original_dst"] == \
        {"local": "127.9.1.3:7050"}
    origin = res[T_CLUSTER]["shop/composer-1/connect_originate"]
    assert origin["original_dst_lb_config"] == {"upstream_port_override": 15008}
    assert origin["upstream_bind_config"]["source_address"]["address"] == "127.9.1.2"


def test_a_pod_outside_the_mesh_is_reached_in_plaintext() -> None:
    st = state()
    assert st.ambient is not None
    st.ambient.pods["127.9.1.3"] = pod("vp0", "127.9.1.3", hbone=False, ports=(7050,))
    res = ztunnel_resources(st, ztunnel())
    to_vp0 = res[T_CLUSTER]["shop/composer-1/outbound|7050||vp0.shop.svc.cluster.local"]
    (endpoint,) = to_vp0["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert endpoint["endpoint"]["address"]["socket_address"] == {"address": "127.9.1.3",
                                                                 "port_value": 7050}
    # vp0 left the mesh: only its plain forwarders, no HBONE socket.
    assert "shop/vp0-1/inbound" not in res[T_LISTENER]
    assert "shop/vp0-1/inbound_passthrough" in res[T_LISTENER]


def test_strict_mtls_refuses_plaintext_at_ztunnel() -> None:
    strict = {"metadata": {"name": "default", "namespace": NS},
              "spec": {"mtls": {"mode": "STRICT"}}}
    res = ztunnel_resources(state(peer_authentications=[strict]), ztunnel())
    chains = res[T_LISTENER]["shop/composer-1/inbound_passthrough"]["filter_chains"]
    assert [c["name"] for c in chains] == ["refused"]


def test_a_service_with_a_waypoint_is_sent_to_it() -> None:
    res = ztunnel_resources(state(waypoint=True), ztunnel())
    as_protobuf(res)
    to_vp0 = res[T_CLUSTER]["shop/composer-1/outbound|7050||vp0.shop.svc.cluster.local"]
    (endpoint,) = to_vp0["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert endpoint["endpoint"]["address"]["envoy_internal_address"][
        "server_listener_name"] == "shop/composer-1/connect_waypoint/shop/waypoint"
    assert endpoint["metadata"]["filter_metadata"]["envoy.filters.listener.original_dst"] == \
        {"local": "127.9.192.3:7050"}  # the service's VIP, as ztunnel sends to a waypoint
    tunnel = res[T_CLUSTER]["shop/composer-1/connect_waypoint/shop/waypoint"]
    assert tunnel["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"][
        "address"]["socket_address"] == {"address": "127.9.1.9", "port_value": 15008}


# -- waypoints --------------------------------------------------------------------------
def waypoint_proxy() -> Proxy:
    return Proxy("waypoint", "127.9.1.9", "127.9.65.9", "waypoint-1", NS,
                 {"gateway.networking.k8s.io/gateway-name": "waypoint"}, "waypoint", [])


def _golden_waypoint() -> dict:
    return dict(json.loads((GOLDEN / "istio" / "waypoint-configdump.json").read_text()))


def _listeners(dump: dict) -> dict[str, dict]:
    return {d["name"]: d["active_state"]["listener"] for c in dump["configs"]
            for d in c.get("dynamic_listeners", [])}


@needs_golden
def test_the_waypoint_has_istios_listeners_and_names() -> None:
    golden = _listeners(_golden_waypoint())
    res = waypoint_resources(state(waypoint=True), waypoint_proxy())
    as_protobuf(res)
    ours = res[T_LISTENER]
    assert set(golden) <= set(ours) == {"connect_terminate", "main_internal",
                                        "connect_originate"}
    # connect_terminate: CONNECT over HTTP/2 in mutual TLS 1.3 into main_internal.
    g_hcm = golden["connect_terminate"]["filter_chains"][0]["filters"][0]["typed_config"]
    o_hcm = ours["connect_terminate"]["filter_chains"][0]["filters"][0]["typed_config"]
    assert o_hcm["upgrade_configs"] == g_hcm["upgrade_configs"]
    assert o_hcm["http2_protocol_options"] == g_hcm["http2_protocol_options"]
    g_route = g_hcm["route_config"]["virtual_hosts"][0]["routes"][0]
    assert o_hcm["route_config"]["virtual_hosts"][0]["routes"][0] == g_route
    g_keys = [v["object_key"] for v in g_hcm["http_filters"][1]["typed_config"][
        "on_request_headers"]]
    o_keys = [v["object_key"] for v in o_hcm["http_filters"][0]["typed_config"][
        "on_request_headers"]]
    assert o_keys == g_keys
    g_tls = golden["connect_terminate"]["filter_chains"][0]["transport_socket"]["typed_config"]
    o_tls = ours["connect_terminate"]["filter_chains"][0]["transport_socket"]["typed_config"]
    assert o_tls["require_client_certificate"] == g_tls["require_client_certificate"]
    for key in ("tls_params", "alpn_protocols"):
        assert o_tls["common_tls_context"][key] == g_tls["common_tls_context"][key]
    # main_internal: an internal listener after original_dst, one chain per service port.
    assert "internal_listener" in ours["main_internal"]
    assert ours["main_internal"]["listener_filters"][0]["name"] == \
        golden["main_internal"]["listener_filters"][0]["name"]
    chain_names = {c["name"] for c in ours["main_internal"]["filter_chains"]}
    assert "inbound-vip|7050||vp0.shop.svc.cluster.local-http" in chain_names
    # connect_originate: the same tunnel as Istio's.
    g_tcp = golden["connect_originate"]["filter_chains"][0]["filters"][0]["typed_config"]
    o_tcp = ours["connect_originate"]["filter_chains"][0]["filters"][0]["typed_config"]
    assert o_tcp["tunneling_config"] == g_tcp["tunneling_config"]
    assert o_tcp["cluster"] == g_tcp["cluster"] == "connect_originate"


@needs_golden
def test_the_waypoints_clusters_and_routes_are_named_as_istios() -> None:
    golden = _golden_waypoint()
    g_cluster = next(d["cluster"] for c in golden["configs"]
                     for d in c.get("dynamic_active_clusters", []))
    res = waypoint_resources(state(waypoint=True), waypoint_proxy())
    ours = res[T_CLUSTER]["inbound-vip|7050|http|vp0.shop.svc.cluster.local"]
    assert g_cluster["name"].startswith("inbound-vip|9080|http|")
    assert ours["transport_socket"]["name"] == g_cluster["transport_socket"]["name"]
    assert ours["transport_socket"]["typed_config"]["passthrough_metadata"] == \
        g_cluster["transport_socket"]["typed_config"]["passthrough_metadata"]
    chain = next(c for c in res[T_LISTENER]["main_internal"]["filter_chains"]
                 if c["name"].startswith("inbound-vip|7050|"))
    route_config = chain["filters"][0]["typed_config"]["route_config"]
    assert route_config["name"] == "inbound-vip|7050|http|vp0.shop.svc.cluster.local"
    assert route_config["virtual_hosts"][0]["name"] == "inbound|http|7050"
    assert route_config["virtual_hosts"][0]["routes"][0]["route"]["cluster"] == ours["name"]


def test_an_httproute_on_a_service_routes_at_its_waypoint() -> None:
    st = state(waypoint=True)
    assert st.ambient is not None
    st.ambient.http_routes = [{"metadata": {"name": "split", "namespace": NS}, "spec": {
        "parentRefs": [{"group": "", "kind": "Service", "name": "vp0", "port": 7050}],
        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/chain"}}],
                   "backendRefs": [{"name": "composer", "port": 8080, "weight": 1}]}]}}]
    res = waypoint_resources(st, waypoint_proxy())
    chain = next(c for c in res[T_LISTENER]["main_internal"]["filter_chains"]
                 if c["name"].startswith("inbound-vip|7050|"))
    (route,) = chain["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0][
        "routes"]
    assert route["match"] == {"prefix": "/chain"}
    assert route["route"]["cluster"] == "inbound-vip|8080|http|composer.shop.svc.cluster.local"


def test_the_ingress_gateway_goes_through_the_waypoint_only_when_asked() -> None:
    router = Proxy("router", "127.9.1.4", "127.9.65.4", "gw", "istio-system", {}, "gw", [])
    cluster_name = "outbound|7050||vp0.shop.svc.cluster.local"
    resources = {T_CLUSTER: {cluster_name: {"name": cluster_name, "type": "EDS"}},
                 T_LISTENER: {}}
    st = state(waypoint=True)
    assert through_waypoints(st, router, json.loads(json.dumps(resources)))[T_CLUSTER][
        cluster_name]["type"] == "EDS"
    assert st.ambient is not None
    st.ambient.namespace_labels[NS]["istio.io/ingress-use-waypoint"] = "true"
    shared = {"name": cluster_name, "type": "EDS"}  # memoized: every proxy's (xds/memo.py)
    out = through_waypoints(st, router, {T_CLUSTER: {cluster_name: shared}, T_LISTENER: {}})
    assert shared == {"name": cluster_name, "type": "EDS"}, "the shared cluster was changed"
    assert out[T_CLUSTER][cluster_name]["type"] == "STATIC"
    assert "connect_waypoint/shop/waypoint" in out[T_LISTENER]
    as_protobuf(out)


def test_a_proxy_with_hbone_tunnels_to_ambient_pods_and_keeps_mtls_to_sidecars() -> None:
    """The ambient profile's ENABLE_HBONE: a sidecar (or gateway) reaches ambient pods
    through ``connect_originate`` (HBONE to their port 15008); an injected pod behind the
    same Service keeps its auto-mTLS match; without ENABLE_HBONE nothing changes."""
    from localmesh.istio.generator import generate

    st = state()
    assert st.ambient is not None
    sidecar_pod = {"ip": "127.9.1.7", "_labels": {"security.istio.io/tlsMode": "istio"}}
    st.endpoints[(NS, "vp0")][0]["addresses"].append(sidecar_pod)
    caller = Proxy("sidecar", "127.9.1.8", "127.9.65.8", "client-1", "other",
                   {"app": "client"}, "client", [])
    cluster_name = "outbound|7050||vp0.shop.svc.cluster.local"
    plain = json.loads(json.dumps(generate(st, caller)))  # a copy: shared parts inside
    assert ORIGINATE not in plain[T_LISTENER]
    assert [e["endpoint"]["address"]["socket_address"]["address"] for e in
            plain[T_ENDPOINT][cluster_name]["endpoints"][0]["lb_endpoints"]] == \
        ["127.9.1.3", "127.9.1.7"]

    caller.metadata["ENABLE_HBONE"] = "true"
    out = generate(st, caller)
    as_protobuf(out)
    ambient_ep, sidecar_ep = out[T_ENDPOINT][cluster_name]["endpoints"][0]["lb_endpoints"]
    assert ambient_ep["endpoint"]["address"] == {
        "envoy_internal_address": {"server_listener_name": ORIGINATE}}
    assert ambient_ep["metadata"]["filter_metadata"] == {
        "envoy.filters.listener.original_dst": {"local": "127.9.1.3:7050"},
        "envoy.transport_socket_match": {"tunnel": "H2"}}
    assert sidecar_ep["endpoint"]["address"]["socket_address"]["address"] == "127.9.1.7"
    matches = out[T_CLUSTER][cluster_name]["transport_socket_matches"]
    assert [m["name"] for m in matches] == ["tunnel", "tlsMode-istio", "tlsMode-disabled"]
    origin = out[T_CLUSTER][ORIGINATE]
    assert origin["type"] == "ORIGINAL_DST"
    assert origin["original_dst_lb_config"] == {"upstream_port_override": 15008}
    assert origin["upstream_bind_config"]["source_address"]["address"] == "127.9.1.8"
    tls = origin["transport_socket"]["typed_config"]["common_tls_context"]
    assert tls["alpn_protocols"] == ["h2"]
    assert out[T_LISTENER][ORIGINATE]["internal_listener"] == {}
    for assignment in out[T_ENDPOINT].values():
        json_format.ParseDict(assignment, endpoint_pb2.ClusterLoadAssignment())
    # The memoized resources every proxy shares were not changed (xds/memo.py): a proxy
    # without HBONE, generated after, still dials the pods.
    plain_after = generate(st, Proxy("sidecar", "127.9.1.6", "127.9.65.6", "other-1", "other",
                                     {"app": "other"}, "other", []))
    assert plain_after[T_ENDPOINT][cluster_name] == plain[T_ENDPOINT][cluster_name]
    assert plain_after[T_CLUSTER][cluster_name] == plain[T_CLUSTER][cluster_name]


# -- ztunnel's view and metrics ---------------------------------------------------------
def proxy_state() -> ProxyState:
    st = ProxyState()
    for name, body in wds.wds_resources(state())[T_ADDRESS].items():
        st.addresses[name] = json_format.MessageToDict(
            json_format.ParseDict(body, MESSAGES[T_ADDRESS]()))
    return st


def test_the_config_dump_has_ztunnels_shape() -> None:
    """Keys and values as istioctl's ztunnel-config reads them (its testdata dump.json)."""
    dump = proxy_state().dump([], {})
    assert set(dump) >= {"workloads", "services", "policies", "certificates"}
    composer = dump["workloads"]["/127.9.1.2"]
    assert composer["protocol"] == "HBONE" and composer["workloadType"] == "deployment"
    assert composer["uid"] == "Kubernetes//Pod/shop/composer-1"
    vp0 = dump["services"]["/127.9.192.3"]
    assert vp0["hostname"] == "vp0.shop.svc.cluster.local" and vp0["ports"] == {"7050": 7050}
    assert list(vp0["endpoints"]) == ["Kubernetes//Pod/shop/vp0-1:/127.9.1.3"]


def test_ztunnel_metrics_name_both_ends_and_count_a_connection_once() -> None:
    st = proxy_state()
    opened = Connection("inbound|shop/vp0-1", "TcpUpstreamConnected", "7", "127.9.1.2",
                        "127.9.1.3", 7050, "spiffe://cluster.local/ns/shop/sa/composer", 10, 0)
    labels = dict(zip(("reporter", "source_workload", "source_principal",
                       "destination_workload", "destination_service",
                       "connection_security_policy"),
                      (labels_for(opened, st)[i] for i in (0, 1, 5, 12, 9, 22)), strict=True))
    assert labels == {"reporter": "destination", "source_workload": "composer",
                      "source_principal": "spiffe://cluster.local/ns/shop/sa/composer",
                      "destination_workload": "vp0",
                      "destination_service": "vp0.shop.svc.cluster.local",
                      "connection_security_policy": "mutual_tls"}
    metrics = TcpMetrics(st)
    metrics.record(opened)
    metrics.record(Connection(**{**opened.__dict__, "kind": "TcpPeriodic", "received": 30}))
    metrics.record(Connection(**{**opened.__dict__, "kind": END, "received": 45, "sent": 9}))
    text = metrics.exposition()
    assert sum(metrics.opened.values()) == 1 and sum(metrics.closed.values()) == 1
    assert sum(metrics.received.values()) == 45 and sum(metrics.sent.values()) == 9
    assert "# TYPE istio_tcp_connections_opened_total counter" in text

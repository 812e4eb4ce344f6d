"""localmesh's generation of Istio's security config, in-process: auto mTLS and
DestinationRule TLS on clusters, PeerAuthentication's inbound chains and precedence,
AuthorizationPolicy's RBAC filters (compared with Istio's builder testdata shapes and a
golden config dump), and the mesh CA's signing rules. Every generated resource is also
parsed into Envoy's protobuf message, as istiod does before sending it, so a misspelt
field fails here. The same behaviour through real Envoys: tests/localmesh/test_mesh_security.py.
"""

from __future__ import annotations

import json

import envoy.config.cluster.v3.cluster_pb2 as cluster_pb2
import envoy.config.listener.v3.listener_pb2 as listener_pb2
import envoy.extensions.filters.http.rbac.v3.rbac_pb2 as rbac_pb2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from google.protobuf import json_format

import localmesh.istio.istiod  # noqa: F401 - registers every type istiod packs in an Any
from localmesh.istio.meshconfig import MeshConfig, parse
from localmesh.istio.security.ca import MeshCA, SigningError, spiffe_id
from localmesh.istio.xds import authz, peerauth, tls
from localmesh.istio.xds.clusters import outbound_clusters
from localmesh.istio.xds.model import MeshState, Proxy, Service, ServicePort
from localmesh.pilot_agent.certs import new_csr, parse_duration
from tests.support import GOLDEN, needs_golden

NS = "shop"


def _meta(name: str, ns: str = NS, created: str = "2026-01-01T00:00:00Z") -> dict:
    return {"name": name, "namespace": ns, "creationTimestamp": created}


def state(**kw: object) -> MeshState:
    svc = Service("vp0", NS, "10.0.0.1",
                  [ServicePort("http-rest", 7050, 7050, "http"),
                   ServicePort("grpc-peer", 7051, 7051, "grpc")], {"app": "vp0"}, {})
    endpoints = {(NS, "vp0"): [{"addresses": [
        {"ip": "10.1.0.1", "_labels": {"app": "vp0", "security.istio.io/tlsMode": "istio"},
         "_sa": "vp0"}],
        "ports": [{"name": "http-rest", "port": 7050}, {"name": "grpc-peer", "port": 7051}]}]}
    base: dict = {"services": [svc], "endpoints": endpoints, "ingresses": [],
                  "ingress_classes": {}, "gateways": [], "virtual_services": [],
                  "destination_rules": []}
    base.update(kw)
    return MeshState(**base)  # type: ignore[arg-type]


def proxy(labels: dict | None = None, ns: str = NS) -> Proxy:
    return Proxy("sidecar", "10.1.0.9", "10.2.0.9", "composer-1", ns,
                 labels or {"app": "composer"}, "composer", [{"containerPort": 8080}])


def clusters(st: MeshState) -> dict[str, dict]:
    out = {c["name"]: c for c in outbound_clusters(st)}
    for c in out.values():  # istiod's conversion: a typo'd field would raise here
        json_format.ParseDict(c, cluster_pb2.Cluster())
    return out


HTTP_CLUSTER = f"outbound|7050||vp0.{NS}.svc.cluster.local"


# -- outbound: auto mTLS and DestinationRule TLS -------------------------------------------
def test_auto_mtls_transport_socket_matches() -> None:
    c = clusters(state())[HTTP_CLUSTER]
    assert "transport_socket" not in c
    istio, plain = c["transport_socket_matches"]
    assert (istio["name"], istio["match"]) == ("tlsMode-istio", {"tlsMode": "istio"})
    assert (plain["name"], plain["match"]) == ("tlsMode-disabled", {})
    ctx = istio["transport_socket"]["typed_config"]
    assert ctx["sni"] == f"outbound_.7050_._.vp0.{NS}.svc.cluster.local"
    assert ctx["common_tls_context"]["alpn_protocols"] == ["istio-peer-exchange", "istio"]
    assert ctx["common_tls_context"]["combined_validation_context"][
        "default_validation_context"]["match_subject_alt_names"] == [
        {"exact": f"spiffe://cluster.local/ns/{NS}/sa/vp0"}]
    grpc = clusters(state())[f"outbound|7051||vp0.{NS}.svc.cluster.local"]
    assert grpc["transport_socket_matches"][0]["transport_socket"]["typed_config"][
        "common_tls_context"]["alpn_protocols"][-1] == "h2"


def test_auto_mtls_off_by_mesh_config_or_namespace_disable() -> None:
    assert "transport_socket_matches" not in clusters(state(
        mesh_config=MeshConfig(enable_auto_mtls=False)))[HTTP_CLUSTER]
    ns_disable = {"metadata": _meta("default"), "spec": {"mtls": {"mode": "DISABLE"}}}
    assert "transport_socket_matches" not in clusters(state(
        peer_authentications=[ns_disable]))[HTTP_CLUSTER]
    # A workload-level DISABLE is not consulted by clients (BestEffortInferServiceMTLSMode).
    workload = {"metadata": _meta("vp0"), "spec": {
        "selector": {"matchLabels": {"app": "vp0"}}, "mtls": {"mode": "DISABLE"}}}
    assert "transport_socket_matches" in clusters(state(
        peer_authentications=[workload]))[HTTP_CLUSTER]


def _dr(spec: dict) -> dict:
    return {"metadata": _meta("vp0"), "spec": {"host": "vp0", **spec}}


def test_destination_rule_tls_overrides_auto_mtls() -> None:
    disable = clusters(state(destination_rules=[_dr({"trafficPolicy": {
        "tls": {"mode": "DISABLE"}}})]))[HTTP_CLUSTER]
    assert not {"transport_socket", "transport_socket_matches"} & set(disable)
    port_level = state(destination_rules=[_dr({"trafficPolicy": {
        "tls": {"mode": "DISABLE"},
        "portLevelSettings": [{"port": {"number": 7050}, "tls": {"mode": "ISTIO_MUTUAL"}}]},
        "subsets": [{"name": "v1", "labels": {"app": "vp0"},
                     "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL", "sni": "x.example"}}}]})])
    got = clusters(port_level)
    forced = got[HTTP_CLUSTER]
    assert "transport_socket_matches" not in forced
    assert forced["transport_socket"]["typed_config"]["sni"] == \
        f"outbound_.7050_._.vp0.{NS}.svc.cluster.local"
    assert "transport_socket" not in got[f"outbound|7051||vp0.{NS}.svc.cluster.local"]
    subset = got[f"outbound|7051|v1|vp0.{NS}.svc.cluster.local"]
    assert subset["transport_socket"]["typed_config"]["sni"] == "x.example"
    simple = clusters(state(destination_rules=[_dr({"trafficPolicy": {
        "tls": {"mode": "SIMPLE"}}})]))[HTTP_CLUSTER]
    ctx = simple["transport_socket"]["typed_config"]["common_tls_context"]
    assert ctx["combined_validation_context"]["validation_context_sds_secret_config"][
        "name"] == "file-root:system"
    options = simple["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert options["upstream_http_protocol_options"] == {"auto_sni": True,
                                                         "auto_san_validation": True}


def test_endpoint_metadata_follows_the_injected_label() -> None:
    assert tls.endpoint_metadata({"security.istio.io/tlsMode": "istio"}) == {
        "filter_metadata": {"envoy.transport_socket_match": {"tlsMode": "istio"}}}
    assert tls.endpoint_metadata({"app": "plain"}) is None


# -- inbound: PeerAuthentication --------------------------------------------------------
def _pa(name: str, ns: str, mode: str, selector: dict | None = None,
        ports: dict | None = None, created: str = "2026-01-01T00:00:00Z") -> dict:
    spec: dict = {"mtls": {"mode": mode}}
    if selector:
        spec["selector"] = {"matchLabels": selector}
    if ports:
        spec["portLevelMtls"] = {str(p): {"mode": m} for p, m in ports.items()}
    return {"metadata": _meta(name, ns, created), "spec": spec}


@pytest.mark.parametrize(("policies", "port", "want"), [
    ([], 8080, "PERMISSIVE"),
    ([_pa("mesh", "istio-system", "STRICT")], 8080, "STRICT"),
    ([_pa("mesh", "istio-system", "STRICT"), _pa("ns", NS, "UNSET")], 8080, "STRICT"),
    ([_pa("mesh", "istio-system", "STRICT"), _pa("ns", NS, "PERMISSIVE")], 8080, "PERMISSIVE"),
    ([_pa("ns", NS, "STRICT"), _pa("w", NS, "DISABLE", {"app": "composer"})], 8080, "DISABLE"),
    ([_pa("ns", NS, "STRICT"), _pa("w", NS, "UNSET", {"app": "composer"},
                                   {8080: "DISABLE"})], 8080, "DISABLE"),
    ([_pa("ns", NS, "STRICT"), _pa("w", NS, "UNSET", {"app": "composer"},
                                   {9090: "DISABLE"})], 8080, "STRICT"),
    ([_pa("w", NS, "STRICT", {"app": "other"})], 8080, "PERMISSIVE"),
    # the oldest namespace-wide policy wins
    ([_pa("b", NS, "DISABLE", created="2026-02-01T00:00:00Z"),
      _pa("a", NS, "STRICT", created="2026-03-01T00:00:00Z")], 8080, "DISABLE"),
    # port-level settings of a policy without a selector do not count
    ([_pa("ns", NS, "STRICT", ports={8080: "DISABLE"})], 8080, "STRICT"),
])
def test_peer_authentication_precedence(policies: list[dict], port: int, want: str) -> None:
    assert peerauth.port_mode(state(peer_authentications=policies), NS,
                              {"app": "composer"}, port) == want


def test_inbound_chains_per_mode() -> None:
    st = state()
    chain = {"name": "0.0.0.0_8080", "filters": []}
    strict = tls.inbound_chains(st, "STRICT", True, 8080, chain)
    assert [c["filter_chain_match"] for c in strict] == [
        {"destination_port": 8080, "transport_protocol": "tls"}]
    permissive = tls.inbound_chains(st, "PERMISSIVE", True, 8080, chain)
    assert [c["filter_chain_match"]["transport_protocol"] for c in permissive] == [
        "tls", "raw_buffer"]
    assert "istio-peer-exchange" in permissive[0]["filter_chain_match"]["application_protocols"]
    assert "transport_socket" not in permissive[1]
    disable = tls.inbound_chains(st, "DISABLE", True, 8080, chain)
    assert [c["filter_chain_match"]["transport_protocol"] for c in disable] == ["raw_buffer"]
    listener = {"name": "virtualInbound", "filter_chains": permissive,
                "listener_filters": [tls.TLS_INSPECTOR]}
    json_format.ParseDict(listener, listener_pb2.Listener())


@needs_golden
def test_inbound_mtls_context_is_istios() -> None:
    """Our DownstreamTlsContext equals the one of a real sidecar's inbound HTTP chain."""
    dump = json.loads((GOLDEN / "istio" / "sidecar-listeners-configdump.yaml").read_text())
    inbound = next(entry["active_state"]["listener"] for cfg in dump["configs"]
                   for entry in cfg.get("dynamic_listeners") or []
                   if entry["name"] == "virtualInbound")
    golden = next(c for c in inbound["filter_chains"] if c.get("name") == "0.0.0.0_80"
                  and c["filter_chain_match"].get("transport_protocol") == "tls")
    ours = tls.inbound_chains(state(), "PERMISSIVE", True, 80, {"name": "0.0.0.0_80",
                                                               "filters": []})[0]
    assert ours["transport_socket"] == golden["transport_socket"]
    assert ours["filter_chain_match"] == {k: v for k, v in golden["filter_chain_match"].items()
                                          if k != "prefix_ranges"}


# -- AuthorizationPolicy → RBAC ----------------------------------------------------------
def _ap(name: str, spec: dict, ns: str = NS, annotations: dict | None = None) -> dict:
    meta = _meta(name, ns)
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": spec}


def rbac(st: MeshState, p: Proxy | None = None) -> list[dict]:
    filters = authz.http_filters(st, p or proxy())
    for f in filters:
        json_format.ParseDict({k: v for k, v in f["typed_config"].items() if k != "@type"},
                              rbac_pb2.RBAC())
    return [f["typed_config"] for f in filters]


def test_deny_path_rule_is_istios_shape() -> None:
    policy = _ap("deny", {"action": "DENY", "rules": [{"to": [{"operation": {
        "paths": ["/chain/blocks/*"], "methods": ["GET"]}}]}]})
    (config,) = rbac(state(authorization_policies=[policy]))
    assert config["rules"] == {"action": "DENY", "policies": {
        f"ns[{NS}]-policy[deny]-rule[0]": {
            "permissions": [{"and_rules": {"rules": [
                {"or_rules": {"rules": [{"header": {"name": ":method",
                                                    "exact_match": "GET"}}]}},
                {"or_rules": {"rules": [{"url_path": {"path": {
                    "prefix": "/chain/blocks/"}}}]}}]}}],
            "principals": [{"and_ids": {"ids": [{"any": True}]}}]}}}


def test_source_matchers_follow_istios_generators() -> None:
    policy = _ap("allow", {"rules": [{"from": [{"source": {
        "principals": ["cluster.local/ns/a/sa/b", "*"], "notNamespaces": ["kube-*"],
        "ipBlocks": ["10.0.0.0/8", "1.2.3.4"]}}],
        "when": [{"key": "request.headers[x-user]", "values": ["alice"]},
                 {"key": "destination.port", "values": ["8080"]}]}]})
    (config,) = rbac(state(authorization_policies=[policy]))
    assert "action" not in config["rules"]  # ALLOW is the proto default, left out as Istio does
    (rule,) = config["rules"]["policies"].values()
    ids = rule["principals"][0]["and_ids"]["ids"]
    assert ids[0] == {"or_ids": {"ids": [
        {"authenticated": {"principal_name": {"exact": "spiffe://cluster.local/ns/a/sa/b"}}},
        {"authenticated": {"principal_name": {"safe_regex": {"regex": ".+"}}}}]}}
    assert ids[1] == {"not_id": {"or_ids": {"ids": [
        {"authenticated": {"principal_name": {"safe_regex": {"regex": ".*/ns/kube-.*/.*"}}}}]}}}
    assert ids[2] == {"or_ids": {"ids": [
        {"direct_remote_ip": {"address_prefix": "10.0.0.0", "prefix_len": 8}},
        {"direct_remote_ip": {"address_prefix": "1.2.3.4", "prefix_len": 32}}]}}
    assert ids[3]["or_ids"]["ids"][0]["header"]["name"] == "x-user"
    assert rule["permissions"] == [{"and_rules": {"rules": [
        {"or_rules": {"rules": [{"destination_port": 8080}]}}]}}]


def test_actions_order_allow_nothing_and_dry_run() -> None:
    policies = [_ap("allow-nothing", {}), _ap("audit", {"action": "AUDIT", "rules": [{}]}),
                _ap("deny", {"action": "DENY", "rules": [{}]}),
                _ap("shadow", {"action": "DENY", "rules": [{}]}, ns="istio-system",
                    annotations={"istio.io/dry-run": "true"})]
    audit, deny, allow = rbac(state(authorization_policies=policies))
    assert audit["rules"]["action"] == "LOG"
    assert deny["rules"]["action"] == "DENY"
    assert list(deny["rules"]["policies"]) == [f"ns[{NS}]-policy[deny]-rule[0]"]
    assert list(deny["shadow_rules"]["policies"]) == [
        "ns[istio-system]-policy[shadow]-rule[0]"]
    assert deny["shadow_rules_stat_prefix"] == "istio_dry_run_deny_"
    # An ALLOW policy without rules matches nothing: everything else is denied.
    assert allow["rules"]["policies"] == {f"ns[{NS}]-policy[allow-nothing]-rule[0]":
                                          authz.MATCH_NEVER}


def test_which_policies_select_a_proxy() -> None:
    gw = Proxy("router", "10.1.0.2", "10.2.0.2", "gw-1", NS,
               {"gateway.networking.k8s.io/gateway-name": "web", "app": "gw"}, "gw", [])
    policies = {
        "mesh": _ap("mesh", {"action": "DENY", "rules": [{}]}, ns="istio-system"),
        "namespace": _ap("namespace", {"action": "DENY", "rules": [{}]}),
        "other-ns": _ap("other-ns", {"action": "DENY", "rules": [{}]}, ns="elsewhere"),
        "selector": _ap("selector", {"selector": {"matchLabels": {"app": "composer"}},
                                     "action": "DENY", "rules": [{}]}),
        "gateway": _ap("gateway", {"targetRefs": [{"group": "gateway.networking.k8s.io",
                                                   "kind": "Gateway", "name": "web"}],
                                   "action": "DENY", "rules": [{}]}),
        "service": _ap("service", {"targetRefs": [{"group": "", "kind": "Service",
                                                   "name": "composer"}],
                                   "action": "DENY", "rules": [{}]}),
    }
    root = "istio-system"
    sidecar = {n for n, p in policies.items() if authz.applies(p, proxy(), root)}
    assert sidecar == {"mesh", "namespace", "selector"}
    assert {n for n, p in policies.items() if authz.applies(p, gw, root)} == {
        "mesh", "namespace", "gateway"}
    assert rbac(state(authorization_policies=[policies["other-ns"]])) == []


def test_invalid_rule_is_skipped_in_allow_and_ignored_value_in_deny() -> None:
    bad = [{"to": [{"operation": {"ports": ["http", "8080"]}}]}]
    (allow,) = rbac(state(authorization_policies=[_ap("a", {"rules": bad})]))
    assert allow["rules"]["policies"] == {}
    (deny,) = rbac(state(authorization_policies=[_ap("d", {"action": "DENY", "rules": bad})]))
    (rule,) = deny["rules"]["policies"].values()
    assert rule["permissions"] == [{"and_rules": {"rules": [
        {"or_rules": {"rules": [{"destination_port": 8080}]}}]}}]


# -- the mesh CA and the agent's side ---------------------------------------------------
@pytest.fixture(scope="module")
def ca() -> MeshCA:
    return MeshCA.self_signed(key_size=2048)


def test_ca_signs_for_the_callers_identity_only(ca: MeshCA) -> None:
    me = spiffe_id("shop", "vp0")
    csr, _ = new_csr(me, ecdsa=True)
    leaf_pem, root_pem = ca.sign(csr.decode(), me, ttl_seconds=60)
    leaf = x509.load_pem_x509_certificate(leaf_pem.encode())
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(root_pem.encode()))
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical and san.value.get_values_for_type(
        x509.UniformResourceIdentifier) == [me]
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds() == 60
    with pytest.raises(SigningError, match="caller"):
        ca.sign(csr.decode(), spiffe_id("shop", "someone-else"))
    with pytest.raises(SigningError, match="max allowed TTL"):
        ca.sign(csr.decode(), me, ttl_seconds=91 * 24 * 3600)


def test_ca_secret_has_istios_keys(ca: MeshCA) -> None:
    secret = ca.secret()
    assert secret["type"] == "istio.io/ca-root"
    assert set(secret["data"]) == {"ca-cert.pem", "ca-key.pem", "cert-chain.pem", "key.pem",
                                   "root-cert.pem"}
    assert ca.cert.public_bytes(serialization.Encoding.PEM).decode() == ca.root_pem


def test_mesh_config_defaults_and_auto_mtls_switch() -> None:
    assert parse(None) == MeshConfig()
    off = parse({"data": {"mesh": "enableAutoMtls: false\ntrustDomain: td.example\n"}})
    assert (off.enable_auto_mtls, off.trust_domain) == (False, "td.example")
    assert parse({"data": {"mesh": "{not yaml"}}) == MeshConfig()


@pytest.mark.parametrize(("text", "seconds"), [
    ("24h", 86400), ("90s", 90), ("1h30m", 5400), ("500ms", 0.5), ("", 7), ("1d", 7)])
def test_secret_ttl_is_a_go_duration(text: str, seconds: float) -> None:
    assert parse_duration(text, 7) == seconds


def test_injector_reads_default_config_from_the_mesh_config() -> None:
    """An edit of ``defaultConfig`` in ConfigMap ``istio`` reaches pods injected afterwards,
    and a pod's ``proxy.istio.io/config`` proxyMetadata becomes istio-proxy's env."""
    from localmesh.api.objects import ObjectAPI
    from localmesh.istio import meshconfig
    from localmesh.istio.injector import Injector
    from localmesh.resources import Registry
    from localmesh.store import Store

    api = ObjectAPI(Store(), Registry())
    api.store.create(("", "namespaces"), {"metadata": {
        "name": NS, "labels": {"istio-injection": "enabled"}}})
    mesh = meshconfig.default_mesh({"discoveryAddress": "istiod.istio-system.svc:15010",
                                    "proxyMetadata": {"ECC_SIGNATURE_ALGORITHM": "ECDSA"}})
    api.store.create(("", "configmaps"), meshconfig.configmap(mesh))
    # The default revision's webhook configuration and a reachable istiod select the pod.
    from localmesh.istio import webhooks
    api.store.create(webhooks.MWC, webhooks.revision_configuration("default"))
    api.store.create(("", "services"), {"metadata": {
        "name": "istiod", "namespace": "istio-system", "labels": {"istio.io/rev": "default"}}})
    api.store.create(("", "endpoints"), {"metadata": {"name": "istiod",
                                                      "namespace": "istio-system"},
                                         "subsets": [{"addresses": [{"ip": "127.0.0.9"}]}]})

    def injected(annotations: dict) -> dict:
        pod = {"metadata": {"name": "p", "namespace": NS, "annotations": annotations},
               "spec": {"containers": [{"name": "app", "image": "x"}]}}
        Injector({"discoveryAddress": "installer"})(api, api.rt("v1", "Pod"), pod, None)
        proxy = next(c for c in pod["spec"]["initContainers"] if c["name"] == "istio-proxy")
        return {e["name"]: e.get("value") for e in proxy["env"]}

    env = injected({})
    assert env["ECC_SIGNATURE_ALGORITHM"] == "ECDSA"
    assert json.loads(env["PROXY_CONFIG"])["discoveryAddress"].startswith("istiod.")
    env = injected({"proxy.istio.io/config": '{"proxyMetadata": {"SECRET_TTL": "30s"}}'})
    assert (env["SECRET_TTL"], env["ECC_SIGNATURE_ALGORITHM"]) == ("30s", "ECDSA")

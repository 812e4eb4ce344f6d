"""Reading Istio's mutual TLS from Envoy clusters, and the policies the scenarios apply
(meshgate.security)."""

from __future__ import annotations

import json

import pytest

from meshgate.config_dump import clusters, load_config_dump
from meshgate.security import (
    Answer,
    Caller,
    allow_principals,
    cluster_tls,
    denied,
    deny_paths,
    mtls_problem,
    peer_authentication,
    refused,
    served,
)
from tests.support import GOLDEN, needs_golden

SDS = {"api_config_source": {"api_type": "GRPC", "grpc_services": [
    {"envoy_grpc": {"cluster_name": "sds-grpc"}}]}}
HOST = "vp0.ns.svc.cluster.local"


def _modern(sni: str = f"outbound_.7050_._.{HOST}", alpn: tuple[str, ...] = (
        "istio-peer-exchange", "istio")) -> dict:
    """An outbound cluster as Istio ≥ 1.22 builds it with auto mTLS (cluster_tls.go)."""
    tls = {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                    "UpstreamTlsContext",
           "common_tls_context": {
               "tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": SDS}],
               "combined_validation_context": {
                   "default_validation_context": {"match_subject_alt_names": [
                       {"exact": "spiffe://cluster.local/ns/ns/sa/vp0"}]},
                   "validation_context_sds_secret_config": {"name": "ROOTCA",
                                                            "sds_config": SDS}},
               "alpn_protocols": list(alpn)},
           "sni": sni}
    return {"name": f"outbound|7050||{HOST}", "transport_socket_matches": [
        {"name": "tlsMode-istio", "match": {"tlsMode": "istio"},
         "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls}},
        {"name": "tlsMode-disabled", "match": {},
         "transport_socket": {"name": "envoy.transport_sockets.raw_buffer"}}]}


def test_istios_auto_mtls_cluster_is_recognised() -> None:
    tls = cluster_tls(_modern())
    mesh = tls.for_mesh_endpoints()
    assert mesh is not None
    assert mesh.certificates == ("default",) and mesh.validation == ("ROOTCA",)
    assert mesh.subject_alt_names == ("spiffe://cluster.local/ns/ns/sa/vp0",)
    assert mtls_problem(tls, 7050, HOST) is None


@pytest.mark.parametrize(("cluster", "problem"), [
    ({"name": "x"}, "no TLS toward mesh endpoints"),
    (_modern(sni="outbound_.9080_._.vp0.ns.svc.cluster.local"), "is not outbound_.7050_"),
    (_modern(alpn=("h2",)), "lacks 'istio'"),
])
def test_what_is_not_istios_mtls_is_named(cluster: dict, problem: str) -> None:
    found = mtls_problem(cluster_tls(cluster), 7050, HOST)
    assert found is not None and problem in found


def test_camel_case_dumps_read_the_same() -> None:
    """istioctl's ``-o json`` writes camelCase field names."""
    def camel(o: object) -> object:
        if isinstance(o, dict):
            return {("@type" if k == "@type" else k.split("_")[0] + "".join(
                p.title() for p in k.split("_")[1:])): camel(v) for k, v in o.items()}
        if isinstance(o, list):
            return [camel(v) for v in o]
        return o

    assert mtls_problem(cluster_tls(camel(_modern())), 7050, HOST) is None  # type: ignore[arg-type]


@needs_golden
def test_istio_1_5s_file_based_mtls_counts_too() -> None:
    """Istio 1.5 read the certificates from files; in the 1.5 productpage dump the subset
    clusters carry them in a transport socket match named ``mtls``."""
    dump = load_config_dump((GOLDEN / "istio" / "sidecar-configdump-1.5.0-productpage.json"
                             ).read_text())
    details = next(c for c in clusters(dump)
                   if c["name"] == "outbound|9080|v1|details.default.svc.cluster.local")
    tls = cluster_tls(details)
    mesh = tls.for_mesh_endpoints()
    assert mesh is not None and mesh.certificates == ("/etc/certs/cert-chain.pem",)
    assert mesh.validation == ("/etc/certs/root-cert.pem",)
    assert mesh.subject_alt_names == ("spiffe://cluster.local/ns/default/sa/bookinfo-details",)
    # A subset cluster: its SNI names the subset (v1), which the check accepts.
    assert mtls_problem(tls, 9080, "details.default.svc.cluster.local") is None


def test_policies_are_istios_objects() -> None:
    pa = peer_authentication("STRICT")
    assert (pa["apiVersion"], pa["kind"], pa["spec"]) == (
        "security.istio.io/v1", "PeerAuthentication", {"mtls": {"mode": "STRICT"}})
    with pytest.raises(AssertionError, match="unknown mTLS mode"):
        peer_authentication("STRICTER")
    deny = deny_paths("vp0", ["GET"], ["/chain/blocks/*"], name="deny-vp0")
    assert deny["spec"] == {"selector": {"matchLabels": {"app": "vp0"}}, "action": "DENY",
                            "rules": [{"to": [{"operation": {"methods": ["GET"],
                                                             "paths": ["/chain/blocks/*"]}}]}]}
    allow = allow_principals("membersrvc", ["spiffe://td/ns/n/sa/composer"], name="a")
    assert allow["spec"]["action"] == "ALLOW"
    assert allow["spec"]["rules"] == [{"from": [{"source": {
        "principals": ["spiffe://td/ns/n/sa/composer"]}}]}]


def test_a_caller_outside_the_mesh_asks_not_to_be_injected_nor_captured() -> None:
    outside = {o["kind"]: o for o in Caller("outside", in_mesh=False).objects()}
    template = outside["Deployment"]["spec"]["template"]
    assert template["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert template["spec"]["serviceAccountName"] == "outside"
    # istio-cni leaves it out of an ambient namespace too (Istio's opt-out label).
    assert template["metadata"]["labels"]["istio.io/dataplane-mode"] == "none"
    inside = {o["kind"]: o for o in Caller("client", in_mesh=True).objects()}
    assert inside["Deployment"]["spec"]["template"]["metadata"]["annotations"] == {}
    assert "istio.io/dataplane-mode" not in \
        inside["Deployment"]["spec"]["template"]["metadata"]["labels"]
    json.dumps(outside)  # plain data, applied as it is


def test_outcomes() -> None:
    assert refused(Answer(None, error="ConnectionResetError: reset"))
    rbac = Answer(403, "RBAC: access denied")
    assert denied(rbac) and not served(rbac)
    assert served(Answer(404, "not found")) and not refused(Answer(200, "ok"))
    assert not denied(Answer(403, "forbidden by the app"))

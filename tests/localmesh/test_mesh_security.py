"""Istio's security on localmesh (issue 12), proven with kubectl and plain HTTP only.

The workloads of manifests/ run in a mesh-enabled namespace of a fresh localmesh; then
each promise is checked as one checks a real cluster: the mesh CA's Secret and the
published root through the API; the sidecars' config dumps through ``kubectl exec …
pilot-agent request GET config_dump`` (transport socket matches, SDS secrets, the
workload certificate and its chain to ``istio-ca-root-cert``); Prometheus through
services/proxy (mTLS hops and principals in ``istio_requests_total``); plaintext from this
process, which sits on loopback like a client outside the mesh; PeerAuthentication,
AuthorizationPolicy, DestinationRule and the mesh config applied with ``kubectl`` and
observed through traffic; and certificate rotation with a short ``SECRET_TTL``.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from cryptography import x509

from localmesh.cli import Handle
from tests.support import REPO, boot_localmesh, needs_prometheus, poll, require_kubectl

pytestmark = needs_prometheus

GATEWAY_PRINCIPAL = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handle]:
    with boot_localmesh(tmp_path_factory.mktemp("security"), mesh=True) as handle:
        yield handle


def kubectl(mesh: Handle, *args: str, stdin: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
    """kubectl against the mesh; ``check`` fails the test with kubectl's stderr."""
    r = subprocess.run([require_kubectl(), "--kubeconfig", str(mesh.kubeconfig), *args],
                       input=stdin, capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
    return r


def apply(mesh: Handle, ns: str, doc: dict) -> None:
    kubectl(mesh, "apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(doc))


@pytest.fixture(scope="module")
def ns(mesh: Handle) -> str:
    """The blockchain applied with kubectl into a namespace labelled for injection."""
    name = f"sec-{uuid.uuid4().hex[:6]}"
    kubectl(mesh, "create", "namespace", name)
    kubectl(mesh, "label", "namespace", name, "istio-injection=enabled")
    for f in ("composer", "vp0", "membersrvc", "ingress"):
        kubectl(mesh, "apply", "-n", name, "-f", str(REPO / "manifests" / f"{f}.yaml"))
    for d in ("composer", "vp0", "membersrvc"):
        kubectl(mesh, "rollout", "status", "-n", name, f"deployment/{d}", "--timeout=60s")
    return name


def pod(mesh: Handle, ns: str, app: str) -> str:
    """The name of the running pod of ``app`` (the newest, during a rollout)."""
    out = json.loads(kubectl(mesh, "get", "pods", "-n", ns, "-l", f"app={app}",
                             "-o", "json").stdout)
    live = [p for p in out["items"] if not p["metadata"].get("deletionTimestamp")
            and p["status"].get("phase") == "Running"]
    assert live, f"no running pod of {app}"
    return max(live, key=lambda p: p["metadata"]["creationTimestamp"])["metadata"]["name"]


def config_dump(mesh: Handle, ns: str, pod_name: str, query: str = "") -> dict:
    out = kubectl(mesh, "exec", "-n", ns, pod_name, "-c", "istio-proxy", "--",
                  "pilot-agent", "request", "GET", f"config_dump{query}").stdout
    return json.loads(out)


def dump_section(dump: dict, kind: str) -> dict:
    return next(c for c in dump["configs"] if c["@type"].endswith(kind))


def cluster_of(dump: dict, name: str) -> dict:
    for entry in dump_section(dump, ".ClustersConfigDump").get("dynamic_active_clusters", []):
        if entry["cluster"]["name"] == name:
            return entry["cluster"]
    raise AssertionError(f"no cluster {name} in the dump")


def workload_certificate(dump: dict) -> list[x509.Certificate]:
    """The chain of SDS secret ``default`` in a config dump (SecretsConfigDump)."""
    secrets = dump_section(dump, ".SecretsConfigDump").get("dynamic_active_secrets", [])
    default = next(s for s in secrets if s["name"] == "default")
    pem = base64.b64decode(default["secret"]["tls_certificate"]["certificate_chain"][
        "inline_bytes"])
    return x509.load_pem_x509_certificates(pem)


def gateway(mesh: Handle) -> str:
    svc = json.loads(kubectl(mesh, "get", "svc", "-n", "istio-system",
                             "istio-ingressgateway", "-o", "json").stdout)
    return f"http://{svc['status']['loadBalancer']['ingress'][0]['ip']}:80"


def get(url: str, timeout: float = 5) -> requests.Response:
    with requests.Session() as s:
        s.trust_env = False
        return s.get(url, timeout=timeout)


def status_of(url: str) -> int | str:
    """The status code, or the name of the failure when the connection is refused/reset."""
    try:
        return get(url, timeout=3).status_code
    except requests.ConnectionError as exc:
        return type(exc).__name__


def prometheus(mesh: Handle, query: str) -> list[dict]:
    path = ("/api/v1/namespaces/istio-system/services/prometheus:9090/proxy/api/v1/query?"
            + urllib.parse.urlencode({"query": query}))
    return json.loads(kubectl(mesh, "get", "--raw", path).stdout)["data"]["result"]


def proxy_metrics(mesh: Handle, ns: str, pod_name: str) -> str:
    """The sidecar's merged Prometheus endpoint (:15020), through pods/proxy."""
    return kubectl(mesh, "get", "--raw", f"/api/v1/namespaces/{ns}/pods/{pod_name}:15020/"
                                         "proxy/stats/prometheus").stdout


# -- the mesh CA and what a real install has ------------------------------------------------
def test_ca_secret_root_configmap_and_mesh_config(mesh: Handle, ns: str) -> None:
    secret = json.loads(kubectl(mesh, "get", "secret", "-n", "istio-system",
                                "istio-ca-secret", "-o", "json").stdout)
    assert secret["type"] == "istio.io/ca-root"
    assert set(secret["data"]) == {"ca-cert.pem", "ca-key.pem", "cert-chain.pem", "key.pem",
                                   "root-cert.pem"}
    root_pem = base64.b64decode(secret["data"]["ca-cert.pem"]).decode()
    root = x509.load_pem_x509_certificate(root_pem.encode())
    assert root.issuer == root.subject, "Istio's self-signed root"
    published = kubectl(mesh, "get", "configmap", "-n", ns, "istio-ca-root-cert", "-o",
                        "jsonpath={.data.root-cert\\.pem}").stdout
    assert published == root_pem
    # A namespace created later gets it too, and a deleted copy comes back.
    later = f"later-{uuid.uuid4().hex[:6]}"
    kubectl(mesh, "create", "namespace", later)
    poll(lambda: kubectl(mesh, "get", "configmap", "-n", later, "istio-ca-root-cert",
                         check=False).returncode == 0, what="istio-ca-root-cert in a new ns")
    kubectl(mesh, "delete", "configmap", "-n", later, "istio-ca-root-cert")
    poll(lambda: kubectl(mesh, "get", "configmap", "-n", later, "istio-ca-root-cert",
                         check=False).returncode == 0, what="istio-ca-root-cert put back")
    kubectl(mesh, "delete", "namespace", later, "--wait=false")

    mesh_config = yaml.safe_load(kubectl(mesh, "get", "configmap", "-n", "istio-system",
                                         "istio", "-o", "jsonpath={.data.mesh}").stdout)
    assert mesh_config["trustDomain"] == "cluster.local"
    assert mesh_config["rootNamespace"] == "istio-system"
    assert mesh_config["enableAutoMtls"] is True
    assert mesh_config["accessLogFile"] == "/dev/stdout"
    assert mesh_config["defaultConfig"]["discoveryAddress"].startswith("istiod.istio-system")
    gw = json.loads(kubectl(mesh, "get", "pods", "-n", "istio-system", "-l",
                            "app=istio-ingressgateway", "-o", "json").stdout)["items"][0]
    assert gw["spec"]["serviceAccountName"] == "istio-ingressgateway-service-account"


def test_sidecar_has_mtls_clusters_inbound_chains_and_sds_secrets(mesh: Handle, ns: str) -> None:
    composer = pod(mesh, ns, "composer")
    dump = config_dump(mesh, ns, composer, "?include_eds")
    vp0 = cluster_of(dump, f"outbound|7050||vp0.{ns}.svc.cluster.local")
    matches = {m["name"]: m for m in vp0["transport_socket_matches"]}
    assert list(matches) == ["tlsMode-istio", "tlsMode-disabled"]
    assert matches["tlsMode-istio"]["match"] == {"tlsMode": "istio"}
    assert matches["tlsMode-disabled"]["transport_socket"]["name"] == \
        "envoy.transport_sockets.raw_buffer"
    ctx = matches["tlsMode-istio"]["transport_socket"]["typed_config"]
    assert ctx["sni"] == f"outbound_.7050_._.vp0.{ns}.svc.cluster.local"
    common = ctx["common_tls_context"]
    assert common["alpn_protocols"] == ["istio-peer-exchange", "istio"]
    assert [s["name"] for s in common["tls_certificate_sds_secret_configs"]] == ["default"]
    sds = common["tls_certificate_sds_secret_configs"][0]["sds_config"]["api_config_source"]
    assert sds["grpc_services"] == [{"envoy_grpc": {"cluster_name": "sds-grpc"}}]
    combined = common["combined_validation_context"]
    assert combined["validation_context_sds_secret_config"]["name"] == "ROOTCA"
    # Each workload runs as its own ServiceAccount (manifests/): vp0's endpoints are vp0's.
    assert combined["default_validation_context"]["match_subject_alt_names"] == [
        {"exact": f"spiffe://cluster.local/ns/{ns}/sa/vp0"}]
    # gRPC (HTTP/2) clusters also offer h2.
    grpc_ctx = cluster_of(dump, f"outbound|7054||membersrvc.{ns}.svc.cluster.local")[
        "transport_socket_matches"][0]["transport_socket"]["typed_config"]
    assert grpc_ctx["common_tls_context"]["alpn_protocols"] == [
        "istio-peer-exchange", "istio", "h2"]
    # The injected pods' endpoints say tlsMode: istio.
    eds = dump_section(dump, ".EndpointsConfigDump")["dynamic_endpoint_configs"]
    vp0_eds = next(e["endpoint_config"] for e in eds if e["endpoint_config"]["cluster_name"]
                   == f"outbound|7050||vp0.{ns}.svc.cluster.local")
    lb = vp0_eds["endpoints"][0]["lb_endpoints"][0]
    assert lb["metadata"]["filter_metadata"]["envoy.transport_socket_match"] == {
        "tlsMode": "istio"}
    # Inbound under PERMISSIVE: a TLS chain with Istio's ALPNs and a plaintext one.
    listeners = dump_section(dump, ".ListenersConfigDump")["dynamic_listeners"]
    inbound = next(entry["active_state"]["listener"] for entry in listeners
                   if entry["name"] == "virtualInbound")
    assert "envoy.filters.listener.tls_inspector" in [f["name"] for f in
                                                      inbound["listener_filters"]]
    chains = [c for c in inbound["filter_chains"]
              if c["filter_chain_match"].get("destination_port") == 8080]
    by_transport = {c["filter_chain_match"]["transport_protocol"]: c for c in chains}
    assert set(by_transport) == {"tls", "raw_buffer"}
    assert "istio-peer-exchange" in by_transport["tls"]["filter_chain_match"][
        "application_protocols"]
    downstream = by_transport["tls"]["transport_socket"]["typed_config"]
    assert downstream["require_client_certificate"] is True
    assert "transport_socket" not in by_transport["raw_buffer"]
    # The bootstrap's sds-grpc cluster is the workload socket, as in Istio.
    boot = dump_section(dump, ".BootstrapConfigDump")["bootstrap"]
    sds_cluster = next(c for c in boot["static_resources"]["clusters"]
                       if c["name"] == "sds-grpc")
    assert sds_cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"][
        "address"]["pipe"]["path"] == "./var/run/secrets/workload-spiffe-uds/socket"
    # SDS served both secrets; the certificate is the pod's SPIFFE ID from the mesh root.
    secrets = {s["name"] for s in dump_section(dump, ".SecretsConfigDump")[
        "dynamic_active_secrets"]}
    assert {"default", "ROOTCA"} <= secrets
    chain = workload_certificate(dump)
    san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"spiffe://cluster.local/ns/{ns}/sa/composer"]
    root = x509.load_pem_x509_certificate(kubectl(
        mesh, "get", "configmap", "-n", ns, "istio-ca-root-cert", "-o",
        "jsonpath={.data.root-cert\\.pem}").stdout.encode())
    chain[0].verify_directly_issued_by(root)


def test_ingress_to_composer_is_mutual_tls_in_prometheus(mesh: Handle, ns: str) -> None:
    base = gateway(mesh)
    for _ in range(3):
        assert get(base + "/login").status_code == 200
    q = (f'istio_requests_total{{reporter="destination",destination_service_namespace="{ns}",'
         f'destination_service_name="composer",source_workload="istio-ingressgateway",'
         f'connection_security_policy="mutual_tls",source_principal="{GATEWAY_PRINCIPAL}"}}')
    result = poll(lambda: prometheus(mesh, q), timeout=20,
                  what="ingress → composer counted as mutual_tls with the gateway's principal")
    metric = result[0]["metric"]
    assert metric["destination_principal"] == f"spiffe://cluster.local/ns/{ns}/sa/composer"


def test_strict_peer_authentication_refuses_plaintext(mesh: Handle, ns: str) -> None:
    svc = json.loads(kubectl(mesh, "get", "svc", "-n", ns, "composer", "-o", "json").stdout)
    plaintext = f"http://{svc['spec']['clusterIP']}:8080/login"
    assert status_of(plaintext) == 200, "PERMISSIVE (the default) accepts plaintext"
    apply(mesh, ns, {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                     "metadata": {"name": "default"}, "spec": {"mtls": {"mode": "STRICT"}}})
    try:
        refused = poll(lambda: (s := status_of(plaintext)) != 200 and s, timeout=10,
                       what="plaintext to composer refused under STRICT")
        assert refused == "ConnectionError", refused
        # Mesh traffic (mTLS from the gateway) still flows.
        assert get(gateway(mesh) + "/login").status_code == 200
        assert get(gateway(mesh) + "/chain/blocks/0").status_code == 200
    finally:
        kubectl(mesh, "delete", "peerauthentication", "-n", ns, "default")
    poll(lambda: status_of(plaintext) == 200, timeout=10, what="plaintext back without STRICT")


def test_deny_policy_answers_403_until_deleted(mesh: Handle, ns: str) -> None:
    url = gateway(mesh) + "/chain/blocks/0"
    assert get(url).status_code == 200
    apply(mesh, ns, {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                     "metadata": {"name": "deny-blocks"},
                     "spec": {"selector": {"matchLabels": {"app": "vp0"}}, "action": "DENY",
                              "rules": [{"to": [{"operation": {
                                  "paths": ["/chain/blocks/*"]}}]}]}})
    # (A 403 Response is falsy: poll returns its body instead.)
    denied = poll(lambda: (r := get(url)).status_code == 403 and r.text, timeout=10,
                  what="/chain/blocks/0 denied by the DENY policy")
    assert denied == "RBAC: access denied"
    assert get(gateway(mesh) + "/login").status_code == 200, "other paths still allowed"
    # vp0's sidecar counts the denied requests with their 403 and the gateway's identity.
    vp0 = pod(mesh, ns, "vp0")

    def denied_counted() -> list[str]:
        return [line for line in proxy_metrics(mesh, ns, vp0).splitlines()
                if line.startswith("istio_requests_total{") and 'response_code="403"' in line
                and 'reporter="destination"' in line
                and f'source_principal="{GATEWAY_PRINCIPAL}"' in line]

    poll(denied_counted, what="vp0's sidecar counts the denied requests as 403")
    kubectl(mesh, "delete", "authorizationpolicy", "-n", ns, "deny-blocks")
    poll(lambda: get(url).status_code == 200, timeout=10, what="200 again once deleted")


def _requests(metrics: str, principal: str, grpc_status: str) -> float:
    """membersrvc's inbound requests from ``principal`` with a gRPC status, from its
    sidecar's istio_requests_total."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("istio_requests_total{") and 'reporter="destination"' in line \
                and f'source_principal="{principal}"' in line \
                and f'grpc_response_status="{grpc_status}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_allow_policy_admits_only_its_principal(mesh: Handle, ns: str) -> None:
    """membersrvc admits only vp0's identity: vp0's periodic enrolments pass, composer's
    (on /login, as ServiceAccount ``composer``) are refused with PERMISSION_DENIED."""
    vp0 = f"spiffe://cluster.local/ns/{ns}/sa/vp0"
    composer = f"spiffe://cluster.local/ns/{ns}/sa/composer"
    apply(mesh, ns, {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                     "metadata": {"name": "membersrvc-vp0-only"},
                     "spec": {"selector": {"matchLabels": {"app": "membersrvc"}},
                              "action": "ALLOW", "rules": [{"from": [{"source": {
                                  "principals": [f"cluster.local/ns/{ns}/sa/vp0"]}}]}]}})
    membersrvc = pod(mesh, ns, "membersrvc")
    base = gateway(mesh)
    try:
        before = proxy_metrics(mesh, ns, membersrvc)
        denied0, admitted0 = _requests(before, composer, "7"), _requests(before, vp0, "0")

        def refused_and_admitted() -> bool:
            assert get(base + "/login").status_code == 200  # composer enrols on /login
            now = proxy_metrics(mesh, ns, membersrvc)
            return _requests(now, composer, "7") > denied0 and \
                _requests(now, vp0, "0") > admitted0

        poll(refused_and_admitted, timeout=20, interval=0.5,
             what="composer's enrolments refused (7) and vp0's admitted (0) at membersrvc")
    finally:
        kubectl(mesh, "delete", "authorizationpolicy", "-n", ns, "membersrvc-vp0-only")


def test_gateway_api_gateway_is_a_mesh_identity_and_takes_target_ref_policies(
        mesh: Handle, ns: str) -> None:
    """Istio's automated deployment of a Gateway API Gateway runs as its own ServiceAccount,
    reaches composer over mTLS with that identity, and an AuthorizationPolicy whose
    ``targetRefs`` names the Gateway applies there and nowhere else."""
    kubectl(mesh, "apply", "-n", ns, "-f", str(REPO / "manifests" / "overlays" /
                                               "gateway-api.yaml"))
    deployed = "blockchain-gateway-istio"
    kubectl(mesh, "rollout", "status", "-n", ns, f"deployment/{deployed}", "--timeout=60s")
    svc = poll(lambda: json.loads(kubectl(mesh, "get", "svc", "-n", ns, deployed, "-o",
                                          "json").stdout)["status"]["loadBalancer"]["ingress"],
               what="the Gateway's LoadBalancer address")
    base = f"http://{svc[0]['ip']}:80"
    poll(lambda: get(base + "/login").status_code == 200, timeout=20,
         what="/login through the Gateway API gateway")
    principal = f"spiffe://cluster.local/ns/{ns}/sa/{deployed}"
    composer = pod(mesh, ns, "composer")
    poll(lambda: any(f'source_principal="{principal}"' in line and
                     'connection_security_policy="mutual_tls"' in line
                     for line in proxy_metrics(mesh, ns, composer).splitlines()),
         what="composer counts the Gateway's requests as mTLS from its identity")
    apply(mesh, ns, {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                     "metadata": {"name": "gateway-deny-login"},
                     "spec": {"targetRefs": [{"group": "gateway.networking.k8s.io",
                                              "kind": "Gateway",
                                              "name": "blockchain-gateway"}],
                              "action": "DENY",
                              "rules": [{"to": [{"operation": {"paths": ["/login"]}}]}]}})
    try:
        poll(lambda: get(base + "/login").status_code == 403, timeout=10,
             what="/login denied at the Gateway API gateway")
        assert get(gateway(mesh) + "/login").status_code == 200, "not at the Istio ingress"
        assert get(base + "/chain/blocks/0").status_code == 200, "other paths pass"
    finally:
        kubectl(mesh, "delete", "authorizationpolicy", "-n", ns, "gateway-deny-login")
        kubectl(mesh, "delete", "-n", ns, "-f", str(REPO / "manifests" / "overlays" /
                                                    "gateway-api.yaml"))


def test_destination_rule_and_mesh_config_override_auto_mtls(mesh: Handle, ns: str) -> None:
    gw = pod(mesh, "istio-system", "istio-ingressgateway")
    name = f"outbound|8080||composer.{ns}.svc.cluster.local"

    def composer_cluster() -> dict:
        return cluster_of(config_dump(mesh, "istio-system", gw), name)

    assert "transport_socket_matches" in composer_cluster()
    apply(mesh, ns, {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                     "metadata": {"name": "composer-tls"},
                     "spec": {"host": "composer", "trafficPolicy": {
                         "tls": {"mode": "DISABLE"},
                         "portLevelSettings": [{"port": {"number": 8080},
                                                "tls": {"mode": "ISTIO_MUTUAL"}}]}}})
    try:
        forced = poll(lambda: (c := composer_cluster()).get("transport_socket") and c,
                      what="ISTIO_MUTUAL of the port-level setting on the gateway's cluster")
        assert "transport_socket_matches" not in forced
        assert forced["transport_socket"]["typed_config"]["sni"] == \
            f"outbound_.8080_._.composer.{ns}.svc.cluster.local"
        apply(mesh, ns, {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                         "metadata": {"name": "composer-tls"},
                         "spec": {"host": "composer", "trafficPolicy": {
                             "tls": {"mode": "DISABLE"}}}})
        poll(lambda: not {"transport_socket", "transport_socket_matches"} & set(
            composer_cluster()), what="DISABLE: no TLS on the gateway's cluster")
        assert get(gateway(mesh) + "/login").status_code == 200, "plaintext under PERMISSIVE"
    finally:
        kubectl(mesh, "delete", "destinationrule", "-n", ns, "composer-tls")
    poll(lambda: "transport_socket_matches" in composer_cluster(), what="auto mTLS back")

    # Auto mTLS off in the mesh config, as a user would edit ConfigMap istio.
    cm = json.loads(kubectl(mesh, "get", "configmap", "-n", "istio-system", "istio", "-o",
                            "json").stdout)
    mesh_doc = yaml.safe_load(cm["data"]["mesh"])
    off = dict(cm)
    off["data"] = {**cm["data"], "mesh": yaml.safe_dump({**mesh_doc, "enableAutoMtls": False})}
    kubectl(mesh, "replace", "-f", "-", stdin=json.dumps(off))
    try:
        poll(lambda: "transport_socket_matches" not in composer_cluster(),
             what="no auto mTLS once enableAutoMtls is false")
    finally:
        restored = json.loads(kubectl(mesh, "get", "configmap", "-n", "istio-system",
                                      "istio", "-o", "json").stdout)
        restored["data"]["mesh"] = cm["data"]["mesh"]
        kubectl(mesh, "replace", "-f", "-", stdin=json.dumps(restored))
    poll(lambda: "transport_socket_matches" in composer_cluster(), what="auto mTLS again")


def test_workload_certificate_rotates_before_it_expires(mesh: Handle, ns: str) -> None:
    """With ``SECRET_TTL=8s`` (proxyMetadata in ``proxy.istio.io/config``), pilot-agent
    re-issues at half the lifetime and pushes the new certificate over SDS."""
    patch = {"spec": {"template": {"metadata": {"annotations": {
        "proxy.istio.io/config": json.dumps({"proxyMetadata": {"SECRET_TTL": "8s"}})}}}}}
    kubectl(mesh, "patch", "deployment", "-n", ns, "composer", "--type", "merge", "-p",
            json.dumps(patch))
    kubectl(mesh, "rollout", "status", "-n", ns, "deployment/composer", "--timeout=60s")
    composer = pod(mesh, ns, "composer")
    first = poll(lambda: workload_certificate(config_dump(mesh, ns, composer))[0],
                 what="composer's first workload certificate")
    lifetime = first.not_valid_after_utc - first.not_valid_before_utc
    assert lifetime.total_seconds() == pytest.approx(8, abs=1), lifetime
    base = gateway(mesh)
    answers: list[int] = []

    def rotated() -> x509.Certificate | None:
        answers.append(get(base + "/login").status_code)
        leaf = workload_certificate(config_dump(mesh, ns, composer))[0]
        return leaf if leaf.serial_number != first.serial_number else None

    second = poll(rotated, timeout=15, interval=0.2, what="a new certificate over SDS")
    seen = time.time()
    assert seen < first.not_valid_after_utc.timestamp(), "rotated before the old one expired"
    assert second.not_valid_before_utc >= first.not_valid_before_utc
    assert set(answers) == {200}, f"traffic through the rotation: {answers}"
    for _ in range(3):
        assert get(base + "/login").status_code == 200


def test_proxies_log_no_tls_errors(mesh: Handle, ns: str) -> None:
    """Every sidecar's Envoy took its TLS config: no xDS rejection in istiod's sync
    status (a bad UpstreamTlsContext or RBAC filter would be NACKed)."""
    out = kubectl(mesh, "get", "--raw", "/api/v1/namespaces/istio-system/services/"
                                        "istiod:15014/proxy/debug/syncz").stdout
    nacked = {e["proxy"]: {k: v for k, v in e.items() if k.endswith("_nacked")}
              for e in json.loads(out) if any(k.endswith("_nacked") for k in e)}
    assert not nacked, nacked


def test_kubelet_token_is_an_istio_ca_token(mesh: Handle, ns: str, tmp_path: Path) -> None:
    """The projected istio-token is a real TokenRequest token (audience istio-ca): it
    does not authenticate to the API server, whose audience it is not."""
    composer = pod(mesh, ns, "composer")
    # No mount namespace: the volume is where the kubelet says (docs/localmesh.md).
    token = kubectl(mesh, "exec", "-n", ns, composer, "-c", "istio-proxy", "--", "sh", "-c",
                    'cat "$LOCALMESH_MOUNT_VAR_RUN_SECRETS_TOKENS/istio-token"')
    assert token.stdout.strip() and token.stdout.strip() != "localmesh-projected-token"
    cluster = yaml.safe_load(Path(mesh.kubeconfig).read_text())["clusters"][0]["cluster"]
    ca = tmp_path / "ca.crt"
    ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    with requests.Session() as s:
        s.trust_env = False
        r = s.get(f"{cluster['server']}/api", verify=str(ca), timeout=5,
                  headers={"Authorization": f"Bearer {token.stdout.strip()}"})
    assert r.status_code == 401

"""``localmesh up --mesh ambient`` through kubectl, curl-level HTTP and the official client
(issue 15's "Done when"): Istio's ambient install, pods enrolled without sidecars, ingress,
ztunnel's config dump and metrics, HBONE really inside mutual TLS with the caller's identity
in the metrics, a waypoint routing and counting requests, and a pod leaving the mesh when
its namespace's label goes.

Every wait is a bounded poll; every request loop is bounded in count.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client, config
from kubernetes.stream import portforward

from localmesh.cli import Handle
from localmesh.shape import Shape
from tests.support import REPO, boot_localmesh, needs_prometheus, poll, require_kubectl

pytestmark = needs_prometheus

ISTIO = "istio-system"
REDIRECTION = "ambient.istio.io/redirection"


@pytest.fixture(scope="module")
def ambient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handle]:
    with boot_localmesh(tmp_path_factory.mktemp("ambient"), mesh=True,
                        shape=Shape(mesh="ambient")) as handle:
        yield handle


@pytest.fixture(scope="module")
def core(ambient: Handle) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(config_file=str(ambient.kubeconfig))
    try:
        yield client.CoreV1Api(api)
    finally:
        api.close()


def kubectl(ambient: Handle, *args: str, check: bool = True) -> str:
    r = subprocess.run([require_kubectl(), "--kubeconfig", str(ambient.kubeconfig), *args],
                       capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {r.stderr}")
    return r.stdout


def deploy(ambient: Handle, labels: dict[str, str]) -> str:
    """A namespace with ``labels`` and the project's manifests, their pods Ready."""
    ns = f"amb-{uuid.uuid4().hex[:6]}"
    kubectl(ambient, "create", "namespace", ns)
    kubectl(ambient, "label", "namespace", ns, *(f"{k}={v}" for k, v in labels.items()))
    if labels.get("istio.io/use-waypoint"):
        kubectl(ambient, "apply", "-n", ns, "-f", str(REPO / "manifests/overlays/waypoint.yaml"))
        poll(lambda: "True" in kubectl(ambient, "get", "gateway", "-n", ns, "waypoint", "-o",
                                       "jsonpath={.status.conditions[?(@.type=="
                                       "'Programmed')].status}", check=False),
             what="the waypoint Programmed", timeout=60)
    for name in ("composer", "vp0", "membersrvc"):
        kubectl(ambient, "apply", "-n", ns, "-f", str(REPO / "manifests" / f"{name}.yaml"))
    # The namespace's own host on the shared gateway, so namespaces do not share paths.
    docs = list(yaml.safe_load_all((REPO / "manifests/ingress.yaml").read_text()))
    for doc in docs:
        if doc["kind"] == "Ingress":
            for rule in doc["spec"]["rules"]:
                rule["host"] = host(ns)
    subprocess.run([require_kubectl(), "--kubeconfig", str(ambient.kubeconfig), "apply", "-n",
                    ns, "-f", "-"], input=yaml.safe_dump_all(docs), text=True, check=True,
                   capture_output=True, timeout=60)
    for app in ("composer", "vp0", "membersrvc"):
        kubectl(ambient, "wait", "-n", ns, "--for=condition=Available", f"deployment/{app}",
                "--timeout=60s")
    return ns


def pods(ambient: Handle, ns: str) -> list[dict]:
    return json.loads(kubectl(ambient, "get", "pods", "-n", ns, "-o", "json"))["items"]


def ingress(ambient: Handle) -> str:
    ip = kubectl(ambient, "get", "svc", "-n", ISTIO, "istio-ingressgateway", "-o",
                 "jsonpath={.status.loadBalancer.ingress[0].ip}")
    return f"http://{ip}:80"


def host(ns: str) -> str:
    return f"{ns}.ambient.test"


def get(url: str, hostname: str) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"Host": hostname})
    try:
        with opener.open(request, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def send(ambient: Handle, ns: str, path: str, count: int) -> None:
    """``count`` requests through the ingress gateway, each answered 200 (the routes reach
    the gateway within a poll: the first may still be pushed)."""
    base = ingress(ambient)
    poll(lambda: get(base + path, host(ns)) == 200, what=f"{path} answers 200", timeout=20)
    codes = [get(base + path, host(ns)) for _ in range(count)]
    assert codes == [200] * count, codes


def prometheus(ambient: Handle, promql: str) -> list[dict]:
    raw = kubectl(ambient, "get", "--raw", f"/api/v1/namespaces/{ISTIO}/services/"
                  f"prometheus:9090/proxy/api/v1/query?query={urllib.parse.quote(promql)}")
    return list(json.loads(raw)["data"]["result"])


def ztunnel_dump(ambient: Handle, core: client.CoreV1Api) -> dict:
    """ztunnel's admin config_dump (its pod's localhost:15000), through a port-forward as
    istioctl ztunnel-config reads it."""
    pod = json.loads(kubectl(ambient, "get", "pods", "-n", ISTIO, "-l", "app=ztunnel", "-o",
                             "json"))["items"][0]["metadata"]["name"]
    forward = portforward(core.connect_get_namespaced_pod_portforward, pod, ISTIO,
                          ports="15000")
    try:
        sock = forward.socket(15000)
        sock.settimeout(10)
        sock.sendall(b"GET /config_dump HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        for _ in range(10_000):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        forward.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0], head[:200]
    return dict(json.loads(body))


def workloads_of(dump: dict, ns: str) -> dict[str, str]:
    return {w["name"]: w["protocol"] for w in dump["workloads"].values()
            if w["namespace"] == ns}


@pytest.fixture(scope="module")
def mesh_ns(ambient: Handle) -> str:
    return deploy(ambient, {"istio.io/dataplane-mode": "ambient"})


def test_the_ambient_profile_installs_ztunnel_and_istio_cni(ambient: Handle) -> None:
    names = kubectl(ambient, "get", "daemonsets", "-n", ISTIO, "-o",
                    "jsonpath={.items[*].metadata.name}").split()
    assert sorted(names) == ["istio-cni-node", "ztunnel"]
    assert "istiod" in kubectl(ambient, "get", "deploy", "-n", ISTIO)
    ready = kubectl(ambient, "get", "ds", "ztunnel", "-n", ISTIO, "-o",
                    "jsonpath={.status.numberReady}")
    assert ready == "1"
    assert "istio.io/mesh-controller" in kubectl(ambient, "get", "gatewayclass",
                                                 "istio-waypoint", "-o", "yaml")


def test_enrolled_pods_have_no_sidecar_and_carry_the_redirection(ambient: Handle,
                                                                  mesh_ns: str) -> None:
    found = pods(ambient, mesh_ns)
    assert len(found) == 3
    for p in found:
        names = [c["name"] for c in p["spec"]["containers"] +
                 (p["spec"].get("initContainers") or [])]
        assert "istio-proxy" not in names, names
        assert p["metadata"]["annotations"][REDIRECTION] == "enabled"


def test_login_through_the_ingress_and_ztunnel_counts_it(ambient: Handle, mesh_ns: str,
                                                         core: client.CoreV1Api) -> None:
    send(ambient, mesh_ns, "/login", 5)
    dump = ztunnel_dump(ambient, core)
    assert workloads_of(dump, mesh_ns) == {p["metadata"]["name"]: "HBONE"
                                            for p in pods(ambient, mesh_ns)}
    hosts = {s["hostname"] for s in dump["services"].values()}
    assert f"composer.{mesh_ns}.svc.cluster.local" in hosts
    assert any(c["identity"].endswith(f"/ns/{mesh_ns}/sa/composer")
               and c["state"] == "Available" for c in dump["certificates"])
    query = (f'sum(istio_tcp_connections_opened_total{{reporter="destination",'
             f'destination_workload="composer",destination_workload_namespace="{mesh_ns}",'
             f'app="ztunnel"}})')
    poll(lambda: prometheus(ambient, query), what="Prometheus counts ztunnel's connections "
         "to composer", timeout=30, interval=0.5)


def test_the_peer_identity_in_ztunnel_metrics_is_the_callers(ambient: Handle,
                                                              mesh_ns: str) -> None:
    """composer calls vp0 on every /login: vp0's ztunnel saw composer's certificate."""
    send(ambient, mesh_ns, "/login", 2)
    query = (f'istio_tcp_connections_opened_total{{reporter="destination",'
             f'source_workload="composer",destination_workload="vp0",'
             f'destination_workload_namespace="{mesh_ns}"}}')
    series = poll(lambda: prometheus(ambient, query), what="composer → vp0 in ztunnel's "
                  "metrics", timeout=30, interval=0.5)
    labels = series[0]["metric"]
    assert labels["source_principal"] == f"spiffe://cluster.local/ns/{mesh_ns}/sa/composer"
    assert labels["destination_principal"] == f"spiffe://cluster.local/ns/{mesh_ns}/sa/vp0"
    assert labels["connection_security_policy"] == "mutual_tls"


def test_ztunnel_refuses_plaintext_and_clients_without_a_mesh_certificate(
        ambient: Handle, mesh_ns: str) -> None:
    """HBONE on 15008 is HTTP/2 CONNECT inside mutual TLS: a plaintext CONNECT, and a TLS
    client without a certificate from the mesh, get no tunnel."""
    vp0 = next(p for p in pods(ambient, mesh_ns) if p["metadata"]["labels"]["app"] == "vp0")
    ip = vp0["status"]["podIP"]
    with socket.create_connection((ip, 15008), timeout=5) as plain:
        plain.sendall(f"CONNECT {ip}:7050 HTTP/1.1\r\nHost: {ip}:7050\r\n\r\n".encode())
        answer = b""
        for _ in range(100):
            try:
                chunk = plain.recv(4096)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            answer += chunk
    assert b"200" not in answer and b"HTTP/1.1" not in answer, answer[:200]
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((ip, 15008), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            with context.wrap_socket(raw) as tls:
                # TLS 1.3: the server asks for the certificate after the handshake; the
                # refusal arrives on the first read.
                tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                if not tls.recv(1024):
                    raise ConnectionResetError("closed without a tunnel")


def test_a_waypoint_routes_and_counts_the_services_requests(ambient: Handle) -> None:
    ns = deploy(ambient, {"istio.io/dataplane-mode": "ambient",
                          "istio.io/use-waypoint": "waypoint"})
    pod = kubectl(ambient, "get", "pods", "-n", ns, "-l",
                  "gateway.networking.k8s.io/gateway-name=waypoint", "-o",
                  "jsonpath={.items[0].metadata.name}")
    dump = json.loads(kubectl(ambient, "exec", "-n", ns, pod, "-c", "istio-proxy", "--",
                              "pilot-agent", "request", "GET", "config_dump"))
    listeners = {d["name"] for c in dump["configs"] for d in c.get("dynamic_listeners", [])}
    assert {"connect_terminate", "main_internal", "connect_originate"} <= listeners
    clusters = {d["cluster"]["name"] for c in dump["configs"]
                for d in c.get("dynamic_active_clusters", [])}
    assert f"inbound-vip|8080|http|composer.{ns}.svc.cluster.local" in clusters
    send(ambient, ns, "/login", 3)  # composer → vp0 goes through the waypoint
    query = (f'sum(istio_requests_total{{reporter="waypoint",destination_workload="vp0",'
             f'destination_workload_namespace="{ns}",source_workload="composer"}})')
    poll(lambda: prometheus(ambient, query), what="the waypoint's requests in Prometheus",
         timeout=30, interval=0.5)


def test_removing_the_label_takes_the_pods_out_and_back(ambient: Handle,
                                                        core: client.CoreV1Api) -> None:
    ns = deploy(ambient, {"istio.io/dataplane-mode": "ambient"})
    kubectl(ambient, "label", "namespace", ns, "istio.io/dataplane-mode-")

    def out() -> bool:
        return all(REDIRECTION not in (p["metadata"].get("annotations") or {})
                   for p in pods(ambient, ns))

    poll(out, what="istio-cni removes the redirection annotation", timeout=20)
    poll(lambda: set(workloads_of(ztunnel_dump(ambient, core), ns).values()) == {"TCP"},
         what="ztunnel sees the namespace's workloads as plain TCP", timeout=20)
    send(ambient, ns, "/login", 3)  # outside the mesh, the pods still serve
    kubectl(ambient, "label", "namespace", ns, "istio.io/dataplane-mode=ambient")
    poll(lambda: set(workloads_of(ztunnel_dump(ambient, core), ns).values()) == {"HBONE"},
         what="the pods back in the mesh", timeout=20)


def test_under_strict_mtls_ingress_goes_over_hbone_and_plaintext_is_refused(
        ambient: Handle) -> None:
    """The ambient profile's gateway speaks HBONE (``ENABLE_HBONE``): with a STRICT
    PeerAuthentication, /login through the ingress still answers, composer's ztunnel counts
    the hop as mutual TLS from the gateway's identity, and a plaintext client is cut."""
    ns = deploy(ambient, {"istio.io/dataplane-mode": "ambient"})
    strict = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
              "metadata": {"name": "default", "namespace": ns},
              "spec": {"mtls": {"mode": "STRICT"}}}
    subprocess.run([require_kubectl(), "--kubeconfig", str(ambient.kubeconfig), "apply", "-f",
                    "-"], input=json.dumps(strict), text=True, check=True,
                   capture_output=True, timeout=60)
    composer = next(p for p in pods(ambient, ns) if p["metadata"]["labels"]["app"] == "composer")
    ip = composer["status"]["podIP"]

    def plaintext_answered() -> bool:
        try:
            with socket.create_connection((ip, 8080), timeout=5) as plain:
                plain.sendall(b"GET /login HTTP/1.1\r\nHost: composer\r\n"
                              b"Connection: close\r\n\r\n")
                return plain.recv(1024).startswith(b"HTTP/1.1")
        except OSError:  # refused, reset or timed out: no answer
            return False

    poll(lambda: not plaintext_answered(), what="ztunnel refuses plaintext to composer",
         timeout=20, interval=0.5)
    send(ambient, ns, "/login", 3)
    gateway = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
    query = (f'istio_tcp_connections_opened_total{{reporter="destination",'
             f'destination_workload="composer",destination_workload_namespace="{ns}",'
             f'source_principal="{gateway}"}}')
    series = poll(lambda: prometheus(ambient, query), what="the gateway's HBONE hop to "
                  "composer in ztunnel's metrics", timeout=30, interval=0.5)
    assert {s["metric"]["connection_security_policy"] for s in series} == {"mutual_tls"}


def test_a_sidecar_beside_reaches_an_ambient_service_over_hbone_under_strict(
        ambient: Handle) -> None:
    """The ambient profile keeps injection: an injected composer in a sidecar namespace
    calls vp0 in a STRICT ambient namespace; its sidecar tunnels over HBONE (a plaintext
    hop would be cut), and vp0's ztunnel counts it as mutual TLS from composer's identity."""
    amb = deploy(ambient, {"istio.io/dataplane-mode": "ambient"})
    strict = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
              "metadata": {"name": "default", "namespace": amb},
              "spec": {"mtls": {"mode": "STRICT"}}}
    subprocess.run([require_kubectl(), "--kubeconfig", str(ambient.kubeconfig), "apply", "-f",
                    "-"], input=json.dumps(strict), text=True, check=True,
                   capture_output=True, timeout=60)
    side = f"side-{uuid.uuid4().hex[:6]}"
    kubectl(ambient, "create", "namespace", side)
    kubectl(ambient, "label", "namespace", side, "istio-injection=enabled")
    kubectl(ambient, "apply", "-n", side, "-f", str(REPO / "manifests" / "composer.yaml"))
    kubectl(ambient, "wait", "-n", side, "--for=condition=Available", "deployment/composer",
            "--timeout=60s")
    (pod,) = pods(ambient, side)
    assert "istio-proxy" in [c["name"] for c in pod["spec"]["containers"] +
                             (pod["spec"].get("initContainers") or [])]
    fetch = ("import urllib.request\n"
             f"r = urllib.request.urlopen('http://vp0.{amb}:7050/chain/blocks/0', timeout=5)\n"
             "print(r.status)")

    def answered() -> bool:
        return kubectl(ambient, "exec", "-n", side, pod["metadata"]["name"], "-c", "composer",
                       "--", "python3", "-c", fetch, check=False).strip() == "200"

    poll(answered, what="the sidecar's request to vp0 answered", timeout=30, interval=0.5)
    query = (f'istio_tcp_connections_opened_total{{reporter="destination",'
             f'destination_workload="vp0",destination_workload_namespace="{amb}",'
             f'source_principal="spiffe://cluster.local/ns/{side}/sa/composer"}}')
    series = poll(lambda: prometheus(ambient, query), what="the sidecar's HBONE hop in "
                  "ztunnel's metrics", timeout=30, interval=0.5)
    assert {s["metric"]["connection_security_policy"] for s in series} == {"mutual_tls"}


def test_ztunnel_enforces_an_l4_policy_on_the_callers_identity(ambient: Handle) -> None:
    """An ALLOW policy for membersrvc naming only composer's identity: vp0's enrolments are
    refused at membersrvc's ztunnel (connections cut, no HTTP answer), composer's pass."""
    ns = deploy(ambient, {"istio.io/dataplane-mode": "ambient"})
    policy = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
              "metadata": {"name": "only-composer", "namespace": ns},
              "spec": {"selector": {"matchLabels": {"app": "membersrvc"}}, "action": "ALLOW",
                       "rules": [{"from": [{"source": {"principals": [
                           f"cluster.local/ns/{ns}/sa/composer"]}}]}]}}
    subprocess.run([require_kubectl(), "--kubeconfig", str(ambient.kubeconfig), "apply", "-f",
                    "-"], input=json.dumps(policy), text=True, check=True,
                   capture_output=True, timeout=60)
    before = kubectl(ambient, "logs", "-n", ns, "deploy/vp0").count("failed")
    poll(lambda: kubectl(ambient, "logs", "-n", ns, "deploy/vp0").count("failed") > before,
         what="vp0's enrolment with membersrvc refused", timeout=30, interval=0.5)
    logs_before = kubectl(ambient, "logs", "-n", ns, "deploy/composer")
    send(ambient, ns, "/login", 3)
    fresh = kubectl(ambient, "logs", "-n", ns, "deploy/composer")[len(logs_before):]
    assert "membersrvc" not in fresh or "failed" not in fresh, fresh[-1000:]

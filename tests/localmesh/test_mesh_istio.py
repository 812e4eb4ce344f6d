"""Istio on localmesh, proven with real clients only: the official Python client and kubectl.

The workloads of manifests/ are deployed into a mesh-enabled namespace; then each promise
of issue 4 is checked the way one checks a real cluster: config dumps through pods/exec,
Prometheus, Kiali and servicegraph through services/proxy, the ingress through the
LoadBalancer address, access logs through pods/log, and faults by killing processes the
local mesh started (by PID) and watching restartCount and the routes come back.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests
import yaml
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient
from kubernetes.stream import stream

from localmesh.cli import Handle
from meshgate.config_dump import cluster_names, listener_names, load_config_dump, route_entries
from tests.support import GOLDEN, REPO, boot_localmesh, needs_prometheus, poll, require_kubectl

pytestmark = needs_prometheus


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handle]:
    with boot_localmesh(tmp_path_factory.mktemp("mesh"), mesh=True) as handle:
        yield handle


@pytest.fixture(scope="module")
def api(mesh: Handle) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(str(mesh.kubeconfig), client_configuration=cfg)
    return client.ApiClient(cfg)


@pytest.fixture(scope="module")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(scope="module")
def dyn(api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory) -> DynamicClient:
    return DynamicClient(api, cache_file=str(tmp_path_factory.mktemp("dc") / "cache.json"))


def kubectl(mesh: Handle, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The kubectl on the PATH (skips, saying so, where there is none)."""
    return subprocess.run([require_kubectl(), "--kubeconfig", str(mesh.kubeconfig), *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ns(mesh: Handle, core: client.CoreV1Api, dyn: DynamicClient) -> str:
    """The blockchain deployed with `kubectl apply`, exactly as a user would."""
    name = f"mesh-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name,
                                        "labels": {"istio-injection": "enabled"}}})
    for f in ("composer", "vp0", "membersrvc", "ingress"):
        r = kubectl(mesh, "apply", "-n", name, "-f", str(REPO / "manifests" / f"{f}.yaml"))
        assert r.returncode == 0, r.stderr
    for d in ("composer", "vp0", "membersrvc"):
        r = kubectl(mesh, "rollout", "status", "-n", name, f"deployment/{d}", "--timeout=60s")
        assert r.returncode == 0, r.stderr
    return name


def pod_of(core: client.CoreV1Api, ns: str, app: str) -> client.V1Pod:
    pods = [p for p in core.list_namespaced_pod(ns, label_selector=f"app={app}").items
            if p.metadata.deletion_timestamp is None]
    assert pods, f"no pod of {app}"
    return pods[0]


def admin(core: client.CoreV1Api, ns: str, pod: str, path: str) -> str:
    return stream(core.connect_get_namespaced_pod_exec, pod, ns, container="istio-proxy",
                  command=["pilot-agent", "request", "GET", path], stderr=True, stdin=False,
                  stdout=True, tty=False)


def gateway_url(core: client.CoreV1Api) -> str:
    svc = core.read_namespaced_service("istio-ingressgateway", "istio-system")
    ip = svc.status.load_balancer.ingress[0].ip
    return f"http://{ip}:80"


def http_get(url: str, **kw) -> requests.Response:  # type: ignore[no-untyped-def]
    with requests.Session() as s:
        s.trust_env = False
        return s.get(url, timeout=5, **kw)


# -- the mesh itself -----------------------------------------------------------------------
def test_istio_system_is_installed_like_a_real_cluster(mesh: Handle,
                                                       core: client.CoreV1Api) -> None:
    pods = core.list_namespaced_pod("istio-system").items
    apps = sorted(p.metadata.labels["app"] for p in pods)
    assert apps == ["istio-ingressgateway", "istiod", "kiali", "prometheus", "servicegraph"]
    for p in pods:
        ready = {c.type: c.status for c in p.status.conditions}.get("Ready")
        assert ready == "True", f"{p.metadata.name} not Ready"
    svc = core.read_namespaced_service("istio-ingressgateway", "istio-system")
    assert svc.spec.type == "LoadBalancer"
    assert svc.status.load_balancer.ingress[0].ip.startswith("127.")
    ports = {p.name: (p.port, p.target_port) for p in svc.spec.ports}
    assert ports["http2"] == (80, 8080)


def test_injection_matches_istio(ns: str, core: client.CoreV1Api) -> None:
    pod = pod_of(core, ns, "composer")
    ann, labels = pod.metadata.annotations, pod.metadata.labels
    status = json.loads(ann["sidecar.istio.io/status"])
    assert status["initContainers"] == ["istio-init", "istio-proxy"]
    assert ann["prometheus.io/port"] == "15020"
    assert ann["prometheus.io/path"] == "/stats/prometheus"
    assert labels["security.istio.io/tlsMode"] == "istio"
    assert labels["service.istio.io/canonical-name"] == "composer"
    inits = {c.name: c for c in pod.spec.init_containers}
    assert inits["istio-proxy"].restart_policy == "Always"
    assert [c.name for c in pod.spec.containers] == ["composer"]
    if GOLDEN.exists():
        golden = next(yaml.safe_load_all((GOLDEN / "istio" / "injected-pod.yaml").read_text()))
        g_spec = golden["spec"]["template"]["spec"]
        g_init = {c["name"]: c for c in g_spec["initContainers"]}
        assert inits["istio-init"].args[:-1] == g_init["istio-init"]["args"][:-1]
        assert inits["istio-proxy"].args == g_init["istio-proxy"]["args"]
        g_env = [e["name"] for e in g_init["istio-proxy"]["env"]]
        ours = [e.name for e in inits["istio-proxy"].env]
        assert [n for n in g_env if n in ours] == [n for n in ours if n in g_env]
        assert {"POD_NAME", "POD_NAMESPACE", "INSTANCE_IP", "PROXY_CONFIG",
                "ISTIO_META_WORKLOAD_NAME"} <= set(ours)
    statuses = {c.name: c for c in pod.status.init_container_statuses}
    assert statuses["istio-proxy"].ready and statuses["istio-proxy"].state.running


def cluster_metadata(dump: dict, name: str) -> dict:
    """The ``istio`` filter metadata of the named dynamic cluster in a config dump."""
    for cfg in dump["configs"]:
        if cfg["@type"].endswith(".ClustersConfigDump"):
            for entry in cfg.get("dynamic_active_clusters") or []:
                if entry["cluster"]["name"] == name:
                    return entry["cluster"]["metadata"]["filter_metadata"]["istio"]
    raise AssertionError(f"no dynamic cluster {name} in the dump")


def test_sidecar_config_dump_has_istio_names(ns: str, core: client.CoreV1Api) -> None:
    pod = pod_of(core, ns, "composer").metadata.name
    dump = load_config_dump(admin(core, ns, pod, "config_dump"))
    types = [c["@type"].rsplit(".", 1)[-1] for c in dump["configs"]]
    assert {"BootstrapConfigDump", "ClustersConfigDump", "ListenersConfigDump",
            "RoutesConfigDump"} <= set(types)
    listeners = listener_names(dump)
    assert {"virtualOutbound", "virtualInbound", "0.0.0.0_8080", "0.0.0.0_7050"} <= set(
        listeners)
    clusters = cluster_names(dump)
    host = f"composer.{ns}.svc.cluster.local"
    assert f"outbound|8080||{host}" in clusters
    assert f"outbound|7054||membersrvc.{ns}.svc.cluster.local" in clusters
    assert "inbound|8080||" in clusters
    # Istio's cluster metadata: the service port and the Service behind the cluster.
    meta = cluster_metadata(dump, f"outbound|7054||membersrvc.{ns}.svc.cluster.local")
    assert meta["default_original_port"] == 7054, meta
    assert meta["services"] == [{"host": f"membersrvc.{ns}.svc.cluster.local",
                                 "name": "membersrvc", "namespace": ns}], meta
    entries = [e for e in route_entries(dump) if e.route_config == "8080"]
    vh = next(e for e in entries if e.virtual_host == f"{host}:8080")
    assert {host, host + ".", "composer", f"composer.{ns}"} <= set(vh.domains)
    assert vh.match == {"prefix": "/"} and vh.cluster == f"outbound|8080||{host}"
    # The same layout as a real sidecar's dump: dynamic route configs carry version_info,
    # route_config and last_updated (compare golden/istio/ingressgateway-http-config.json).
    routes = next(c for c in dump["configs"] if c["@type"].endswith(".RoutesConfigDump"))
    assert {"version_info", "route_config", "last_updated"} <= set(
        routes["dynamic_route_configs"][0])


def test_gateway_serves_the_ingress(ns: str, core: client.CoreV1Api) -> None:
    gw = pod_of(core, "istio-system", "istio-ingressgateway").metadata.name
    entries = poll(lambda: [e for e in route_entries(load_config_dump(
        admin(core, "istio-system", gw, "config_dump?resource=dynamic_route_configs")))
        if e.route_config == "http.8080" and e.virtual_host == "*:80"], timeout=10,
        what="gateway route config http.8080")
    paths = {e.match.get("path"): e.cluster for e in entries}
    assert paths["/login"] == f"outbound|8080||composer.{ns}.svc.cluster.local"
    assert paths["/chain/blocks/0"] == f"outbound|7050||vp0.{ns}.svc.cluster.local"
    base = gateway_url(core)
    r = poll(lambda: (x := http_get(base + "/login")).status_code == 200 and x, timeout=10,
             what="/login")
    assert "text/html" in r.headers["content-type"]
    block = http_get(base + "/chain/blocks/0")
    assert block.status_code == 200 and "previousBlockHash" in block.json()
    assert http_get(base + "/nope").status_code == 404


def test_telemetry_reaches_prometheus_and_the_graph(mesh: Handle, ns: str,
                                                    core: client.CoreV1Api,
                                                    api: client.ApiClient) -> None:
    base = gateway_url(core)
    for _ in range(3):
        assert http_get(base + "/login").status_code == 200

    def proxy_get(svc: str, path: str, query: dict) -> dict:
        r = kubectl(mesh, "get", "--raw",
                    f"/api/v1/namespaces/istio-system/services/{svc}/proxy/{path}?"
                    + requests.compat.urlencode(query))
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    q = (f'istio_requests_total{{reporter="destination",destination_service_namespace="{ns}",'
         'destination_service_name="composer",response_code="200"}')
    result = poll(lambda: proxy_get("prometheus:9090", "api/v1/query", {"query": q})["data"][
        "result"], timeout=20, what="istio_requests_total for composer in Prometheus")
    metric = result[0]["metric"]
    assert metric["source_workload"] == "istio-ingressgateway"
    assert metric["source_workload_namespace"] == "istio-system"
    assert metric["destination_workload"] == "composer"
    assert metric["destination_service"] == f"composer.{ns}.svc.cluster.local"
    assert metric["request_protocol"] == "http"
    # composer enrols with membersrvc over gRPC on every /login: Istio labels it "grpc",
    # with the call's grpc-status.
    q = (f'istio_requests_total{{reporter="destination",destination_service_namespace="{ns}",'
         'destination_service_name="membersrvc",source_workload="composer"}')
    result = poll(lambda: proxy_get("prometheus:9090", "api/v1/query", {"query": q})["data"][
        "result"], timeout=20, what="istio_requests_total for composer -> membersrvc in Prometheus")
    grpc_metric = result[0]["metric"]
    assert grpc_metric["request_protocol"] == "grpc", grpc_metric
    assert grpc_metric["grpc_response_status"] == "0", grpc_metric

    def kiali_edges() -> set[tuple[str, str]]:
        doc = proxy_get("kiali:20001", "kiali/api/namespaces/graph",
                        {"namespaces": ns, "graphType": "workload", "duration": "60s"})
        nodes = {n["data"]["id"]: n["data"].get("workload") for n in
                 doc["elements"]["nodes"]}
        edges = {(nodes[e["data"]["source"]], nodes[e["data"]["target"]])
                 for e in doc["elements"]["edges"]}
        want = {("istio-ingressgateway", "composer"), ("composer", "vp0"),
                ("composer", "membersrvc"), ("vp0", "membersrvc")}
        return want <= edges and edges

    poll(kiali_edges, timeout=20, what="Kiali's graph has the blockchain's edges")
    d3 = proxy_get("servicegraph:8088", "d3graph", {"time_horizon": "5m"})
    names = [n["name"] for n in d3["nodes"]]
    assert any("composer" in n for n in names) and d3["links"]


def test_access_log_in_istio_proxy_logs(mesh: Handle, ns: str, core: client.CoreV1Api) -> None:
    base = gateway_url(core)
    rid = uuid.uuid4().hex
    assert http_get(base + "/login", headers={"x-request-id": rid}).status_code == 200
    pod = pod_of(core, ns, "composer").metadata.name

    def logged() -> str | None:
        r = kubectl(mesh, "logs", "-n", ns, pod, "-c", "istio-proxy")
        return next((line for line in r.stdout.splitlines()
                     if rid in line and "inbound|8080||" in line), None)

    line = poll(logged, timeout=10, what="the access log line of the request")
    assert '"GET /login HTTP/1.1" 200' in line
    assert "inbound|8080||" in line


def test_virtual_service_subset_reaches_the_sidecars(ns: str, core: client.CoreV1Api,
                                                    dyn: DynamicClient) -> None:
    dr = dyn.resources.get(api_version="networking.istio.io/v1", kind="DestinationRule")
    vs = dyn.resources.get(api_version="networking.istio.io/v1", kind="VirtualService")
    dr.create(namespace=ns, body={
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "vp0"},
        "spec": {"host": "vp0", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}})
    vs.create(namespace=ns, body={
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "vp0"},
        "spec": {"hosts": ["vp0"], "http": [{"match": [{"uri": {"prefix": "/chain"}}],
                                             "route": [{"destination": {"host": "vp0",
                                                                        "subset": "v1"}}]}]}})
    pod = pod_of(core, ns, "composer").metadata.name
    want = f"outbound|7050|v1|vp0.{ns}.svc.cluster.local"

    def routed() -> bool:
        dump = load_config_dump(admin(core, ns, pod, "config_dump"))
        entries = [e for e in route_entries(dump) if e.route_config == "7050"]
        return any(e.cluster == want and e.match == {"prefix": "/chain"} for e in entries) \
            and want in cluster_names(dump)

    poll(routed, timeout=10, what="the VirtualService's subset route in composer's sidecar")
    r = http_get(gateway_url(core) + "/chain/blocks/0")
    assert r.status_code == 200


def _envoy_pid(mesh: Handle, ns: str, pod: str) -> int:
    """The Envoy localmesh started for this pod (found by its bootstrap path)."""
    pod_dirs = list((mesh.state_dir / "pods").glob(f"{ns}_{pod}_*"))
    assert pod_dirs, f"no pod directory for {pod}"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"/envoy") and any(
                str(pod_dirs[0]).encode() in a for a in cmd):
            return int(proc.name)
    pytest.fail(f"no Envoy process for {pod}")


def test_killed_envoy_and_app_restart_and_resync(mesh: Handle, ns: str,
                                                 core: client.CoreV1Api) -> None:
    pod = pod_of(core, ns, "vp0")
    name = pod.metadata.name
    before = {c.name: c.restart_count for c in pod.status.init_container_statuses
              + pod.status.container_statuses}
    os.kill(_envoy_pid(mesh, ns, name), signal.SIGKILL)

    def proxy_restarted() -> bool:
        p = core.read_namespaced_pod(name, ns)
        st = {c.name: c for c in p.status.init_container_statuses}["istio-proxy"]
        return st.restart_count > before["istio-proxy"] and st.ready

    poll(proxy_restarted, timeout=20, what="istio-proxy restarted and Ready")
    base = gateway_url(core)
    poll(lambda: http_get(base + "/chain/blocks/0").status_code == 200, timeout=20,
         what="traffic to vp0 flows again after its Envoy was killed")
    app = {c.name: c for c in core.read_namespaced_pod(name, ns).status.container_statuses}
    pgid = int(app["vp0"].container_id.rsplit("/", 1)[-1])
    os.killpg(pgid, signal.SIGKILL)

    def app_restarted() -> bool:
        st = {c.name: c for c in core.read_namespaced_pod(name, ns).status.container_statuses}
        return st["vp0"].restart_count > before["vp0"] and st["vp0"].ready

    poll(app_restarted, timeout=20, what="vp0 restarted and Ready")
    poll(lambda: http_get(base + "/chain/blocks/0").status_code == 200, timeout=20,
         what="traffic to vp0 flows again after its app was killed")


def test_every_manifest_passes_a_server_side_dry_run(mesh: Handle, core: client.CoreV1Api,
                                                    dyn: DynamicClient) -> None:
    """The manifests and overlays, checked by the server; custom kinds need their CRDs,
    which a real cluster gets from Gateway API's and OpenShift's installs."""
    from localmesh.istio.mesh import crd

    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1",
                             kind="CustomResourceDefinition")
    for group, kind, plural in (("gateway.networking.k8s.io", "Gateway", "gateways"),
                                ("gateway.networking.k8s.io", "HTTPRoute", "httproutes"),
                                ("route.openshift.io", "Route", "routes")):
        body = crd(group, kind, plural, [], True, versions=("v1",))
        if body["metadata"]["name"] not in {i["metadata"]["name"]
                                            for i in crds.get().to_dict()["items"]}:
            crds.create(body=body)
    dyn.resources.invalidate_cache()
    ns = f"dry-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    docs = [d for p in sorted((REPO / "manifests").rglob("*.yaml"))
            for d in yaml.safe_load_all(p.read_text()) if d]
    assert len(docs) >= 10
    for doc in docs:
        res = poll(lambda d=doc: dyn.resources.get(api_version=d["apiVersion"], kind=d["kind"]),
                   timeout=5, what=f"{doc['kind']} served")
        target_ns = ns if res.namespaced else None
        out = res.server_side_apply(body=doc, name=doc["metadata"]["name"],
                                    namespace=target_ns, field_manager="test",
                                    dry_run="All")
        assert out.metadata.name == doc["metadata"]["name"]
    # and nothing was stored by the dry run of the overlays
    vs = dyn.resources.get(api_version="networking.istio.io/v1", kind="VirtualService")
    assert "blockchain" not in [v.metadata.name for v in vs.get(namespace=ns).items]


# -- the xDS protocol, spoken to istiod as a proxy does ----------------------------------------

CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"


class _AdsStream:
    """One ADS stream to istiod's Service, as Envoy opens it; responses read on a thread."""

    def __init__(self, address: str) -> None:
        self._requests: queue.Queue = queue.Queue()
        self.responses: queue.Queue = queue.Queue()
        self._channel = grpc.insecure_channel(address)
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self._channel)
        self._call = stub.StreamAggregatedResources(iter(self._requests.get, None))

        def read() -> None:
            try:
                for r in self._call:
                    self.responses.put(r)
            except grpc.RpcError:
                pass

        threading.Thread(target=read, daemon=True).start()

    def send(self, **fields) -> None:  # type: ignore[no-untyped-def]
        self._requests.put(discovery_pb2.DiscoveryRequest(**fields))

    def next(self, timeout: float = 10.0):  # type: ignore[no-untyped-def]
        try:
            return self.responses.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"istiod sent no response within {timeout}s")

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()
        self._channel.close()


def test_ads_ignores_stale_nonces_and_sends_only_changes(ns: str, core: client.CoreV1Api) -> None:
    """An ACK carrying an old nonce must not be answered (the xDS protocol; istiod drops it
    as "Expired nonce received"): answering re-sent identical resources, the proxy ACKed
    those with a nonce by then stale again, and a storm of pushes followed (found by
    profiling: ~48,000 responses in one suite run)."""
    cluster_type = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    gw = pod_of(core, "istio-system", "istio-ingressgateway")
    node = base_pb2.Node(id=f"router~{gw.status.pod_ip}~{gw.metadata.name}.istio-system~"
                            "istio-system.svc.cluster.local")
    istiod = core.read_namespaced_service("istiod", "istio-system")
    ads = _AdsStream(f"{istiod.spec.cluster_ip}:15010")
    names = [f"ads-{uuid.uuid4().hex[:5]}-{i}" for i in range(2)]

    def service(name: str) -> None:
        core.create_namespaced_service(ns, {"metadata": {"name": name}, "spec": {
            "selector": {"app": name}, "ports": [{"name": "http", "port": 9090}]}})

    def until_cluster_of(name: str, seen: list) -> object:  # type: ignore[type-arg]
        for _ in range(50):
            r = ads.next()
            seen.append(r)
            if any(name in a.value.decode(errors="replace") for a in r.resources):
                return r
        pytest.fail(f"no CDS response with a cluster for {name}")

    try:
        ads.send(node=node, type_url=cluster_type)
        first = ads.next()
        assert first.resources, "istiod sent the gateway no clusters"
        seen: list = [first]
        service(names[0])
        second = until_cluster_of(names[0], seen)
        # Stale: answers `first`, although `second` was sent since. Then the real ACK.
        ads.send(node=node, type_url=cluster_type, version_info=first.version_info,
                 response_nonce=first.nonce)
        ads.send(node=node, type_url=cluster_type, version_info=second.version_info,
                 response_nonce=second.nonce)
        after: list = []
        service(names[1])
        until_cluster_of(names[1], after)
        digests = [r.version_info.split("/")[-1] for r in [second, *after]]
        repeats = [d for prev, d in itertools.pairwise(digests) if prev == d]
        assert not repeats, (f"istiod re-sent unchanged clusters after a stale ACK: versions "
                             f"{[r.version_info for r in [second, *after]]}")
    finally:
        ads.close()
        for name in names:
            try:
                core.delete_namespaced_service(name, ns)
            except client.ApiException:
                pass


def test_ads_pushes_only_the_endpoints_that_changed(ns: str, core: client.CoreV1Api) -> None:
    """EDS in state-of-the-world ADS may carry only what changed (Envoy's xDS protocol:
    names left out are kept): a new Service's endpoints go alone, not with every other
    cluster's — what keeps a push to a mesh of thousands of Services small."""
    gw = pod_of(core, "istio-system", "istio-ingressgateway")
    node = base_pb2.Node(id=f"router~{gw.status.pod_ip}~{gw.metadata.name}.istio-system~"
                            "istio-system.svc.cluster.local")
    istiod = core.read_namespaced_service("istiod", "istio-system")
    ads = _AdsStream(f"{istiod.spec.cluster_ip}:15010")
    name = f"eds-{uuid.uuid4().hex[:5]}"
    wanted = f"outbound|9090||{name}.{ns}.svc.cluster.local"

    def eds_names(r: discovery_pb2.DiscoveryResponse) -> list[str]:
        return [cluster_pb2.Cluster.FromString(a.value).name for a in r.resources
                if cluster_pb2.Cluster.FromString(a.value).type == cluster_pb2.Cluster.EDS]

    def ack(r: discovery_pb2.DiscoveryResponse, names: list[str] | None = None) -> None:
        ads.send(node=node, type_url=r.type_url, version_info=r.version_info,
                 response_nonce=r.nonce, resource_names=names or [])

    try:
        ads.send(node=node, type_url=CLUSTER_TYPE)
        clusters = ads.next()
        ack(clusters)
        subscribed = eds_names(clusters)
        ads.send(node=node, type_url=ENDPOINT_TYPE, resource_names=subscribed)
        first = ads.next()
        assert first.type_url == ENDPOINT_TYPE and len(first.resources) == len(subscribed)
        ack(first, subscribed)
        core.create_namespaced_service(ns, {"metadata": {"name": name}, "spec": {
            "selector": {"app": name}, "ports": [{"name": "http", "port": 9090}]}})
        for _ in range(50):
            r = ads.next()
            if r.type_url == CLUSTER_TYPE and wanted in eds_names(r):
                break
            ack(r, subscribed if r.type_url == ENDPOINT_TYPE else None)
        else:
            pytest.fail(f"no CDS push with {wanted}")
        ack(r)
        ads.send(node=node, type_url=ENDPOINT_TYPE, version_info=first.version_info,
                 response_nonce="", resource_names=[*subscribed, wanted])
        for _ in range(50):
            e = ads.next()
            if e.type_url == ENDPOINT_TYPE:
                break
        sent = [endpoint_pb2.ClusterLoadAssignment.FromString(a.value).cluster_name
                for a in e.resources]
        assert sent == [wanted], (f"the new subscription got {len(sent)} endpoints of "
                                  f"{len(subscribed) + 1} clusters, not only the new one")
    finally:
        ads.close()
        try:
            core.delete_namespaced_service(name, ns)
        except client.ApiException:
            pass

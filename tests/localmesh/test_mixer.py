"""``localmesh up --mesh mixer``: an Istio 1.4 mesh with Mixer, as a client sees it with
kubectl and curl — istio-pilot, istio-telemetry and istio-policy; 1.4's injection; every
request reported over the network to istio-telemetry, whose ``mixer`` container logs it
like Mixer's stdio adapter and counts it for Prometheus's ``istio-mesh`` job; the
servicegraph addon's edges from those counts.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import Iterator

import pytest

from localmesh.shape import Shape
from tests.localmesh.openshift_support import Cluster, curl
from tests.support import REPO, boot_localmesh, needs_prometheus, poll

pytestmark = needs_prometheus


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with boot_localmesh(tmp_path_factory.mktemp("mixer"), mesh=True,
                        shape=Shape(mesh="mixer")) as handle:
        yield Cluster(handle)


@pytest.fixture(scope="module")
def ns(cluster: Cluster) -> str:
    """The blockchain deployed with kubectl into an injected namespace, with its Ingress."""
    name = f"mixer-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, "istio-injection=enabled")
    for workload in ("membersrvc", "vp0", "composer"):
        cluster.deploy(name, workload)
    cluster.kubectl("apply", "-n", name, "-f", str(REPO / "manifests" / "ingress.yaml"))
    return name


def _gateway(cluster: Cluster) -> str:
    svc = cluster.json("get", "service", "-n", "istio-system", "istio-ingressgateway")
    ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    info = json.loads((cluster.handle.state_dir / "instance.json").read_text())
    port = next(p for p in svc["spec"]["ports"] if p["name"] == "http2")
    moved = "istio-system/istio-ingressgateway" in info.get("load_balancer_ports", {})
    return f"http://{ip}:{port['nodePort'] if moved else port['port']}"


def _login(cluster: Cluster, count: int) -> None:
    base = _gateway(cluster)

    def ok() -> bool:
        return curl("-o", "/dev/null", "-w", "%{http_code}", f"{base}/login").stdout == "200"

    poll(ok, what=f"GET {base}/login answers 200", timeout=30)
    for _ in range(count - 1):
        assert ok(), f"GET {base}/login"


def _telemetry_pod(cluster: Cluster) -> str:
    return cluster.pod("istio-system", "istio-mixer-type=telemetry")["metadata"]["name"]


def _query(cluster: Cluster, promql: str) -> list[dict]:
    raw = cluster.kubectl("get", "--raw", "/api/v1/namespaces/istio-system/services/"
                          "prometheus:9090/proxy/api/v1/query?query="
                          + urllib.parse.quote(promql, safe="")).stdout
    return json.loads(raw)["data"]["result"]


def test_the_control_plane_is_istio_1_4s(cluster: Cluster) -> None:
    deployments = {d["metadata"]["name"]: d for d in cluster.json(
        "get", "deployments", "-n", "istio-system")["items"]}
    assert {"istio-pilot", "istio-telemetry", "istio-policy"} <= set(deployments)
    assert "istiod" not in deployments
    mixer = deployments["istio-telemetry"]["spec"]["template"]["spec"]["containers"][0]
    assert mixer["name"] == "mixer" and mixer["image"] == "docker.io/istio/mixer:1.4.10"
    ports = {p["name"]: p["port"] for p in cluster.json(
        "get", "service", "-n", "istio-system", "istio-telemetry")["spec"]["ports"]}
    assert ports == {"grpc-mixer": 9091, "grpc-mixer-mtls": 15004, "http-monitoring": 15014,
                     "prometheus": 42422}
    mesh = cluster.json("get", "configmap", "-n", "istio-system", "istio")["data"]["mesh"]
    assert "mixerReportServer: istio-telemetry.istio-system.svc.cluster.local:9091" in mesh
    rules = [r["metadata"]["name"] for r in cluster.json(
        "get", "rules.config.istio.io", "-n", "istio-system")["items"]]
    assert sorted(rules) == ["promhttp", "stdio"]


def test_pods_are_injected_as_istio_1_4_injected_them(cluster: Cluster, ns: str) -> None:
    pod = cluster.pod(ns, "app=composer")
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["istio-init"]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["composer", "istio-proxy"]
    proxy = pod["spec"]["containers"][1]
    assert proxy["image"] == "docker.io/istio/proxyv2:1.4.10"
    assert "--discoveryAddress" in proxy["args"]
    status = json.loads(pod["metadata"]["annotations"]["sidecar.istio.io/status"])
    assert status["initContainers"] == ["istio-init"]
    assert status["containers"] == ["istio-proxy"] and status["version"]


def test_the_mixer_logs_composers_request_attributes(cluster: Cluster, ns: str) -> None:
    _login(cluster, 3)

    def lines() -> list[dict]:
        out = cluster.kubectl("logs", "-n", "istio-system", _telemetry_pod(cluster),
                              "-c", "mixer").stdout
        entries = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return [e for e in entries if e.get("destinationServiceHost") ==
                f"composer.{ns}.svc.cluster.local" and e.get("url") == "/login"]

    entries = poll(lambda: len(found := lines()) >= 6 and found,
                   what="the mixer's accesslog lines for composer's /login", timeout=20)
    inbound = next(e for e in entries if e["reporter"] == "destination")
    assert inbound["instance"] == "accesslog.instance.istio-system"
    assert inbound["level"] == "info" and inbound["time"].endswith("Z")
    assert inbound["destinationWorkload"] == "composer"
    assert inbound["destinationNamespace"] == ns
    assert inbound["destinationName"].startswith("composer-")
    assert inbound["sourceWorkload"] == "istio-ingressgateway"
    assert inbound["method"] == "GET" and inbound["responseCode"] == 200
    assert inbound["latency"].endswith(("ms", "µs", "s"))
    assert list(inbound)[:3] == ["level", "time", "instance"]
    assert list(inbound)[3:] == sorted(list(inbound)[3:]), "stdio sorts the variables"
    assert any(e["reporter"] == "source" for e in entries), "the gateway reports too"


def test_prometheus_job_istio_mesh_counts_composers_requests(cluster: Cluster,
                                                             ns: str) -> None:
    promql = ('sum(istio_requests_total{job="istio-mesh",reporter="destination",'
              f'destination_service_name="composer",destination_service_namespace="{ns}"}})')

    def count() -> float:
        result = _query(cluster, promql)
        return float(result[0]["value"][1]) if result else 0.0

    before = count()
    _login(cluster, 4)
    poll(lambda: count() >= before + 4, what=f"{promql} grew by 4", timeout=30)
    series = _query(cluster, 'istio_requests_total{job="istio-mesh",reporter="destination",'
                             f'destination_service_name="composer",'
                             f'destination_service_namespace="{ns}"}}')
    labels = series[0]["metric"]
    assert labels["destination_workload"] == "composer"
    assert labels["source_workload"] == "istio-ingressgateway"
    assert labels["request_protocol"] == "http" and labels["response_code"] == "200"
    assert labels["instance"].endswith(":42422")
    # The proxies compute no Istio metrics themselves in 1.4: only Mixer has them.
    composer = cluster.pod(ns, "app=composer")["metadata"]["name"]
    own = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{ns}/pods/{composer}:15020"
                                          "/proxy/stats/prometheus").stdout
    assert "istio_requests_total{" not in own


def test_the_servicegraph_addon_shows_the_edges(cluster: Cluster, ns: str) -> None:
    _login(cluster, 2)

    def edges() -> set[tuple[str, str]]:
        graph = json.loads(cluster.kubectl(
            "get", "--raw", "/api/v1/namespaces/istio-system/services/servicegraph:8088/"
                            f"proxy/graph?destination_namespace={ns}").stdout)
        return {(e["source"], e["target"]) for e in graph["edges"]}

    wanted = {("istio-ingressgateway (istio-ingressgateway)", "composer (composer)"),
              ("composer (composer)", "vp0 (vp0)"),
              ("composer (composer)", "membersrvc (membersrvc)")}
    poll(lambda: wanted <= edges(), what=f"servicegraph edges {wanted}", timeout=30)


def test_reports_cross_the_network_and_stop_when_the_mixer_is_gone(cluster: Cluster,
                                                                  ns: str) -> None:
    _login(cluster, 1)
    composer = cluster.pod(ns, "app=composer")["metadata"]["name"]

    def dropped() -> int:
        stats = cluster.kubectl("exec", "-n", ns, composer, "-c", "istio-proxy", "--",
                                "pilot-agent", "request", "GET", "stats").stdout
        lines = [line for line in stats.splitlines()
                 if line.startswith("access_logs.grpc_access_log.logs_dropped:")]
        return int(lines[0].split(":")[1]) if lines else 0

    cluster.kubectl("scale", "deployment", "istio-telemetry", "-n", "istio-system",
                    "--replicas=0")
    try:
        poll(lambda: not cluster.json("get", "pods", "-n", "istio-system", "-l",
                                      "istio-mixer-type=telemetry")["items"],
             what="istio-telemetry gone", timeout=20)
        before = dropped()
        _login(cluster, 3)
        poll(lambda: dropped() > before, what="composer's sidecar dropping its reports",
             timeout=20)
    finally:
        cluster.kubectl("scale", "deployment", "istio-telemetry", "-n", "istio-system",
                        "--replicas=1")
        cluster.kubectl("rollout", "status", "deployment/istio-telemetry", "-n",
                        "istio-system", "--timeout=60s", timeout=90)

"""Kiali's graph API and the servicegraph addon against a real Prometheus.

A real Prometheus (Debian's ``/usr/bin/prometheus``) scrapes, every second, a tiny
exporter this module serves on 127.0.0.1. The exporter exposes ``istio_requests_total``
exactly as Istio labels it, for the walkthrough's topology in namespace ``blockchain``:

    istio-ingressgateway (istio-system) → composer     http, growing
    istio-ingressgateway (istio-system) → vp0          http, constant 3 (a new series)
    unknown (outside the mesh)          → composer     http, growing, destination-reported
    composer → vp0                                     http 200 and 503, growing
    composer → membersrvc                              http, growing
    vp0      → membersrvc                              grpc, growing

reported by both proxies (``reporter="source"`` and ``"destination"``) with equal counts,
except the unknown caller, which has no proxy. Then ``python -m localmesh.addons.kiali``
and ``… .servicegraph`` run as subprocesses, as localmesh's kubelet runs them, and their
answers are read with the suite's own parsers (meshgate.graph) and checked edge by edge.

Everything waits by bounded polling against a deadline; every process is stopped by its
fixture's finalizer, and temporary directories are removed by pytest's ``tmp_path``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from localmesh.addons.kiali.cytoscape import rate_to_string
from localmesh.addons.kiali.graph import node_id, sha256_hex
from meshgate.graph import Edge, edges_from_kiali, servicegraph_edges
from tests.support import GOLDEN, PROMETHEUS, REPO, StopWaiting, poll, unused_port

STARTUP_SECONDS = 30.0
NS = "blockchain"
CLUSTER = "Kubernetes"  # Istio's default cluster id (ISTIO_META_CLUSTER_ID)

GOLDEN_GRAPH = GOLDEN / "kiali" / "workload-graph.json"


# --------------------------------------------------------------------------- the mesh's series


@dataclass(frozen=True)
class Workload:
    name: str
    namespace: str
    app: str
    version: str
    revision: str
    cluster: str = CLUSTER


INGRESS = Workload("istio-ingressgateway", "istio-system", "istio-ingressgateway", "unknown",
                   "latest")
COMPOSER = Workload("composer", NS, "composer", "v1", "v1")
VP0 = Workload("vp0", NS, "vp0", "v1", "v1")
MEMBERSRVC = Workload("membersrvc", NS, "membersrvc", "v1", "v1")
OUTSIDER = Workload("unknown", "unknown", "unknown", "unknown", "unknown", cluster="unknown")


@dataclass(frozen=True)
class Traffic:
    """Requests from ``source`` to ``dest``: ``per_second`` growth, or a constant count."""

    source: Workload
    dest: Workload
    per_second: float = 0.0
    constant: int = 0
    protocol: str = "http"
    code: str = "200"
    reporters: tuple[str, ...] = ("source", "destination")


TRAFFIC = (
    Traffic(INGRESS, COMPOSER, per_second=5),
    Traffic(INGRESS, VP0, constant=3),
    Traffic(OUTSIDER, COMPOSER, per_second=1, reporters=("destination",)),
    Traffic(COMPOSER, VP0, per_second=2),
    Traffic(COMPOSER, VP0, per_second=1, code="503"),
    Traffic(COMPOSER, MEMBERSRVC, per_second=1),
    Traffic(VP0, MEMBERSRVC, per_second=3, protocol="grpc"),
)
SERIES_COUNT = sum(len(t.reporters) for t in TRAFFIC)


def istio_labels(t: Traffic, reporter: str) -> dict[str, str]:
    """The label set Istio's stats filter gives one request series."""
    s, d = t.source, t.dest
    return {
        "reporter": reporter,
        "source_workload": s.name, "source_workload_namespace": s.namespace,
        "source_principal": "unknown", "source_app": s.app, "source_version": s.version,
        "source_canonical_service": s.app, "source_canonical_revision": s.revision,
        "source_cluster": s.cluster,
        "destination_workload": d.name, "destination_workload_namespace": d.namespace,
        "destination_principal": "unknown", "destination_app": d.app,
        "destination_version": d.version,
        "destination_service": f"{d.name}.{d.namespace}.svc.cluster.local",
        "destination_service_name": d.name, "destination_service_namespace": d.namespace,
        "destination_canonical_service": d.app, "destination_canonical_revision": d.revision,
        "destination_cluster": d.cluster,
        "request_protocol": t.protocol, "response_code": t.code,
        "grpc_response_status": "0" if t.protocol == "grpc" else "",
        "response_flags": "-",
        "connection_security_policy": "mutual_tls" if reporter == "destination" else "unknown",
    }


class Exporter:
    """An HTTP endpoint serving the series above; growing counters follow the clock."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def exposition(self) -> str:
        elapsed = time.monotonic() - self.started
        lines = ["# TYPE istio_requests_total counter"]
        for t in TRAFFIC:
            value = t.constant or 1 + math.floor(t.per_second * elapsed)
            for reporter in t.reporters:
                labels = ",".join(f'{k}="{v}"' for k, v in istio_labels(t, reporter).items())
                lines.append(f"istio_requests_total{{{labels}}} {value}")
        return "\n".join(lines) + "\n"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


# --------------------------------------------------------------------------- helpers


def clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(NO_PROXY="*", no_proxy="*", PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env


HTTP = requests.Session()
HTTP.trust_env = False  # never through a proxy


def stop_process(process: subprocess.Popen) -> int:
    """SIGTERM by PID, SIGKILL if it lingers; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    return process.returncode


class Prometheus:
    """Debian's Prometheus on a free loopback port with its TSDB in a temporary directory."""

    def __init__(self, workdir: Path, target: str) -> None:
        assert PROMETHEUS is not None, "the prometheus fixture skips without it"
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: istio-mesh\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        self.log_path = workdir / "prometheus.log"
        for _attempt in range(3):  # a free port can be taken between the probe and the bind
            port = unused_port()
            self.url = f"http://127.0.0.1:{port}"
            with self.log_path.open("w") as log:
                self.process = subprocess.Popen(
                    [PROMETHEUS, f"--config.file={config}",
                     f"--storage.tsdb.path={workdir / 'tsdb'}",
                     f"--web.listen-address=127.0.0.1:{port}",
                     "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                    cwd=workdir, env=clean_env(), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT)
            if self._ready():
                return
            stop_process(self.process)
        raise AssertionError(f"Prometheus did not start:\n{self.log_path.read_text()[-3000:]}")

    def _ready(self) -> bool:
        """Whether this start came up: False at once if it exited (its port was taken)."""

        def ready() -> bool:
            if self.process.poll() is not None:
                raise StopWaiting(f"Prometheus exited {self.process.returncode}")
            return HTTP.get(f"{self.url}/-/ready", timeout=2).status_code == 200

        try:
            poll(ready, timeout=STARTUP_SECONDS, interval=0.1, what="Prometheus ready")
        except StopWaiting:
            return False
        return True

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr, **({"time": str(at)} if at is not None else {})}
        answer = HTTP.get(f"{self.url}/api/v1/query", params=params, timeout=10).json()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def stop(self) -> None:
        stop_process(self.process)


class Addon:
    """``python -m localmesh.addons.<name>`` as the kubelet runs it, on a port it picks."""

    def __init__(self, name: str, prometheus_url: str, **env: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"localmesh.addons.{name}"],
            cwd=REPO,
            env=clean_env(BIND_ADDRESS="127.0.0.1", PORT="0", PROMETHEUS_URL=prometheus_url,
                          PROMETHEUS_TIMEOUT="3", **env),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()
        self.url = ""

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_listening(self) -> Addon:
        def listening() -> str | None:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.process.returncode}:\n"
                                     f"{self.output()}")
            with self._lock:
                for line in self.lines:
                    found = re.search(r" listening http (\S+)$", line)
                    if found:
                        return found.group(1)
            return None

        self.url = "http://" + poll(listening, timeout=STARTUP_SECONDS,
                                    what=f"{self.name} to listen")
        return self

    def get(self, path: str, **params: str) -> requests.Response:
        return HTTP.get(self.url + path, params=params, timeout=30)

    def stop(self) -> int:
        code = stop_process(self.process)
        self._reader.join(timeout=5)
        return code


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Prometheus scraping the exporter, once it holds 3+ samples of every series."""
    if PROMETHEUS is None:
        pytest.skip("prometheus is not on the PATH "
                    "(apt-get install --no-install-recommends prometheus)")
    workdir = tmp_path_factory.mktemp("prometheus")
    exporter = Exporter()
    server = None
    try:
        server = Prometheus(workdir, exporter.address)
        poll(lambda: int(float((server.query(
                "count(count_over_time(istio_requests_total[1m]) >= 3)") or
                [{"value": [0, "0"]}])[0]["value"][1])) == SERIES_COUNT,
             timeout=STARTUP_SECONDS, interval=0.1,
             what=f"Prometheus to hold 3 samples of all {SERIES_COUNT} series")
        yield server
    finally:
        if server is not None:
            server.stop()
        exporter.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def addons(prometheus: Prometheus) -> Iterator[Callable[..., Addon]]:
    """Start addon processes against the test's Prometheus (or any URL); stop them all."""
    started: list[Addon] = []

    def start(name: str, prometheus_url: str | None = None, **env: str) -> Addon:
        addon = Addon(name, prometheus_url or prometheus.url, **env)
        started.append(addon)
        return addon.wait_listening()

    try:
        yield start
    finally:
        for addon in started:
            addon.stop()


@pytest.fixture(scope="module")
def kiali(addons: Callable[..., Addon]) -> Addon:
    return addons("kiali")


@pytest.fixture(scope="module")
def servicegraph(addons: Callable[..., Addon]) -> Addon:
    return addons("servicegraph")


# --------------------------------------------------------------------------- Kiali


def graph(kiali: Addon, **params: str) -> dict[str, Any]:
    response = kiali.get("/kiali/api/namespaces/graph", **params)
    assert response.status_code == 200, f"{response.status_code} {response.text}\n" \
                                         f"{kiali.output()}"
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def name_of(node: Any) -> str:
    """An edge end as ``type:namespace/name[:version]`` for readable set comparisons."""
    name = node.workload or node.service or node.app
    if node.nodeType == "app" and node.version:
        name = f"{name}:{node.version}"
    return f"{node.nodeType}:{node.namespace}/{name}"


def edge_names(edges: list[Edge]) -> set[tuple[str, str, str | None]]:
    return {(name_of(e.source), name_of(e.target), e.protocol) for e in edges}


def wl(workload: Workload) -> str:
    return f"workload:{workload.namespace}/{workload.name}"


UNKNOWN_NODE = "unknown:unknown/unknown"

WORKLOAD_EDGES = {
    (wl(INGRESS), wl(COMPOSER), "http"),
    (wl(INGRESS), wl(VP0), "http"),
    (UNKNOWN_NODE, wl(COMPOSER), "http"),
    (wl(COMPOSER), wl(VP0), "http"),
    (wl(COMPOSER), wl(MEMBERSRVC), "http"),
    (wl(VP0), wl(MEMBERSRVC), "grpc"),
}


def nodes_by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for wrapper in doc["elements"]["nodes"]:
        data = wrapper["data"]
        if data["nodeType"] == "box":
            continue
        name = data.get("workload") or data.get("service") or data.get("app")
        out[f"{data['nodeType']}:{data['namespace']}/{name}"] = data
    return out


def test_kiali_workload_graph_has_the_mesh_edges_in_kialis_shape(kiali: Addon) -> None:
    query_time = int(time.time())
    doc = graph(kiali, namespaces=NS, graphType="workload", queryTime=str(query_time))
    assert (doc["timestamp"], doc["duration"], doc["graphType"]) == (query_time, 600, "workload")
    assert edge_names(edges_from_kiali(doc)) == WORKLOAD_EDGES

    nodes = nodes_by_name(doc)
    composer = nodes[wl(COMPOSER)]
    # Kiali's own ids: sha256 of graph/types.go Id, so real Kiali gives the same node ids.
    assert composer["id"] == hashlib.sha256(f"wl_{CLUSTER}_{NS}_composer".encode()).hexdigest()
    assert composer["app"] == "composer" and composer["version"] == "v1"
    assert composer["destServices"] == [{"cluster": CLUSTER, "namespace": NS,
                                         "name": "composer"}]
    assert composer["healthData"] is None and "isOutside" not in composer
    ingress = nodes[wl(INGRESS)]
    assert ingress["isOutside"] is True and ingress["isRoot"] is True
    unknown = nodes[UNKNOWN_NODE]
    assert (unknown["isRoot"], unknown["isInaccessible"], unknown["cluster"]) == \
           (True, True, "unknown")
    protocols = {t["protocol"] for t in nodes[wl(VP0)]["traffic"]}
    assert protocols == {"grpc", "http"}  # receives http, sends grpc

    edges = {(e["data"]["source"], e["data"]["target"]): e["data"]
             for e in doc["elements"]["edges"]}
    composer_to_vp0 = edges[(composer["id"], nodes[wl(VP0)]["id"])]["traffic"]
    assert composer_to_vp0["protocol"] == "http"
    rates = composer_to_vp0["rates"]
    for key in ("http", "http5xx", "httpPercentErr", "httpPercentReq"):
        assert re.fullmatch(r"\d+\.\d+", rates[key]), rates
    assert set(composer_to_vp0["responses"]) == {"200", "503"}
    assert composer_to_vp0["responses"]["200"]["hosts"] == {
        "vp0.blockchain.svc.cluster.local": composer_to_vp0["responses"]["200"]["flags"]["-"]}


def test_kiali_counts_a_request_reported_by_both_proxies_once(
    kiali: Addon, prometheus: Prometheus
) -> None:
    query_time = int(time.time())
    doc = graph(kiali, namespaces=NS, queryTime=str(query_time), duration="60s")
    found = {(name_of(e.source), name_of(e.target)): e.rate for e in edges_from_kiali(doc)}
    for source, dest in ((COMPOSER, VP0), (COMPOSER, MEMBERSRVC), (INGRESS, COMPOSER)):
        expected = float(prometheus.query(
            f'sum(rate(istio_requests_total{{reporter="destination",'
            f'source_workload="{source.name}",destination_workload="{dest.name}"}}[60s]))',
            query_time)[0]["value"][1])
        assert expected > 0
        assert found[(wl(source), wl(dest))] == pytest.approx(expected, abs=0.011), \
            f"{source.name}->{dest.name}: Kiali {found[(wl(source), wl(dest))]}, " \
            f"destination-reported rate {expected}"


def test_kiali_draws_an_edge_for_a_series_too_new_for_rate(
    kiali: Addon, prometheus: Prometheus
) -> None:
    """ingress→vp0 is a counter that appeared at 3 and never grew: rate() sees nothing."""
    query_time = int(time.time())
    assert prometheus.query(
        'sum(rate(istio_requests_total{source_workload="istio-ingressgateway",'
        'destination_workload="vp0"}[600s])) > 0', query_time) == []
    doc = graph(kiali, namespaces=NS, queryTime=str(query_time))
    (edge,) = [e for e in edges_from_kiali(doc)
               if (name_of(e.source), name_of(e.target)) == (wl(INGRESS), wl(VP0))]
    assert edge.rate == pytest.approx(3 / 600, abs=0.001)  # 3 requests over the 10m window


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param(
            {"graphType": "app"},
            {("app:istio-system/istio-ingressgateway", "app:blockchain/composer", "http"),
             ("app:istio-system/istio-ingressgateway", "app:blockchain/vp0", "http"),
             (UNKNOWN_NODE, "app:blockchain/composer", "http"),
             ("app:blockchain/composer", "app:blockchain/vp0", "http"),
             ("app:blockchain/composer", "app:blockchain/membersrvc", "http"),
             ("app:blockchain/vp0", "app:blockchain/membersrvc", "grpc")},
            id="app",
        ),
        pytest.param(
            {"graphType": "versionedApp"},
            {("app:istio-system/istio-ingressgateway:latest", "app:blockchain/composer:v1",
              "http"),
             ("app:istio-system/istio-ingressgateway:latest", "app:blockchain/vp0:v1", "http"),
             (UNKNOWN_NODE, "app:blockchain/composer:v1", "http"),
             ("app:blockchain/composer:v1", "app:blockchain/vp0:v1", "http"),
             ("app:blockchain/composer:v1", "app:blockchain/membersrvc:v1", "http"),
             ("app:blockchain/vp0:v1", "app:blockchain/membersrvc:v1", "grpc")},
            id="versionedApp",
        ),
        pytest.param(
            {"graphType": "service"},
            {(wl(INGRESS), "service:blockchain/composer", "http"),
             (wl(INGRESS), "service:blockchain/vp0", "http"),
             (UNKNOWN_NODE, "service:blockchain/composer", "http"),
             ("service:blockchain/composer", "service:blockchain/vp0", "http"),
             ("service:blockchain/composer", "service:blockchain/membersrvc", "http"),
             ("service:blockchain/vp0", "service:blockchain/membersrvc", "grpc")},
            id="service",
        ),
        pytest.param(
            {"graphType": "workload", "injectServiceNodes": "true"},
            {(wl(INGRESS), "service:blockchain/composer", "http"),
             (wl(INGRESS), "service:blockchain/vp0", "http"),
             (UNKNOWN_NODE, "service:blockchain/composer", "http"),
             ("service:blockchain/composer", wl(COMPOSER), "http"),
             ("service:blockchain/vp0", wl(VP0), "http"),
             ("service:blockchain/membersrvc", wl(MEMBERSRVC), "http"),
             ("service:blockchain/membersrvc", wl(MEMBERSRVC), "grpc"),
             (wl(COMPOSER), "service:blockchain/vp0", "http"),
             (wl(COMPOSER), "service:blockchain/membersrvc", "http"),
             (wl(VP0), "service:blockchain/membersrvc", "grpc")},
            id="workload-injected-services",
        ),
        pytest.param(
            {"namespaces": f"{NS},istio-system", "appenders": "deadNode,responseTime",
             "rateTcp": "total", "includeIdleEdges": "true"},
            WORKLOAD_EDGES,
            id="two-namespaces-no-duplicates",
        ),
    ],
)
def test_kiali_graph_types(kiali: Addon, params: dict[str, str],
                           expected: set[tuple[str, str, str]]) -> None:
    doc = graph(kiali, **{"namespaces": NS, **params})
    edges = edges_from_kiali(doc)
    assert edge_names(edges) == expected
    assert len(edges) == len(expected), "an edge appears twice"
    assert all(e.rate and e.rate > 0 for e in edges)


def test_kiali_two_namespaces_mark_nothing_outside(kiali: Addon) -> None:
    doc = graph(kiali, namespaces=f"{NS},istio-system")
    assert not any(n["data"].get("isOutside") for n in doc["elements"]["nodes"])


def test_kiali_box_by_namespace(kiali: Addon) -> None:
    doc = graph(kiali, namespaces=NS, boxBy="namespace")
    boxes = {n["data"]["namespace"]: n["data"] for n in doc["elements"]["nodes"]
             if n["data"]["nodeType"] == "box"}
    # Kiali boxes a namespace only when it has more than one node: istio-system has one.
    assert set(boxes) == {NS}
    assert boxes[NS]["isBox"] == "namespace"
    assert doc["elements"]["nodes"][0]["data"]["nodeType"] == "box"  # parents come first
    parents = {n["data"]["workload"]: n["data"].get("parent") for n in doc["elements"]["nodes"]
               if n["data"]["nodeType"] != "box"}
    assert parents["composer"] == parents["vp0"] == parents["membersrvc"] == boxes[NS]["id"]
    assert parents["istio-ingressgateway"] is None
    assert parents["unknown"] is None  # Kiali never boxes "unknown"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "At least one namespace must be specified via the namespaces query parameter."),
        ({"namespaces": " , "}, "At least one namespace must be specified"),
        ({"namespaces": NS, "graphType": "pods"}, "Invalid graphType [pods]"),
        ({"namespaces": NS, "duration": "ten minutes"}, "Invalid duration [ten minutes]"),
        ({"namespaces": NS, "queryTime": "yesterday"}, "Invalid queryTime [yesterday]"),
        ({"namespaces": NS, "injectServiceNodes": "yes"}, "Invalid injectServiceNodes [yes]"),
    ],
)
def test_kiali_rejects_bad_parameters_with_400_json(
    kiali: Addon, params: dict[str, str], message: str
) -> None:
    response = kiali.get("/kiali/api/namespaces/graph", **params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_kiali_status_health_and_unknown_paths(kiali: Addon) -> None:
    status = kiali.get("/kiali/api").json()
    assert status["status"]["Kiali state"] == "running"
    assert status["externalServices"][0]["name"] == "Prometheus"
    assert status["externalServices"][0]["version"] not in ("", "unreachable")
    assert kiali.get("/kiali/healthz").status_code == 200
    assert kiali.get("/healthz").status_code == 200
    missing = kiali.get("/kiali/api/namespaces/blockchain/nonsense")
    assert missing.status_code == 404 and "error" in missing.json()


# --------------------------------------------------------------------------- servicegraph


def sg(app: str, workload: str | None = None) -> str:
    return f"{app} ({workload or app})"


SERVICEGRAPH_EDGES = {
    (sg("istio-ingressgateway"), sg("composer")),
    (sg("istio-ingressgateway"), sg("vp0")),
    (sg("unknown"), sg("composer")),
    (sg("composer"), sg("vp0")),
    (sg("composer"), sg("membersrvc")),
    (sg("vp0"), sg("membersrvc")),
}


def sg_edge_names(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """Edges through the suite's parser, back to the addon's ``<app> (<workload>)`` names."""
    return {(sg(e.source.app or "", e.source.workload), sg(e.target.app or "", e.target.workload))
            for e in servicegraph_edges(doc)}


def test_servicegraph_graph(servicegraph: Addon) -> None:
    response = servicegraph.get("/graph")
    assert response.status_code == 200, servicegraph.output()
    doc = response.json()
    assert set(doc) == {"nodes", "edges"}
    assert doc["nodes"] == {name: {} for pair in SERVICEGRAPH_EDGES for name in pair}
    assert {(e["source"], e["target"]) for e in doc["edges"]} == SERVICEGRAPH_EDGES
    assert len(doc["edges"]) == len(SERVICEGRAPH_EDGES)
    for edge in doc["edges"]:
        assert set(edge["labels"]) == {"reqs/sec"}
        assert re.fullmatch(r"\d+\.\d{6}", edge["labels"]["reqs/sec"]), edge
        assert float(edge["labels"]["reqs/sec"]) > 0
    assert sg_edge_names(doc) == SERVICEGRAPH_EDGES
    for edge in servicegraph_edges(doc):
        assert edge.protocol == "http" and edge.source.nodeType == "workload"


def test_servicegraph_d3graph(servicegraph: Addon) -> None:
    doc = servicegraph.get("/d3graph", time_horizon="1m").json()
    names = [n["name"] for n in doc["nodes"]]
    assert len(names) == len(set(names)) == 5
    assert {(names[link["source"]], names[link["target"]]) for link in doc["links"]} == \
           SERVICEGRAPH_EDGES
    assert sg_edge_names(doc) == SERVICEGRAPH_EDGES


def test_servicegraph_dot(servicegraph: Addon) -> None:
    dot = servicegraph.get("/dotgraph")
    assert dot.headers["Content-Type"].startswith("text/plain")
    text = dot.text
    assert text.startswith('digraph "istio-servicegraph" {\n') and text.endswith("}\n")
    assert re.search(r'^"composer_\(composer\)" -> "vp0_\(vp0\)" '
                     r'\[label="reqs/sec: \d+\.\d{6}"\];$', text, re.M), text
    assert '"istio-ingressgateway_(istio-ingressgateway)" [label=' \
           '"istio-ingressgateway (istio-ingressgateway)"];' in text
    page = servicegraph.get("/dotviz")
    assert page.headers["Content-Type"].startswith("text/html")
    script = re.search(r'<script type="text/graphviz" id="cluster">\n(.*?)</script>',
                       page.text, re.S)
    assert script, page.text
    # the renderer reads the script's raw text: DOT exactly as /dotgraph writes it
    assert re.search(r'^"composer_\(composer\)" -> "vp0_\(vp0\)" \[label="reqs/sec: [0-9.]+"\];$',
                     script.group(1), re.M), script.group(1)
    assert '"composer_(composer)" -&gt; "vp0_(vp0)"' in page.text  # the <pre> fallback


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"destination_workload": "membersrvc"},
         {(sg("composer"), sg("membersrvc")), (sg("vp0"), sg("membersrvc"))}),
        ({"source_namespace": "istio-system"},
         {(sg("istio-ingressgateway"), sg("composer")),
          (sg("istio-ingressgateway"), sg("vp0"))}),
        ({"destination_namespace": NS, "source_workload": "composer"},
         {(sg("composer"), sg("vp0")), (sg("composer"), sg("membersrvc"))}),
        ({"destination_namespace": "elsewhere"}, set()),
        ({"filter_empty": "true"}, SERVICEGRAPH_EDGES),
    ],
)
def test_servicegraph_filters(servicegraph: Addon, params: dict[str, str],
                              expected: set[tuple[str, str]]) -> None:
    doc = servicegraph.get("/graph", **params).json()
    assert {(e["source"], e["target"]) for e in doc["edges"]} == expected


def test_servicegraph_static_node_bad_horizon_and_health(servicegraph: Addon) -> None:
    assert HTTP.post(servicegraph.url + "/node", params={"name": "extra"}, timeout=10) \
        .status_code == 200
    assert "extra" in servicegraph.get("/graph").json()["nodes"]
    assert servicegraph.get("/node").status_code == 501
    bad = servicegraph.get("/graph", time_horizon="soon")
    assert bad.status_code == 400 and "time_horizon" in bad.json()["error"]
    assert servicegraph.get("/healthz").status_code == 200
    assert servicegraph.get("/force/forcegraph.html").status_code == 404


# --------------------------------------------------------------------------- failures


def test_prometheus_down_answers_503_with_the_reason(addons: Callable[..., Addon]) -> None:
    nowhere = f"http://127.0.0.1:{unused_port()}"
    kiali = addons("kiali", prometheus_url=nowhere)
    servicegraph = addons("servicegraph", prometheus_url=nowhere)
    answer = kiali.get("/kiali/api/namespaces/graph", namespaces=NS)
    assert answer.status_code == 503
    assert "cannot reach Prometheus" in answer.json()["error"]
    assert "Traceback" not in answer.text
    for path in ("/graph", "/d3graph", "/dotgraph", "/dotviz"):
        answer = servicegraph.get(path)
        assert answer.status_code == 503 and nowhere in answer.json()["error"], path
    assert kiali.get("/kiali/api").json()["externalServices"][0]["version"] == "unreachable"


def test_sigterm_exits_0_promptly(addons: Callable[..., Addon]) -> None:
    for name in ("kiali", "servicegraph"):
        addon = addons(name)
        assert addon.get("/healthz").status_code == 200
        started = time.monotonic()
        assert addon.stop() == 0, addon.output()
        assert time.monotonic() - started < 3, f"{name} took too long to stop"
        assert "stopping (signal)" in addon.output()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BIND_ADDRESS": "0.0.0.0"}, "BIND_ADDRESS='0.0.0.0' is not a loopback IP address"),
        ({"PROMETHEUS_URL": ""}, "PROMETHEUS_URL is not set"),
        ({"PROMETHEUS_URL": "http://10.1.2.3:9090"}, "is not a loopback address"),
    ],
)
def test_bad_configuration_exits_2(env: dict[str, str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "localmesh.addons.kiali"], cwd=REPO,
        env=clean_env(**{"BIND_ADDRESS": "127.0.0.1", "PORT": "0",
                         "PROMETHEUS_URL": "http://127.0.0.1:9", **env}),
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_responses_are_json_documents(kiali: Addon, servicegraph: Addon) -> None:
    """Both graphs are valid JSON end to end (no NaN/Infinity that Go would never write)."""
    for text in (kiali.get("/kiali/api/namespaces/graph", namespaces=NS).text,
                 servicegraph.get("/d3graph").text):
        json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


# --------------------------------------------------------------------------- Kiali's own ids


@pytest.mark.skipif(not GOLDEN_GRAPH.is_file(), reason=f"golden Kiali graph not at {GOLDEN_GRAPH}")
def test_ids_and_rate_strings_are_kialis_own() -> None:
    """Every node and edge id of real Kiali's expected graph, recomputed by the port.

    The golden file is kiali/kiali's graph/api/testdata/test_workload_graph.expected, read
    in place (never copied): equal ids mean a suite can compare this emulation's graph with
    a real Kiali's by id, and that node identity per graph type is Kiali's.
    """
    doc = json.loads(GOLDEN_GRAPH.read_text(encoding="utf-8"))
    ids = {}
    for wrapper in doc["elements"]["nodes"]:
        d = wrapper["data"]
        # Fields a node leaves out were "unknown" in the series it came from.
        key, node_type = node_id(
            d["cluster"], d["namespace"], d.get("service", ""), d["namespace"],
            d.get("workload", "unknown"), d.get("app", "unknown"), d.get("version", "unknown"),
            doc["graphType"])
        assert (sha256_hex(key), node_type) == (d["id"], d["nodeType"]), d
        ids[d["id"]] = key
    for wrapper in doc["elements"]["edges"]:
        d = wrapper["data"]
        assert d["source"] in ids and d["target"] in ids
        expected = sha256_hex(f"{d['source']}.{d['target']}.{d['traffic']['protocol']}")
        assert d["id"] == expected
        for name, value in d["traffic"]["rates"].items():
            if "Percent" not in name:
                assert rate_to_string(2, float(value)) == value
    assert rate_to_string(2, 0.004) == "0.004"  # one significant digit shown
    assert rate_to_string(2, 0.0000001) == "0.00000"


def test_kiali_graph_of_a_namespace_without_traffic_is_empty(kiali: Addon) -> None:
    doc = graph(kiali, namespaces="quiet")
    assert doc["elements"] == {"nodes": [], "edges": []}

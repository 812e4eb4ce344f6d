"""The Mixer shape in-process: a report's attribute bag from an Envoy access-log entry, the
1.4 adapters' output (stdio's JSON line, the Prometheus series and their label set), the
generated config that reports to istio-telemetry, 1.4's injection, and Prometheus's jobs."""

from __future__ import annotations

import base64
import datetime
import json

from envoy.config.core.v3 import base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2

from localmesh.istio.meshconfig import MeshConfig
from localmesh.istio.xds.filters import PEER_HEADER
from localmesh.istio.xds.model import T_CLUSTER, T_LISTENER, MeshState, Proxy
from localmesh.istio.xds.sidecar import sidecar_resources
from localmesh.mixer import adapters
from localmesh.mixer.attributes import bag_of
from localmesh.mixer.injection import MixerEraInjection
from localmesh.mixer.xds import report_cluster, report_to_mixer


def _peer(name: str, ns: str, workload: str, app: str) -> str:
    return base64.b64encode(json.dumps({"NAME": name, "NAMESPACE": ns, "WORKLOAD_NAME":
                                        workload, "APP": app, "VERSION": "v1"}).encode()).decode()


def _entry(outbound: bool = False) -> accesslog_pb2.HTTPAccessLogEntry:
    e = accesslog_pb2.HTTPAccessLogEntry()
    e.common_properties.custom_tags.update({"context.reporter.uid": "kubernetes://c-1.ns"})
    e.common_properties.start_time.FromDatetime(datetime.datetime(2026, 1, 2, 3, 4, 5, 6000))
    e.common_properties.time_to_last_downstream_tx_byte.FromMilliseconds(7)
    e.common_properties.upstream_cluster = "outbound|7050||vp0.ns.svc.cluster.local" \
        if outbound else "inbound|8080||"
    e.request.request_method = base_pb2.GET
    e.request.path = "/login"
    e.request.authority = "composer:8080"
    e.request.user_agent = "curl/8"
    e.request.request_headers[PEER_HEADER] = _peer("gw-1", "istio-system",
                                                   "istio-ingressgateway",
                                                   "istio-ingressgateway")
    e.response.response_headers[PEER_HEADER] = _peer("c-1", "ns", "composer", "composer")
    e.response.response_code.value = 200
    e.response.response_body_bytes = 12
    return e


def test_a_reports_bag_holds_mixers_attributes() -> None:
    bag = bag_of("inbound|8080|composer.ns.svc.cluster.local", _entry())
    assert bag["context.reporter.kind"] == "inbound"
    assert bag["destination.service.host"] == "composer.ns.svc.cluster.local"
    assert bag["destination.service.name"] == "composer"
    assert bag["destination.uid"] == "kubernetes://c-1.ns"
    assert bag["source.uid"] == "kubernetes://gw-1.istio-system"
    assert bag["source.workload.name"] == "istio-ingressgateway"
    assert bag["request.path"] == "/login" and bag["request.method"] == "GET"
    assert bag["response.code"] == 200 and bag["response.duration"] == 0.007
    assert bag["context.protocol"] == "http" and bag["connection.mtls"] is False
    outbound = bag_of("outbound", _entry(outbound=True))
    assert outbound["context.reporter.kind"] == "outbound"
    assert outbound["destination.service.host"] == "vp0.ns.svc.cluster.local"


def test_the_stdio_line_is_the_1_4_accesslog_instance() -> None:
    line = adapters.stdio_line(bag_of("inbound|8080|composer.ns.svc.cluster.local", _entry()))
    entry = json.loads(line)
    keys = list(entry)
    assert keys[:3] == ["level", "time", "instance"] and keys[3:] == sorted(keys[3:])
    assert entry["time"] == "2026-01-02T03:04:05.006000Z"
    assert entry["instance"] == "accesslog.instance.istio-system"
    assert entry["latency"] == "7ms" and entry["responseCode"] == 200
    assert entry["destinationServiceHost"] == "composer.ns.svc.cluster.local"
    assert entry["reporter"] == "destination"
    assert entry["connection_security_policy"] == "none"
    assert len(keys) == 3 + 41, "the 1.4 accesslog instance has 41 variables"


def test_the_prometheus_handler_exports_1_4s_series() -> None:
    handler = adapters.PrometheusHandler()
    bag = bag_of("inbound|8080|composer.ns.svc.cluster.local", _entry())
    handler.record(bag)
    handler.record(bag)
    text = handler.exposition()
    line = next(x for x in text.splitlines() if x.startswith("istio_requests_total{"))
    assert line.endswith(" 2")
    labels = [part.split("=")[0] for part in line[line.index("{") + 1:line.index("}")]
              .split('",')]
    assert tuple(labels) == adapters.LABELS
    assert 'istio_request_duration_seconds_bucket{' in text and 'le="0.01"} 2' in text
    probe = dict(bag, **{"request.useragent": "kube-probe/1.33"})
    assert not adapters.http_rule(probe) and adapters.http_rule(bag)


def test_go_durations_print_as_go_does() -> None:
    assert [adapters.go_duration(s) for s in (0, 0.0000005, 0.000125, 0.006848, 1.5, 75)] == \
        ["0s", "500ns", "125µs", "6.848ms", "1.5s", "1m15s"]


def _mesh() -> MeshState:
    return MeshState(services=[], endpoints={}, ingresses=[], ingress_classes={},
                     gateways=[], virtual_services=[], destination_rules=[],
                     mesh_config=MeshConfig(enable_auto_mtls=False, mixer_report_server=
                                            "istio-telemetry.istio-system.svc.cluster.local:"
                                            "9091"))


def test_sidecars_report_to_istio_telemetry_once_its_cluster_exists() -> None:
    proxy = Proxy("sidecar", "127.0.1.2", "127.0.65.2", "c-1", "ns", {"app": "c"}, "c",
                  [{"containerPort": 8080, "name": "http"}])
    resources = sidecar_resources(_mesh(), proxy)
    report_to_mixer(resources, _mesh(), proxy)
    target = report_cluster("istio-telemetry.istio-system.svc.cluster.local:9091")
    assert target == "outbound|9091||istio-telemetry.istio-system.svc.cluster.local"
    assert "istio-telemetry" not in resources[T_CLUSTER]

    def grpc_loggers() -> list[dict]:
        return [log for lst in resources[T_LISTENER].values()
                for chain in lst.get("filter_chains") or [] for f in chain["filters"]
                if f["name"] == "envoy.filters.network.http_connection_manager"
                for log in f["typed_config"]["access_log"]
                if log["name"] == "envoy.access_loggers.http_grpc"]

    assert grpc_loggers() == [], "no report cluster yet: no logger naming it"
    resources = sidecar_resources(_mesh(), proxy)
    resources[T_CLUSTER][target] = {"name": target}
    report_to_mixer(resources, _mesh(), proxy)
    loggers = grpc_loggers()
    assert loggers and all(
        log["typed_config"]["common_config"]["grpc_service"]["envoy_grpc"]["cluster_name"]
        == target for log in loggers)
    tags = {t["tag"]: t["literal"]["value"] for log in loggers
            if log["typed_config"]["common_config"]["log_name"].startswith("inbound")
            for t in log["typed_config"]["common_config"]["custom_tags"]}
    assert tags["context.reporter.kind"] == "inbound"
    assert tags["destination.uid"] == "kubernetes://c-1.ns"


def test_istio_1_4_injects_labelled_namespaces_with_an_ordinary_proxy_container() -> None:
    rules = MixerEraInjection()
    labelled = {"metadata": {"labels": {"istio-injection": "enabled"}}}
    assert rules.selected(labelled, {"metadata": {}}) is True
    assert rules.selected(labelled, {"metadata": {"annotations": {
        "sidecar.istio.io/inject": "false"}}}) is False
    assert rules.selected({"metadata": {"labels": {"istio.io/rev": "default"}}},
                          {"metadata": {"labels": {"sidecar.istio.io/inject": "true"}}}) \
        is False
    pod = {"metadata": {"labels": {"app": "c"}, "annotations": {"istio.io/rev": "default"}},
           "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 8080}]}],
                    "initContainers": [{"name": "istio-init", "args": []},
                                       {"name": "istio-proxy", "restartPolicy": "Always",
                                        "env": [], "volumeMounts": []}]}}
    rules.tailor(labelled, pod)
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["istio-init"]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["c", "istio-proxy"]
    assert "restartPolicy" not in pod["spec"]["containers"][1]
    status = json.loads(pod["metadata"]["annotations"]["sidecar.istio.io/status"])
    assert status["containers"] == ["istio-proxy"] and "istio.io/rev" not in \
        pod["metadata"]["annotations"]

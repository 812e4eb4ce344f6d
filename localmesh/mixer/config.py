"""What Istio 1.4's install put beside Mixer: the ``config.istio.io`` CRDs and the default
telemetry config objects, and Prometheus's scrape config with its discovery.

- CRDs and objects after istio/istio 1.4 ``manifests/istio-telemetry/mixer-telemetry``
  (the ``attributemanifest``s, the ``stdio`` and ``prometheus`` handlers, the
  ``accesslog``, ``requestcount``, ``requestduration``, ``requestsize`` and
  ``responsesize`` instances, the ``stdio`` and ``promhttp`` rules): there for a client to
  read; their meaning is built into the mixer (adapters.py).
- Prometheus: the 1.4 addon's jobs (``manifests/istio-telemetry/prometheus/templates/
  configmap.yaml``) — ``istio-mesh`` (the istio-telemetry endpoints' ``prometheus`` port,
  Mixer's metrics), ``envoy-stats`` (every pod with an ``*-envoy-prom`` port, on 15090),
  ``istio-policy``, ``istio-telemetry``, ``pilot`` (their ``http-monitoring`` ports) and
  ``kubernetes-pods`` (annotated pods without a sidecar). Debian's Prometheus has no
  ``kubernetes_sd_configs``, so localmesh serves each job's targets, with the labels the
  addon's relabelling would give them, to ``http_sd_configs`` (:func:`targets`).
"""

from __future__ import annotations

import yaml

from localmesh.mixer.adapters import LABELS
from localmesh.store import Store

NS = "istio-system"
GROUP = "config.istio.io"
CONFIG_KINDS = (("attributemanifest", "attributemanifests"), ("handler", "handlers"),
                ("instance", "instances"), ("rule", "rules"), ("template", "templates"),
                ("adapter", "adapters"), ("HTTPAPISpec", "httpapispecs"),
                ("HTTPAPISpecBinding", "httpapispecbindings"), ("QuotaSpec", "quotaspecs"),
                ("QuotaSpecBinding", "quotaspecbindings"))

_DIMENSIONS = {
    "reporter": 'conditional((context.reporter.kind | "inbound") == "outbound", "source", '
                '"destination")',
    "source_workload": 'source.workload.name | "unknown"',
    "source_workload_namespace": 'source.workload.namespace | "unknown"',
    "source_principal": 'source.principal | "unknown"',
    "source_app": 'source.labels["app"] | "unknown"',
    "source_version": 'source.labels["version"] | "unknown"',
    "destination_workload": 'destination.workload.name | "unknown"',
    "destination_workload_namespace": 'destination.workload.namespace | "unknown"',
    "destination_principal": 'destination.principal | "unknown"',
    "destination_app": 'destination.labels["app"] | "unknown"',
    "destination_version": 'destination.labels["version"] | "unknown"',
    "destination_service": 'destination.service.host | conditional((destination.service.name '
                           '| "unknown") == "unknown", "unknown", request.host)',
    "destination_service_name": 'destination.service.name | "unknown"',
    "destination_service_namespace": 'destination.service.namespace | "unknown"',
    "request_protocol": 'api.protocol | context.protocol | "unknown"',
    "response_code": "response.code | 200",
    "response_flags": 'context.proxy_error_code | "-"',
    "permissive_response_code": 'rbac.permissive.response_code | "none"',
    "permissive_response_policyid": 'rbac.permissive.effective_policy_id | "none"',
    "connection_security_policy": 'conditional((context.reporter.kind | "inbound") == '
                                  '"outbound", "unknown", conditional(connection.mtls | '
                                  'false, "mutual_tls", "none"))',
}
_METRICS = (("requestcount", '"1"', "requests_total", "COUNTER"),
            ("requestduration", 'response.duration | "0ms"', "request_duration_seconds",
             "DISTRIBUTION"),
            ("requestsize", "request.size | 0", "request_bytes", "DISTRIBUTION"),
            ("responsesize", "response.size | 0", "response_bytes", "DISTRIBUTION"))
_ACCESSLOG = {
    "sourceIp": 'source.ip | ip("0.0.0.0")', "sourceApp": 'source.labels["app"] | ""',
    "sourcePrincipal": 'source.principal | ""', "sourceName": 'source.name | ""',
    "sourceWorkload": 'source.workload.name | ""', "sourceNamespace": 'source.namespace | ""',
    "sourceOwner": 'source.owner | ""', "destinationApp": 'destination.labels["app"] | ""',
    "destinationIp": 'destination.ip | ip("0.0.0.0")',
    "destinationServiceHost": 'destination.service.host | request.host | ""',
    "destinationWorkload": 'destination.workload.name | ""',
    "destinationName": 'destination.name | ""',
    "destinationNamespace": 'destination.namespace | ""',
    "destinationOwner": 'destination.owner | ""',
    "destinationPrincipal": 'destination.principal | ""', "method": 'request.method | ""',
    "url": 'request.path | ""', "responseCode": "response.code | 0",
    "responseFlags": 'context.proxy_error_code | ""', "responseSize": "response.size | 0",
    "requestSize": "request.size | 0", "requestId": 'request.headers["x-request-id"] | ""',
    "latency": 'response.duration | "0ms"', "userAgent": 'request.useragent | ""',
    "responseTimestamp": "response.time", "reporter": _DIMENSIONS["reporter"],
    "connection_security_policy": _DIMENSIONS["connection_security_policy"],
}


def crds() -> list[dict]:
    schema = {"openAPIV3Schema": {"type": "object",
                                  "x-kubernetes-preserve-unknown-fields": True}}
    return [{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
             "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app": "mixer",
                                                                  "istio": "core"}},
             "spec": {"group": GROUP, "scope": "Namespaced", "names": {
                 "kind": kind, "plural": plural, "singular": kind.lower(),
                 "listKind": f"{kind}List", "categories": ["istio-io", "policy-istio-io"]},
                 "versions": [{"name": "v1alpha2", "served": True, "storage": True,
                               "schema": schema, "subresources": {"status": {}}}]}}
            for kind, plural in CONFIG_KINDS]


def _obj(kind: str, name: str, spec: dict) -> dict:
    return {"apiVersion": f"{GROUP}/v1alpha2", "kind": kind,
            "metadata": {"name": name, "namespace": NS,
                         "labels": {"app": "istio-telemetry", "release": "istio"}},
            "spec": spec}


def telemetry_objects() -> list[dict]:
    """The 1.4 defaults a client can list (``kubectl -n istio-system get rules``)."""
    out = [
        _obj("handler", "stdio", {"compiledAdapter": "stdio",
                                  "params": {"outputAsJson": True}}),
        _obj("instance", "accesslog", {"compiledTemplate": "logentry", "params": {
            "severity": '"Info"', "timestamp": "request.time", "variables": _ACCESSLOG,
            "monitored_resource_type": '"global"'}}),
        _obj("rule", "stdio", {"match": 'context.protocol == "http" || context.protocol == '
                                        '"grpc"',
                               "actions": [{"handler": "stdio", "instances": ["accesslog"]}]}),
    ]
    out += [_obj("instance", name, {"compiledTemplate": "metric", "params": {
        "value": value, "dimensions": _DIMENSIONS, "monitored_resource_type": '"UNSPECIFIED"'}})
        for name, value, _, _ in _METRICS]
    out.append(_obj("handler", "prometheus", {"compiledAdapter": "prometheus", "params": {
        "metricsExpirationPolicy": {"metricsExpiryDuration": "10m"},
        "metrics": [{"name": metric, "instance_name": f"{name}.instance.{NS}", "kind": kind,
                     "label_names": list(LABELS)}
                    for name, _, metric, kind in _METRICS]}}))
    out.append(_obj("rule", "promhttp", {
        "match": '(context.protocol == "http" || context.protocol == "grpc") && '
                 '(match((request.useragent | "-"), "kube-probe*") == false) && '
                 '(match((request.useragent | "-"), "Prometheus*") == false)',
        "actions": [{"handler": "prometheus",
                     "instances": [name for name, *_ in _METRICS]}]}))
    return out


JOBS = ("istio-mesh", "envoy-stats", "istio-policy", "istio-telemetry", "pilot",
        "kubernetes-pods")
# Endpoints-role jobs: (service, port name) kept by the addon's relabel rule.
_ENDPOINT_JOBS = {"istio-mesh": ("istio-telemetry", "prometheus"),
                  "istio-policy": ("istio-policy", "http-policy-monitoring"),
                  "istio-telemetry": ("istio-telemetry", "http-monitoring"),
                  "pilot": ("istio-pilot", "http-monitoring")}


def prometheus_config(sd_base: str, scrape_interval: str = "1s",
                      refresh: str = "250ms") -> str:
    jobs = []
    for job in JOBS:
        entry: dict = {"job_name": job,
                       "http_sd_configs": [{"url": f"{sd_base}/{job}",
                                            "refresh_interval": refresh}]}
        if job in ("envoy-stats", "kubernetes-pods"):
            entry["relabel_configs"] = [{"action": "labelmap",
                                         "regex": "__meta_kubernetes_pod_label_(.+)"}]
        jobs.append(entry)
    return yaml.safe_dump({"global": {"scrape_interval": scrape_interval,
                                      "scrape_timeout": scrape_interval,
                                      "evaluation_interval": scrape_interval},
                           "scrape_configs": jobs}, sort_keys=False)


def _label(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key)


def _running(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and \
        bool((pod.get("status") or {}).get("podIP"))


def targets(store: Store, job: str) -> list[dict]:
    """A job's targets for ``http_sd_configs``, labelled as the 1.4 relabelling would."""
    if job in _ENDPOINT_JOBS:
        service, port_name = _ENDPOINT_JOBS[job]
        ep = store.get(("", "endpoints"), NS, service) or {}
        out = []
        for subset in ep.get("subsets") or []:
            for port in subset.get("ports") or []:
                if port.get("name") != port_name:
                    continue
                out += [{"targets": [f"{a['ip']}:{port['port']}"], "labels": {}}
                        for a in subset.get("addresses") or []]
        return out
    out = []
    for pod in store.scan(("", "pods")):
        if not _running(pod):
            continue
        meta = pod["metadata"]
        annotations = meta.get("annotations") or {}
        labels = {"namespace": meta["namespace"], "pod_name": meta["name"],
                  **{f"__meta_kubernetes_pod_label_{_label(k)}": v
                     for k, v in (meta.get("labels") or {}).items()}}
        ip = pod["status"]["podIP"]
        ports = [p for c in pod["spec"].get("containers") or [] for p in c.get("ports") or []]
        if job == "envoy-stats":
            if any(str(p.get("name", "")).endswith("-envoy-prom") for p in ports):
                out.append({"targets": [f"{ip}:15090"],
                            "labels": {**labels, "__metrics_path__": "/stats/prometheus"}})
        elif job == "kubernetes-pods":
            injected = "sidecar.istio.io/status" in annotations
            if annotations.get("prometheus.io/scrape") != "true" or \
                    (injected and annotations.get("prometheus.io/scheme") != "http"):
                continue
            port = annotations.get("prometheus.io/port")
            if port:
                out.append({"targets": [f"{ip}:{port}"], "labels": {
                    **labels, "__metrics_path__": annotations.get("prometheus.io/path",
                                                                  "/metrics")}})
    return out

"""Mixer's default telemetry config of Istio 1.4, applied to each report's attribute bag.

istio/istio ``manifests/istio-telemetry/mixer-telemetry/templates/config.yaml`` (1.4):

- rule ``stdio`` (``context.protocol == "http" || context.protocol == "grpc"``) sends the
  ``accesslog`` logentry instance to the ``stdio`` handler (``outputAsJson: true``): one
  JSON line per request on Mixer's stdout, written as istio/istio ``mixer/adapter/stdio``
  (``stdio.go``, ``zap.go``) writes it — ``level``, ``time`` (the instance's timestamp,
  ``request.time``, UTC with microseconds), ``instance`` (``accesslog.instance.istio-system``),
  then the variables sorted by name, durations as Go prints them (``6.848ms``);
- rule ``promhttp`` (HTTP and gRPC, except the user agents ``kube-probe*`` and
  ``Prometheus*``) sends ``requestcount``, ``requestduration``, ``requestsize`` and
  ``responsesize`` to the ``prometheus`` handler, which exports ``istio_requests_total``,
  ``istio_request_duration_seconds`` (buckets 0.005 … 10), ``istio_request_bytes`` and
  ``istio_response_bytes`` (exponential, scale 1, growth 10) with the handler's label
  names, in its order.

Each variable and dimension is the instance's expression with its default (``source.name
| ""``, ``response.code | 200``, …). The config objects are installed for clients to read
(config.py); this code is their meaning, and editing them changes nothing.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import threading
from typing import Any

from localmesh.mixer.attributes import Bag

NAMESPACE = "istio-system"
LABELS = (
    "reporter", "source_app", "source_principal", "source_workload",
    "source_workload_namespace", "source_version", "destination_app", "destination_principal",
    "destination_workload", "destination_workload_namespace", "destination_version",
    "destination_service", "destination_service_name", "destination_service_namespace",
    "request_protocol", "response_code", "response_flags", "permissive_response_code",
    "permissive_response_policyid", "connection_security_policy",
)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BYTES_BUCKETS = tuple(float(10 ** i) for i in range(9))


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` for a non-negative duration."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    if ns < 1000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:g}µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:g}ms"
    out, rest = "", ns / 1e9
    if rest >= 3600:
        out += f"{int(rest // 3600)}h"
        rest %= 3600
    if out or rest >= 60:
        out += f"{int(rest // 60)}m"
        rest %= 60
    return out + f"{rest:g}s"


def zap_time(t: datetime.datetime) -> str:
    """``formatDate`` of the stdio adapter: UTC, microseconds, ``Z``."""
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _security_policy(bag: Bag) -> str:
    if bag.get("context.reporter.kind", "inbound") == "outbound":
        return "unknown"
    return "mutual_tls" if bag.get("connection.mtls") else "none"


def _reporter(bag: Bag) -> str:
    return "source" if bag.get("context.reporter.kind", "inbound") == "outbound" \
        else "destination"


def accesslog(bag: Bag) -> dict[str, Any]:
    """The ``accesslog`` instance's variables (``compiledTemplate: logentry``)."""
    headers = bag.get("request.headers") or {}
    src, dst = bag.get("source.labels") or {}, bag.get("destination.labels") or {}
    return {
        "sourceIp": bag.get("source.ip", "0.0.0.0"),
        "sourceApp": src.get("app", ""),
        "sourcePrincipal": bag.get("source.principal", ""),
        "sourceName": bag.get("source.name", ""),
        "sourceWorkload": bag.get("source.workload.name", ""),
        "sourceNamespace": bag.get("source.namespace", ""),
        "sourceOwner": bag.get("source.owner", ""),
        "destinationApp": dst.get("app", ""),
        "destinationIp": bag.get("destination.ip", "0.0.0.0"),
        "destinationServiceHost": bag.get("destination.service.host") or
        bag.get("request.host", ""),
        "destinationWorkload": bag.get("destination.workload.name", ""),
        "destinationName": bag.get("destination.name", ""),
        "destinationNamespace": bag.get("destination.namespace", ""),
        "destinationOwner": bag.get("destination.owner", ""),
        "destinationPrincipal": bag.get("destination.principal", ""),
        "apiClaims": bag.get("request.auth.raw_claims", ""),
        "apiKey": bag.get("request.api_key") or headers.get("x-api-key", ""),
        "protocol": bag.get("request.scheme") or bag.get("context.protocol") or "http",
        "method": bag.get("request.method", ""),
        "url": bag.get("request.path", ""),
        "responseCode": bag.get("response.code", 0),
        "responseFlags": bag.get("context.proxy_error_code", ""),
        "responseSize": bag.get("response.size", 0),
        "permissiveResponseCode": "none",
        "permissiveResponsePolicyID": "none",
        "requestSize": bag.get("request.size", 0),
        "requestId": headers.get("x-request-id", ""),
        "clientTraceId": headers.get("x-client-trace-id", ""),
        "latency": go_duration(bag.get("response.duration", 0.0)),
        "connection_security_policy": _security_policy(bag),
        "requestedServerName": bag.get("connection.requested_server_name", ""),
        "userAgent": bag.get("request.useragent", ""),
        "responseTimestamp": zap_time(bag["response.time"]) if "response.time" in bag
        else "",
        "receivedBytes": bag.get("request.total_size", 0),
        "sentBytes": bag.get("response.total_size", 0),
        "referer": bag.get("request.referer", ""),
        "httpAuthority": headers.get(":authority") or bag.get("request.host", ""),
        "xForwardedFor": headers.get("x-forwarded-for", "0.0.0.0"),
        "reporter": _reporter(bag),
        "grpcStatus": bag.get("response.grpc_status", ""),
        "grpcMessage": bag.get("response.grpc_message", ""),
    }


def stdio_line(bag: Bag) -> str:
    """The stdio handler's JSON line for the ``accesslog`` instance."""
    when = bag.get("request.time") or datetime.datetime.now(datetime.UTC)
    entry = {"level": "info", "time": zap_time(when),
             "instance": f"accesslog.instance.{NAMESPACE}"}
    variables = accesslog(bag)
    entry.update({k: variables[k] for k in sorted(variables)})
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)


def http_rule(bag: Bag) -> bool:
    """``promhttp``'s match; ``stdio``'s is its first half."""
    agent = bag.get("request.useragent") or "-"
    return bag.get("context.protocol") in ("http", "grpc") and \
        not fnmatch.fnmatchcase(agent, "kube-probe*") and \
        not fnmatch.fnmatchcase(agent, "Prometheus*")


def dimensions(bag: Bag) -> tuple[str, ...]:
    """The request metrics' dimensions, in the handler's ``label_names`` order."""
    src, dst = bag.get("source.labels") or {}, bag.get("destination.labels") or {}
    name = bag.get("destination.service.name") or "unknown"
    values = {
        "reporter": _reporter(bag),
        "source_app": src.get("app", "unknown"),
        "source_principal": bag.get("source.principal", "unknown"),
        "source_workload": bag.get("source.workload.name", "unknown"),
        "source_workload_namespace": bag.get("source.workload.namespace", "unknown"),
        "source_version": src.get("version", "unknown"),
        "destination_app": dst.get("app", "unknown"),
        "destination_principal": bag.get("destination.principal", "unknown"),
        "destination_workload": bag.get("destination.workload.name", "unknown"),
        "destination_workload_namespace": bag.get("destination.workload.namespace",
                                                  "unknown"),
        "destination_version": dst.get("version", "unknown"),
        "destination_service": bag.get("destination.service.host") or
        ("unknown" if name == "unknown" else bag.get("request.host", "unknown")),
        "destination_service_name": name,
        "destination_service_namespace": bag.get("destination.service.namespace", "unknown"),
        "request_protocol": bag.get("context.protocol", "unknown"),
        "response_code": str(bag.get("response.code", 200)),
        "response_flags": bag.get("context.proxy_error_code", "-"),
        "permissive_response_code": "none",
        "permissive_response_policyid": "none",
        "connection_security_policy": _security_policy(bag),
    }
    return tuple(str(values[k]) for k in LABELS)


class Histogram:
    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
        self.total += 1
        self.sum += value


def _labels(key: tuple[str, ...]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return ",".join(f'{k}="{esc(v)}"' for k, v in zip(LABELS, key, strict=True))


def _bound(b: float) -> str:
    return f"{b:g}" if b < 1e6 else f"{b:.0e}".replace("+0", "+")


class PrometheusHandler:
    """The ``prometheus`` handler's series (and the self-monitoring counts); thread safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, ...], int] = {}
        self.histograms: dict[str, dict[tuple[str, ...], Histogram]] = {
            "istio_request_duration_seconds": {}, "istio_request_bytes": {},
            "istio_response_bytes": {}}
        self.dispatches = {"stdio": 0, "prometheus": 0}
        self.reports = 0

    def record(self, bag: Bag) -> None:
        key = dimensions(bag)
        observed = (("istio_request_duration_seconds", DURATION_BUCKETS,
                     float(bag.get("response.duration", 0.0))),
                    ("istio_request_bytes", BYTES_BUCKETS, float(bag.get("request.size", 0))),
                    ("istio_response_bytes", BYTES_BUCKETS, float(bag.get("response.size", 0))))
        with self.lock:
            self.requests[key] = self.requests.get(key, 0) + 1
            for name, bounds, value in observed:
                self.histograms[name].setdefault(key, Histogram(bounds)).observe(value)
            self.dispatches["prometheus"] += 1

    def exposition(self) -> str:
        """``:42422/metrics``."""
        with self.lock:
            out = ["# HELP istio_requests_total requests_total",
                   "# TYPE istio_requests_total counter"]
            out += [f"istio_requests_total{{{_labels(k)}}} {n}"
                    for k, n in sorted(self.requests.items())]
            for name, series in self.histograms.items():
                out += [f"# HELP {name} {name.removeprefix('istio_')}",
                        f"# TYPE {name} histogram"]
                for key, h in sorted(series.items()):
                    labels = _labels(key)
                    out += [f'{name}_bucket{{{labels},le="{_bound(b)}"}} {c}'
                            for b, c in zip(h.bounds, h.counts, strict=True)]
                    out += [f'{name}_bucket{{{labels},le="+Inf"}} {h.total}',
                            f"{name}_sum{{{labels}}} {h.sum:g}",
                            f"{name}_count{{{labels}}} {h.total}"]
        return "\n".join(out) + "\n"

    def self_monitoring(self) -> str:
        """``:15014/metrics``: Mixer's own counters (a few of its real names)."""
        with self.lock:
            reports, dispatches = self.reports, dict(self.dispatches)
        handler = {"stdio": ("stdio", "logentry"), "prometheus": ("prometheus", "metric")}
        lines = ["# TYPE grpc_server_handled_total counter",
                 'grpc_server_handled_total{grpc_code="OK",grpc_method="Report",'
                 f'grpc_service="istio.mixer.v1.Mixer",grpc_type="unary"}} {reports}',
                 "# TYPE mixer_runtime_dispatches_total counter"]
        lines += [f'mixer_runtime_dispatches_total{{adapter="{adapter}",error="false",'
                  f'handler="{name}.{NAMESPACE}",meshFunction="{fn}"}} {dispatches[name]}'
                  for name, (adapter, fn) in handler.items()]
        return "\n".join(lines) + "\n"

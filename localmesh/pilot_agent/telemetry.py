"""Istio's standard metrics, computed from Envoy's access-log stream.

A real istio-proxy computes ``istio_requests_total`` and
``istio_request_duration_milliseconds`` in Istio's stats Wasm/native filter. A stock Envoy
cannot, so pilot-agent receives every HTTP access-log entry over gRPC
(envoy.service.accesslog.v3) and computes the same series with the same labels
(istio.io/latest/docs/reference/config/metrics): ``reporter`` is ``destination`` for the
inbound side and ``source`` for outbound and gateways; the peer's identity comes from the
metadata-exchange headers; unknown values are the literal ``"unknown"``.

Security labels follow the connection: on the inbound side (``reporter="destination"``)
``connection_security_policy`` is ``mutual_tls`` when the downstream connection was TLS
with a verified peer certificate (the entry's ``tls_properties``), ``none`` otherwise,
and ``source_principal``/``destination_principal`` are the URI SANs of the peer's and
this proxy's certificates. On the outbound side Istio reports the policy as ``unknown``
("security policy cannot be properly populated" from the source), and so does this;
Envoy's access log carries no upstream TLS properties, so the principals are ``unknown``
there too (Istio reads them from the upstream connection).
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass

DURATION_BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
                    60000, 300000, 600000, 1800000, 3600000)

LABELS = (
    "reporter", "source_workload", "source_workload_namespace", "source_principal",
    "source_app", "source_version", "source_canonical_service", "source_canonical_revision",
    "source_cluster", "destination_workload", "destination_workload_namespace",
    "destination_principal", "destination_app", "destination_version", "destination_service",
    "destination_service_name", "destination_service_namespace",
    "destination_canonical_service", "destination_canonical_revision", "destination_cluster",
    "request_protocol", "response_code", "grpc_response_status", "response_flags",
    "connection_security_policy",
)


@dataclass(frozen=True)
class Identity:
    workload: str = "unknown"
    namespace: str = "unknown"
    app: str = "unknown"
    version: str = "unknown"
    canonical_service: str = "unknown"
    canonical_revision: str = "unknown"
    cluster: str = "unknown"

    @classmethod
    def from_header(cls, value: str | None) -> Identity:
        if not value:
            return cls()
        try:
            data = json.loads(base64.b64decode(value))
        except (ValueError, TypeError):
            return cls()
        return cls(data.get("WORKLOAD_NAME") or "unknown", data.get("NAMESPACE") or "unknown",
                   data.get("APP") or "unknown", data.get("VERSION") or "unknown",
                   data.get("CANONICAL_SERVICE") or "unknown",
                   data.get("CANONICAL_REVISION") or "unknown",
                   data.get("CLUSTER_ID") or "unknown")


@dataclass(frozen=True)
class Request:
    """The parts of one access-log entry the metrics need."""

    log_name: str
    upstream_cluster: str
    response_code: int
    duration_ms: float
    request_peer: str | None
    response_peer: str | None
    grpc: bool
    grpc_status: str | None
    response_flags: str
    peer_principal: str = ""  # URI SAN of the downstream peer's certificate, if mTLS
    local_principal: str = ""  # URI SAN of this proxy's certificate on that connection


class Metrics:
    """Counters and histograms keyed by Istio's label set; thread safe."""

    def __init__(self, me: Identity) -> None:
        self.me = me
        self.lock = threading.Lock()
        self.requests: dict[tuple, int] = {}
        self.durations: dict[tuple, list[float]] = {}

    def labels_for(self, r: Request) -> tuple:
        inbound = r.log_name.startswith("inbound")
        waypoint = r.log_name == "waypoint"
        if waypoint:
            # A waypoint reports the caller and the destination workload it looked up, and
            # the service of its ``inbound-vip|<port>|http|<fqdn>`` cluster (Istio's
            # reporter="waypoint", istio.io "Ambient telemetry").
            reporter = "waypoint"
            src = Identity.from_header(r.request_peer)
            dst = Identity.from_header(r.response_peer)
            parts = r.upstream_cluster.split("|")
            service = parts[3] if len(parts) == 4 and parts[0] == "inbound-vip" else ""
        elif inbound:
            reporter = "destination"
            src = Identity.from_header(r.request_peer)
            dst = self.me
            service = r.log_name.split("|", 2)[2] if r.log_name.count("|") >= 2 else ""
        else:
            reporter = "source"
            src = self.me
            dst = Identity.from_header(r.response_peer)
            parts = r.upstream_cluster.split("|")
            service = parts[3] if len(parts) == 4 and parts[0] == "outbound" else ""
        svc_name = svc_ns = "unknown"
        if service.endswith(".svc.cluster.local"):
            svc_name, svc_ns = service.split(".")[:2]
        values = {
            "reporter": reporter,
            "source_workload": src.workload, "source_workload_namespace": src.namespace,
            "source_principal": (r.peer_principal if inbound or waypoint else "") or "unknown",
            "source_app": src.app,
            "source_version": src.version, "source_canonical_service": src.canonical_service,
            "source_canonical_revision": src.canonical_revision,
            "source_cluster": src.cluster,
            "destination_workload": dst.workload,
            "destination_workload_namespace": dst.namespace,
            "destination_principal": (r.local_principal if inbound or waypoint else "")
            or "unknown",
            "destination_app": dst.app,
            "destination_version": dst.version, "destination_service": service or "unknown",
            "destination_service_name": svc_name, "destination_service_namespace": svc_ns,
            "destination_canonical_service": dst.canonical_service,
            "destination_canonical_revision": dst.canonical_revision,
            "destination_cluster": dst.cluster,
            "request_protocol": "grpc" if r.grpc else "http",
            "response_code": str(r.response_code),
            "grpc_response_status": r.grpc_status if r.grpc and r.grpc_status else "",
            "response_flags": r.response_flags or "-",
            "connection_security_policy": ("mutual_tls" if r.peer_principal else "none")
            if inbound or waypoint else "unknown",
        }
        return tuple(values[k] for k in LABELS)

    def record(self, r: Request) -> None:
        key = self.labels_for(r)
        with self.lock:
            self.requests[key] = self.requests.get(key, 0) + 1
            hist = self.durations.setdefault(key, [0.0] * (len(DURATION_BUCKETS) + 2))
            for i, b in enumerate(DURATION_BUCKETS):
                if r.duration_ms <= b:
                    hist[i] += 1
            hist[-2] += r.duration_ms
            hist[-1] += 1

    def exposition(self) -> str:
        """Prometheus text format, as the merged :15020/stats/prometheus serves it."""
        out = ["# TYPE istio_requests_total counter"]
        with self.lock:
            reqs = dict(self.requests)
            durs = {k: list(v) for k, v in self.durations.items()}
        for key, n in sorted(reqs.items()):
            out.append(f"istio_requests_total{{{_fmt(key)}}} {n}")
        out.append("# TYPE istio_request_duration_milliseconds histogram")
        for key, hist in sorted(durs.items()):
            labels = _fmt(key)
            for i, b in enumerate(DURATION_BUCKETS):
                out.append(f'istio_request_duration_milliseconds_bucket{{{labels},le="{b}"}} '
                           f"{int(hist[i])}")
            out.append(f'istio_request_duration_milliseconds_bucket{{{labels},le="+Inf"}} '
                       f"{int(hist[-1])}")
            out.append(f"istio_request_duration_milliseconds_sum{{{labels}}} {hist[-2]}")
            out.append(f"istio_request_duration_milliseconds_count{{{labels}}} {int(hist[-1])}")
        return "\n".join(out) + "\n"


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fmt(key: tuple) -> str:
    return ",".join(f'{k}="{_esc(v)}"' for k, v in zip(LABELS, key, strict=True))


FLAG_NAMES = {
    "failed_local_healthcheck": "LH", "no_healthy_upstream": "UH",
    "upstream_request_timeout": "UT", "local_reset": "LR", "upstream_remote_reset": "UR",
    "upstream_connection_failure": "UF", "upstream_connection_termination": "UC",
    "upstream_overflow": "UO", "no_route_found": "NR", "delay_injected": "DI",
    "fault_injected": "FI", "rate_limited": "RL", "downstream_connection_termination": "DC",
    "upstream_retry_limit_exceeded": "URX", "stream_idle_timeout": "SI",
    "no_cluster_found": "NC",
}


def _uri_san(certificate: object) -> str:
    for san in getattr(certificate, "subject_alt_name", ()) or ():
        if getattr(san, "uri", ""):
            return str(san.uri)
    return ""


def tls_of(common_properties: object) -> dict[str, str]:
    """The principals of a logged connection (envoy.data.accesslog.v3 ``TLSProperties``):
    a peer certificate appears only once Envoy has verified it."""
    props = getattr(common_properties, "tls_properties", None)
    if props is None or not getattr(props, "tls_version", 0):
        return {"peer_principal": "", "local_principal": ""}
    return {"peer_principal": _uri_san(props.peer_certificate_properties),
            "local_principal": _uri_san(props.local_certificate_properties)}


def flags_of(response_flags: object) -> str:
    """Envoy's ResponseFlags message → the short flag string (``-`` when none)."""
    set_flags = [short for name, short in FLAG_NAMES.items()
                 if getattr(response_flags, name, False)]
    return ",".join(set_flags) or "-"

"""ztunnel's metrics: ``istio_tcp_connections_opened_total``,
``istio_tcp_connections_closed_total``, ``istio_tcp_received_bytes_total`` and
``istio_tcp_sent_bytes_total``, with ztunnel's label set.

As istio/ztunnel ``src/proxy/metrics.rs`` (``CommonTrafficLabels``, ``ConnectionResult``):
a connection is counted opened when it opens and closed when it ends; its bytes are added
as they flow; the labels are ``reporter`` (``source`` on the calling pod's side,
``destination`` on the receiving pod's), the source's and destination's workload,
canonical service and revision, namespace, principal (SPIFFE identity), app and version
(ztunnel reports the canonical names there), cluster, the destination service,
``request_protocol="tcp"``, ``response_flags`` and ``connection_security_policy``
(``mutual_tls`` over HBONE, ``unknown`` for plaintext passthrough). Unknown values are the
literal ``unknown``.

localmesh's ztunnel learns of connections from its Envoy's TCP access logs (when
connected, every second, and at the end), so bytes arrive in steps of at most a second.
The peer's principal on the destination side is the URI SAN of the certificate the caller
presented on the HBONE connection (Envoy's filter state ``io.istio.peer_principal``); the
workloads come from what istiod sent (state.py), looked up by IP as ztunnel does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from localmesh.ztunnel.state import ProxyState

LABELS = (
    "reporter", "source_workload", "source_canonical_service", "source_canonical_revision",
    "source_workload_namespace", "source_principal", "source_app", "source_version",
    "source_cluster", "destination_service", "destination_service_namespace",
    "destination_service_name", "destination_workload", "destination_canonical_service",
    "destination_canonical_revision", "destination_workload_namespace",
    "destination_principal", "destination_app", "destination_version", "destination_cluster",
    "request_protocol", "response_flags", "connection_security_policy",
)
CONNECTED, PERIODIC, END = "TcpUpstreamConnected", "TcpPeriodic", "TcpConnectionEnd"


@dataclass(frozen=True)
class Connection:
    """One TCP access-log entry, as much of it as the metrics need."""

    log_name: str  # "<direction>|<namespace>/<pod>"
    kind: str  # CONNECTED | PERIODIC | END
    stream_id: str
    remote_ip: str  # the downstream's (the caller's) address, after original_dst
    local_ip: str  # where it was going
    local_port: int
    peer_principal: str  # the caller's certificate URI SAN, "" without one
    received: int
    sent: int
    upstream_ip: str = ""  # where ztunnel connected (a pod's, or a waypoint's, 15008)


def _identity(w: dict | None) -> str:
    if not w:
        return ""
    return (f"spiffe://{w.get('trustDomain', 'cluster.local')}/ns/{w.get('namespace')}/sa/"
            f"{w.get('serviceAccount', 'default')}")


def _side(prefix: str, w: dict | None, principal: str) -> dict[str, str]:
    w = w or {}
    return {f"{prefix}_workload": w.get("workloadName", ""),
            f"{prefix}_canonical_service": w.get("canonicalName", ""),
            f"{prefix}_canonical_revision": w.get("canonicalRevision", ""),
            f"{prefix}_workload_namespace": w.get("namespace", ""),
            f"{prefix}_principal": principal,
            f"{prefix}_app": w.get("canonicalName", ""),
            f"{prefix}_version": w.get("canonicalRevision", ""),
            f"{prefix}_cluster": w.get("clusterId", "") if w else ""}


def labels_for(c: Connection, state: ProxyState) -> tuple[str, ...]:
    """The label values of a connection, in ``LABELS`` order."""
    direction, _, pod = c.log_name.partition("|")
    ns, _, name = pod.partition("/")
    me = state.workload_by_name(ns, name)
    service = None
    if direction == "outbound":
        # The workload ztunnel connected to (a waypoint for a service that has one, whose
        # VIP is then the original destination), as ztunnel reports the hop it carried.
        dest = state.workload_by_ip(c.upstream_ip) or state.workload_by_ip(c.local_ip)
        service = state.service_by_vip(c.local_ip)
        reporter, source = "source", me
        source_principal, dest_principal = _identity(source), _identity(dest)
        policy = "mutual_tls"
    else:
        reporter, source, dest = "destination", state.workload_by_ip(c.remote_ip), me
        mtls = direction == "inbound"
        source_principal = c.peer_principal if mtls else ""
        dest_principal = _identity(dest) if mtls else ""
        policy = "mutual_tls" if mtls else "unknown"
    service = service or state.service_of(dest, c.local_port)
    values = {"reporter": reporter, **_side("source", source, source_principal),
              **_side("destination", dest, dest_principal),
              "destination_service": (service or {}).get("hostname", ""),
              "destination_service_namespace": (service or {}).get("namespace", ""),
              "destination_service_name": (service or {}).get("name", ""),
              "request_protocol": "tcp", "response_flags": "-",
              "connection_security_policy": policy}
    return tuple(values[k] or "unknown" for k in LABELS)


class TcpMetrics:
    """The four counters, keyed by label values; thread safe."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self.lock = threading.Lock()
        self.opened: dict[tuple, int] = {}
        self.closed: dict[tuple, int] = {}
        self.received: dict[tuple, int] = {}
        self.sent: dict[tuple, int] = {}
        # stream id → (labels, bytes received and sent counted so far)
        self.open: dict[str, tuple[tuple, int, int]] = {}

    def record(self, c: Connection) -> None:
        with self.lock:
            known = self.open.get(c.stream_id)
            if known is None:
                key = labels_for(c, self.state)
                self.opened[key] = self.opened.get(key, 0) + 1
                known = (key, 0, 0)
            key, received, sent = known
            self.received[key] = self.received.get(key, 0) + max(0, c.received - received)
            self.sent[key] = self.sent.get(key, 0) + max(0, c.sent - sent)
            if c.kind == END:
                self.closed[key] = self.closed.get(key, 0) + 1
                self.open.pop(c.stream_id, None)
            else:
                self.open[c.stream_id] = (key, max(c.received, received), max(c.sent, sent))

    def exposition(self) -> str:
        """Prometheus text format, as ztunnel's ``:15020/metrics`` serves it."""
        out = []
        with self.lock:
            series = (("istio_tcp_connections_opened_total", "The total number of TCP "
                       "connections opened", dict(self.opened)),
                      ("istio_tcp_connections_closed_total", "The total number of TCP "
                       "connections closed", dict(self.closed)),
                      ("istio_tcp_received_bytes_total", "The size of total bytes received "
                       "during request in case of a TCP connection", dict(self.received)),
                      ("istio_tcp_sent_bytes_total", "The size of total bytes sent during "
                       "response in case of a TCP connection", dict(self.sent)))
        for name, help_text, values in series:
            out += [f"# HELP {name} {help_text}.", f"# TYPE {name} counter"]
            for key, n in sorted(values.items()):
                labels = ",".join(f'{k}="{_esc(v)}"' for k, v in zip(LABELS, key, strict=True))
                out.append(f"{name}{{{labels}}} {n}")
        return "\n".join(out) + "\n"


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

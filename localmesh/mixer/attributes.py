"""A report's attributes: what Mixer knows of one request, from a sidecar's report.

Istio 1.4's proxies sent Mixer an attribute bag per request (the vocabulary of
istio.io ``reference/config/policy-and-telemetry/attribute-vocabulary``; the
``attributemanifest`` ``istioproxy`` and ``kubernetes`` of
``manifests/istio-telemetry/mixer-telemetry/templates/config.yaml`` at 1.4): the mixer
filter's static ``mixer_attributes`` (``context.reporter.kind``, ``context.reporter.uid``,
``destination.uid``, ``source.uid``, … — golden
``sidecar-configdump-1.5.0-productpage.json``), the request's (``request.path``,
``response.code``, …) and the workloads' (which Mixer's ``kubernetesenv`` adapter looked up
by uid). localmesh's sidecars report over Envoy's gRPC access-log stream instead
(localmesh/mixer/xds.py): the static attributes travel as the logger's custom tags, the
request's as the log entry, and the peers' workloads as Istio's metadata-exchange headers
(the same ones localmesh's Istio telemetry reads). This module turns one entry into the
bag; the adapters (adapters.py) read only the bag.
"""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

from envoy.config.core.v3 import base_pb2

from localmesh.istio.xds.filters import PEER_HEADER

Bag = dict[str, Any]

FLAG_NAMES = {
    "failed_local_healthcheck": "LH", "no_healthy_upstream": "UH",
    "upstream_request_timeout": "UT", "local_reset": "LR", "upstream_remote_reset": "UR",
    "upstream_connection_failure": "UF", "upstream_connection_termination": "UC",
    "upstream_overflow": "UO", "no_route_found": "NR", "delay_injected": "DI",
    "fault_injected": "FI", "rate_limited": "RL", "downstream_connection_termination": "DC",
    "stream_idle_timeout": "SI",
}


def _peer(value: str | None) -> dict:
    if not value:
        return {}
    try:
        data = json.loads(base64.b64decode(value))
    except (ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _timestamp(ts: Any) -> datetime.datetime | None:
    if ts is None or not (ts.seconds or ts.nanos):
        return None
    return datetime.datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, datetime.UTC)


def _duration(d: Any) -> float:
    return d.seconds + d.nanos / 1e9 if d is not None else 0.0


def _address(addr: Any) -> tuple[str, int]:
    sock = getattr(addr, "socket_address", None)
    if sock is None or not sock.address:
        return "", 0
    return sock.address, sock.port_value


def _service(cluster_or_log: str) -> tuple[str, str, str]:
    """(host, name, namespace) of ``outbound|8080||<fqdn>`` or ``inbound|8080|<fqdn>``."""
    parts = cluster_or_log.split("|")
    host = parts[3] if parts[0] == "outbound" and len(parts) == 4 else \
        parts[2] if parts[0] == "inbound" and len(parts) >= 3 else ""
    if not host.endswith(".svc.cluster.local"):
        return host, "", ""
    name, namespace = host.split(".")[:2]
    return host, name, namespace


def _workload(prefix: str, peer: dict, bag: Bag) -> None:
    """The ``kubernetesenv`` adapter's attributes of a peer, from its metadata."""
    if not peer:
        return
    ns = peer.get("NAMESPACE") or ""
    if peer.get("NAME"):
        bag[f"{prefix}.uid"] = f"kubernetes://{peer['NAME']}.{ns}"
        bag[f"{prefix}.name"] = peer["NAME"]
    bag[f"{prefix}.namespace"] = ns
    labels = {k: v for k, v in (("app", peer.get("APP")), ("version", peer.get("VERSION")))
              if v}
    bag[f"{prefix}.labels"] = labels
    if peer.get("WORKLOAD_NAME"):
        bag[f"{prefix}.workload.name"] = peer["WORKLOAD_NAME"]
        bag[f"{prefix}.workload.namespace"] = ns
        bag[f"{prefix}.workload.uid"] = \
            f"istio://{ns}/workloads/{peer['WORKLOAD_NAME']}"
        bag[f"{prefix}.owner"] = \
            f"kubernetes://apis/apps/v1/namespaces/{ns}/deployments/{peer['WORKLOAD_NAME']}"


def bag_of(log_name: str, entry: Any) -> Bag:
    """The attribute bag of one ``HTTPAccessLogEntry`` reported under ``log_name``."""
    cp = entry.common_properties
    req, resp = entry.request, entry.response
    req_h = dict(req.request_headers)
    resp_h = dict(resp.response_headers)
    bag: Bag = dict(cp.custom_tags)
    kind = bag.get("context.reporter.kind") or ("inbound" if log_name.startswith("inbound")
                                                else "outbound")
    bag["context.reporter.kind"] = kind
    ctype = req_h.get("content-type", "") or resp_h.get("content-type", "")
    bag["context.protocol"] = "grpc" if ctype.startswith("application/grpc") else "http"
    _workload("source", _peer(req_h.get(PEER_HEADER)), bag)
    _workload("destination", _peer(resp_h.get(PEER_HEADER)), bag)
    host, name, namespace = _service(log_name if kind == "inbound" else cp.upstream_cluster)
    if host:
        bag["destination.service.host"] = host
    if name:
        bag["destination.service.name"] = name
        bag["destination.service.namespace"] = namespace
        bag["destination.service.uid"] = f"istio://{namespace}/services/{name}"
    src_ip, _ = _address(cp.downstream_remote_address)
    if kind == "inbound" and src_ip:
        bag["source.ip"] = src_ip
    dst_ip, dst_port = _address(cp.upstream_remote_address if kind == "outbound"
                                else cp.downstream_local_address)
    if dst_ip:
        bag["destination.ip"] = dst_ip
        bag.setdefault("destination.port", dst_port)
    if kind == "inbound":
        tls = cp.tls_properties
        peers = [s.uri for s in tls.peer_certificate_properties.subject_alt_name if s.uri] \
            if tls.tls_version else []
        bag["connection.mtls"] = bool(peers)
        if peers:
            bag["source.principal"] = peers[0]
    started = _timestamp(cp.start_time)
    if started is not None:
        bag["request.time"] = started
        bag["response.time"] = started + datetime.timedelta(
            seconds=_duration(cp.time_to_last_downstream_tx_byte))
    bag["request.method"] = base_pb2.RequestMethod.Name(req.request_method)
    bag["request.path"] = req.path
    bag["request.host"] = req.authority
    bag["request.scheme"] = req.scheme or "http"
    if req.user_agent:
        bag["request.useragent"] = req.user_agent
    if req.referer:
        bag["request.referer"] = req.referer
    bag["request.headers"] = {k: v for k, v in req_h.items() if k != PEER_HEADER}
    if req.request_id:
        bag["request.headers"]["x-request-id"] = req.request_id
    bag["request.size"] = req.request_body_bytes
    bag["request.total_size"] = req.request_headers_bytes + req.request_body_bytes
    bag["response.code"] = resp.response_code.value
    bag["response.size"] = resp.response_body_bytes
    bag["response.total_size"] = resp.response_headers_bytes + resp.response_body_bytes
    bag["response.duration"] = _duration(cp.time_to_last_downstream_tx_byte)
    grpc_status = dict(resp.response_trailers).get("grpc-status") or resp_h.get("grpc-status")
    if grpc_status:
        bag["response.grpc_status"] = grpc_status
    flags = [short for field, short in FLAG_NAMES.items()
             if getattr(cp.response_flags, field, False)]
    bag["context.proxy_error_code"] = ",".join(flags) or "-"
    return bag

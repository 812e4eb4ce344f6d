"""The filters of Istio's listeners: the HTTP connection manager, its access logs and the
metadata exchange, and the TCP proxy.

The access logs are Istio's default text format on the proxy's stdout and a gRPC stream
to pilot-agent, which computes Istio's standard metrics from it
(localmesh/pilot_agent/telemetry.py); the metadata exchange carries each proxy's workload
identity in request and response headers, where Istio's uses its own filter.
"""

from __future__ import annotations

import base64
import json

from localmesh.istio.xds.model import Proxy

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3." \
      "HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
HEADER_MUTATION = "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3." \
                  "HeaderMutation"
FILE_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
GRPC_LOG = "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig"
HTTP_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"

# Istio's default text access-log format (pilot/pkg/model/telemetry_logging.go,
# EnvoyTextLogFormat), written to the proxy's stdout as the demo profile's
# `accessLogFile: /dev/stdout` does.
ISTIO_LOG_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% "
    '%CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" '
    "%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "
    '"%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" '
    '"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)
PEER_HEADER = "x-envoy-peer-metadata"
PEER_ID_HEADER = "x-envoy-peer-metadata-id"
ALS_PORT = 15104  # pilot-agent's access-log receiver on the pod's local address


def any_of(type_url: str, body: dict) -> dict:
    return {"@type": type_url, **body}


def peer_metadata(proxy: Proxy) -> str:
    """Workload identity sent to peers (Istio's metadata exchange, as base64 JSON)."""
    data = {"NAME": proxy.pod, "NAMESPACE": proxy.namespace, "WORKLOAD_NAME": proxy.workload,
            "APP": proxy.labels.get("app", ""), "VERSION": proxy.labels.get("version", ""),
            "CANONICAL_SERVICE": proxy.labels.get("service.istio.io/canonical-name",
                                                  proxy.workload),
            "CANONICAL_REVISION": proxy.labels.get("service.istio.io/canonical-revision",
                                                   "latest"),
            "CLUSTER_ID": "Kubernetes"}
    return base64.b64encode(json.dumps(data, sort_keys=True).encode()).decode()


def access_logs(proxy: Proxy, log_name: str) -> list[dict]:
    return [
        {"name": "envoy.access_loggers.file",
         "typed_config": any_of(FILE_LOG, {"path": "/dev/stdout",
                                         "log_format": {"text_format_source": {
                                             "inline_string": ISTIO_LOG_FORMAT}}})},
        {"name": "envoy.access_loggers.http_grpc",
         "typed_config": any_of(GRPC_LOG, {
             "common_config": {
                 "log_name": log_name, "transport_api_version": "V3",
                 "grpc_service": {"envoy_grpc": {"cluster_name": "istio-telemetry"}},
                 "buffer_flush_interval": "0.1s", "buffer_size_bytes": 1,
             },
             # content-type tells gRPC from HTTP (Istio's request_protocol="grpc"), and
             # grpc-status is a trailer, or a header in a trailers-only reply (gRPC over
             # HTTP/2, grpc/grpc doc/PROTOCOL-HTTP2.md); Envoy's gRPC access log carries
             # only the headers and trailers named here.
             "additional_request_headers_to_log": [PEER_HEADER, PEER_ID_HEADER,
                                                   "x-request-id", "content-type"],
             "additional_response_headers_to_log": [PEER_HEADER, PEER_ID_HEADER,
                                                    "content-type", "grpc-status"],
             "additional_response_trailers_to_log": ["grpc-status"],
         })},
    ]


def metadata_exchange(proxy: Proxy, direction: str) -> dict:
    """Add this proxy's identity to requests (outbound) or responses (inbound)."""
    headers = [
        {"append": {"header": {"key": PEER_HEADER, "value": peer_metadata(proxy)},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}},
        {"append": {"header": {"key": PEER_ID_HEADER, "value": proxy.id},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}},
    ]
    key = "request_mutations" if direction == "outbound" else "response_mutations"
    return {"name": "istio.metadata_exchange",
            "typed_config": any_of(HEADER_MUTATION, {"mutations": {key: headers}})}


def http_connection_manager(proxy: Proxy, stat_prefix: str, log_name: str, direction: str,
                            authz: list[dict] | None = None, **route: dict) -> dict:
    """Istio's HTTP connection manager: access logs, metadata exchange, the authorization
    filters ``authz`` (RBAC, localmesh/istio/xds/authz.py), the router, and the route
    source given in ``route`` (``rds``, ``scoped_routes`` or ``route_config``)."""
    config = {
        "stat_prefix": stat_prefix,
        "codec_type": "AUTO",
        "use_remote_address": direction == "gateway",
        "preserve_external_request_id": True,
        "access_log": access_logs(proxy, log_name),
        "http_filters": [
            metadata_exchange(proxy, "inbound" if direction == "inbound" else "outbound"),
            *(authz or []),
            {"name": "envoy.filters.http.router", "typed_config": any_of(ROUTER, {})},
        ],
        "normalize_path": True,
        "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
        **route,
    }
    if direction == "inbound":
        # The peer's identity to the app in x-forwarded-client-cert, as Istio's inbound
        # HCM does (golden/istio/sidecar-listeners-configdump.yaml).
        config["forward_client_cert_details"] = "APPEND_FORWARD"
        config["set_current_client_cert_details"] = {"subject": True, "dns": True,
                                                     "uri": True}
    return {"name": "envoy.filters.network.http_connection_manager",
            "typed_config": any_of(HCM, config)}


def ads() -> dict:
    return {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}


def tcp_proxy(stat_prefix: str, cluster: str) -> dict:
    """A TCP proxy filter to one cluster."""
    return {"name": "envoy.filters.network.tcp_proxy",
            "typed_config": any_of(TCP_PROXY, {"stat_prefix": stat_prefix, "cluster": cluster})}

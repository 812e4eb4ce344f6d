"""Clusters (istio/istio ``pilot/pkg/networking/core/cluster.go``): one outbound cluster
per HTTP Service port, one per DestinationRule subset, an inbound cluster per port the
pod serves, the passthrough and blackhole clusters, and pilot-agent's access-log sink.
Outbound clusters get their TLS (auto mTLS, DestinationRule ``tls``) from tls.py.
"""

from __future__ import annotations

from localmesh.istio import names
from localmesh.istio.xds.filters import ALS_PORT, HTTP_OPTIONS, ads, any_of
from localmesh.istio.xds.model import MeshState, Proxy, Service, ServicePort
from localmesh.istio.xds.tls import apply_upstream_tls


def cluster(name: str, protocol: str, *, eds: bool = True, address: tuple[str, int] | None
             = None, service: Service | None = None, port: int = 0,
             subset: str | None = None) -> dict:
    c: dict = {"name": name, "connect_timeout": "10s", "lb_policy": "LEAST_REQUEST",
               "common_lb_config": {}, "circuit_breakers": {"thresholds": [
                   {"max_connections": 4294967295, "max_pending_requests": 4294967295,
                    "max_requests": 4294967295, "max_retries": 4294967295,
                    "track_remaining": True}]}}
    if eds:
        c["type"] = "EDS"
        c["eds_cluster_config"] = {"eds_config": ads(), "service_name": name}
    else:
        c["type"] = "STATIC"
        assert address is not None
        c["load_assignment"] = {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": address[0],
                                                         "port_value": address[1]}}}}]}]}
    if protocol in ("grpc", "http2"):
        c["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": any_of(HTTP_OPTIONS, {
                "explicit_http_config": {"http2_protocol_options": {}}})}
    else:
        c["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": any_of(HTTP_OPTIONS, {
                "use_downstream_protocol_config": {"http_protocol_options": {},
                                                   "http2_protocol_options": {}}})}
    # Istio's cluster metadata (golden/istio/ingressgateway-http-config.json): the service
    # port and the Service the cluster stands for, which Istio's stats filter reads for
    # destination_service when no upstream host answered.
    istio: dict = {"default_original_port": port}
    if service is not None:
        istio["services"] = [{"host": service.host, "name": service.name,
                              "namespace": service.namespace}]
    if subset:
        istio["subset"] = subset
    c["metadata"] = {"filter_metadata": {"istio": istio}}
    return c


def static_clusters() -> list[dict]:
    return [
        {"name": "BlackHoleCluster", "type": "STATIC", "connect_timeout": "10s"},
        {"name": "PassthroughCluster", "type": "ORIGINAL_DST", "connect_timeout": "10s",
         "lb_policy": "CLUSTER_PROVIDED",
         "original_dst_lb_config": {"use_http_header": True}},
    ]


def http_services(state: MeshState) -> list[tuple[Service, ServicePort]]:
    return [(s, p) for s in state.services for p in s.ports if names.is_http(p.protocol)]


def outbound_cluster(state: MeshState, service: Service, port: ServicePort,
                     subset: str = "") -> dict:
    """``outbound|<port>|<subset>|<host>``, with its TLS; built once per distinct input
    (the Service, its endpoints' identities, the Istio configuration: memo.py)."""
    return state.memo.get(
        ("cluster", state.config_key, state.service_digest(service), port.port, subset),
        lambda: _outbound_cluster(state, service, port, subset))


def _outbound_cluster(state: MeshState, service: Service, port: ServicePort,
                      subset: str) -> dict:
    c = cluster(names.outbound_cluster(port.port, service.host, subset), port.protocol,
                service=service, port=port.port, subset=subset or None)
    apply_upstream_tls(c, state, service, port.port, subset,
                       h2=port.protocol in ("grpc", "http2"))
    return c


def outbound_clusters(state: MeshState) -> list[dict]:
    """Every outbound cluster (the same for every proxy of a state: listed once)."""
    listed: list[dict] | None = state.local.get("outbound_clusters")
    if listed is None:
        listed = state.local["outbound_clusters"] = [
            outbound_cluster(state, s, p) for s, p in http_services(state)] + \
            subset_clusters(state)
    return listed


def subset_clusters(state: MeshState) -> list[dict]:
    out = []
    for dr in state.destination_rules:
        host = names.resolve_host(dr["spec"].get("host", ""), dr["metadata"]["namespace"])
        svc = state.service(host)
        if svc is None:
            continue
        for subset in dr["spec"].get("subsets") or []:
            for p in svc.ports:
                if names.is_http(p.protocol):
                    out.append(outbound_cluster(state, svc, p, subset["name"]))
    return out


def telemetry_cluster(proxy: Proxy) -> dict:
    c = cluster("istio-telemetry", "grpc", eds=False, address=(proxy.local_ip, ALS_PORT))
    return c

"""The Envoy configuration of a node's ztunnel: in-pod listeners for every redirected pod.

localmesh's ztunnel is an Envoy (the data plane: HBONE, mutual TLS, the byte counts) with
an agent beside it (localmesh/ztunnel/). ztunnel's in-pod mode (istio/ztunnel
``src/inpod``) opens, inside each redirected pod's network namespace, an outbound socket
(15001), an HBONE inbound socket (15008) and a plaintext inbound socket (15006), each using
that pod's identity. localmesh's pods have no network namespaces, so the node's Envoy holds
the same three per pod, on the pod's addresses (docs/localmesh.md, "Ambient mode"):

- ``<ns>/<pod>/outbound`` on the pod-local address, port 15001: the pod's programs' explicit
  proxy (the kubelet's stand-in for the iptables redirect; the destination is read from
  the request's authority, where ztunnel reads the original destination). A service's
  endpoints that speak HBONE are reached through ``<ns>/<pod>/connect_originate``, an
  internal listener that tunnels the connection in HTTP/2 CONNECT inside mutual TLS with the
  pod's own certificate to the endpoint's port 15008, ``:authority`` ``<endpoint IP>:<target
  port>`` (ztunnel's HBONE; Istio's own Envoys build it the same way, see
  ``connect_originate`` in the golden waypoint config dump); other endpoints are dialed
  in plaintext (ztunnel's passthrough to workloads outside the mesh);
- ``<ns>/<pod>/inbound`` on the pod IP, port 15008: TLS 1.3 with the pod's certificate,
  a client certificate from the mesh root required (ztunnel refuses anything else on
  15008), HTTP/2 CONNECT terminated into the internal listener ``<ns>/<pod>/
  inbound_internal``, which learns the original destination and the peer from the
  CONNECT's filter state (as the waypoint's ``connect_terminate`` → ``main_internal``),
  applies the pod's L4 AuthorizationPolicies and connects to the program on the
  pod-local address;
- ``<ns>/<pod>/inbound_passthrough`` on the pod IP, port 15006 and each port the pod
  serves: plaintext from peers outside the mesh (refused under a STRICT
  PeerAuthentication, as ztunnel refuses it).

Every connection ztunnel carries is logged over gRPC to the agent (TCP access logs:
when connected, every second, when closed), which counts Istio's ``istio_tcp_*`` metrics
from them. A pod that left the mesh but whose programs still listen on its local address
(enrolment.py ``behind_local_address``) keeps plain forwarders there: localmesh's stand-in
for its own network stack without redirection, not part of ztunnel's view.
"""

from __future__ import annotations

from localmesh.istio import names
from localmesh.istio.ambient import authz_l4, wds
from localmesh.istio.ambient.model import AmbientPod, AmbientState, Waypoint
from localmesh.istio.security.ca import spiffe_id
from localmesh.istio.xds import peerauth
from localmesh.istio.xds.clusters import cluster, telemetry_cluster
from localmesh.istio.xds.filters import HCM, HTTP_OPTIONS, ROUTER, TCP_PROXY, any_of
from localmesh.istio.xds.model import (
    T_CLUSTER,
    T_ENDPOINT,
    T_LISTENER,
    T_ROUTE,
    T_SCOPED,
    MeshState,
    Proxy,
    Service,
)
from localmesh.istio.xds.tls import DOWNSTREAM_TLS, SDS_ROOT, UPSTREAM_TLS, sds

HBONE_PORT, OUTBOUND_PORT, PASSTHROUGH_PORT = 15008, 15001, 15006
ORIGINAL_DST = "envoy.filters.listener.original_dst"
INTERNAL_UPSTREAM = "type.googleapis.com/envoy.extensions.transport_sockets.internal_upstream." \
                    "v3.InternalUpstreamTransport"
RAW = {"name": "envoy.transport_sockets.raw_buffer", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}}
ORIGINAL_DST_FILTER = {"name": ORIGINAL_DST, "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3."
             "OriginalDst"}}
SET_FILTER_STATE = "type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config"
TCP_LOG = "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.TcpGrpcAccessLogConfig"
PEER_PRINCIPAL = "io.istio.peer_principal"
H2_OPTIONS = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": any_of(HTTP_OPTIONS, {
    "explicit_http_config": {"http2_protocol_options": {}}})}


def internal_upstream() -> dict:
    """Envoy's internal_upstream transport, passing the endpoint's original-destination
    metadata to the internal listener (Istio's ``inbound-vip`` clusters in the golden
    waypoint dump)."""
    return {"name": "internal_upstream", "typed_config": {
        "@type": INTERNAL_UPSTREAM,
        "passthrough_metadata": [{"kind": {"host": {}}, "name": ORIGINAL_DST}],
        "transport_socket": RAW}}


def tcp_access_log(log_name: str) -> list[dict]:
    """TCP access logs over gRPC to the agent (``istio-telemetry``), logging the peer
    principal the HBONE terminator put in the filter state."""
    return [{"name": "envoy.access_loggers.tcp_grpc", "typed_config": any_of(TCP_LOG, {
        "common_config": {"log_name": log_name, "transport_api_version": "V3",
                          "grpc_service": {"envoy_grpc": {"cluster_name": "istio-telemetry"}},
                          "buffer_flush_interval": "0.1s", "buffer_size_bytes": 1,
                          "filter_state_objects_to_log": [PEER_PRINCIPAL]}})}]


def tcp_proxy(stat_prefix: str, cluster_name: str, log_name: str | None,
              tunnel: bool = False) -> dict:
    config: dict = {"stat_prefix": stat_prefix, "cluster": cluster_name}
    if tunnel:
        config["tunneling_config"] = {"hostname": "%DOWNSTREAM_LOCAL_ADDRESS%"}
    if log_name is not None:
        config["access_log"] = tcp_access_log(log_name)
        config["access_log_options"] = {"flush_access_log_on_connected": True,
                                        "access_log_flush_interval": "1s"}
    return {"name": "envoy.filters.network.tcp_proxy", "typed_config": any_of(TCP_PROXY, config)}


def prefix(pod: AmbientPod) -> str:
    return f"{pod.namespace}/{pod.name}"


def identity(pod: AmbientPod, state: MeshState) -> str:
    return spiffe_id(pod.namespace, pod.service_account, state.mesh_config.trust_domain)


def targets(state: MeshState, service: Service, port: int) -> list[tuple[str, int]]:
    """The endpoints (IP, target port) of a Service port, from its Endpoints."""
    sp = next((p for p in service.ports if p.port == port), None)
    out = []
    for sub in state.endpoints.get((service.namespace, service.name), []):
        target = next((p["port"] for p in sub.get("ports") or []
                       if sp is not None and p.get("name", "") == sp.name), None)
        if target is None:
            continue
        out += [(a["ip"], target) for a in sub.get("addresses") or []]
    return sorted(out)


# -- outbound -----------------------------------------------------------------------------
def _domains(service: Service, client_ns: str, port: int) -> list[str]:
    return [f"{d}:{port}" for d in names.vhost_domains(service.name, service.namespace,
                                                        client_ns, service.cluster_ip)]


def _outbound_cluster(state: MeshState, ambient: AmbientState, pod: AmbientPod,
                      service: Service, port: int, protocol: str, hbone: bool) -> dict:
    name = f"{prefix(pod)}/{names.outbound_cluster(port, service.host)}"
    c = cluster(name, protocol, eds=False, address=("127.0.0.1", 1), service=service,
                port=port)
    endpoints: list[dict] = []
    wp = wds.service_waypoint(ambient, service) if hbone else None
    if wp is not None:
        # The service has a waypoint: ztunnel sends to it, the CONNECT naming the
        # service's VIP and port (istio.io, "ztunnel traffic redirection to waypoints").
        endpoints.append({"endpoint": {"address": {"envoy_internal_address": {
            "server_listener_name": waypoint_listener(pod, wp)}}},
            "metadata": {"filter_metadata": {
                ORIGINAL_DST: {"local": f"{service.cluster_ip}:{port}"},
                "envoy.transport_socket_match": {"tunnel": "H2"}}}})
    for ip, target in ([] if wp is not None else targets(state, service, port)):
        dest = ambient.pods.get(ip)
        if hbone and dest is not None and dest.hbone:
            endpoints.append({"endpoint": {"address": {"envoy_internal_address": {
                "server_listener_name": f"{prefix(pod)}/connect_originate"}}},
                "metadata": {"filter_metadata": {
                    ORIGINAL_DST: {"local": f"{ip}:{target}"},
                    "envoy.transport_socket_match": {"tunnel": "H2"}}}})
        else:
            endpoints.append({"endpoint": {"address": {"socket_address": {
                "address": ip, "port_value": target}}}})
    c["load_assignment"] = {"cluster_name": name,
                            "endpoints": [{"lb_endpoints": endpoints}] if endpoints else []}
    c["transport_socket_matches"] = [
        {"name": "tunnel", "match": {"tunnel": "H2"}, "transport_socket": internal_upstream()},
        {"name": "plaintext", "match": {}, "transport_socket": RAW}]
    return c


def _outbound(state: MeshState, ambient: AmbientState, pod: AmbientPod,
              hbone: bool) -> tuple[dict, dict[str, dict]]:
    clusters: dict[str, dict] = {}
    vhosts = []
    for s in state.services:
        for p in s.ports:
            proto = p.protocol if names.is_http(p.protocol) else "http"
            c = _outbound_cluster(state, ambient, pod, s, p.port, proto, hbone)
            clusters[c["name"]] = c
            vhosts.append({"name": f"{s.host}:{p.port}", "domains": _domains(s, pod.namespace,
                                                                             p.port),
                           "routes": [{"name": "default", "match": {"prefix": "/"},
                                       "route": {"cluster": c["name"], "timeout": "0s"}}]})
    hcm = {"stat_prefix": f"{prefix(pod)}/outbound", "codec_type": "AUTO",
           "http_filters": [{"name": "envoy.filters.http.router",
                             "typed_config": any_of(ROUTER, {})}],
           "route_config": {"name": f"{prefix(pod)}/outbound", "virtual_hosts": vhosts,
                            "validate_clusters": False},
           "normalize_path": True}
    listener = {"name": f"{prefix(pod)}/outbound",
                "address": {"socket_address": {"address": pod.local_ip,
                                               "port_value": OUTBOUND_PORT}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": any_of(HCM, hcm)}]}],
                "traffic_direction": "OUTBOUND"}
    return listener, clusters


def waypoint_listener(pod: AmbientPod, wp: Waypoint) -> str:
    return f"{prefix(pod)}/connect_waypoint/{wp.namespace}/{wp.name}"


def _connect_waypoint(state: MeshState, pod: AmbientPod, wp: Waypoint) -> tuple[dict, dict]:
    """The pod's tunnel to a waypoint: HBONE to the waypoint's pods on 15008, the
    CONNECT's authority the original destination (the service's VIP and port)."""
    name = waypoint_listener(pod, wp)
    listener, c = _connect_originate(state, pod, name)
    c.update({"type": "STATIC", "lb_policy": "ROUND_ROBIN", "load_assignment": {
        "cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": ip,
                                                         "port_value": HBONE_PORT}}}}
            for ip in wp.pod_ips]}] if wp.pod_ips else []}})
    c.pop("original_dst_lb_config", None)
    return listener, c


def _connect_originate(state: MeshState, pod: AmbientPod,
                       name: str | None = None) -> tuple[dict, dict]:
    name = name or f"{prefix(pod)}/connect_originate"
    listener = {"name": name, "internal_listener": {},
                "listener_filters": [ORIGINAL_DST_FILTER],
                "filter_chains": [{"filters": [tcp_proxy(name, name, f"outbound|{prefix(pod)}",
                                                         tunnel=True)]}]}
    trust = f"spiffe://{state.mesh_config.trust_domain}/"
    tls = {"@type": UPSTREAM_TLS, "common_tls_context": {
        "tls_params": {"tls_minimum_protocol_version": "TLSv1_3",
                       "tls_maximum_protocol_version": "TLSv1_3"},
        "alpn_protocols": ["h2"],
        "tls_certificate_sds_secret_configs": [sds(identity(pod, state))],
        "combined_validation_context": {
            "default_validation_context": {"match_typed_subject_alt_names": [
                {"san_type": "URI", "matcher": {"prefix": trust}}]},
            "validation_context_sds_secret_config": sds(SDS_ROOT)}}}
    c = {"name": name, "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED",
         "connect_timeout": "10s",
         "original_dst_lb_config": {"upstream_port_override": HBONE_PORT},
         "typed_extension_protocol_options": H2_OPTIONS,
         # The tunnel leaves from the pod's IP, as ztunnel's in-pod sockets do.
         "upstream_bind_config": {"source_address": {"address": pod.ip, "port_value": 0}},
         "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls}}
    return listener, c


# -- inbound ------------------------------------------------------------------------------
def _local_cluster(pod: AmbientPod, port: int) -> dict:
    name = f"{prefix(pod)}/{names.inbound_cluster(port)}"
    c = cluster(name, "tcp", eds=False, address=(pod.local_ip, port))
    c.pop("typed_extension_protocol_options", None)
    return c


def _inbound(state: MeshState, pod: AmbientPod) -> tuple[list[dict], dict[str, dict]]:
    base = prefix(pod)
    trust = f"spiffe://{state.mesh_config.trust_domain}/"
    downstream_tls = {"@type": DOWNSTREAM_TLS, "require_client_certificate": True,
                      "common_tls_context": {
                          "tls_params": {"tls_minimum_protocol_version": "TLSv1_3",
                                         "tls_maximum_protocol_version": "TLSv1_3"},
                          "alpn_protocols": ["h2"],
                          "tls_certificate_sds_secret_configs": [sds(identity(pod, state))],
                          "combined_validation_context": {
                              "default_validation_context": {
                                  "match_typed_subject_alt_names": [
                                      {"san_type": "URI", "matcher": {"prefix": trust}}]},
                              "validation_context_sds_secret_config": sds(SDS_ROOT)}}}

    def state_value(key: str, value: str, factory: str | None = None) -> dict:
        out = {"object_key": key, "format_string": {"text_format_source": {
            "inline_string": value}}, "shared_with_upstream": "ONCE"}
        if factory:
            out["factory_key"] = factory
        return out

    hcm = {"stat_prefix": f"{base}/inbound", "codec_type": "HTTP2",
           "http2_protocol_options": {"allow_connect": True, "max_concurrent_streams": 100},
           "upgrade_configs": [{"upgrade_type": "CONNECT"}], "stream_idle_timeout": "0s",
           "route_config": {"name": "default", "virtual_hosts": [{
               "name": "default", "domains": ["*"], "routes": [{
                   "match": {"connect_matcher": {}},
                   "route": {"cluster": f"{base}/inbound_internal",
                             "upgrade_configs": [{"upgrade_type": "CONNECT",
                                                  "connect_config": {}}]}}]}]},
           "http_filters": [
               {"name": "connect_authority", "typed_config": any_of(SET_FILTER_STATE, {
                   "on_request_headers": [
                       state_value(f"{ORIGINAL_DST}.local_ip", "%REQ(:AUTHORITY)%"),
                       state_value(f"{ORIGINAL_DST}.remote_ip", "%DOWNSTREAM_REMOTE_ADDRESS%"),
                       state_value(PEER_PRINCIPAL, "%DOWNSTREAM_PEER_URI_SAN%",
                                   "envoy.string")]})},
               {"name": "envoy.filters.http.router", "typed_config": any_of(ROUTER, {})}]}
    hbone = {"name": f"{base}/inbound",
             "address": {"socket_address": {"address": pod.ip, "port_value": HBONE_PORT}},
             "filter_chains": [{"name": "hbone", "filters": [{
                 "name": "envoy.filters.network.http_connection_manager",
                 "typed_config": any_of(HCM, hcm)}],
                 "transport_socket": {"name": "envoy.transport_sockets.tls",
                                      "typed_config": downstream_tls}}],
             "traffic_direction": "INBOUND"}
    rbac = authz_l4.network_filters(state, pod)
    chains = []
    clusters: dict[str, dict] = {}
    for port in pod.ports:
        local = _local_cluster(pod, port)
        clusters[local["name"]] = local
        chains.append({"name": f"inbound|{port}", "filter_chain_match": {
            "destination_port": port,
            "prefix_ranges": [{"address_prefix": pod.ip, "prefix_len": 32}]},
            "filters": [*rbac, tcp_proxy(f"{base}/inbound|{port}", local["name"],
                                         f"inbound|{base}")]})
    internal = {"name": f"{base}/inbound_internal", "internal_listener": {},
                "listener_filters": [ORIGINAL_DST_FILTER], "filter_chains": chains,
                "traffic_direction": "INBOUND"}
    internal_cluster: dict = {"name": f"{base}/inbound_internal", "type": "STATIC",
                        "connect_timeout": "10s", "load_assignment": {
                            "cluster_name": f"{base}/inbound_internal",
                            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                                "envoy_internal_address": {
                                    "server_listener_name": f"{base}/inbound_internal"}}}}]}]},
                        "transport_socket": internal_upstream()}
    clusters[internal_cluster["name"]] = internal_cluster
    listeners = [hbone, internal]
    strict = any(peerauth.port_mode(state, pod.namespace, pod.label_map, port) == "STRICT"
                 for port in pod.ports)
    passthrough = _passthrough(state, pod, log=True, refuse=strict)
    listeners.append(passthrough)
    return listeners, clusters


def _passthrough(state: MeshState, pod: AmbientPod, *, log: bool, refuse: bool) -> dict:
    """Plaintext on the pod IP: 15006 and every port the pod serves."""
    base = prefix(pod)
    rbac = authz_l4.network_filters(state, pod) if log else []
    chains = [] if refuse else [
        {"name": f"inbound_passthrough|{port}", "filter_chain_match": {"destination_port": port},
         "filters": [*rbac, tcp_proxy(f"{base}/inbound_passthrough|{port}",
                                      f"{base}/{names.inbound_cluster(port)}",
                                      f"inbound_passthrough|{base}" if log else None)]}
        for port in pod.ports]
    return {"name": f"{base}/inbound_passthrough",
            "address": {"socket_address": {"address": pod.ip, "port_value": PASSTHROUGH_PORT}},
            "additional_addresses": [{"address": {"socket_address": {
                "address": pod.ip, "port_value": port}}} for port in pod.ports],
            "filter_chains": chains or [{"name": "refused", "filters": [
                {"name": "envoy.filters.network.tcp_proxy", "typed_config": any_of(TCP_PROXY, {
                    "stat_prefix": "BlackHoleCluster", "cluster": "BlackHoleCluster"})}]}],
            "traffic_direction": "INBOUND"}


def ztunnel_resources(state: MeshState, proxy: Proxy) -> dict[str, dict[str, dict]]:
    """All resources of the node's ztunnel Envoy, by type URL and name."""
    ambient: AmbientState | None = state.ambient
    listeners: dict[str, dict] = {}
    clusters: dict[str, dict] = {"istio-telemetry": telemetry_cluster(proxy),
                                 "BlackHoleCluster": {"name": "BlackHoleCluster",
                                                      "type": "STATIC",
                                                      "connect_timeout": "10s"}}
    node = str(proxy.metadata.get("NODE_NAME") or "")
    for pod in (ambient.on_node(node) if ambient is not None else []):
        if not pod.behind_local or (pod.namespace == proxy.namespace and pod.name == proxy.pod):
            continue
        assert ambient is not None
        out, out_clusters = _outbound(state, ambient, pod, hbone=pod.hbone)
        listeners[out["name"]] = out
        clusters.update(out_clusters)
        if pod.hbone:
            origin, origin_cluster = _connect_originate(state, pod)
            listeners[origin["name"]] = origin
            clusters[origin_cluster["name"]] = origin_cluster
            for wp in ambient.waypoints.values():
                if wp.address:
                    wl, wc = _connect_waypoint(state, pod, wp)
                    listeners[wl["name"]] = wl
                    clusters[wc["name"]] = wc
            inbound, inbound_clusters = _inbound(state, pod)
            for lst in inbound:
                listeners[str(lst["name"])] = lst
            clusters.update(inbound_clusters)
        else:
            for port in pod.ports:
                local = _local_cluster(pod, port)
                clusters[local["name"]] = local
            plain = _passthrough(state, pod, log=False, refuse=False)
            listeners[plain["name"]] = plain
    return {T_CLUSTER: clusters, T_ENDPOINT: {}, T_LISTENER: listeners, T_ROUTE: {},
            T_SCOPED: {}}

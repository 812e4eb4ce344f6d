"""A waypoint's Envoy configuration, after Istio's waypoint generator (istio/istio
``pilot/pkg/networking/core/waypoint.go``) and a real waypoint's config dump
(``istioctl/pkg/writer/compare/testdata/configdump.json``, golden in tests):

- ``connect_terminate`` on the waypoint's IP, port 15008: TLS 1.3 with the waypoint's
  certificate, a client certificate required (SANs in the trust domain), ALPN ``h2``; an
  HTTP connection manager that terminates HTTP/2 CONNECT (``connect_matcher``) into the
  internal listener ``main_internal``, with the ``connect_authority`` filter putting the
  CONNECT's ``:authority`` (the service's VIP and port), the downstream's address and the
  peer's and local principals in the filter state for it;
- ``main_internal``: an internal listener with the ``original_dst`` listener filter; one
  filter chain per service port the waypoint serves, chosen by destination IP (the VIP)
  and port — Istio names the chains ``inbound-vip|<port>||<fqdn>-http`` and selects them
  with a ``filter_chain_matcher``, localmesh with the equivalent ``filter_chain_match`` —
  each an HTTP connection manager whose route configuration ``inbound-vip|<port>|http|<fqdn>``
  routes ``/`` to the cluster of the same name, or, where HTTPRoutes name the Service as
  their parent (the Gateway API's GAMMA mesh routing), the routes' rules to their backends;
  requests are logged to pilot-agent, which reports them with ``reporter="waypoint"``;
- clusters ``inbound-vip|<port>|http|<fqdn>`` (Istio's are EDS; localmesh's carry their
  endpoints inline), whose endpoints are the internal listener ``connect_originate`` with
  the endpoint's address in the ``envoy.filters.listener.original_dst`` metadata passed
  through the ``internal_upstream`` transport, and ``main_internal``;
- ``connect_originate``: an internal listener tunnelling each connection in HTTP/2 CONNECT
  (``tunneling_config`` ``hostname: %DOWNSTREAM_LOCAL_ADDRESS%``) over mutual TLS with the
  waypoint's own certificate to the endpoint's port 15008 (its ztunnel).
"""

from __future__ import annotations

from localmesh.istio import names
from localmesh.istio.ambient import wds
from localmesh.istio.ambient.model import AmbientState
from localmesh.istio.ambient.ztunnel_xds import (
    H2_OPTIONS,
    HBONE_PORT,
    ORIGINAL_DST,
    ORIGINAL_DST_FILTER,
    PEER_PRINCIPAL,
    SET_FILTER_STATE,
    internal_upstream,
    targets,
    tcp_proxy,
)
from localmesh.istio.xds.clusters import telemetry_cluster
from localmesh.istio.xds.filters import HCM, ROUTER, access_logs, any_of
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
from localmesh.istio.xds.tls import DOWNSTREAM_TLS, SDS_DEFAULT, SDS_ROOT, UPSTREAM_TLS, sds

HTTP_ROUTE_GROUP = "gateway.networking.k8s.io"
# What the waypoint's access log carries beside Envoy's own fields: the upstream
# endpoint (for the destination workload) and the caller's principal from the filter state.
UPSTREAM_PEER_TAG = "upstream_peer"


def vip_name(port: int, host: str) -> str:
    """``inbound-vip|<port>|http|<fqdn>`` (the golden waypoint dump's names)."""
    return f"inbound-vip|{port}|http|{host}"


def served(state: MeshState, proxy: Proxy) -> list[Service]:
    """The Services whose traffic goes through this waypoint."""
    ambient = state.ambient or AmbientState()
    gateway = proxy.labels.get("gateway.networking.k8s.io/gateway-name", "")
    out = []
    for s in state.services:
        wp = wds.service_waypoint(ambient, s)
        if wp is not None and wp.namespace == proxy.namespace and wp.name == gateway and \
                s.cluster_ip and s.cluster_ip != "None":
            out.append(s)
    return out


def _tls(state: MeshState, upstream: bool) -> dict:
    trust = f"spiffe://{state.mesh_config.trust_domain}/"
    common = {"tls_params": {"tls_minimum_protocol_version": "TLSv1_3",
                             "tls_maximum_protocol_version": "TLSv1_3"},
              "alpn_protocols": ["h2"],
              "tls_certificate_sds_secret_configs": [sds(SDS_DEFAULT)],
              "combined_validation_context": {
                  "default_validation_context": {"match_typed_subject_alt_names": [
                      {"san_type": "URI", "matcher": {"prefix": trust}}]},
                  "validation_context_sds_secret_config": sds(SDS_ROOT)}}
    if upstream:
        return {"@type": UPSTREAM_TLS, "common_tls_context": common}
    return {"@type": DOWNSTREAM_TLS, "common_tls_context": common,
            "require_client_certificate": True}


def connect_terminate(state: MeshState, proxy: Proxy) -> dict:
    def value(key: str, text: str, factory: str | None = None) -> dict:
        out = {"object_key": key, "format_string": {"text_format_source": {
            "inline_string": text}}, "shared_with_upstream": "ONCE"}
        if factory:
            out["factory_key"] = factory
        return out

    hcm = {"stat_prefix": "connect_terminate", "codec_type": "HTTP2",
           "route_config": {"name": "default", "virtual_hosts": [{
               "name": "default", "domains": ["*"], "routes": [{
                   "match": {"connect_matcher": {}},
                   "route": {"cluster": "main_internal", "upgrade_configs": [
                       {"upgrade_type": "CONNECT", "connect_config": {}}]}}]}]},
           "http_filters": [
               {"name": "connect_authority", "typed_config": any_of(SET_FILTER_STATE, {
                   "on_request_headers": [
                       value(f"{ORIGINAL_DST}.local_ip", "%REQ(:AUTHORITY)%"),
                       value(f"{ORIGINAL_DST}.remote_ip", "%DOWNSTREAM_REMOTE_ADDRESS%"),
                       value(PEER_PRINCIPAL, "%DOWNSTREAM_PEER_URI_SAN%", "envoy.string"),
                       value("io.istio.local_principal", "%DOWNSTREAM_LOCAL_URI_SAN%",
                             "envoy.string")]})},
               {"name": "envoy.filters.http.router", "typed_config": any_of(ROUTER, {})}],
           "http2_protocol_options": {"max_concurrent_streams": 100, "allow_connect": True},
           "server_name": "istio-envoy", "use_remote_address": False,
           "upgrade_configs": [{"upgrade_type": "CONNECT"}], "stream_idle_timeout": "0s"}
    return {"name": "connect_terminate",
            "address": {"socket_address": {"address": proxy.ip, "port_value": HBONE_PORT}},
            "filter_chains": [{"name": "default", "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": any_of(HCM, hcm)}],
                "transport_socket": {"name": "tls", "typed_config": _tls(state, False)}}]}


def _gamma_routes(state: MeshState, service: Service, port: int) -> list[dict] | None:
    """The HTTPRoutes attached to ``service`` (GAMMA): their rules as Envoy routes."""
    ambient = state.ambient or AmbientState()
    out = []
    for route in ambient.http_routes:
        meta, spec = route["metadata"], route.get("spec") or {}
        if meta["namespace"] != service.namespace:
            continue
        if not any(p.get("kind") == "Service" and p.get("group", "") in ("", "core")
                   and p.get("name") == service.name and p.get("port", port) == port
                   for p in spec.get("parentRefs") or []):
            continue
        for i, rule in enumerate(spec.get("rules") or []):
            clusters: list[dict] = []
            for b in rule.get("backendRefs") or []:
                host = names.fqdn(b.get("name", ""), b.get("namespace") or meta["namespace"])
                clusters.append({"name": vip_name(int(b.get("port") or port), host),
                                 "weight": int(b.get("weight", 1))})
            matches = rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]
            for m in matches:
                path = m.get("path") or {"type": "PathPrefix", "value": "/"}
                match = {"path": path["value"]} if path.get("type") == "Exact" else \
                    {"prefix": path.get("value", "/")}
                action: dict = {"timeout": "0s"}
                live = [c for c in clusters if c["weight"] > 0]
                if len(live) == 1:
                    action["cluster"] = live[0]["name"]
                elif live:
                    action["weighted_clusters"] = {"clusters": live}
                else:
                    out.append({"name": f"{meta['namespace']}.{meta['name']}.{i}",
                                "match": match, "direct_response": {"status": 500}})
                    continue
                out.append({"name": f"{meta['namespace']}.{meta['name']}.{i}", "match": match,
                            "route": action})
    return out or None


def _chain(state: MeshState, proxy: Proxy, service: Service, port: int) -> dict:
    name = vip_name(port, service.host)
    routes = _gamma_routes(state, service, port) or [
        {"name": "default", "match": {"prefix": "/"},
         "route": {"cluster": name, "timeout": "0s"},
         "decorator": {"operation": f":{port}/*"}}]
    logs = access_logs(proxy, "waypoint")
    grpc_log = logs[1]["typed_config"]["common_config"]
    grpc_log["filter_state_objects_to_log"] = [PEER_PRINCIPAL, f"{ORIGINAL_DST}.remote_ip"]
    grpc_log["custom_tags"] = [{"tag": UPSTREAM_PEER_TAG, "metadata": {
        "kind": {"host": {}}, "metadata_key": {"key": ORIGINAL_DST,
                                               "path": [{"key": "local"}]}}}]
    hcm = {"stat_prefix": f"inbound_0.0.0.0_{port}", "codec_type": "AUTO",
           "route_config": {"name": name, "virtual_hosts": [{
               "name": f"inbound|http|{port}", "domains": ["*"], "routes": routes}],
               "validate_clusters": False},
           "http_filters": [{"name": "envoy.filters.http.router",
                             "typed_config": any_of(ROUTER, {})}],
           "server_name": "istio-envoy", "access_log": logs, "use_remote_address": False,
           "normalize_path": True, "path_with_escaped_slashes_action": "KEEP_UNCHANGED"}
    return {"name": f"inbound-vip|{port}||{service.host}-http",
            "filter_chain_match": {"destination_port": port, "prefix_ranges": [
                {"address_prefix": service.cluster_ip, "prefix_len": 32}]},
            "filters": [{"name": "envoy.filters.network.http_connection_manager",
                         "typed_config": any_of(HCM, hcm)}]}


def _vip_cluster(state: MeshState, service: Service, port: int, protocol: str) -> dict:
    name = vip_name(port, service.host)
    endpoints = [{"endpoint": {"address": {"envoy_internal_address": {
        "server_listener_name": "connect_originate"}}},
        "metadata": {"filter_metadata": {ORIGINAL_DST: {"local": f"{ip}:{target}"}}}}
        for ip, target in targets(state, service, port)]
    c: dict = {"name": name, "type": "STATIC", "connect_timeout": "10s",
               "load_assignment": {"cluster_name": name, "endpoints": [
                   {"lb_endpoints": endpoints}] if endpoints else []},
               "transport_socket": internal_upstream(),
               "metadata": {"filter_metadata": {"istio": {"services": [
                   {"namespace": service.namespace, "name": service.name,
                    "host": service.host}]}}}, "common_lb_config": {}}
    if protocol in ("grpc", "http2"):
        c["typed_extension_protocol_options"] = H2_OPTIONS
    return c


def waypoint_resources(state: MeshState, proxy: Proxy) -> dict[str, dict[str, dict]]:
    """All resources of a waypoint, by type URL and name."""
    chains = []
    clusters: dict[str, dict] = {"istio-telemetry": telemetry_cluster(proxy)}
    for s in served(state, proxy):
        for p in s.ports:
            chains.append(_chain(state, proxy, s, p.port))
            c = _vip_cluster(state, s, p.port, p.protocol)
            clusters[c["name"]] = c
    main = {"name": "main_internal", "internal_listener": {},
            "listener_filters": [ORIGINAL_DST_FILTER], "traffic_direction": "INBOUND",
            "filter_chains": chains or [{"name": "blackhole", "filters": [
                tcp_proxy("BlackHoleCluster", "BlackHoleCluster", None)]}]}
    originate = {"name": "connect_originate", "internal_listener": {}, "use_original_dst": False,
                 "listener_filters": [ORIGINAL_DST_FILTER],
                 "filter_chains": [{"filters": [tcp_proxy("connect_originate",
                                                          "connect_originate", None,
                                                          tunnel=True)]}]}
    clusters["main_internal"] = {
        "name": "main_internal", "type": "STATIC", "connect_timeout": "10s",
        "load_assignment": {"cluster_name": "main_internal", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"envoy_internal_address": {
                "server_listener_name": "main_internal"}}}}]}]},
        "transport_socket": internal_upstream()}
    clusters["connect_originate"] = {
        "name": "connect_originate", "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED",
        "connect_timeout": "10s", "original_dst_lb_config": {"upstream_port_override": HBONE_PORT},
        "typed_extension_protocol_options": H2_OPTIONS,
        "upstream_bind_config": {"source_address": {"address": proxy.ip, "port_value": 0}},
        "transport_socket": {"name": "envoy.transport_sockets.tls",
                             "typed_config": _tls(state, True)}}
    clusters["BlackHoleCluster"] = {"name": "BlackHoleCluster", "type": "STATIC",
                                    "connect_timeout": "10s"}
    listeners = {"connect_terminate": connect_terminate(state, proxy), "main_internal": main,
                 "connect_originate": originate}
    return {T_CLUSTER: clusters, T_ENDPOINT: {}, T_LISTENER: listeners, T_ROUTE: {},
            T_SCOPED: {}}

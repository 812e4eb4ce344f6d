"""Ingress through a waypoint: a gateway sends a service's traffic to the service's waypoint
over HBONE when the service (or its namespace) is labelled
``istio.io/ingress-use-waypoint: "true"``.

After istio/istio ``pilot/pkg/xds/endpoints`` (``findServiceWaypoint``: a gateway —
node type Router — must opt in with that label; the Service's, or its namespace's, as
``NamespaceInfo.IngressUseWaypoint`` reads it) — without it a gateway reaches the
service's pods directly, and ztunnel takes the connection in on the pod's side. With it
the gateway's cluster for the service has one endpoint, the waypoint, reached through the
internal listener ``connect_waypoint/<namespace>/<waypoint>``, which tunnels the request
in HTTP/2 CONNECT (``:authority`` the service's VIP and port) over mutual TLS with the
gateway's own certificate to the waypoint's port 15008.
"""

from __future__ import annotations

from localmesh.istio import names
from localmesh.istio.ambient import wds
from localmesh.istio.ambient.model import AmbientState, Waypoint
from localmesh.istio.ambient.ztunnel_xds import (
    H2_OPTIONS,
    HBONE_PORT,
    ORIGINAL_DST,
    ORIGINAL_DST_FILTER,
    internal_upstream,
    tcp_proxy,
)
from localmesh.istio.xds.model import T_CLUSTER, T_ENDPOINT, T_LISTENER, MeshState, Proxy, Service
from localmesh.istio.xds.tls import SDS_DEFAULT, SDS_ROOT, UPSTREAM_TLS, sds

INGRESS_USE_WAYPOINT = "istio.io/ingress-use-waypoint"


def ingress_uses(ambient: AmbientState, service: Service) -> Waypoint | None:
    """The waypoint a gateway sends ``service``'s traffic to, if it opted in."""
    wp = wds.service_waypoint(ambient, service)
    if wp is None or not wp.pod_ips:
        return None
    label = service.labels.get(INGRESS_USE_WAYPOINT) or \
        ambient.namespace_labels.get(service.namespace, {}).get(INGRESS_USE_WAYPOINT, "")
    return wp if label.lower() == "true" else None


def _tunnel(state: MeshState, proxy: Proxy, wp: Waypoint) -> tuple[dict, dict]:
    name = f"connect_waypoint/{wp.namespace}/{wp.name}"
    listener = {"name": name, "internal_listener": {},
                "listener_filters": [ORIGINAL_DST_FILTER],
                "filter_chains": [{"filters": [tcp_proxy(name, name, None, tunnel=True)]}]}
    trust = f"spiffe://{state.mesh_config.trust_domain}/"
    tls = {"@type": UPSTREAM_TLS, "common_tls_context": {
        "tls_params": {"tls_minimum_protocol_version": "TLSv1_3",
                       "tls_maximum_protocol_version": "TLSv1_3"},
        "alpn_protocols": ["h2"],
        "tls_certificate_sds_secret_configs": [sds(SDS_DEFAULT)],
        "combined_validation_context": {
            "default_validation_context": {"match_typed_subject_alt_names": [
                {"san_type": "URI", "matcher": {"prefix": trust}}]},
            "validation_context_sds_secret_config": sds(SDS_ROOT)}}}
    cluster = {"name": name, "type": "STATIC", "connect_timeout": "10s",
               "typed_extension_protocol_options": H2_OPTIONS,
               "upstream_bind_config": {"source_address": {"address": proxy.ip,
                                                           "port_value": 0}},
               "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                   {"endpoint": {"address": {"socket_address": {
                       "address": ip, "port_value": HBONE_PORT}}}} for ip in wp.pod_ips]}]},
               "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls}}
    return listener, cluster


def through_waypoints(state: MeshState, proxy: Proxy,
                      resources: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict]]:
    """A gateway's resources, its clusters of opted-in services sent to their waypoints."""
    ambient = state.ambient
    if ambient is None or not ambient.waypoints:
        return resources
    clusters = resources.get(T_CLUSTER, {})
    for s in state.services:
        wp = ingress_uses(ambient, s)
        if wp is None:
            continue
        for p in s.ports:
            name = names.outbound_cluster(p.port, s.host)
            c = clusters.get(name)
            if c is None:
                continue
            listener, tunnel = _tunnel(state, proxy, wp)
            resources.setdefault(T_LISTENER, {})[listener["name"]] = listener
            clusters[tunnel["name"]] = tunnel
            for key in ("eds_cluster_config", "transport_socket_matches", "transport_socket"):
                c.pop(key, None)
            c["type"] = "STATIC"
            c["load_assignment"] = {"cluster_name": name, "endpoints": [{"lb_endpoints": [{
                "endpoint": {"address": {"envoy_internal_address": {
                    "server_listener_name": listener["name"]}}},
                "metadata": {"filter_metadata": {
                    ORIGINAL_DST: {"local": f"{s.cluster_ip}:{p.port}"}}}}]}]}
            c["transport_socket"] = internal_upstream()
            resources.get(T_ENDPOINT, {}).pop(name, None)
    return resources

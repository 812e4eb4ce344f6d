"""Envoy proxies that speak HBONE to the ambient mesh: gateways (and sidecars) of a mesh
installed with the ambient profile, which sets ``ISTIO_META_ENABLE_HBONE: "true"`` in
``meshConfig.defaultConfig.proxyMetadata``, reach a pod captured by ztunnel over HBONE
(istio/istio ``pilot/pkg/networking/core`` ``connect_originate``, the endpoints' tunnel
support), and a gateway sends a service's traffic to the service's waypoint when the
service (or its namespace) is labelled ``istio.io/ingress-use-waypoint: "true"``.

Directly to a pod (:func:`through_hbone`): the cluster's endpoints that are ambient pods
become the internal listener ``connect_originate``, which tunnels each connection in HTTP/2
CONNECT (``:authority`` the pod's IP and target port) over mutual TLS with the proxy's own
certificate to the pod's port 15008, where its ztunnel takes it in; other endpoints are
dialed as before.

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
            if name not in clusters:
                continue
            # A copy: the cluster is shared with every proxy and push (xds/memo.py).
            c = clusters[name] = dict(clusters[name])
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


ENABLE_HBONE = "ENABLE_HBONE"
ORIGINATE = "connect_originate"
TUNNEL_MATCH = {"name": "tunnel", "match": {"tunnel": "H2"},
                "transport_socket": internal_upstream()}


def _originate(state: MeshState, proxy: Proxy) -> tuple[dict, dict]:
    """Istio's ``connect_originate``: an internal listener whose TCP proxy tunnels in HTTP/2
    CONNECT (``:authority`` the original destination) to that destination's port 15008
    (an ORIGINAL_DST cluster with ``upstream_port_override``), over mutual TLS with the
    proxy's own certificate."""
    listener, cluster = _tunnel(state, proxy, Waypoint("", "", "", ()))
    listener["name"] = ORIGINATE
    listener["filter_chains"] = [{"filters": [tcp_proxy(ORIGINATE, ORIGINATE, None,
                                                        tunnel=True)]}]
    cluster.pop("load_assignment", None)
    cluster.update({"name": ORIGINATE, "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED",
                    "original_dst_lb_config": {"upstream_port_override": HBONE_PORT}})
    return listener, cluster


def _tunnelled(ambient: AmbientState, lb: dict) -> dict | None:
    """An endpoint of an ambient pod (ztunnel takes HBONE for it) as ``connect_originate``
    with its address as the original destination, as Istio's EDS writes it; None for
    another endpoint."""
    address = lb["endpoint"]["address"].get("socket_address") or {}
    w = ambient.pods.get(str(address.get("address", "")))
    if w is None or not w.hbone:
        return None
    return {**lb, "endpoint": {**lb["endpoint"], "address": {
        "envoy_internal_address": {"server_listener_name": ORIGINATE}}},
        "metadata": {"filter_metadata": {
            ORIGINAL_DST: {"local": f"{address['address']}:{address['port_value']}"},
            "envoy.transport_socket_match": {"tunnel": "H2"}}}}


def through_hbone(state: MeshState, proxy: Proxy,
                  resources: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict]]:
    """A proxy's resources, its EDS clusters' ambient endpoints reached over HBONE, where
    the proxy says ``ENABLE_HBONE`` (the ambient profile's proxy metadata). The other
    endpoints keep their own transport (auto mTLS to sidecars, plaintext elsewhere): the
    tunnel's match comes first in the cluster's ``transport_socket_matches``.

    The clusters and endpoints it changes are new objects: the others are shared with every
    proxy and push (localmesh/istio/xds/memo.py) and never changed after they are built."""
    ambient = state.ambient
    if ambient is None or str(proxy.metadata.get(ENABLE_HBONE, "")).lower() != "true":
        return resources
    clusters = resources.get(T_CLUSTER, {})
    endpoints = resources.get(T_ENDPOINT, {})
    tunnelled = False
    for name, assignment in list(endpoints.items()):
        c = clusters.get(name)
        if c is None:
            continue
        groups, hit = [], False
        for group in assignment.get("endpoints") or []:
            lbs = []
            for lb in group.get("lb_endpoints") or []:
                via = _tunnelled(ambient, lb)
                hit = hit or via is not None
                lbs.append(via or lb)
            groups.append({**group, "lb_endpoints": lbs})
        if not hit:
            continue
        tunnelled = True
        endpoints[name] = {**assignment, "endpoints": groups}
        clusters[name] = {**c, "transport_socket_matches": [
            TUNNEL_MATCH, *(c.get("transport_socket_matches") or [])]}
    if tunnelled:
        listener, cluster = _originate(state, proxy)
        resources.setdefault(T_LISTENER, {})[listener["name"]] = listener
        clusters[cluster["name"]] = cluster
    return resources

"""A sidecar's resources: its listeners (istio/istio ``pilot/pkg/networking/core``
``listener.go`` and ``listener_inbound.go``) with the clusters, routes and endpoints they
refer to.

- ``virtualOutbound`` (15001) on the pod's local address: the apps' explicit proxy, which
  picks the per-port route configuration by the port in ``:authority`` (scoped routes;
  see localmesh/istio/xds/__init__.py for why);
- ``0.0.0.0_<port>`` per outbound HTTP port, ``bind_to_port: false`` as in Istio;
- ``virtualInbound`` (15006) on the pod IP, also bound on each port the pod serves, with
  the filter chains of each destination port in front of the app on the pod's local
  address: mTLS and/or plaintext as the port's PeerAuthentication mode asks (tls.py),
  with the workload's AuthorizationPolicies as RBAC filters (authz.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from localmesh.istio import names
from localmesh.istio.xds import authz, peerauth, tls
from localmesh.istio.xds.clusters import (
    cluster,
    outbound_clusters,
    static_clusters,
    telemetry_cluster,
)
from localmesh.istio.xds.endpoints import outbound_endpoints
from localmesh.istio.xds.filters import ads, http_connection_manager, tcp_proxy
from localmesh.istio.xds.model import (
    T_CLUSTER,
    T_ENDPOINT,
    T_LISTENER,
    T_ROUTE,
    T_SCOPED,
    MeshState,
    Proxy,
)
from localmesh.istio.xds.routes import outbound_route_configs


@dataclass(frozen=True)
class InboundPort:
    """A port the pod serves, as its inbound listener and cluster see it."""

    protocol: str  # Istio's protocol of the Service port targeting it; "unknown" if none
    service: str  # the FQDN of the Service (first by name) with a port targeting it, or ""


def _target_port(port_target: object, proxy: Proxy) -> int | None:
    """A Service port's targetPort as a container port number (a name is looked up)."""
    if isinstance(port_target, str) and not port_target.isdigit():
        return next((cp["containerPort"] for cp in proxy.container_ports
                     if cp.get("name") == port_target), None)
    return int(str(port_target))


def inbound_ports(state: MeshState, proxy: Proxy) -> dict[int, InboundPort]:
    """Port → its protocol and Service: every container port, and every port a Service
    that selects this pod targets, in one pass over those Services."""
    protocols: dict[int, str] = {cp["containerPort"]: "unknown" for cp in proxy.container_ports}
    services: dict[int, str] = {}
    # state.services is sorted by namespace and name (the store's order), so within the
    # pod's namespace the first Service to claim a port is the first by name.
    for s in state.services:
        if s.namespace != proxy.namespace or not s.selector:
            continue
        if any(proxy.labels.get(k) != v for k, v in s.selector.items()):
            continue
        for p in s.ports:
            target = _target_port(p.target, proxy)
            if target is None:
                continue
            protocols[target] = p.protocol
            services.setdefault(target, s.host)
    return {port: InboundPort(proto, services.get(port, ""))
            for port, proto in protocols.items()}


def _virtual_outbound(proxy: Proxy) -> dict:
    return {
        "name": "virtualOutbound",
        "address": {"socket_address": {"address": proxy.local_ip, "port_value": 15001}},
        "filter_chains": [{"name": "virtualOutbound-scoped", "filters": [
            http_connection_manager(
                proxy, "outbound_0.0.0.0_15001", "outbound", "outbound",
                scoped_routes={
                    "name": "virtualOutbound",
                    "scope_key_builder": {"fragments": [{"header_value_extractor": {
                        "name": ":authority", "element_separator": ":", "index": 1}}]},
                    "rds_config_source": ads(),
                    "scoped_rds": {"scoped_rds_config_source": ads()},
                })]}],
        "traffic_direction": "OUTBOUND",
    }


def _outbound_port_listener(proxy: Proxy, port: int) -> dict:
    return {
        "name": f"0.0.0.0_{port}",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
        "bind_to_port": False,
        "filter_chains": [{"filters": [http_connection_manager(
            proxy, f"outbound_0.0.0.0_{port}", "outbound", "outbound",
            rds={"config_source": ads(), "route_config_name": str(port)})]}],
        "traffic_direction": "OUTBOUND",
    }


def _inbound_chains(state: MeshState, proxy: Proxy, port: int,
                    inbound: InboundPort) -> list[dict]:
    name = names.inbound_cluster(port)
    service = inbound.service
    http = names.is_http(inbound.protocol) or inbound.protocol == "unknown"
    if http:
        route = {"name": "default", "match": {"prefix": "/"},
                 "route": {"cluster": name, "timeout": "0s"},
                 "decorator": {"operation": f"{service or proxy.pod}:{port}/*"}}
        filters = [http_connection_manager(
            proxy, f"inbound_0.0.0.0_{port}", f"inbound|{port}|{service}", "inbound",
            authz=authz.http_filters(state, proxy),
            route_config={"name": name, "validate_clusters": False,
                          "virtual_hosts": [{"name": f"inbound|http|{port}", "domains": ["*"],
                                             "routes": [route]}]})]
    else:
        filters = [*authz.network_filters(state, proxy), tcp_proxy(name, name)]
    mode = peerauth.port_mode(state, proxy.namespace, proxy.labels, port)
    return tls.inbound_chains(state, mode, http, port, {"name": f"0.0.0.0_{port}",
                                                        "filters": filters})


def _virtual_inbound(state: MeshState, proxy: Proxy, inbound: dict[int, InboundPort]) -> dict:
    chains = [c for port, ip in sorted(inbound.items())
              for c in _inbound_chains(state, proxy, port, ip)]
    listener: dict = {
        "name": "virtualInbound",
        "address": {"socket_address": {"address": proxy.ip, "port_value": 15006}},
        "additional_addresses": [
            {"address": {"socket_address": {"address": proxy.ip, "port_value": port}}}
            for port in sorted(inbound)],
        "filter_chains": chains or [{"name": "virtualInbound-blackhole", "filters": [
            tcp_proxy("BlackHoleCluster", "BlackHoleCluster")]}],
        "traffic_direction": "INBOUND",
    }
    if any(c.get("filter_chain_match", {}).get("transport_protocol") == "tls" for c in chains):
        # The TLS inspector tells mTLS from plaintext for the chains' transport_protocol
        # (populateListenerFilters); Istio lets a silent client through after its timeout.
        listener["listener_filters"] = [tls.TLS_INSPECTOR]
        listener["continue_on_listener_filters_timeout"] = True
    return listener


def sidecar_resources(state: MeshState, proxy: Proxy) -> dict[str, dict[str, dict]]:
    """All resources of a sidecar, by type URL and name."""
    clusters = {c["name"]: c for c in outbound_clusters(state) + static_clusters()}
    inbound = inbound_ports(state, proxy)
    for port, ip in inbound.items():
        name = names.inbound_cluster(port)
        clusters[name] = cluster(name, ip.protocol, eds=False, address=(proxy.local_ip, port))
    clusters["istio-telemetry"] = telemetry_cluster(proxy)
    routes = outbound_route_configs(state, proxy)
    listeners = {"virtualOutbound": _virtual_outbound(proxy)}
    for port in sorted(int(p) for p in routes):
        listeners[f"0.0.0.0_{port}"] = _outbound_port_listener(proxy, port)
    listeners["virtualInbound"] = _virtual_inbound(state, proxy, inbound)
    scoped = {
        f"virtualOutbound.{port}": {"name": f"virtualOutbound.{port}",
                                    "route_configuration_name": port,
                                    "key": {"fragments": [{"string_key": port}]}}
        for port in routes
    }
    eds = outbound_endpoints(state, clusters)
    return {T_CLUSTER: clusters, T_ENDPOINT: eds, T_LISTENER: listeners, T_ROUTE: routes,
            T_SCOPED: scoped}

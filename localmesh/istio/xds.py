"""xDS generation: cluster state → the listeners, routes, clusters and endpoints of one proxy.

Pure functions over a :class:`MeshState` snapshot, so the generator is testable without
Envoy. Resource names and shapes follow Istio's (see names.py). Where localmesh must
differ because there is no iptables, it says so here and in docs/localmesh.md:

- Outbound: apps send through an explicit proxy on the pod's local address, port 15001
  (``virtualOutbound``). Envoy cannot recover the original destination port, so
  ``virtualOutbound`` selects the per-port route configuration (``"8080"``, ``"7050"`` …)
  with scoped routes keyed on the port in ``:authority``. The per-port route
  configurations are the same ones Istio builds; the ``0.0.0.0_<port>`` listeners exist
  (``bind_to_port: false``, as in Istio) and reference them too.
- Inbound: ``virtualInbound`` additionally binds the pod IP on each container port
  (``additional_addresses``) and picks its filter chain by destination port, as Istio's
  chains do after the iptables redirect; the app behind it listens on the pod's local
  address.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from localmesh.istio import names

T_LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
T_ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
T_SCOPED = "type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration"
T_CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
T_ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
TYPES = (T_CLUSTER, T_ENDPOINT, T_LISTENER, T_ROUTE, T_SCOPED)

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


@dataclass
class ServicePort:
    name: str
    port: int
    target: object
    protocol: str


@dataclass
class Service:
    name: str
    namespace: str
    cluster_ip: str
    ports: list[ServicePort]
    selector: dict
    labels: dict

    @property
    def host(self) -> str:
        return names.fqdn(self.name, self.namespace)


@dataclass
class Proxy:
    """The identity a proxy announces in its node id and metadata."""

    kind: str  # sidecar | router
    ip: str
    local_ip: str
    pod: str
    namespace: str
    labels: dict
    workload: str
    container_ports: list[dict]
    metadata: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.pod}.{self.namespace}"


@dataclass
class MeshState:
    """Everything istiod's generator reads, snapshotted from the object store."""

    services: list[Service]
    endpoints: dict[tuple[str, str], list[dict]]  # (ns, name) -> Endpoints subsets
    ingresses: list[dict]
    ingress_classes: dict[str, dict]
    gateways: list[dict]
    virtual_services: list[dict]
    destination_rules: list[dict]


def _any(type_url: str, body: dict) -> dict:
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


def _access_logs(proxy: Proxy, log_name: str) -> list[dict]:
    return [
        {"name": "envoy.access_loggers.file",
         "typed_config": _any(FILE_LOG, {"path": "/dev/stdout",
                                         "log_format": {"text_format_source": {
                                             "inline_string": ISTIO_LOG_FORMAT}}})},
        {"name": "envoy.access_loggers.http_grpc",
         "typed_config": _any(GRPC_LOG, {
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


def _mutation(proxy: Proxy, direction: str) -> dict:
    """Add this proxy's identity to requests (outbound) or responses (inbound)."""
    headers = [
        {"append": {"header": {"key": PEER_HEADER, "value": peer_metadata(proxy)},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}},
        {"append": {"header": {"key": PEER_ID_HEADER, "value": proxy.id},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}},
    ]
    key = "request_mutations" if direction == "outbound" else "response_mutations"
    return {"name": "istio.metadata_exchange",
            "typed_config": _any(HEADER_MUTATION, {"mutations": {key: headers}})}


def _hcm(proxy: Proxy, stat_prefix: str, log_name: str, direction: str, **route: dict) -> dict:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": _any(HCM, {
            "stat_prefix": stat_prefix,
            "codec_type": "AUTO",
            "use_remote_address": direction == "gateway",
            "preserve_external_request_id": True,
            "access_log": _access_logs(proxy, log_name),
            "http_filters": [
                _mutation(proxy, "inbound" if direction == "inbound" else "outbound"),
                {"name": "envoy.filters.http.router", "typed_config": _any(ROUTER, {})},
            ],
            "normalize_path": True,
            "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
            **route,
        }),
    }


def _ads() -> dict:
    return {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}


def _cluster(name: str, protocol: str, *, eds: bool = True, address: tuple[str, int] | None
             = None, service: Service | None = None, port: int = 0,
             subset: str | None = None) -> dict:
    c: dict = {"name": name, "connect_timeout": "10s", "lb_policy": "LEAST_REQUEST",
               "common_lb_config": {}, "circuit_breakers": {"thresholds": [
                   {"max_connections": 4294967295, "max_pending_requests": 4294967295,
                    "max_requests": 4294967295, "max_retries": 4294967295,
                    "track_remaining": True}]}}
    if eds:
        c["type"] = "EDS"
        c["eds_cluster_config"] = {"eds_config": _ads(), "service_name": name}
    else:
        c["type"] = "STATIC"
        assert address is not None
        c["load_assignment"] = {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": address[0],
                                                         "port_value": address[1]}}}}]}]}
    if protocol in ("grpc", "http2"):
        c["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": _any(HTTP_OPTIONS, {
                "explicit_http_config": {"http2_protocol_options": {}}})}
    else:
        c["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": _any(HTTP_OPTIONS, {
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


def _static_clusters() -> list[dict]:
    return [
        {"name": "BlackHoleCluster", "type": "STATIC", "connect_timeout": "10s"},
        {"name": "PassthroughCluster", "type": "ORIGINAL_DST", "connect_timeout": "10s",
         "lb_policy": "CLUSTER_PROVIDED",
         "original_dst_lb_config": {"use_http_header": True}},
    ]


def _http_services(state: MeshState) -> list[tuple[Service, ServicePort]]:
    return [(s, p) for s in state.services for p in s.ports if names.is_http(p.protocol)]


def outbound_clusters(state: MeshState) -> list[dict]:
    return [_cluster(names.outbound_cluster(p.port, s.host), p.protocol, service=s, port=p.port)
            for s, p in _http_services(state)] + _subset_clusters(state)


def _subset_clusters(state: MeshState) -> list[dict]:
    out = []
    for dr in state.destination_rules:
        host = _resolve_host(dr["spec"].get("host", ""), dr["metadata"]["namespace"])
        svc = next((s for s in state.services if s.host == host), None)
        if svc is None:
            continue
        for subset in dr["spec"].get("subsets") or []:
            for p in svc.ports:
                if names.is_http(p.protocol):
                    out.append(_cluster(names.outbound_cluster(p.port, host, subset["name"]),
                                        p.protocol, service=svc, port=p.port,
                                        subset=subset["name"]))
    return out


def _resolve_host(host: str, namespace: str) -> str:
    """Short names in Istio config resolve in the config's namespace."""
    if "." not in host:
        return names.fqdn(host, namespace)
    parts = host.split(".")
    if len(parts) == 2:
        return names.fqdn(parts[0], parts[1])
    return host


def endpoints_for(state: MeshState, cluster: str) -> dict:
    """The ClusterLoadAssignment of an outbound cluster from the Service's Endpoints."""
    _, port_s, subset, host = cluster.split("|")
    svc = next((s for s in state.services if s.host == host), None)
    lb: list[dict] = []
    if svc is not None:
        sp = next((p for p in svc.ports if str(p.port) == port_s), None)
        subset_labels = _subset_labels(state, host, subset) if subset else None
        for sub in state.endpoints.get((svc.namespace, svc.name), []):
            port = next((p["port"] for p in sub.get("ports") or []
                         if sp is not None and p.get("name", "") == sp.name), None)
            if port is None:
                continue
            for addr in sub.get("addresses") or []:
                if subset_labels is not None:
                    labels = addr.get("_labels") or {}
                    if any(labels.get(k) != v for k, v in subset_labels.items()):
                        continue
                lb.append({"endpoint": {"address": {"socket_address": {
                    "address": addr["ip"], "port_value": port}}},
                    "health_status": "HEALTHY", "load_balancing_weight": 1})
    lb.sort(key=lambda e: e["endpoint"]["address"]["socket_address"]["address"])
    return {"cluster_name": cluster, "endpoints": [{"lb_endpoints": lb,
                                                    "load_balancing_weight": max(1, len(lb))}]
            if lb else []}


def _subset_labels(state: MeshState, host: str, subset: str) -> dict | None:
    for dr in state.destination_rules:
        if _resolve_host(dr["spec"].get("host", ""), dr["metadata"]["namespace"]) != host:
            continue
        for s in dr["spec"].get("subsets") or []:
            if s.get("name") == subset:
                return s.get("labels") or {}
    return {}


def _vs_routes(state: MeshState, host: str, port: int, gateway: str | None) -> list[dict] | None:
    """Routes of the VirtualServices bound to ``host`` (mesh) or to a gateway."""
    for vs in state.virtual_services:
        spec = vs.get("spec") or {}
        ns = vs["metadata"]["namespace"]
        gws = spec.get("gateways") or ["mesh"]
        if gateway is None and "mesh" not in gws:
            continue
        if gateway is not None and not any(_resolve_gw(g, ns) == gateway for g in gws):
            continue
        hosts = [_resolve_host(h, ns) if h != "*" else "*" for h in spec.get("hosts") or []]
        if gateway is None and host not in hosts:
            continue
        return _http_routes(vs, port)
    return None


def _resolve_gw(name: str, ns: str) -> str:
    return name if "/" in name else f"{ns}/{name}"


def _match(m: dict) -> dict:
    uri = m.get("uri") or {}
    out: dict = {}
    if "exact" in uri:
        out["path"] = uri["exact"]
    elif "prefix" in uri:
        out["prefix"] = uri["prefix"]
    elif "regex" in uri:
        out["safe_regex"] = {"regex": uri["regex"]}
    else:
        out["prefix"] = "/"
    out["case_sensitive"] = not m.get("ignoreUriCase", False)
    headers = []
    for name, hm in (m.get("headers") or {}).items():
        if "exact" in hm:
            headers.append({"name": name, "string_match": {"exact": hm["exact"]}})
        elif "prefix" in hm:
            headers.append({"name": name, "string_match": {"prefix": hm["prefix"]}})
    if headers:
        out["headers"] = headers
    return out


def _http_routes(vs: dict, port: int) -> list[dict]:
    ns = vs["metadata"]["namespace"]
    config = f"/apis/networking.istio.io/v1/namespaces/{ns}/virtual-service/" \
             f"{vs['metadata']['name']}"
    routes = []
    for i, rule in enumerate((vs.get("spec") or {}).get("http") or []):
        dests = rule.get("route") or []
        action = _route_action(dests, ns, port)
        matches = rule.get("match") or [{}]
        for m in matches:
            r = {"name": rule.get("name") or f"{vs['metadata']['name']}.{i}",
                 "match": _match(m), "route": action,
                 "metadata": {"filter_metadata": {"istio": {"config": config}}}}
            if isinstance(action.get("cluster"), str):
                r["decorator"] = {"operation": action["cluster"].split("|")[3] + f":{port}"}
            routes.append(r)
    return routes


def _route_action(dests: list[dict], ns: str, port: int) -> dict:
    def cluster_of(d: dict) -> str:
        dest = d.get("destination") or {}
        host = _resolve_host(dest.get("host", ""), ns)
        p = (dest.get("port") or {}).get("number", port)
        return names.outbound_cluster(p, host, dest.get("subset", ""))

    base = {"timeout": "0s",
            "retry_policy": {"retry_on": "connect-failure,refused-stream,unavailable,"
                                         "cancelled,retriable-status-codes",
                             "num_retries": 2, "retry_host_predicate": [
                                 {"name": "envoy.retry_host_predicates.previous_hosts",
                                  "typed_config": {"@type": "type.googleapis.com/envoy."
                                                   "extensions.retry.host.previous_hosts.v3."
                                                   "PreviousHostsPredicate"}}],
                             "host_selection_retry_max_attempts": "5"}}
    if len(dests) == 1:
        return {"cluster": cluster_of(dests[0]), **base}
    clusters = [{"name": cluster_of(d), "weight": d.get("weight", 0) or 1} for d in dests]
    return {"weighted_clusters": {"clusters": clusters}, **base}


def outbound_route_configs(state: MeshState, proxy: Proxy) -> dict[str, dict]:
    """The per-port route configurations ("8080", …) of a sidecar."""
    by_port: dict[int, list[dict]] = {}
    for s, p in _http_services(state):
        routes = _vs_routes(state, s.host, p.port, None)
        if routes is None:
            cluster = names.outbound_cluster(p.port, s.host)
            routes = [{"name": "default", "match": {"prefix": "/"},
                       "route": {"cluster": cluster, "timeout": "0s",
                                 "retry_policy": {"retry_on": "connect-failure,refused-stream,"
                                                              "unavailable,cancelled,"
                                                              "retriable-status-codes",
                                                  "num_retries": 2}},
                       "decorator": {"operation": f"{s.host}:{p.port}/*"}}]
        by_port.setdefault(p.port, []).append({
            "name": f"{s.host}:{p.port}",
            "domains": names.vhost_domains(s.name, s.namespace, proxy.namespace, s.cluster_ip),
            "routes": routes,
            "include_request_attempt_count": True,
        })
    out = {}
    for port, vhosts in sorted(by_port.items()):
        vhosts.sort(key=lambda v: v["name"])
        vhosts.append({"name": "allow_any", "domains": ["*"], "routes": [
            {"name": "allow_any", "match": {"prefix": "/"},
             "route": {"cluster": "PassthroughCluster", "timeout": "0s"}}],
            "include_request_attempt_count": True})
        out[str(port)] = {"name": str(port), "virtual_hosts": vhosts,
                          "validate_clusters": False, "max_direct_response_body_size_bytes":
                              1048576, "ignore_port_in_host_matching": True}
    return out


def _inbound_ports(state: MeshState, proxy: Proxy) -> dict[int, str]:
    """Container port → protocol, from the Services that select this pod."""
    ports: dict[int, str] = {}
    for cp in proxy.container_ports:
        ports[cp["containerPort"]] = "unknown"
    for s in state.services:
        if s.namespace != proxy.namespace or not s.selector:
            continue
        if any(proxy.labels.get(k) != v for k, v in s.selector.items()):
            continue
        for p in s.ports:
            target = p.target
            if isinstance(target, str) and not target.isdigit():
                target = next((cp["containerPort"] for cp in proxy.container_ports
                               if cp.get("name") == target), None)
            if target is None:
                continue
            ports[int(target)] = p.protocol
    return ports


def _inbound_service(state: MeshState, proxy: Proxy, port: int) -> str:
    for s in sorted(state.services, key=lambda s: s.name):
        if s.namespace != proxy.namespace or not s.selector:
            continue
        if any(proxy.labels.get(k) != v for k, v in s.selector.items()):
            continue
        for p in s.ports:
            if p.target == port or str(p.target) == str(port) or any(
                    cp.get("name") == p.target and cp["containerPort"] == port
                    for cp in proxy.container_ports):
                return s.host
    return ""


def sidecar_resources(state: MeshState, proxy: Proxy) -> dict[str, dict[str, dict]]:
    """All resources of a sidecar, by type URL and name."""
    clusters = {c["name"]: c for c in outbound_clusters(state) + _static_clusters()}
    inbound = _inbound_ports(state, proxy)
    for port, proto in inbound.items():
        name = names.inbound_cluster(port)
        clusters[name] = _cluster(name, proto, eds=False, address=(proxy.local_ip, port))
    clusters["istio-telemetry"] = _telemetry_cluster(proxy)
    routes = outbound_route_configs(state, proxy)
    listeners = {}
    listeners["virtualOutbound"] = {
        "name": "virtualOutbound",
        "address": {"socket_address": {"address": proxy.local_ip, "port_value": 15001}},
        "filter_chains": [{"name": "virtualOutbound-scoped", "filters": [_hcm(
            proxy, "outbound_0.0.0.0_15001", "outbound", "outbound",
            scoped_routes={
                "name": "virtualOutbound",
                "scope_key_builder": {"fragments": [{"header_value_extractor": {
                    "name": ":authority", "element_separator": ":", "index": 1}}]},
                "rds_config_source": _ads(),
                "scoped_rds": {"scoped_rds_config_source": _ads()},
            })]}],
        "traffic_direction": "OUTBOUND",
    }
    for port in sorted(int(p) for p in routes):
        listeners[f"0.0.0.0_{port}"] = {
            "name": f"0.0.0.0_{port}",
            "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
            "bind_to_port": False,
            "filter_chains": [{"filters": [_hcm(
                proxy, f"outbound_0.0.0.0_{port}", "outbound", "outbound",
                rds={"config_source": _ads(), "route_config_name": str(port)})]}],
            "traffic_direction": "OUTBOUND",
        }
    chains = []
    for port, proto in sorted(inbound.items()):
        name = names.inbound_cluster(port)
        service = _inbound_service(state, proxy, port)
        if names.is_http(proto) or proto == "unknown":
            filt = _hcm(proxy, f"inbound_0.0.0.0_{port}", f"inbound|{port}|{service}",
                        "inbound", route_config={
                            "name": name, "validate_clusters": False,
                            "virtual_hosts": [{"name": f"inbound|http|{port}", "domains": ["*"],
                                               "routes": [{"name": "default",
                                                           "match": {"prefix": "/"},
                                                           "route": {"cluster": name,
                                                                     "timeout": "0s"},
                                                           "decorator": {"operation":
                                                               f"{service or proxy.pod}:{port}/*"}}
                                                          ]}]})
        else:
            filt = {"name": "envoy.filters.network.tcp_proxy",
                    "typed_config": _any(TCP_PROXY, {"stat_prefix": name, "cluster": name})}
        chains.append({"name": f"0.0.0.0_{port}",
                       "filter_chain_match": {"destination_port": port},
                       "filters": [filt]})
    listeners["virtualInbound"] = {
        "name": "virtualInbound",
        "address": {"socket_address": {"address": proxy.ip, "port_value": 15006}},
        "additional_addresses": [
            {"address": {"socket_address": {"address": proxy.ip, "port_value": port}}}
            for port in sorted(inbound)],
        "filter_chains": chains or [{"name": "virtualInbound-blackhole", "filters": [
            {"name": "envoy.filters.network.tcp_proxy",
             "typed_config": _any(TCP_PROXY, {"stat_prefix": "BlackHoleCluster",
                                              "cluster": "BlackHoleCluster"})}]}],
        "traffic_direction": "INBOUND",
    }
    scoped = {
        f"virtualOutbound.{port}": {"name": f"virtualOutbound.{port}",
                                    "route_configuration_name": port,
                                    "key": {"fragments": [{"string_key": port}]}}
        for port in routes
    }
    eds = {n: endpoints_for(state, n) for n, c in clusters.items() if c.get("type") == "EDS"}
    return {T_CLUSTER: clusters, T_ENDPOINT: eds, T_LISTENER: listeners, T_ROUTE: routes,
            T_SCOPED: scoped}


def _telemetry_cluster(proxy: Proxy) -> dict:
    c = _cluster("istio-telemetry", "grpc", eds=False, address=(proxy.local_ip, ALS_PORT))
    return c


def gateway_resources(state: MeshState, proxy: Proxy) -> dict[str, dict[str, dict]]:
    """Resources of an ingress gateway: Ingress and Gateway/VirtualService routes."""
    clusters = {c["name"]: c for c in outbound_clusters(state) + _static_clusters()}
    clusters["istio-telemetry"] = _telemetry_cluster(proxy)
    servers = _gateway_servers(state, proxy)
    routes: dict[str, dict] = {}
    listeners: dict[str, dict] = {}
    for target_port, vhosts in sorted(servers.items()):
        if not any(v["routes"] for v in vhosts):
            continue
        name = f"http.{target_port}"
        routes[name] = {"name": name, "virtual_hosts": vhosts, "validate_clusters": False,
                        "max_direct_response_body_size_bytes": 1048576,
                        "ignore_port_in_host_matching": True}
        listeners[f"0.0.0.0_{target_port}"] = {
            "name": f"0.0.0.0_{target_port}",
            "address": {"socket_address": {"address": proxy.ip, "port_value": target_port}},
            "filter_chains": [{"filters": [_hcm(
                proxy, f"outbound_0.0.0.0_{target_port}", "gateway", "gateway",
                rds={"config_source": _ads(), "route_config_name": name})]}],
            "traffic_direction": "OUTBOUND",
        }
    eds = {n: endpoints_for(state, n) for n, c in clusters.items() if c.get("type") == "EDS"}
    return {T_CLUSTER: clusters, T_ENDPOINT: eds, T_LISTENER: listeners, T_ROUTE: routes,
            T_SCOPED: {}}


def _ingress_selected(ing: dict, classes: dict[str, dict]) -> bool:
    """Istio's shouldProcessIngressWithClass in STRICT mode with ingressClass ``istio``."""
    ann = (ing["metadata"].get("annotations") or {}).get("kubernetes.io/ingress.class")
    if ann is not None:
        return ann == "istio"
    cls = (ing.get("spec") or {}).get("ingressClassName")
    if cls is None:
        return False
    ic = classes.get(cls)
    return ic is not None and (ic.get("spec") or {}).get("controller") == \
        "istio.io/ingress-controller"


def _gateway_servers(state: MeshState, proxy: Proxy) -> dict[int, list[dict]]:
    """Target port → virtual hosts, from Ingresses and Istio Gateways bound to this proxy."""
    out: dict[int, dict[str, dict]] = {}
    # Kubernetes Ingress: one server on port 80 (target 8080), hosts from the rules.
    if proxy.labels.get("istio") == "ingressgateway":
        for ing in sorted(state.ingresses, key=lambda i: (i["metadata"]["namespace"],
                                                          i["metadata"]["name"])):
            if not _ingress_selected(ing, state.ingress_classes):
                continue
            ns = ing["metadata"]["namespace"]
            config = (f"/apis/networking.istio.io/v1alpha3/namespaces/{ns}/virtual-service/"
                      f"{ing['metadata']['name']}-istio-autogenerated-k8s-ingress")
            for rule in (ing.get("spec") or {}).get("rules") or []:
                host = rule.get("host") or "*"
                vh = out.setdefault(8080, {}).setdefault(host, {
                    "name": f"{host}:80", "domains": [host] if host == "*" else
                    [host, f"{host}:*"], "routes": [], "include_request_attempt_count": True})
                for path in (rule.get("http") or {}).get("paths") or []:
                    backend = (path.get("backend") or {}).get("service") or {}
                    svc_name = backend.get("name", "")
                    port = (backend.get("port") or {}).get("number")
                    if port is None:
                        svc = next((s for s in state.services if s.name == svc_name and
                                    s.namespace == ns), None)
                        pname = (backend.get("port") or {}).get("name")
                        port = next((p.port for p in (svc.ports if svc else [])
                                     if p.name == pname), None)
                    if port is None:
                        continue
                    cluster = names.outbound_cluster(port, names.fqdn(svc_name, ns))
                    vh["routes"].append({
                        "match": _ingress_match(path), "route": {
                            "cluster": cluster, "timeout": "0s"},
                        "metadata": {"filter_metadata": {"istio": {"config": config}}},
                        "decorator": {"operation": f"{names.fqdn(svc_name, ns)}:{port}"
                                                   f"{path.get('path', '/')}"},
                    })
    # Istio Gateway + VirtualService.
    for gw in state.gateways:
        sel = (gw.get("spec") or {}).get("selector") or {}
        if not sel or any(proxy.labels.get(k) != v for k, v in sel.items()):
            continue
        key = f"{gw['metadata']['namespace']}/{gw['metadata']['name']}"
        for server in (gw.get("spec") or {}).get("servers") or []:
            port = (server.get("port") or {}).get("number", 80)
            target = port + 8000 if port < 1024 else port
            for vs in state.virtual_services:
                vspec = vs.get("spec") or {}
                gws = [_resolve_gw(g, vs["metadata"]["namespace"]) for g in
                       vspec.get("gateways") or []]
                if key not in gws:
                    continue
                for host in vspec.get("hosts") or ["*"]:
                    vh = out.setdefault(target, {}).setdefault(host, {
                        "name": f"{host}:{port}", "domains": [host] if host == "*" else
                        [host, f"{host}:*"], "routes": [],
                        "include_request_attempt_count": True})
                    vh["routes"].extend(_http_routes(vs, port))
    return {port: list(v.values()) for port, v in out.items()}


def _ingress_match(path: dict) -> dict:
    """Ingress path → Envoy match, as Istio's ingress conversion does it."""
    p = path.get("path") or "/"
    kind = path.get("pathType") or "ImplementationSpecific"
    if kind == "Exact":
        return {"path": p, "case_sensitive": True}
    if kind == "Prefix":
        if p == "/":
            return {"prefix": "/", "case_sensitive": True}
        return {"path_separated_prefix": p.rstrip("/"), "case_sensitive": True}
    if p.endswith("/*") or p.endswith(".*"):
        return {"prefix": p[:-1], "case_sensitive": True}
    return {"path": p, "case_sensitive": True}


def resources_for(state: MeshState, proxy: Proxy) -> dict[str, dict[str, dict]]:
    if proxy.kind == "router":
        return gateway_resources(state, proxy)
    return sidecar_resources(state, proxy)

"""HTTP routes (istio/istio ``pilot/pkg/networking/core/httproute.go``): a sidecar's
per-port route configurations (``"8080"`` …) with one virtual host per Service and the
``allow_any`` catch-all, and the routes VirtualServices bind to hosts or gateways.
"""

from __future__ import annotations

import copy
import functools
import hashlib

from localmesh.istio import names
from localmesh.istio.xds.clusters import http_services
from localmesh.istio.xds.model import MeshState, Proxy, Service, ServicePort

# Istio's default retry policy for HTTP routes without ``retries``
# (pilot/pkg/networking/core/route/retry: DefaultPolicy): two retries on connection
# failures and 503s, each to another host; Ingress-converted routes get it too.
DEFAULT_RETRY_POLICY = {
    "retry_on": "connect-failure,refused-stream,unavailable,cancelled,"
                "retriable-status-codes",
    "num_retries": 2, "retriable_status_codes": [503], "retry_host_predicate": [
        {"name": "envoy.retry_host_predicates.previous_hosts",
         "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host."
                                   "previous_hosts.v3.PreviousHostsPredicate"}}],
    "host_selection_retry_max_attempts": "5"}


def virtual_service_routes(state: MeshState, host: str, port: int,
                           gateway: str | None) -> list[dict] | None:
    """Routes of the VirtualServices bound to ``host`` (mesh) or to a gateway."""
    for vs in state.virtual_services:
        spec = vs.get("spec") or {}
        ns = vs["metadata"]["namespace"]
        gws = spec.get("gateways") or ["mesh"]
        if gateway is None and "mesh" not in gws:
            continue
        if gateway is not None and not any(resolve_gateway(g, ns) == gateway for g in gws):
            continue
        hosts = [names.resolve_host(h, ns) if h != "*" else "*" for h in spec.get("hosts") or []]
        if gateway is None and host not in hosts:
            continue
        return http_routes(vs, port)
    return None


def resolve_gateway(name: str, ns: str) -> str:
    return name if "/" in name else f"{ns}/{name}"


def route_match(m: dict) -> dict:
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


def http_routes(vs: dict, port: int) -> list[dict]:
    ns = vs["metadata"]["namespace"]
    config = f"/apis/networking.istio.io/v1/namespaces/{ns}/virtual-service/" \
             f"{vs['metadata']['name']}"
    routes = []
    for i, rule in enumerate((vs.get("spec") or {}).get("http") or []):
        dests = rule.get("route") or []
        action = route_action(dests, ns, port)
        matches = rule.get("match") or [{}]
        for m in matches:
            r = {"name": rule.get("name") or f"{vs['metadata']['name']}.{i}",
                 "match": route_match(m), "route": action,
                 "metadata": {"filter_metadata": {"istio": {"config": config}}}}
            if isinstance(action.get("cluster"), str):
                r["decorator"] = {"operation": action["cluster"].split("|")[3] + f":{port}"}
            routes.append(r)
    return routes


def route_action(dests: list[dict], ns: str, port: int) -> dict:
    def cluster_of(d: dict) -> str:
        dest = d.get("destination") or {}
        host = names.resolve_host(dest.get("host", ""), ns)
        p = (dest.get("port") or {}).get("number", port)
        return names.outbound_cluster(p, host, dest.get("subset", ""))

    base = {"timeout": "0s", "retry_policy": copy.deepcopy(DEFAULT_RETRY_POLICY)}
    if len(dests) == 1:
        return {"cluster": cluster_of(dests[0]), **base}
    clusters = [{"name": cluster_of(d), "weight": d.get("weight", 0) or 1} for d in dests]
    return {"weighted_clusters": {"clusters": clusters}, **base}


def outbound_route_configs(state: MeshState, proxy: Proxy) -> dict[str, dict]:
    """The per-port route configurations ("8080", …) of a sidecar. They differ between
    client namespaces only (a Service's short name is a domain in its own namespace), so
    each namespace's are built once per state, from virtual hosts built once per distinct
    input (memo.py)."""
    built = state.local.get(("routes", proxy.namespace))
    if built is None:
        built = state.local[("routes", proxy.namespace)] = _route_configs(state,
                                                                          proxy.namespace)
    return dict(built)


def _vhost(state: MeshState, s: Service, p: ServicePort, client_ns: str) -> dict:
    routes = virtual_service_routes(state, s.host, p.port, None)
    if routes is None:
        cluster = names.outbound_cluster(p.port, s.host)
        routes = [{"name": "default", "match": {"prefix": "/"},
                   "route": {"cluster": cluster, "timeout": "0s",
                             "retry_policy": copy.deepcopy(DEFAULT_RETRY_POLICY)},
                   "decorator": {"operation": f"{s.host}:{p.port}/*"}}]
    return {
        "name": f"{s.host}:{p.port}",
        "domains": names.vhost_domains(s.name, s.namespace, client_ns, s.cluster_ip),
        "routes": routes,
        "include_request_attempt_count": True,
    }


def _route_configs(state: MeshState, client_ns: str) -> dict[str, dict]:
    by_port: dict[int, list[dict]] = {}
    for s, p in http_services(state):
        same = s.namespace == client_ns
        vhost = state.memo.get(("vhost", state.config_key, state.service_digest(s), p.port,
                                same),
                               functools.partial(_vhost, state, s, p, client_ns))
        by_port.setdefault(p.port, []).append(vhost)
    out = {}
    for port, vhosts in sorted(by_port.items()):
        vhosts.sort(key=lambda v: v["name"])
        vhosts.append(ALLOW_ANY)
        config = {"name": str(port), "virtual_hosts": vhosts, "validate_clusters": False,
                  "max_direct_response_body_size_bytes": 1048576,
                  "ignore_port_in_host_matching": True}

        def digest(config: dict = config) -> str:
            # From its virtual hosts' digests: hashing the JSON of thousands of them again
            # on every push was most of a push's cost.
            h = hashlib.sha1(config["name"].encode())
            for v in config["virtual_hosts"]:
                h.update(state.memo.digest(v).encode())
            return h.hexdigest()

        state.memo.digest(config, digest)
        out[str(port)] = config
    return out


ALLOW_ANY = {"name": "allow_any", "domains": ["*"], "routes": [
    {"name": "allow_any", "match": {"prefix": "/"},
     "route": {"cluster": "PassthroughCluster", "timeout": "0s"}}],
    "include_request_attempt_count": True}

"""localmesh's Gateway API logic, in-process: attachment of routes to listeners and its
reasons (after Istio's conversion.go and conditions.go), the Envoy routes of a Gateway
API gateway (precedence, weights, filters), the conditions' bookkeeping, Istio's
automated deployment objects and the CRDs' schema defaults. The same through kubectl,
curl and a real Envoy is tests/localmesh/test_gateway_api.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from localmesh.istio.gatewayapi import crds
from localmesh.istio.gatewayapi.binding import Binding, bind, covers, host_matches
from localmesh.istio.gatewayapi.deployment import GatewayDeployments
from localmesh.istio.gatewayapi.model import Port, ServiceInfo, Snapshot
from localmesh.istio.gatewayapi.status import gateway_status, route_parents, set_conditions
from localmesh.istio.xds import gatewayapi as xds_gatewayapi
from localmesh.istio.xds.model import MeshState, Proxy

G = crds.GROUP
ISTIO = {"istio": {"metadata": {"name": "istio"},
                   "spec": {"controllerName": crds.CONTROLLER}}}


def gateway(*listeners: dict, ns: str = "gw", name: str = "edge") -> dict:
    return {"metadata": {"name": name, "namespace": ns, "uid": "u1", "generation": 3,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"gatewayClassName": "istio", "listeners": list(listeners)}}


def listener(name: str = "http", port: int = 80, **extra: Any) -> dict:
    return {"name": name, "port": port, "protocol": "HTTP", **extra}


def route(name: str, *rules: dict, ns: str = "gw", parents: list | None = None,
          hostnames: list | None = None, created: str = "2026-01-01T00:00:01Z",
          kind: str = "HTTPRoute") -> tuple[str, dict]:
    spec: dict = {"parentRefs": parents or [{"name": "edge"}], "rules": list(rules)}
    if hostnames:
        spec["hostnames"] = hostnames
    return kind, {"metadata": {"name": name, "namespace": ns, "generation": 1,
                               "creationTimestamp": created}, "spec": spec}


def svc(name: str, ns: str, *ports: int, **extra: Any) -> ServiceInfo:
    return ServiceInfo(name, ns, extra.pop("type", "ClusterIP"),
                       tuple(Port(p, "http", p, "http") for p in ports), **extra)


def snap(gateways: list[dict], routes: list[tuple[str, dict]] = (),  # type: ignore[assignment]
         services: list[ServiceInfo] = (), namespaces: dict | None = None,  # type: ignore[assignment]
         grants: list[dict] = ()) -> Snapshot:  # type: ignore[assignment]
    return Snapshot(classes=ISTIO, gateways=gateways,
                    http_routes=[o for k, o in routes if k == "HTTPRoute"],
                    grpc_routes=[o for k, o in routes if k == "GRPCRoute"],
                    grants=list(grants),
                    namespace_labels=namespaces or {"gw": {}, "apps": {"team": "a"}},
                    services={(s.namespace, s.name): s for s in services})


def accepted(b: Binding, name: str) -> list[tuple[str, str, str]]:
    [r] = [r for r in b.routes if r.name == name]
    out = []
    for p in route_parents(r, []):
        c = next(c for c in p["conditions"] if c["type"] == "Accepted")
        out.append((c["status"], c["reason"], c["message"]))
    return out


BACKEND = {"backendRefs": [{"name": "web", "port": 8080}]}


# -- hostnames ------------------------------------------------------------------------------
@pytest.mark.parametrize(("a", "b", "cover", "match"), [
    ("*", "a.example", True, True),
    ("*.example", "a.example", True, True),
    ("*.example", "example", False, False),
    ("*.example", "*.a.example", True, True),
    ("a.example", "*.example", False, True),
    ("a.example", "b.example", False, False),
])
def test_hostname_matching(a: str, b: str, cover: bool, match: bool) -> None:
    assert covers(a, b) is cover
    assert host_matches(a, b) is match and host_matches(b, a) is match


def test_route_hostnames_are_intersected_with_the_listener() -> None:
    gw = gateway(listener(hostname="*.shop.example"))
    b = bind(snap([gw], [route("r", BACKEND,
                               hostnames=["a.shop.example", "b.other.example", "*.example"])]))
    [(ls, r)] = b.attached(b.gateways[("gw", "edge")])
    # the route's own name where it is narrower, the listener's where the route's is wider
    assert r.hosts_on(ls) == ["a.shop.example", "*.shop.example"]


# -- attachment and its reasons -------------------------------------------------------------
def test_why_a_route_does_not_attach() -> None:
    gw = gateway(listener(hostname="*.shop.example"))
    b = bind(snap([gw], [
        route("ok", BACKEND),
        route("section", BACKEND, parents=[{"name": "edge", "sectionName": "x"}]),
        route("port", BACKEND, parents=[{"name": "edge", "port": 8080}]),
        route("host", BACKEND, hostnames=["a.other.example"]),
        route("ns", BACKEND, ns="apps", parents=[{"name": "edge", "namespace": "gw"}]),
        route("absent", BACKEND, parents=[{"name": "no-such-gateway"}]),
    ]))
    assert accepted(b, "ok") == [("True", "Accepted", "Route was valid")]
    assert accepted(b, "section") == [("False", "NoMatchingParent", 'sectionName "x" not found')]
    assert accepted(b, "port") == [("False", "NoMatchingParent", "port 8080 not found")]
    assert accepted(b, "host") == [("False", "NoMatchingListenerHostname",
                                    'no hostnames matched parent hostname "*.shop.example"')]
    assert accepted(b, "ns") == [("False", "NotAllowedByListeners",
                                  'hostnames matched parent hostname "*.shop.example", but '
                                  'namespace "apps" is not allowed by the parent')]
    assert accepted(b, "absent") == []  # Istio writes nothing for a Gateway it does not know
    assert b.gateways[("gw", "edge")].listeners[0].attached == 1


def test_allowed_routes_selector_all_and_kinds() -> None:
    gw = gateway(
        listener("sel", allowedRoutes={"namespaces": {"from": "Selector", "selector": {
            "matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]}}}),
        listener("all", 81, allowedRoutes={"namespaces": {"from": "All"},
                                           "kinds": [{"kind": "GRPCRoute"}]}))
    b = bind(snap([gw], [route("r", BACKEND, ns="apps",
                               parents=[{"name": "edge", "namespace": "gw"}])]))
    # bound to "sel"; "all" lets any namespace in but only GRPCRoutes: the better reason wins
    assert accepted(b, "r") == [("True", "Accepted", "Route was valid")]
    kinds = [ls.kinds for ls in b.gateways[("gw", "edge")].listeners]
    assert kinds == [("HTTPRoute", "GRPCRoute"), ("GRPCRoute",)]
    b = bind(snap([gw], [route("r", BACKEND, ns="apps", parents=[
        {"name": "edge", "namespace": "gw", "sectionName": "all"}])]))
    assert accepted(b, "r") == [("False", "NotAllowedByListeners",
                                 f"kind {G}/v1/HTTPRoute is not allowed")]


def test_a_route_bound_to_several_listeners() -> None:
    gw = gateway(listener("a"), listener("b", 81))
    b = bind(snap([gw], [route("r", BACKEND)]))
    assert accepted(b, "r") == [("True", "Accepted", "Route was valid, bound to 2 parents")]


def test_unsupported_listener_protocols() -> None:
    gw = gateway(listener("u", protocol="UDP"), listener("l", 81, protocol="http"),
                 listener("t", 82, protocol="HTTPS"))
    problems = [ls.problem.message for ls in bind(snap([gw])).gateways[("gw", "edge")].listeners
                if ls.problem]
    assert problems == ['protocol "UDP" is unsupported',
                        'protocol "http" is unsupported. hint: "HTTP" (uppercase) may be '
                        'supported', 'protocol "HTTPS" is unsupported by localmesh']


# -- backends -------------------------------------------------------------------------------
def resolved(b: Binding, name: str) -> tuple[str, str, str]:
    [r] = [r for r in b.routes if r.name == name]
    [p] = route_parents(r, [])
    c = next(c for c in p["conditions"] if c["type"] == "ResolvedRefs")
    return c["status"], c["reason"], c["message"]


def test_backend_problems() -> None:
    other = {"backendRefs": [{"name": "web", "namespace": "apps", "port": 8080}]}
    grant = {"metadata": {"name": "g", "namespace": "apps"},
             "spec": {"from": [{"group": G, "kind": "HTTPRoute", "namespace": "gw"}],
                      "to": [{"group": "", "kind": "Service", "name": "web"}]}}
    routes = [route("missing", BACKEND), route("across", other),
              route("kind", {"backendRefs": [{"group": "x.io", "kind": "Bucket", "name": "b"}]}),
              route("filter", {"filters": [{"type": "ExtensionRef"}], **BACKEND},
                    hostnames=["filter.example"])]
    b = bind(snap([gateway(listener())], routes, [svc("web", "apps", 8080)]))
    assert resolved(b, "missing") == ("False", "BackendNotFound",
                                      "backend(web.gw.svc.cluster.local) not found")
    assert resolved(b, "across") == ("False", "RefNotPermitted", 'backendRef web/apps not '
                                      'accessible to a HTTPRoute in namespace "gw" (missing a '
                                      'ReferenceGrant?)')
    assert resolved(b, "kind") == ("False", "InvalidKind", 'referencing unsupported '
                                   'backendRef: group "x.io" kind "Bucket"')
    assert resolved(b, "filter") == ("False", "InvalidFilter",
                                     'unsupported filter type "ExtensionRef"')
    # a rule Istio cannot convert is left out; the route's host has nothing to serve
    assert "filter.example:80" not in [vh["name"] for vh in vhosts(b)[80]]
    b = bind(snap([gateway(listener())], routes, [svc("web", "apps", 8080)], grants=[grant]))
    assert resolved(b, "across") == ("True", "ResolvedRefs", "All references resolved")


# -- Envoy routes ---------------------------------------------------------------------------
def vhosts(b: Binding, labels: dict | None = None) -> dict[int, list[dict]]:
    state = MeshState([], {}, [], {}, [], [], [], gateway_api=b)
    proxy = Proxy("router", "127.0.0.9", "127.0.0.10", "edge-istio-x", "gw",
                  labels or {"gateway.networking.k8s.io/gateway-name": "edge"}, "edge-istio", [])
    return xds_gatewayapi.servers(state, proxy)


def path(r: dict) -> str:
    m = r["match"]
    return m.get("path") or m.get("path_separated_prefix") or m.get("prefix") or \
        m["safe_regex"]["regex"]


def test_routes_in_istios_precedence_with_istios_names() -> None:
    def match(kind: str, value: str, **extra: Any) -> dict:
        return {"matches": [{"path": {"type": kind, "value": value}, **extra}], **BACKEND}

    b = bind(snap([gateway(listener())], [
        route("old", match("PathPrefix", "/"), match("RegularExpression", "/r.*"),
              match("PathPrefix", "/api/")),
        route("new", match("Exact", "/api/v1"), match("PathPrefix", "/api/v1"),
              match("PathPrefix", "/api", method="GET"),
              match("PathPrefix", "/api", headers=[{"name": "x", "value": "1"}]),
              created="2026-01-01T00:00:02Z"),
    ], [svc("web", "gw", 8080)]))
    [vh] = vhosts(b)[80]
    assert vh["name"] == "*:80" and vh["domains"] == ["*"]
    assert [(r["name"], path(r)) for r in vh["routes"]] == [
        ("gw.new.0", "/api/v1"), ("gw.new.1", "/api/v1"), ("gw.new.2", "/api"),
        ("gw.new.3", "/api"), ("gw.old.2", "/api"), ("gw.old.0", "/"), ("gw.old.1", "/r.*")]
    assert vh["routes"][1]["match"] == {"path_separated_prefix": "/api/v1",
                                        "case_sensitive": True}
    assert vh["routes"][2]["match"]["headers"] == [{"name": ":method",
                                                    "string_match": {"exact": "GET"}}]
    action = vh["routes"][0]["route"]
    assert action["cluster"] == "outbound|8080||web.gw.svc.cluster.local"
    assert action["cluster_not_found_response_code"] == "INTERNAL_SERVER_ERROR"
    assert vh["routes"][0]["metadata"]["filter_metadata"]["istio"]["config"] == (
        "/apis/networking.istio.io/v1/namespaces/gw/virtual-service/"
        "gw~edge~istio-autogenerated-k8s-gateway~http~*")


def test_weights_filters_and_the_blackhole() -> None:
    weighted = {"backendRefs": [{"name": "web", "port": 8080, "weight": 3},
                                {"name": "api", "port": 9090, "weight": 1},
                                {"name": "off", "port": 1, "weight": 0}]}
    zero = {"backendRefs": [{"name": "web", "port": 8080, "weight": 0}]}
    filtered = {"filters": [
        {"type": "RequestHeaderModifier", "requestHeaderModifier": {
            "set": [{"name": "a", "value": "1"}], "add": [{"name": "b", "value": "2"}],
            "remove": ["c"]}},
        {"type": "URLRewrite", "urlRewrite": {"hostname": "h", "path": {
            "type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}],
        "matches": [{"path": {"type": "PathPrefix", "value": "/old/"}}], **BACKEND}
    redirect = {"filters": [{"type": "RequestRedirect", "requestRedirect": {
        "scheme": "https", "statusCode": 301}}]}
    b = bind(snap([gateway(listener(), listener("idle", 81, hostname="idle.example"))], [
        route("w", weighted, hostnames=["w.example"]), route("z", zero, hostnames=["z.example"]),
        route("f", filtered, hostnames=["f.example"]),
        route("r", redirect, hostnames=["r.example"])]))
    got = {vh["name"]: vh["routes"][0] for vh in vhosts(b)[80]}
    assert got["w.example:80"]["route"]["weighted_clusters"]["clusters"] == [
        {"name": "outbound|8080||web.gw.svc.cluster.local", "weight": 3},
        {"name": "outbound|9090||api.gw.svc.cluster.local", "weight": 1}]
    assert got["z.example:80"]["direct_response"] == {"status": 500}
    f = got["f.example:80"]
    assert f["request_headers_to_add"] == [
        {"header": {"key": "a", "value": "1"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
        {"header": {"key": "b", "value": "2"}, "append_action": "APPEND_IF_EXISTS_OR_ADD"}]
    assert f["request_headers_to_remove"] == ["c"]
    assert f["route"]["host_rewrite_literal"] == "h"
    assert f["route"]["regex_rewrite"] == {"pattern": {"regex": "^/old/*"}, "substitution": "/"}
    assert got["r.example:80"]["redirect"] == {"response_code": "MOVED_PERMANENTLY",
                                                "scheme_redirect": "https"}
    [idle] = vhosts(b)[81]  # a listener no route attaches to answers 404, as Istio's
    assert idle["name"] == "blackhole:81" and idle["routes"][0]["direct_response"] == {
        "status": 404}
    assert vhosts(b, {"app": "other"}) == {}


def test_grpc_matches() -> None:
    rule = {"matches": [{"method": {"service": "s.S", "method": "M"}},
                        {"method": {"service": "s.S"}}, {"method": {"method": "M"}}],
            "backendRefs": [{"name": "web", "port": 8080}]}
    b = bind(snap([gateway(listener())], [route("g", rule, kind="GRPCRoute")]))
    [vh] = vhosts(b)[80]
    assert [r["match"] for r in vh["routes"]] == [
        {"path": "/s.S/M", "case_sensitive": True},
        {"path_separated_prefix": "/s.S", "case_sensitive": True},
        {"safe_regex": {"regex": "/[^/]+/M"}, "case_sensitive": True}]


# -- status ---------------------------------------------------------------------------------
def test_conditions_keep_their_transition_time_while_their_status_holds() -> None:
    first = set_conditions(1, [], {"Ready": ("True", "Ok", "fine")})
    first[0]["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    same = set_conditions(1, first, {"Ready": ("True", "Ok", "fine")})
    assert same == first
    moved = set_conditions(2, first, {"Ready": ("True", "Ok", "still fine")})
    assert moved[0]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert moved[0]["observedGeneration"] == 2
    flipped = set_conditions(2, first, {"Ready": ("False", "Bad", "broken")})
    assert flipped[0]["lastTransitionTime"] != "2020-01-01T00:00:00Z"


@pytest.mark.parametrize(("service", "want", "addresses"), [
    (None, ("False", "AddressNotUsable", 'Failed to assign to any requested addresses: '
                                         'hostname "edge-istio.gw.svc.cluster.local" not found'),
     None),
    (svc("edge-istio", "gw", 80, 443, type="LoadBalancer", ready_ports=frozenset({80, 443})),
     ("False", "AddressNotAssigned", "Assigned to service(s) edge-istio.gw.svc.cluster.local:443"
      " and edge-istio.gw.svc.cluster.local:80, but failed to assign to all requested "
      'addresses: address pending for hostname "edge-istio.gw.svc.cluster.local"'), None),
    (svc("edge-istio", "gw", 80, 443),
     ("False", "AddressNotUsable", 'Failed to assign to any requested addresses: no instances '
      'found for hostname "edge-istio.gw.svc.cluster.local"'), None),
    (svc("edge-istio", "gw", 80, 443, type="LoadBalancer", load_balancer_ips=("127.1.2.3",),
         ready_ports=frozenset({80, 443})),
     ("True", "Programmed", "Resource programmed, assigned to service(s) "
      "edge-istio.gw.svc.cluster.local:443 and edge-istio.gw.svc.cluster.local:80"),
     [{"type": "IPAddress", "value": "127.1.2.3"}]),
    (svc("edge-istio", "gw", 80, ready_ports=frozenset({80})),  # 443 not (yet) on it
     ("False", "AddressNotUsable", "Assigned to service(s) edge-istio.gw.svc.cluster.local:80, "
      'but failed to assign to all requested addresses: port 443 not found for hostname '
      '"edge-istio.gw.svc.cluster.local"'),
     [{"type": "Hostname", "value": "edge-istio.gw.svc.cluster.local"}]),
    (svc("edge-istio", "gw", 80, 443, ready_ports=frozenset({80, 443})),
     ("True", "Programmed", "Resource programmed, assigned to service(s) "
      "edge-istio.gw.svc.cluster.local:443 and edge-istio.gw.svc.cluster.local:80"),
     [{"type": "Hostname", "value": "edge-istio.gw.svc.cluster.local"}]),
])
def test_programmed_follows_the_deployments_service(service: ServiceInfo | None,
                                                    want: tuple, addresses: list | None) -> None:
    gw = gateway(listener(), listener("tls", 443))
    b = bind(snap([gw], services=[service] if service else []))
    status = gateway_status(b.gateways[("gw", "edge")], {})
    c = next(c for c in status["conditions"] if c["type"] == "Programmed")
    assert (c["status"], c["reason"], c["message"]) == want
    assert c["observedGeneration"] == 3
    assert status.get("addresses") == addresses


# -- the deployment and the CRDs ------------------------------------------------------------
def test_deployment_objects_follow_istios_template() -> None:
    template = {"metadata": {"labels": {"app": "istio-ingressgateway"}}, "spec": {
        "containers": [{"name": "istio-proxy", "image": "proxyv2", "ports": [],
                        "env": [{"name": "ISTIO_META_WORKLOAD_NAME", "value": "x"},
                                {"name": "ISTIO_META_APP", "value": "x"}]}]}}
    gw = gateway(listener(), listener("alt", 8080), listener("dup", 80))
    gw["metadata"]["annotations"] = {"networking.istio.io/service-type": "ClusterIP"}
    gw["spec"]["infrastructure"] = {"labels": {"team": "a"}}
    [g] = bind(snap([gw])).gateways.values()
    ctl = GatewayDeployments.__new__(GatewayDeployments)  # no store: rendering only
    ctl.template, ctl.bindable = template, lambda port: port >= 1024
    service = ctl.service(g)
    assert service["spec"]["type"] == "ClusterIP"
    assert [(p["name"], p["port"], p.get("targetPort")) for p in service["spec"]["ports"]] == [
        ("status-port", 15021, None), ("http", 80, 8081), ("alt", 8080, None)]
    deployment = ctl.deployment(g)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["team"] == "a" and labels[f"{G}/gateway-name"] == "edge"
    assert "app" not in labels
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "ISTIO_META_WORKLOAD_NAME", "value": "edge-istio"}]
    assert deployment["metadata"]["ownerReferences"] == [
        {"apiVersion": f"{G}/v1", "kind": "Gateway", "name": "edge", "uid": "u1"}]


def test_crds_and_schema_defaults() -> None:
    defs = {d["spec"]["names"]["kind"]: d for d in crds.definitions()}
    assert [v["name"] for v in defs["ReferenceGrant"]["spec"]["versions"]] == ["v1beta1"]
    assert defs["GatewayClass"]["spec"]["scope"] == "Cluster"
    columns = [c["name"] for c in defs["Gateway"]["spec"]["versions"][0][
        "additionalPrinterColumns"]]
    assert columns == ["Class", "Address", "Programmed", "Age"]
    rt = type("RT", (), {"key": crds.HTTP_ROUTES})()
    obj: dict = {"spec": {"parentRefs": [{"name": "edge"}],
                    "rules": [{"matches": [{"headers": [{"name": "h", "value": "v"}]}],
                               "backendRefs": [{"name": "web", "port": 80}]}]}}
    crds.apply_defaults(None, rt, obj, None)  # type: ignore[arg-type]
    assert obj["spec"]["parentRefs"] == [{"name": "edge", "group": G, "kind": "Gateway"}]
    [rule] = obj["spec"]["rules"]
    assert rule["matches"] == [{"headers": [{"name": "h", "value": "v", "type": "Exact"}],
                                "path": {"type": "PathPrefix", "value": "/"}}]
    assert rule["backendRefs"] == [{"name": "web", "port": 80, "group": "", "kind": "Service",
                                    "weight": 1}]
    gw_rt = type("RT", (), {"key": crds.GATEWAYS})()
    gw = {"spec": {"listeners": [{"name": "http"}]}}
    crds.apply_defaults(None, gw_rt, gw, None)  # type: ignore[arg-type]
    assert gw["spec"]["listeners"][0]["allowedRoutes"] == {"namespaces": {"from": "Same"}}
    assert [(c["type"], c["reason"]) for c in gw["status"]["conditions"]] == [
        ("Accepted", "Pending"), ("Programmed", "Pending")]


def test_the_listener_binds_the_services_target_port() -> None:
    """Where localmesh may not bind port 80, the deployment's Service targets 8080: the
    route config is named after the pod's port, the virtual host after the listener's."""
    service = ServiceInfo("edge-istio", "gw", "LoadBalancer", (Port(80, "http", 8080, "http"),))
    b = bind(snap([gateway(listener())], [route("r", BACKEND)], [service]))
    [(port, [vh])] = vhosts(b).items()
    assert (port, vh["name"]) == (8080, "*:80")

"""The Gateway API on localmesh (issue 12), proven with kubectl and curl only.

One mesh for the module: the blockchain workloads and manifests/overlays/gateway-api.yaml
are applied with kubectl into a namespace labelled for injection, as a user would on a
cluster with Istio and the Gateway API CRDs. Then each promise is checked the way one
checks a real cluster: the objects and their status with kubectl, the gateway's Envoy
with ``pilot-agent request GET config_dump`` through ``kubectl exec``, traffic with curl.

The gateway is reached as the classic ingress gateway is (tests/localmesh/
test_mesh_istio.py): at the LoadBalancer address the Gateway reports in
``status.addresses[0]``, on the listener's port; where this process may not bind a port
below 1024, localmesh serves that LoadBalancer port on the Service's nodePort at the same
address instead (docs/localmesh.md), and so does :func:`entry`.

The tests share the Gateway and run in file order: the last one deletes it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from localmesh.cli import Handle
from meshgate.config_dump import load_config_dump, route_entries
from tests.support import REPO, boot_localmesh, needs_prometheus, poll, require_kubectl

pytestmark = needs_prometheus

T = TypeVar("T")
GW = "blockchain-gateway"  # manifests/overlays/gateway-api.yaml
ROUTE = "blockchain"
DEPLOYED = f"{GW}-istio"
GROUP = "gateway.networking.k8s.io"
GATEWAY = f"gateways.{GROUP}"
PEERS = "/network/peers"  # served by vp0 (JSON) and composer (HTML, as every path)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handle]:
    with boot_localmesh(tmp_path_factory.mktemp("gwapi"), mesh=True) as handle:
        yield handle


def kubectl(mesh: Handle, *args: str, stdin: str | None = None) -> str:
    """kubectl's stdout; a failure fails the test with kubectl's own words."""
    r = subprocess.run([require_kubectl(), "--kubeconfig", str(mesh.kubeconfig), *args],
                       capture_output=True, text=True, input=stdin, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def get(mesh: Handle, *args: str) -> dict:
    return json.loads(kubectl(mesh, "get", *args, "-o", "json"))


def apply(mesh: Handle, ns: str, doc: dict) -> None:
    kubectl(mesh, "apply", "-n", ns, "-f", "-", stdin=json.dumps(doc))


def until_found(check: Callable[[], T | None], *, what: str, timeout: float = 10) -> T:
    """tests.support.poll for checks that return the thing they wait for, or None."""
    found = poll(check, what=what, timeout=timeout)
    assert found is not None
    return found


def condition(conditions: list[dict], type_: str) -> dict:
    found = [c for c in conditions if c["type"] == type_]
    assert found, f"no {type_} condition in {conditions}"
    return found[0]


@pytest.fixture(scope="module")
def ns(mesh: Handle) -> str:
    """The blockchain and the Gateway API overlay, applied with kubectl."""
    name = f"gwapi-{uuid.uuid4().hex[:6]}"
    kubectl(mesh, "create", "namespace", name)
    kubectl(mesh, "label", "namespace", name, "istio-injection=enabled")
    for f in ("composer", "vp0", "membersrvc", "overlays/gateway-api"):
        kubectl(mesh, "apply", "-n", name, "-f", str(REPO / "manifests" / f"{f}.yaml"))
    for d in ("composer", "vp0", "membersrvc"):
        kubectl(mesh, "rollout", "status", "-n", name, f"deployment/{d}", "--timeout=60s")
    return name


def programmed(mesh: Handle, ns: str) -> dict:
    """The Gateway once Programmed=True with an address."""

    def check() -> dict | None:
        gw = get(mesh, GATEWAY, GW, "-n", ns)
        status = gw.get("status") or {}
        ok = condition(status.get("conditions") or [], "Programmed")["status"] == "True"
        return gw if ok and status.get("addresses") else None

    return until_found(check, timeout=30, what=f"Gateway {GW} Programmed with an address")


def low_ports_bindable() -> bool:
    """Whether this process (so localmesh, started by it) may bind ports below 1024."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 80))
        except PermissionError:
            return False
        except OSError:
            return True  # in use by someone else: binding was allowed
    return True


def entry(mesh: Handle, ns: str) -> str:
    """``http://<status.addresses[0]>:<port>`` of the Gateway's HTTP listener."""
    gw = programmed(mesh, ns)
    address = gw["status"]["addresses"][0]["value"]
    port = 80
    if not low_ports_bindable():
        svc = get(mesh, "service", DEPLOYED, "-n", ns)
        port = next(p["nodePort"] for p in svc["spec"]["ports"] if p["port"] == 80)
    return f"http://{address}:{port}"


def curl(url: str, *headers: str, data: bytes | None = None,
         http2: bool = False) -> tuple[int, str, bytes]:
    """(status, content-type, body) of one request with the real curl."""
    args = ["curl", "-s", "--noproxy", "*", "-m", "5", "-o", "-", "-w",
            "\n%{http_code} %{content_type}", *(a for h in headers for a in ("-H", h))]
    if http2:
        args.append("--http2-prior-knowledge")
    if data is not None:
        args += ["--data-binary", "@-"]
    r = subprocess.run([*args, url], capture_output=True, input=data, timeout=10)
    body, _, tail = r.stdout.rpartition(b"\n")
    code, _, ctype = tail.decode().partition(" ")
    return int(code or 0), ctype, body


def response_headers(url: str, *headers: str) -> tuple[int, dict[str, str]]:
    """(status, response headers in lower case) of one request with the real curl."""
    args = ["curl", "-s", "--noproxy", "*", "-m", "5", "-o", "/dev/null", "-D", "-",
            *(a for h in headers for a in ("-H", h)), url]
    lines = subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.splitlines()
    if not lines:
        return 0, {}
    found = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in found.items()}


def gateway_pod(mesh: Handle, ns: str) -> dict:
    pods = get(mesh, "pods", "-n", ns, "-l", f"{GROUP}/gateway-name={GW}")["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def gateway_routes(mesh: Handle, ns: str) -> list:
    pod = gateway_pod(mesh, ns)["metadata"]["name"]
    dump = kubectl(mesh, "exec", "-n", ns, pod, "-c", "istio-proxy", "--", "pilot-agent",
                   "request", "GET", "config_dump?resource=dynamic_route_configs")
    return route_entries(load_config_dump(dump))


# -- the API and the class ------------------------------------------------------------------
def test_standard_channel_crds_and_the_istio_class(mesh: Handle) -> None:
    resources = kubectl(mesh, "api-resources", f"--api-group={GROUP}", "-o", "wide")
    rows = {line.split()[0]: line.split() for line in resources.splitlines()[1:]}
    assert set(rows) == {"gatewayclasses", "gateways", "grpcroutes", "httproutes",
                         "referencegrants"}
    assert rows["gatewayclasses"][1:3] == ["gc", f"{GROUP}/v1"]
    assert rows["gateways"][1:3] == ["gtw", f"{GROUP}/v1"]
    assert rows["referencegrants"][1:3] == ["refgrant", f"{GROUP}/v1beta1"]
    crd = get(mesh, "crd", f"httproutes.{GROUP}")
    assert [v["name"] for v in crd["spec"]["versions"]] == ["v1", "v1beta1"]
    assert crd["metadata"]["annotations"][f"{GROUP}/channel"] == "standard"
    assert "Established" in [c["type"] for c in crd["status"]["conditions"]]

    def accepted() -> dict | None:
        gc = get(mesh, "gatewayclass", "istio")
        ok = condition(gc["status"]["conditions"], "Accepted")["status"] == "True"
        return gc if ok else None

    gc = until_found(accepted, what="GatewayClass istio Accepted")
    assert gc["spec"]["controllerName"] == "istio.io/gateway-controller"
    cond = condition(gc["status"]["conditions"], "Accepted")
    assert (cond["reason"], cond["message"]) == ("Accepted", "Handled by Istio controller")
    table = kubectl(mesh, "get", "gatewayclasses").splitlines()
    assert table[0].split() == ["NAME", "CONTROLLER", "ACCEPTED", "AGE"]
    assert table[1].split()[:3] == ["istio", "istio.io/gateway-controller", "True"]


# -- the Gateway ----------------------------------------------------------------------------
def test_gateway_is_programmed_with_its_service_address(mesh: Handle, ns: str) -> None:
    gw = programmed(mesh, ns)
    gen = gw["metadata"]["generation"]
    status = gw["status"]
    accepted = condition(status["conditions"], "Accepted")
    assert (accepted["status"], accepted["reason"], accepted["message"]) == (
        "True", "Accepted", "Resource accepted")
    prog = condition(status["conditions"], "Programmed")
    host = f"{DEPLOYED}.{ns}.svc.cluster.local"
    assert prog["reason"] == "Programmed"
    assert prog["message"] == f"Resource programmed, assigned to service(s) {host}:80"
    assert {c["observedGeneration"] for c in status["conditions"]} == {gen}
    svc = get(mesh, "service", DEPLOYED, "-n", ns)
    lb_ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    assert status["addresses"] == [{"type": "IPAddress", "value": lb_ip}]
    [listener] = status["listeners"]
    assert listener["name"] == "http" and listener["attachedRoutes"] == 1
    assert listener["supportedKinds"] == [{"group": GROUP, "kind": "HTTPRoute"},
                                          {"group": GROUP, "kind": "GRPCRoute"}]
    conds = {c["type"]: (c["status"], c["reason"]) for c in listener["conditions"]}
    assert conds == {"Accepted": ("True", "Accepted"), "Conflicted": ("False", "NoConflicts"),
                     "Programmed": ("True", "Programmed"),
                     "ResolvedRefs": ("True", "ResolvedRefs")}
    # `kubectl get gateways` is the Gateway API's (it precedes networking.istio.io).
    table = kubectl(mesh, "get", "gateways", "-n", ns).splitlines()
    assert table and table[0].split() == ["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"], (
        f"`kubectl get gateways` printed {table} (Istio's gateways resolved first?)")
    assert table[1].split()[:4] == [GW, "istio", lb_ip, "True"]


def test_istio_deploys_the_gateway(mesh: Handle, ns: str) -> None:
    programmed(mesh, ns)
    gw = get(mesh, GATEWAY, GW, "-n", ns)
    owner = [{"apiVersion": f"{GROUP}/v1", "kind": "Gateway", "name": GW,
              "uid": gw["metadata"]["uid"]}]
    labels = {f"{GROUP}/gateway-name": GW, f"{GROUP}/gateway-class-name": "istio",
              "gateway.istio.io/managed": "istio.io-gateway-controller"}
    for kind in ("serviceaccount", "service", "deployment"):
        obj = get(mesh, kind, DEPLOYED, "-n", ns)
        assert labels.items() <= obj["metadata"]["labels"].items(), (kind, obj["metadata"])
        assert obj["metadata"]["ownerReferences"] == owner, kind
    svc = get(mesh, "service", DEPLOYED, "-n", ns)["spec"]
    assert svc["type"] == "LoadBalancer"
    assert svc["selector"] == {f"{GROUP}/gateway-name": GW}
    assert [(p["name"], p["port"], p["appProtocol"]) for p in svc["ports"]] == [
        ("status-port", 15021, "tcp"), ("http", 80, "http")]
    deploy = get(mesh, "deployment", DEPLOYED, "-n", ns)["spec"]
    assert deploy["selector"] == {"matchLabels": {f"{GROUP}/gateway-name": GW}}
    pod = gateway_pod(mesh, ns)
    assert pod["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    assert pod["metadata"]["labels"]["service.istio.io/canonical-name"] == DEPLOYED
    assert pod["spec"]["serviceAccountName"] == DEPLOYED
    [container] = pod["spec"]["containers"]  # the proxy itself: no sidecar injected
    assert container["name"] == "istio-proxy" and "proxyv2" in container["image"]
    assert container["args"][:2] == ["proxy", "router"]
    assert [p["containerPort"] for p in container["ports"]] == [15020, 15021, 15090]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ISTIO_META_WORKLOAD_NAME"] == DEPLOYED


# -- routes ---------------------------------------------------------------------------------
def test_the_route_is_accepted_and_answers_through_the_gateway(mesh: Handle, ns: str) -> None:
    base = entry(mesh, ns)
    route = until_found(lambda: r if (r := get(mesh, "httproute", ROUTE, "-n", ns)).get(
        "status") else None, what="HTTPRoute status")
    [parent] = route["status"]["parents"]
    assert parent["controllerName"] == "istio.io/gateway-controller"
    assert parent["parentRef"] == {"group": GROUP, "kind": "Gateway", "name": GW}
    conds = {c["type"]: (c["status"], c["reason"], c["message"]) for c in parent["conditions"]}
    assert conds == {"Accepted": ("True", "Accepted", "Route was valid"),
                     "ResolvedRefs": ("True", "ResolvedRefs", "All references resolved")}
    _, ctype, _ = until_found(lambda: r if (r := curl(base + "/login"))[0] == 200 else None,
                              timeout=20, what="/login through the gateway")
    assert "text/html" in ctype
    code, ctype, body = curl(base + "/chain/blocks/0")
    assert code == 200 and "previousBlockHash" in json.loads(body)
    assert curl(base + "/nope")[0] == 404
    # Istio's names: route config http.<port>, virtual host *:80, route <ns>.<route>.<rule>.
    entries = [e for e in gateway_routes(mesh, ns) if e.virtual_host == "*:80"]
    paths = {e.match.get("path"): (e.route_config, e.cluster) for e in entries}
    config = "http.80" if low_ports_bindable() else "http.8080"
    assert paths["/login"] == (config, f"outbound|8080||composer.{ns}.svc.cluster.local")
    assert paths["/chain/blocks/0"] == (config, f"outbound|7050||vp0.{ns}.svc.cluster.local")


def test_a_missing_backend_is_reported_and_answers_500(mesh: Handle, ns: str) -> None:
    base = entry(mesh, ns)
    apply(mesh, ns, {"apiVersion": f"{GROUP}/v1", "kind": "HTTPRoute",
                     "metadata": {"name": "missing"},
                     "spec": {"hostnames": ["missing.example"], "parentRefs": [{"name": GW}],
                              "rules": [{"backendRefs": [{"name": "nonexistent",
                                                          "port": 8080}]}]}})

    def resolved() -> dict | None:
        parents = (get(mesh, "httproute", "missing", "-n", ns).get("status") or {}).get(
            "parents")
        return condition(parents[0]["conditions"], "ResolvedRefs") if parents else None

    cond = until_found(resolved, what="the missing backend's ResolvedRefs")
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False", "BackendNotFound", f"backend(nonexistent.{ns}.svc.cluster.local) not found")
    poll(lambda: curl(base + "/anything", "Host: missing.example")[0] == 500, timeout=10,
         what="a route to a missing Service answers 500")


def test_parent_refs_that_match_nothing(mesh: Handle, ns: str) -> None:
    """A sectionName or port no listener has: Accepted=False NoMatchingParent. A Gateway
    that does not exist: no parent status at all, as Istio (istio/istio#54946)."""
    apply(mesh, ns, {"apiVersion": f"{GROUP}/v1", "kind": "HTTPRoute",
                     "metadata": {"name": "nowhere"},
                     "spec": {"parentRefs": [{"name": GW, "sectionName": "nope"},
                                             {"name": GW, "port": 8080},
                                             {"name": "no-such-gateway"}],
                              "rules": [{"backendRefs": [{"name": "vp0", "port": 7050}]}]}})
    parents = until_found(lambda: (get(mesh, "httproute", "nowhere", "-n", ns).get("status")
                                   or {}).get("parents"), what="the route's parent status")
    got = {json.dumps(p["parentRef"], sort_keys=True): condition(p["conditions"], "Accepted")
           for p in parents}
    ref = {"group": GROUP, "kind": "Gateway", "name": GW}
    section = got.pop(json.dumps({**ref, "sectionName": "nope"}, sort_keys=True))
    port = got.pop(json.dumps({**ref, "port": 8080}, sort_keys=True))
    assert (section["status"], section["reason"], section["message"]) == (
        "False", "NoMatchingParent", 'sectionName "nope" not found')
    assert (port["status"], port["reason"], port["message"]) == (
        "False", "NoMatchingParent", "port 8080 not found")
    assert got == {}, "istiod wrote a status for a Gateway that does not exist"


def test_header_match_and_weighted_backends(mesh: Handle, ns: str) -> None:
    """vp0 answers /network/peers with JSON, composer answers every path with HTML: which
    backend a request reached shows in its content type (and the overlay's route, on every
    host, does not serve that path: only this route can answer it)."""
    base = entry(mesh, ns)
    pod_before = gateway_pod(mesh, ns)
    assert curl(base + PEERS, "Host: split.example")[0] == 404

    def split(vp0: int, composer: int) -> dict:
        return {"apiVersion": f"{GROUP}/v1", "kind": "HTTPRoute", "metadata": {"name": "split"},
                "spec": {"hostnames": ["split.example"], "parentRefs": [{"name": GW}],
                         "rules": [
                             {"matches": [{"path": {"type": "Exact", "value": PEERS},
                                           "headers": [{"name": "x-backend",
                                                        "value": "composer"}]}],
                              "backendRefs": [{"name": "composer", "port": 8080}]},
                             {"matches": [{"path": {"type": "Exact", "value": PEERS}}],
                              "backendRefs": [{"name": "vp0", "port": 7050, "weight": vp0},
                                              {"name": "composer", "port": 8080,
                                               "weight": composer}]}]}}

    def answers(kind: str, *headers: str) -> bool:
        got = [curl(base + PEERS, "Host: split.example", *headers)
               for _ in range(5)]
        return all(code == 200 and kind in ctype for code, ctype, _ in got)

    apply(mesh, ns, split(1, 0))
    poll(lambda: answers("json"), timeout=10, what="weights 1/0: every request to vp0")
    assert answers("text/html", "x-backend: composer"), "the header match did not win"
    apply(mesh, ns, split(0, 1))
    poll(lambda: answers("text/html"), timeout=10, what="weights 0/1: every request to composer")
    apply(mesh, ns, split(1, 1))

    def weighted() -> list:
        return [e for e in gateway_routes(mesh, ns)
                if e.virtual_host == "split.example:80" and isinstance(e.cluster, list)]

    [entry_] = poll(weighted, timeout=10, what="weighted clusters in the gateway")
    assert entry_.cluster == [f"outbound|7050||vp0.{ns}.svc.cluster.local",
                              f"outbound|8080||composer.{ns}.svc.cluster.local"]
    # Re-programmed over xDS: the same pod, never restarted.
    pod_after = gateway_pod(mesh, ns)
    assert pod_after["metadata"]["uid"] == pod_before["metadata"]["uid"]
    assert [c["restartCount"] for c in pod_after["status"]["containerStatuses"]] == [0]


def test_redirect_rewrite_header_and_match_filters(mesh: Handle, ns: str) -> None:
    """Each filter and match kind reaches Envoy (one it rejected would take the whole
    route configuration with it) and does what the spec says."""
    base = entry(mesh, ns)
    host = "Host: filters.example"
    redirect = {"type": "RequestRedirect",
                "requestRedirect": {"scheme": "https", "statusCode": 301}}
    rewrite = {"type": "URLRewrite", "urlRewrite": {"path": {
        "type": "ReplacePrefixMatch", "replacePrefixMatch": "/chain/blocks"}}}
    response = {"type": "ResponseHeaderModifier", "responseHeaderModifier": {
        "add": [{"name": "x-gateway", "value": "localmesh"}]}}
    request = {"type": "RequestHeaderModifier", "requestHeaderModifier": {
        "set": [{"name": "x-from", "value": "gateway"}]}}
    mirror = {"type": "RequestMirror", "requestMirror": {"backendRef": {
        "name": "composer", "port": 8080}}}
    rules = [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/old"}}], "filters": [redirect]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/api/blocks"}}],
         "filters": [rewrite, response, request, mirror],
         "backendRefs": [{"name": "vp0", "port": 7050}]},
        {"matches": [{"path": {"type": "RegularExpression", "value": "/re+gex"},
                      "method": "GET", "queryParams": [{"name": "q", "value": "1"}]}],
         "backendRefs": [{"name": "composer", "port": 8080}]}]
    apply(mesh, ns, {"apiVersion": f"{GROUP}/v1", "kind": "HTTPRoute",
                     "metadata": {"name": "filters"},
                     "spec": {"hostnames": ["filters.example"], "parentRefs": [{"name": GW}],
                              "rules": rules}})
    code, got = until_found(
        lambda: r if (r := response_headers(base + "/old/page", host))[0] == 301 else None,
        what="the redirect")
    assert got["location"] == "https://filters.example/old/page", got
    code, got = response_headers(base + "/api/blocks/0", host)
    assert code == 200 and got.get("x-gateway") == "localmesh", (code, got)
    assert "application/json" in got["content-type"]  # vp0 answered /chain/blocks/0
    assert curl(base + "/reeegex?q=1", host)[0] == 200
    assert curl(base + "/reeegex?q=2", host)[0] == 404


def test_grpc_route_by_service_and_method(mesh: Handle, ns: str) -> None:
    base = entry(mesh, ns)
    apply(mesh, ns, {"apiVersion": f"{GROUP}/v1", "kind": "GRPCRoute", "metadata": {"name": "eca"},
                     "spec": {"hostnames": ["grpc.example"], "parentRefs": [{"name": GW}],
                              "rules": [{"matches": [{"method": {"service": "membersrvc.ECA",
                                                                 "method": "Ping"}}],
                                         "backendRefs": [{"name": "membersrvc",
                                                          "port": 7054}]}]}})
    frame = b"\x00" + (2).to_bytes(4, "big") + b"{}"  # one gRPC message: JSON {}

    def ping() -> bytes | None:
        code, _, body = curl(base + "/membersrvc.ECA/Ping", "Host: grpc.example",
                                 "content-type: application/grpc", "te: trailers", data=frame,
                                 http2=True)
        return body if code == 200 and b"SERVING" in body else None

    poll(ping, timeout=10, what="membersrvc.ECA/Ping through the GRPCRoute")
    route = get(mesh, "grpcroute", "eca", "-n", ns)
    conds = {c["type"]: c["status"] for c in route["status"]["parents"][0]["conditions"]}
    assert conds == {"Accepted": "True", "ResolvedRefs": "True"}


@pytest.fixture(scope="module")
def other(mesh: Handle, ns: str) -> str:
    """Another namespace, with a Service ``peer`` (HTTP on 7050) that has no endpoints."""
    name = f"{ns}-other"
    kubectl(mesh, "create", "namespace", name)
    apply(mesh, name, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "peer"},
                       "spec": {"selector": {"app": "nobody"},
                                "ports": [{"name": "http", "port": 7050}]}})
    return name


def test_cross_namespace_backends_need_a_reference_grant(mesh: Handle, ns: str,
                                                        other: str) -> None:
    base = entry(mesh, ns)
    apply(mesh, ns, {"apiVersion": f"{GROUP}/v1", "kind": "HTTPRoute",
                     "metadata": {"name": "across"},
                     "spec": {"hostnames": ["across.example"], "parentRefs": [{"name": GW}],
                              "rules": [{"backendRefs": [{"name": "peer", "namespace": other,
                                                          "port": 7050}]}]}})

    def resolved() -> dict | None:
        parents = (get(mesh, "httproute", "across", "-n", ns).get("status") or {}).get(
            "parents")
        return condition(parents[0]["conditions"], "ResolvedRefs") if parents else None

    cond = until_found(resolved, what="the cross-namespace backend's ResolvedRefs")
    assert (cond["status"], cond["reason"]) == ("False", "RefNotPermitted")
    assert cond["message"] == (f"backendRef peer/{other} not accessible to a HTTPRoute in "
                               f'namespace "{ns}" (missing a ReferenceGrant?)')
    poll(lambda: curl(base + "/", "Host: across.example")[0] == 500, timeout=10,
         what="a backend not granted answers 500")
    apply(mesh, other, {"apiVersion": f"{GROUP}/v1beta1", "kind": "ReferenceGrant",
                        "metadata": {"name": "from-routes"},
                        "spec": {"from": [{"group": GROUP, "kind": "HTTPRoute",
                                           "namespace": ns}],
                                 "to": [{"group": "", "kind": "Service"}]}})
    poll(lambda: (c := resolved()) is not None and c["status"] == "True", timeout=10,
         what="ResolvedRefs=True once granted")
    # Now routed to the Service, which has no endpoints: Envoy's 503, no longer the 500.
    poll(lambda: curl(base + "/", "Host: across.example")[0] == 503, timeout=10,
         what="the granted backend is routed to")


def test_allowed_routes_and_hostnames(mesh: Handle, ns: str, other: str) -> None:
    """A listener admits routes from the namespaces it allows, on the hostnames it
    shares with them; changing the Gateway re-programs its Envoy, no restart."""
    base = entry(mesh, ns)
    kubectl(mesh, "label", "namespace", other, "shop=yes", "--overwrite")
    gw = get(mesh, GATEWAY, GW, "-n", ns)
    listeners = [*gw["spec"]["listeners"], {
        "name": "shop", "port": 80, "protocol": "HTTP", "hostname": "*.shop.example",
        "allowedRoutes": {"namespaces": {"from": "Selector",
                                         "selector": {"matchLabels": {"shop": "yes"}}}}}]
    kubectl(mesh, "patch", GATEWAY, GW, "-n", ns, "--type=merge",
            "-p", json.dumps({"spec": {"listeners": listeners}}))
    route: dict = {"apiVersion": f"{GROUP}/v1", "kind": "HTTPRoute", "metadata": {"name": "shop"},
             "spec": {"hostnames": ["a.shop.example", "b.other.example"],
                      "parentRefs": [{"name": GW, "namespace": ns, "sectionName": "shop"}],
                      "rules": [{"backendRefs": [{"name": "peer", "port": 7050}]}]}}
    apply(mesh, other, route)
    apply(mesh, ns, {**route, "spec": {**route["spec"], "parentRefs": [
        {"name": GW, "sectionName": "shop"}]}})  # from a namespace the selector leaves out

    def accepted(namespace: str) -> dict | None:
        parents = (get(mesh, "httproute", "shop", "-n", namespace).get("status") or {}).get(
            "parents")
        return condition(parents[0]["conditions"], "Accepted") if parents else None

    cond = until_found(lambda: accepted(other), what="the selected namespace's route")
    assert (cond["status"], cond["reason"]) == ("True", "Accepted")
    cond = until_found(lambda: accepted(ns), what="the other namespace's route")
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False", "NotAllowedByListeners", 'hostnames matched parent hostname '
        f'"*.shop.example", but namespace "{ns}" is not allowed by the parent')
    # Only the intersection is served: a.shop.example, not b.other.example.
    poll(lambda: curl(base + "/", "Host: a.shop.example")[0] == 503, timeout=10,
         what="a.shop.example routed to peer (no endpoints: 503)")
    assert curl(base + "/", "Host: b.other.example")[0] == 404
    status = get(mesh, GATEWAY, GW, "-n", ns)["status"]
    assert {ls["name"]: ls["attachedRoutes"] for ls in status["listeners"]}["shop"] == 1
    assert gateway_pod(mesh, ns)["status"]["containerStatuses"][0]["restartCount"] == 0


def test_deleting_the_gateway_removes_its_deployment(mesh: Handle, ns: str) -> None:
    programmed(mesh, ns)
    kubectl(mesh, "delete", GATEWAY, GW, "-n", ns)

    def gone() -> bool:
        left = kubectl(mesh, "get", "deployment,service,serviceaccount,pods", "-n", ns,
                       "-l", f"{GROUP}/gateway-name={GW}", "-o", "name")
        return not left.strip()

    poll(gone, timeout=20, what=f"{DEPLOYED}'s Deployment, Service, ServiceAccount and pods "
                                "deleted with the Gateway")

"""istiod's memory between pushes (localmesh/istio/xds/memo.py): what a warm memo hands
out is exactly what a cold generation builds, after every kind of change a push follows,
and it is built once for every proxy."""

from __future__ import annotations

import copy

from localmesh.istio.istiod import Generated, generate
from localmesh.istio.xds.memo import Memo, content_digest, freeze
from localmesh.istio.xds.model import (
    T_CLUSTER,
    T_ENDPOINT,
    T_ROUTE,
    MeshState,
    Proxy,
    Service,
    ServicePort,
)

PROXIES = [Proxy("sidecar", f"127.2.0.{i}", f"127.2.0.{i}", f"{n}-0", ns, {"app": n}, n,
                 [{"containerPort": 8080}])
           for i, (n, ns) in enumerate([("composer", "syn-0"), ("vp0", "syn-0"),
                                        ("other", "syn-1")], start=1)]
ROUTER = Proxy("router", "127.2.0.9", "127.2.0.9", "gw-0", "istio-system",
               {"istio": "ingressgateway"}, "gw", [])


def _objects(n: int) -> dict:
    services = {f"svc-{i}": {"ns": f"syn-{i % 3}", "port": 8080, "ip": f"127.1.0.{i}",
                             "labels": {"app": f"svc-{i}"}, "sa": "default"}
                for i in range(n)}
    return {"services": services, "drs": [], "mesh": {}}


def _state(objects: dict, memo: Memo) -> MeshState:
    services, endpoints = [], {}
    for name, o in sorted(objects["services"].items()):
        services.append(Service(name, o["ns"], "10.96.0.1",
                                [ServicePort("http", o["port"], o["port"], "http")],
                                {"app": name}, {}))
        endpoints[(o["ns"], name)] = [{
            "addresses": [{"ip": o["ip"], "_labels": o["labels"], "_sa": o["sa"]}],
            "ports": [{"name": "http", "port": o["port"]}]}]
    memo.sweep()
    return MeshState(services=services, endpoints=endpoints, ingresses=[],
                     ingress_classes={}, gateways=[], virtual_services=[],
                     destination_rules=copy.deepcopy(objects["drs"]), memo=memo,
                     config_key=content_digest([objects["drs"], objects["mesh"]]))


def _generate(state: MeshState) -> dict:
    out = {}
    for proxy in [*PROXIES, ROUTER]:
        gen = Generated(generate(state, proxy), state.memo)
        out[proxy.id] = (gen.types, {(t, n): gen.digest(t, n)
                                     for t, r in gen.types.items() for n in r})
    return out


def _changes() -> list:
    def add(o: dict) -> None:
        o["services"]["new"] = {"ns": "syn-0", "port": 8080, "ip": "127.1.1.1",
                                "labels": {"app": "new"}, "sa": "default"}

    def move(o: dict) -> None:
        o["services"]["svc-1"]["ip"] = "127.1.9.9"

    def relabel(o: dict) -> None:  # a pod's labels: its endpoint's metadata
        o["services"]["svc-2"]["labels"] = {"app": "svc-2",
                                            "security.istio.io/tlsMode": "istio"}

    def identity(o: dict) -> None:  # the pod's ServiceAccount: the cluster's SANs
        o["services"]["svc-2"]["sa"] = "other"

    def port(o: dict) -> None:
        o["services"]["svc-0"]["port"] = 9090

    def remove(o: dict) -> None:
        del o["services"]["svc-3"]

    def destination_rule(o: dict) -> None:
        o["drs"].append({"metadata": {"name": "dr", "namespace": "syn-1",
                                      "creationTimestamp": "2026-01-01T00:00:00Z"},
                         "spec": {"host": "svc-1", "trafficPolicy": {
                             "tls": {"mode": "DISABLE"}},
                             "subsets": [{"name": "v1", "labels": {"app": "svc-1"}}]}})

    return [add, move, relabel, identity, port, remove, destination_rule]


def test_a_warm_memo_generates_what_a_cold_generation_does_after_each_change() -> None:
    objects = _objects(6)
    warm = Memo()
    _generate(_state(objects, warm))
    for change in _changes():
        change(objects)
        assert _generate(_state(objects, warm)) == _generate(_state(objects, Memo())), \
            change.__name__


def test_shared_resources_are_built_once_for_every_proxy_and_kept_across_pushes() -> None:
    objects = _objects(5)
    memo = Memo()
    first = _state(objects, memo)
    gens = [generate(first, p) for p in PROXIES]
    name = "outbound|8080||svc-1.syn-1.svc.cluster.local"
    assert gens[0][T_CLUSTER][name] is gens[2][T_CLUSTER][name]
    assert gens[0][T_ENDPOINT][name] is gens[1][T_ENDPOINT][name]
    # Two proxies of one namespace share their route configurations; another namespace's
    # differ (a Service's short name is a domain only in its own namespace).
    assert gens[0][T_ROUTE]["8080"] is gens[1][T_ROUTE]["8080"]
    assert gens[0][T_ROUTE]["8080"] != gens[2][T_ROUTE]["8080"]
    built = memo.misses
    objects["services"]["svc-4"]["ip"] = "127.1.8.8"
    second = _state(objects, memo)
    again = generate(second, PROXIES[0])
    assert again[T_CLUSTER][name] is gens[0][T_CLUSTER][name]
    moved = "outbound|8080||svc-4.syn-1.svc.cluster.local"
    assert again[T_ENDPOINT][moved] is not gens[0][T_ENDPOINT][moved]
    # The moved Service's cluster, endpoints and its namespace's virtual host: three.
    assert memo.misses - built == 3


def test_a_sweep_forgets_what_two_states_did_not_ask_for() -> None:
    memo = Memo()
    memo.get("a", lambda: 1)
    memo.sweep()
    memo.get("b", lambda: 2)
    memo.sweep()
    assert len(memo) == 2  # "a" was asked for in the state before the last
    memo.sweep()
    assert len(memo) == 1
    memo.sweep()
    assert len(memo) == 0


def test_digests_follow_content_and_identity() -> None:
    memo = Memo()
    a, b = {"x": [1, 2]}, {"x": [1, 2]}
    assert memo.digest(a) == memo.digest(b) == content_digest({"x": [1, 2]})
    assert memo.digest({"x": [2, 1]}) != memo.digest(a)
    assert memo.digest({"y": 1}, lambda: "given") == "given"
    assert freeze({"b": [1, {"c": 2}], "a": 1}) == freeze({"a": 1, "b": [1, {"c": 2}]})
    assert freeze([1, 2]) != freeze([2, 1])

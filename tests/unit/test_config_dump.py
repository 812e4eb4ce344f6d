"""Tests for meshgate.config_dump: real upstream dumps read in place, plus small synthetic ones.

The golden dumps (istio/istio test data, see shared/golden/SOURCES.md) pin the layouts we
meet in the field; the synthetic dumps pin each match kind and layout the goldens lack.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from meshgate.config_dump import (
    ConfigDumpError,
    RouteEntry,
    cluster_names,
    find_route,
    listener_names,
    load_config_dump,
    route_entries,
)
from tests.support import GOLDEN, needs_golden

ISTIO = GOLDEN / "istio"

GATEWAY = "ingressgateway-http-config.json"
SIDECAR_150 = "sidecar-configdump-1.5.0-productpage.json"
WAYPOINT = "waypoint-configdump.json"
LISTENERS = "sidecar-listeners-configdump.yaml"
PRODUCTPAGE_9080 = "outbound|9080||productpage.default.svc.cluster.local"
INBOUND_PRODUCTPAGE = "inbound|9080|http|productpage.default.svc.cluster.local"


def _golden_dump_names() -> list[str]:
    """Every *configdump* file plus the gateway dump, so a new golden file gets tested too."""
    found = sorted(p.name for p in ISTIO.glob("*configdump*")) if ISTIO.is_dir() else []
    return [*found, GATEWAY] if found else [SIDECAR_150, WAYPOINT, LISTENERS, GATEWAY]


def _load(name: str) -> dict[str, Any] | list[Any]:
    return load_config_dump((ISTIO / name).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- golden


@needs_golden
class TestEveryGoldenDump:
    def test_the_known_dumps_are_all_there(self) -> None:
        assert {SIDECAR_150, WAYPOINT, LISTENERS} <= set(_golden_dump_names())

    @pytest.mark.parametrize("name", _golden_dump_names())
    def test_parses_and_every_entry_has_the_stable_json_shape(self, name: str) -> None:
        dump = _load(name)
        entries = route_entries(dump)
        for entry in entries:
            as_json = entry.to_json()
            assert list(as_json) == ["route_config", "virtual_host", "domains", "match", "cluster"]
            assert len(as_json["match"]) == 1
            json.dumps(as_json)  # must be serialisable as is
        assert all(isinstance(n, str) and n for n in listener_names(dump))
        assert all(isinstance(n, str) and n for n in cluster_names(dump))


@needs_golden
class TestIngressGatewayDump:
    """Current Istio gateway: route config http.8080, vhost *:80 (bookinfo's gateway)."""

    def test_route_table_in_order(self) -> None:
        entries = route_entries(_load(GATEWAY))
        assert [(e.route_config, e.virtual_host, e.domains) for e in entries] == [
            ("http.8080", "*:80", ("*",))
        ] * 5
        assert [e.match for e in entries] == [
            {"path": "/productpage"},
            {"prefix": "/static"},
            {"path": "/login"},
            {"path": "/logout"},
            {"prefix": "/api/v1/products"},
        ]
        assert {e.cluster for e in entries} == {PRODUCTPAGE_9080}
        assert {e.name for e in entries} == {None}  # gateway routes carry no route name

    def test_login_goes_to_productpage(self) -> None:
        route = find_route(
            route_entries(_load(GATEWAY)), route_config="http.8080", domain="*", path="/login"
        )
        assert route is not None
        assert route.to_json() == {
            "route_config": "http.8080",
            "virtual_host": "*:80",
            "domains": ["*"],
            "match": {"path": "/login"},
            "cluster": PRODUCTPAGE_9080,
        }

    @pytest.mark.parametrize(
        ("path", "expected_match"),
        [
            ("/static/css/site.css", {"prefix": "/static"}),
            ("/staticfiles", {"prefix": "/static"}),  # a plain prefix is a string prefix
            ("/api/v1/products/0?x=1", {"prefix": "/api/v1/products"}),
            ("/login?next=/", {"path": "/login"}),
            ("/login/again", None),  # exact path only
            ("/", None),
            ("/chain/blocks/0", None),
        ],
    )
    def test_paths(self, path: str, expected_match: dict[str, str] | None) -> None:
        route = find_route(
            route_entries(_load(GATEWAY)), route_config="http.8080", domain="*", path=path
        )
        assert (route.match if route else None) == expected_match

    def test_domain_membership_is_exact(self) -> None:
        entries = route_entries(_load(GATEWAY))
        assert find_route(entries, route_config="http.8080", domain="productpage") is None
        assert find_route(entries, route_config="8080", domain="*", path="/login") is None

    def test_clusters_and_listeners(self) -> None:
        dump = _load(GATEWAY)
        assert cluster_names(dump) == ["outbound|9080|v1|productpage.default.svc.cluster.local"]
        assert listener_names(dump) == []  # the dump's dynamic_listeners list is empty


@needs_golden
class TestSidecar150Dump:
    """Istio 1.5.0: admin.v3 containers around envoy.api.v2 resources, host:port domains."""

    def test_layout_is_v3_admin_around_v2_resources(self) -> None:
        raw = json.loads((ISTIO / SIDECAR_150).read_text(encoding="utf-8"))
        routes = next(c for c in raw["configs"] if c["@type"].endswith(".RoutesConfigDump"))
        assert routes["@type"] == "type.googleapis.com/envoy.admin.v3.RoutesConfigDump"
        inner = routes["dynamic_route_configs"][0]["route_config"]["@type"]
        assert inner == "type.googleapis.com/envoy.api.v2.RouteConfiguration"

    def test_route_configs_static_then_dynamic(self) -> None:
        entries = route_entries(_load(SIDECAR_150))
        assert [e.route_config for e in entries] == [INBOUND_PRODUCTPAGE] * 4 + [""] + ["9080"] * 4
        assert [e.virtual_host for e in entries[5:]] == [
            "details.default.svc.cluster.local:9080",
            "productpage.default.svc.cluster.local:9080",
            "reviews.default.svc.cluster.local:9080",
            "allow_any",
        ]

    def test_unnamed_static_route_config_is_the_prometheus_listener(self) -> None:
        unnamed = [e for e in route_entries(_load(SIDECAR_150)) if e.route_config == ""]
        assert [e.to_json() for e in unnamed] == [
            {
                "route_config": "",
                "virtual_host": "backend",
                "domains": ["*"],
                "match": {"prefix": "/stats/prometheus"},
                "cluster": "prometheus_stats",
            }
        ]

    @pytest.mark.parametrize(
        ("domain", "cluster"),
        [
            ("reviews", "outbound|9080||reviews.default.svc.cluster.local"),
            ("reviews:9080", "outbound|9080||reviews.default.svc.cluster.local"),
            ("details.default.svc.cluster.local:9080",
             "outbound|9080||details.default.svc.cluster.local"),
            ("172.21.79.13", PRODUCTPAGE_9080),
            ("*", "PassthroughCluster"),
            ("ratings", None),  # no ratings service in this dump
        ],
    )
    def test_outbound_9080(self, domain: str, cluster: str | None) -> None:
        route = find_route(route_entries(_load(SIDECAR_150)), route_config="9080", domain=domain)
        assert (route.cluster if route else None) == cluster

    def test_default_route_name(self) -> None:
        route = find_route(route_entries(_load(SIDECAR_150)), route_config="9080", domain="reviews")
        assert route is not None and route.name == "default"
        assert "reviews.default.svc.cluster.local:9080" in route.domains  # pre-1.16 variant

    def test_listeners_named_only_inside_active_state(self) -> None:
        raw = json.loads((ISTIO / SIDECAR_150).read_text(encoding="utf-8"))
        listeners = next(c for c in raw["configs"] if c["@type"].endswith("ListenersConfigDump"))
        assert all("name" not in d for d in listeners["dynamic_listeners"])
        assert listener_names(_load(SIDECAR_150)) == [
            "172.30.144.174_9080",
            "fe80::10e7:52ff:fecd:198b_9080",
            "172.30.144.174_15020",
            "0.0.0.0_9080",
            "virtualOutbound",
            "virtualInbound",
        ]

    def test_clusters_static_then_dynamic(self) -> None:
        names = cluster_names(_load(SIDECAR_150))
        assert len(names) == 18
        assert names[:3] == ["prometheus_stats", "xds-grpc", "zipkin"]
        assert {
            "BlackHoleCluster",
            "PassthroughCluster",
            INBOUND_PRODUCTPAGE,
            "outbound|9080|v2|reviews.default.svc.cluster.local",
            "outbound|9080||reviews.default.svc.cluster.local",
        } <= set(names)


@needs_golden
class TestWaypointDump:
    """Ambient waypoint: inbound-vip|... names and internal listeners."""

    def test_single_route(self) -> None:
        vip = "inbound-vip|9080|http|reviews-v3.default.svc.cluster.local"
        assert route_entries(_load(WAYPOINT)) == [
            RouteEntry(vip, "inbound|http|9080", ("*",), {"prefix": "/"}, vip, "default")
        ]
        route = find_route(route_entries(_load(WAYPOINT)), route_config=vip, domain="*", path="/x")
        assert route is not None and route.cluster == vip

    def test_listeners_and_clusters(self) -> None:
        dump = _load(WAYPOINT)
        assert listener_names(dump) == ["connect_terminate", "main_internal", "connect_originate"]
        # The upstream test data pairs a reviews-v3 route with a ratings cluster.
        assert cluster_names(dump) == ["inbound-vip|9080|http|ratings.default.svc.cluster.local"]


@needs_golden
class TestListenersDump:
    """istioctl's authz test dump: listeners only, and JSON despite its .yaml name."""

    def test_is_json_text_with_only_listeners(self) -> None:
        text = (ISTIO / LISTENERS).read_text(encoding="utf-8")
        assert text.lstrip().startswith("{")
        dump = load_config_dump(text)
        assert route_entries(dump) == []
        assert cluster_names(dump) == []

    def test_listener_names(self) -> None:
        names = listener_names(_load(LISTENERS))
        assert len(names) == 27
        assert names[0] == "10.102.11.148_15021"
        assert {"virtualOutbound", "virtualInbound", "0.0.0.0_9080", "10.96.0.10_9153",
                "main_internal", "connect_originate"} <= set(names)

    def test_unnamed_static_listeners_are_skipped(self) -> None:
        raw = json.loads((ISTIO / LISTENERS).read_text(encoding="utf-8"))
        static = raw["configs"][0]["static_listeners"]
        ports = [s["listener"]["address"]["socket_address"]["port_value"] for s in static]
        assert ports == [15090, 15021]
        assert all("name" not in s["listener"] for s in static)
        assert len(listener_names(_load(LISTENERS))) == len(raw["configs"][0]["dynamic_listeners"])

    def test_same_answers_when_written_as_yaml(self) -> None:
        text = (ISTIO / LISTENERS).read_text(encoding="utf-8")
        as_yaml = yaml.safe_dump(json.loads(text), sort_keys=False)
        with pytest.raises(json.JSONDecodeError):
            json.loads(as_yaml)
        assert listener_names(load_config_dump(as_yaml)) == listener_names(_load(LISTENERS))


# --------------------------------------------------------------------------- synthetic


def _route(match: dict[str, Any], name: str | None = None, **action: Any) -> dict[str, Any]:
    route: dict[str, Any] = {"match": match, **action}
    if name is not None:
        route["name"] = name
    return route


def _route_config(name: str, *vhosts: tuple[str, list[str], list[dict[str, Any]]]) -> dict:
    return {
        "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        "name": name,
        "virtual_hosts": [{"name": n, "domains": d, "routes": r} for n, d, r in vhosts],
    }


def _full_dump(*route_configs: dict[str, Any], static: tuple[dict, ...] = ()) -> dict:
    return {
        "configs": [
            {
                "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
                "static_route_configs": [{"route_config": rc} for rc in static],
                "dynamic_route_configs": [
                    {"version_info": "1", "route_config": rc, "last_updated": "x"}
                    for rc in route_configs
                ],
            }
        ]
    }


def _one_route_dump(route: dict[str, Any]) -> dict[str, Any]:
    return _full_dump(_route_config("8080", ("composer:8080", ["composer"], [route])))


COMPOSER = "outbound|8080||composer.blockchain.svc.cluster.local"
TEMPLATE_POLICY = {
    "name": "envoy.path.match.uri_template.uri_template_matcher",
    "typed_config": {"path_template": "/chain/{n}"},
}


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({"prefix": "/", "case_sensitive": True}, {"prefix": "/"}),
        ({"path": "/login"}, {"path": "/login"}),
        ({"safe_regex": {"google_re2": {}, "regex": "/chain/blocks/[0-9]+"}},
         {"safe_regex": "/chain/blocks/[0-9]+"}),
        ({"path_separated_prefix": "/chain"}, {"path_separated_prefix": "/chain"}),
        ({"connect_matcher": {}}, {"connect_matcher": {}}),
        ({"path_match_policy": TEMPLATE_POLICY}, {"path_match_policy": TEMPLATE_POLICY}),
        ({"regex": "/v2/.*"}, {"regex": "/v2/.*"}),
        ({"headers": [{"name": "x", "exact_match": "y"}]}, {}),
    ],
)
def test_match_reports_only_the_path_specifier(match: dict, expected: dict) -> None:
    (entry,) = route_entries(_one_route_dump(_route(match, route={"cluster": COMPOSER})))
    assert entry.to_json()["match"] == expected


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ({"route": {"cluster": COMPOSER}}, COMPOSER),
        ({"route": {"weighted_clusters": {"clusters": [
            {"name": "outbound|8080|v2|composer", "weight": 10},
            {"name": "outbound|8080|v1|composer", "weight": 90}]}}},
         ["outbound|8080|v1|composer", "outbound|8080|v2|composer"]),
        ({"route": {"cluster_header": "x-cluster"}}, None),
        ({"redirect": {"https_redirect": True}}, None),
        ({"direct_response": {"status": 404}}, None),
    ],
)
def test_cluster_of_each_route_action(action: dict, expected: str | list[str] | None) -> None:
    (entry,) = route_entries(_one_route_dump(_route({"prefix": "/"}, **action)))
    assert entry.cluster == expected
    assert entry.to_json()["cluster"] == expected


def test_resource_query_layout() -> None:
    """/config_dump?resource=dynamic_route_configs: one typed wrapper per element."""
    dump = {
        "configs": [
            {
                "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump.DynamicRouteConfig",
                "version_info": "2024-01-01T00:00:00Z/7",
                "route_config": _route_config(
                    "8080", ("composer.blockchain.svc.cluster.local:8080",
                             ["composer.blockchain.svc.cluster.local", "composer"],
                             [_route({"prefix": "/"}, "default", route={"cluster": COMPOSER})]),
                ),
                "last_updated": "2024-01-01T00:00:00.000Z",
            },
            {
                "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump.StaticRouteConfig",
                "route_config": _route_config(
                    "static", ("backend", ["*"], [_route({"prefix": "/stats"}, route={
                        "cluster": "prometheus_stats"})])
                ),
            },
        ]
    }
    entries = route_entries(dump)
    assert [(e.route_config, e.virtual_host, e.cluster) for e in entries] == [
        ("8080", "composer.blockchain.svc.cluster.local:8080", COMPOSER),
        ("static", "backend", "prometheus_stats"),
    ]
    route = find_route(entries, route_config="8080", domain="composer", path="/login")
    assert route is not None and route.name == "default"


def test_empty_resource_answer() -> None:
    """Envoy answers ?resource=X with {} when it holds no X."""
    dump = load_config_dump("{}")
    assert (route_entries(dump), listener_names(dump), cluster_names(dump)) == ([], [], [])


def test_istioctl_bare_lists() -> None:
    """istioctl proxy-config routes/listeners/clusters -o json print bare lists, no @type."""
    routes = load_config_dump(json.dumps([
        {"name": "8080", "virtual_hosts": [{"name": "composer:8080", "domains": ["composer"],
                                            "routes": [_route({"prefix": "/"}, "default",
                                                              route={"cluster": COMPOSER})]}],
         "validate_clusters": False},
        {"name": "InboundPassthroughCluster", "validate_clusters": False},
    ]))
    assert [e.to_json() for e in route_entries(routes)] == [{
        "route_config": "8080", "virtual_host": "composer:8080", "domains": ["composer"],
        "match": {"prefix": "/"}, "cluster": COMPOSER,
    }]
    listeners = [{"name": "0.0.0.0_8080", "address": {}}, {"name": "virtualInbound",
                                                          "filter_chains": []}]
    clusters = [{"name": COMPOSER, "type": "EDS"}, {"name": "BlackHoleCluster", "type": "STATIC"}]
    assert listener_names(listeners) == ["0.0.0.0_8080", "virtualInbound"]
    assert cluster_names(clusters) == [COMPOSER, "BlackHoleCluster"]
    assert route_entries(listeners) == [] and listener_names(clusters) == []


def test_v2alpha_map_layout_and_listener_lists() -> None:
    """Early admin v2alpha dumps: configs as a map, dynamic listeners split by state."""
    dump = {
        "configs": {
            "routes": {
                "@type": "type.googleapis.com/envoy.admin.v2alpha.RoutesConfigDump",
                "dynamic_route_configs": [{"route_config": {
                    "name": "8080", "virtual_hosts": [{"name": "composer.ns.svc.cluster.local|http",
                                                       "domains": ["composer"], "routes": [
                        {"match": {"prefix": "/"}, "route": {"cluster": "out.abc"}}]}]}}],
            },
            "listeners": {
                "@type": "type.googleapis.com/envoy.admin.v2alpha.ListenersConfigDump",
                "static_listeners": [{"listener": {"name": "admin_static"}}],
                "dynamic_active_listeners": [{"listener": {"name": "0.0.0.0_8080"}}],
                "dynamic_warming_listeners": [{"listener": {"name": "0.0.0.0_7050"}},
                                              {"listener": {"name": "0.0.0.0_8080"}}],
            },
            "clusters": {
                "@type": "type.googleapis.com/envoy.admin.v2alpha.ClustersConfigDump",
                "dynamic_active_clusters": [{"cluster": {"name": "out.abc"}}],
                "dynamic_warming_clusters": [{"cluster": {"name": "out.abc"}},
                                             {"cluster": {"name": "out.def"}}],
            },
        }
    }
    (entry,) = route_entries(dump)
    assert (entry.route_config, entry.cluster) == ("8080", "out.abc")
    assert listener_names(dump) == ["admin_static", "0.0.0.0_8080", "0.0.0.0_7050"]
    assert cluster_names(dump) == ["out.abc", "out.def"]


def test_v3_dynamic_listener_states_and_resource_elements() -> None:
    dump = {
        "configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
             "dynamic_listeners": [
                 {"name": "virtualOutbound", "active_state": {"listener": {"name": "x"}}},
                 {"warming_state": {"listener": {"name": "0.0.0.0_8080"}}},
                 {"name": "rejected", "error_state": {"details": "bad filter"}},
             ]},
            {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump.DynamicListener",
             "name": "virtualInbound", "active_state": {"listener": {"name": "virtualInbound"}}},
            {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump.StaticListener",
             "listener": {"name": "static_one"}},
            {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster",
             "cluster": {"name": COMPOSER}},
        ]
    }
    assert listener_names(dump) == ["virtualOutbound", "0.0.0.0_8080", "virtualInbound",
                                    "static_one"]
    assert cluster_names(dump) == [COMPOSER]


def test_yaml_text() -> None:
    text = """
configs:
- '@type': type.googleapis.com/envoy.admin.v3.RoutesConfigDump
  dynamic_route_configs:
  - route_config:
      name: "7050"
      virtual_hosts:
      - name: vp0.blockchain.svc.cluster.local:7050
        domains: [vp0.blockchain.svc.cluster.local, vp0]
        routes:
        - name: default
          match: {prefix: /}
          route: {cluster: "outbound|7050||vp0.blockchain.svc.cluster.local"}
"""
    route = find_route(route_entries(load_config_dump(text)), route_config="7050",
                       domain="vp0", path="/chain/blocks/0")
    assert route is not None
    assert route.cluster == "outbound|7050||vp0.blockchain.svc.cluster.local"


class TestFindRoute:
    def _entries(self, *routes: dict[str, Any]) -> list[RouteEntry]:
        dump = _full_dump(
            _route_config("8080", ("composer:8080", ["composer", "composer.bc"], list(routes))),
            _route_config("7050", ("vp0:7050", ["vp0"], [
                _route({"prefix": "/"}, route={"cluster": "vp0"})])),
        )
        return route_entries(dump)

    def test_first_matching_route_wins(self) -> None:
        entries = self._entries(
            _route({"prefix": "/chain"}, "chain", route={"cluster": "a"}),
            _route({"prefix": "/"}, "default", route={"cluster": "b"}),
            _route({"prefix": "/chain/blocks"}, "shadowed", route={"cluster": "c"}),
        )
        found = find_route(entries, route_config="8080", domain="composer", path="/chain/blocks/0")
        assert found is not None and found.name == "chain"
        found = find_route(entries, route_config="8080", domain="composer", path="/login")
        assert found is not None and found.name == "default"

    @pytest.mark.parametrize(
        ("match", "path", "matches"),
        [
            ({"path_separated_prefix": "/chain"}, "/chain", True),
            ({"path_separated_prefix": "/chain"}, "/chain/blocks", True),
            ({"path_separated_prefix": "/chain"}, "/chainsaw", False),
            ({"prefix": "/chain"}, "/chainsaw", True),
            ({"path": "/login"}, "/login", True),
            ({"path": "/login"}, "/LOGIN", False),
            ({"path": "/login", "case_sensitive": False}, "/LOGIN", True),
            ({"prefix": "/API", "case_sensitive": False}, "/api/v1", True),
            ({"safe_regex": {"regex": "/chain/blocks/[0-9]+"}}, "/chain/blocks/42", True),
            ({"safe_regex": {"regex": "/chain/blocks/[0-9]+"}}, "/chain/blocks/42/x", False),
            ({"safe_regex": {"regex": "blocks"}}, "/chain/blocks", False),  # whole path only
            ({"regex": "/v2/.*"}, "/v2/anything", True),
            ({"path_match_policy": {"typed_config": {"path_template": "/chain/{n}"}}},
             "/chain/7", True),
            ({"path_match_policy": {"typed_config": {"path_template": "/chain/{n}"}}},
             "/chain/7/8", False),
            ({"path_match_policy": {"typed_config": {"path_template": "/chain/**"}}},
             "/chain/7/8", True),
            ({"connect_matcher": {}}, "/", False),
            ({"prefix": "/", "headers": [{"name": "end-user", "exact_match": "jason"}]},
             "/", False),
            ({"prefix": "/", "query_parameters": [{"name": "v"}]}, "/", False),
            ({"prefix": "/", "headers": []}, "/", True),
            ({"path": "/login"}, "/login?next=/home#top", True),
        ],
    )
    def test_path_match_kinds(self, match: dict, path: str, matches: bool) -> None:
        entries = self._entries(_route(match, route={"cluster": "a"}))
        found = find_route(entries, route_config="8080", domain="composer", path=path)
        assert (found is not None) is matches

    def test_conditioned_route_is_passed_over_for_the_next(self) -> None:
        entries = self._entries(
            _route({"prefix": "/", "headers": [{"name": "end-user", "exact_match": "jason"}]},
                   "jason", route={"cluster": "v2"}),
            _route({"prefix": "/"}, "default", route={"cluster": "v1"}),
        )
        found = find_route(entries, route_config="8080", domain="composer")
        assert found is not None and found.cluster == "v1"

    def test_domain_and_route_config_filters(self) -> None:
        entries = self._entries(_route({"prefix": "/"}, route={"cluster": "a"}))
        assert find_route(entries, route_config="8080", domain="composer:8080") is None
        assert find_route(entries, route_config="7050", domain="composer") is None
        assert find_route(entries, route_config="8080", domain="composer.bc") is not None
        found = find_route(entries, route_config=None, domain="vp0")
        assert found is not None and found.route_config == "7050"

    def test_re2_only_regex_is_an_error_not_a_silent_miss(self) -> None:
        entries = self._entries(_route({"safe_regex": {"regex": "/(?P=x"}}, route={"cluster": "a"}))
        with pytest.raises(ConfigDumpError, match="cannot evaluate route regex"):
            find_route(entries, route_config="8080", domain="composer", path="/")

    def test_hand_built_entries(self) -> None:
        entry = RouteEntry("8080", "vh", ("composer",), {"prefix": "/chain"}, "a", None)
        assert find_route([entry], route_config="8080", domain="composer", path="/chain/1") == entry


def test_entries_compare_and_hash_without_the_raw_match() -> None:
    (parsed,) = route_entries(_one_route_dump(
        _route({"prefix": "/", "case_sensitive": True}, "default", route={"cluster": COMPOSER})))
    built = RouteEntry("8080", "composer:8080", ("composer",), {"prefix": "/"}, COMPOSER, "default")
    assert parsed == built
    assert hash(parsed) == hash(built)
    assert parsed.route_match == {"prefix": "/", "case_sensitive": True}


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty input"),
        ("   \n", "empty input"),
        ('{"configs": [', "not valid JSON"),
        ("configs: [unclosed", "neither JSON nor YAML"),
        ("just some words", "the top level is a str"),
        ("42", "the top level is an int"),
        ("[1, 2]", "item 0 is an int"),
        ('{"timestamp": 1, "elements": {}}', "found an object with keys 'timestamp', 'elements'"),
        ('{"configs": "nope"}', "'configs' is a str"),
        ("a: 1\n---\nb: 2\n", "expected a single document"),
    ],
)
def test_load_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigDumpError, match=message) as caught:
        load_config_dump(text)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("dump", "where"),
    [
        ({"configs": ["x"]}, r"configs\[0\] is a str"),
        ({"configs": [{"dynamic_route_configs": {}}]}, r"dynamic_route_configs is an empty object"),
        ({"configs": [{"dynamic_route_configs": [{"route_config": {"virtual_hosts": "vh"}}]}]},
         r"dynamic_route_configs\[0\]\.route_config\.virtual_hosts is a str"),
        ({"configs": [{"static_route_configs": [{"route_config": {"virtual_hosts": [
            {"routes": [1]}]}}]}]}, r"virtual_hosts\[0\]\.routes\[0\] is an int"),
        ({"elements": {}}, "no 'configs' list"),
    ],
)
def test_malformed_dumps_name_the_location(dump: Any, where: str) -> None:
    with pytest.raises(ConfigDumpError, match=where):
        route_entries(dump)

"""Tests for meshgate.graph: Kiali's golden workload graph read in place, plus servicegraph.

The Kiali file is kiali/kiali's own expected output for a workload graph (see
shared/golden/SOURCES.md), so its node ids are the real opaque hashes.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from meshgate.graph import Edge, GraphError, Node, edges_from_kiali, servicegraph_edges
from tests.support import GOLDEN, needs_golden

KIALI_GRAPH = GOLDEN / "kiali" / "workload-graph.json"

PRODUCTPAGE = Node("workload", "bookinfo", "productpage-v1", "productpage", "v1", None)
INGRESS = Node("workload", "istio-system", "ingressgateway-unknown", "ingressgateway", "latest")
TCP = Node("workload", "bookinfo", "tcp-v1", "tcp", "v1")
REVIEWS_V3 = Node("workload", "bookinfo", "reviews-v3", "reviews", "v3")
DEPOSIT = Node("workload", "bankapp", "deposit-v1", "deposit", "v1")
UNKNOWN = Node("unknown", "unknown", "unknown", "unknown", "unknown", None)
UNKNOWN_SERVICE = Node("service", "unknown", None, None, None, "unknown")


def _kiali() -> dict[str, Any]:
    return json.loads(KIALI_GRAPH.read_text(encoding="utf-8"))


@needs_golden
class TestKialiWorkloadGraph:
    def test_counts(self) -> None:
        doc = _kiali()
        edges = edges_from_kiali(doc)
        assert len(doc["elements"]["nodes"]) == 13
        assert len(edges) == 18
        assert Counter(e.protocol for e in edges) == {"http": 14, "tcp": 3, "grpc": 1}

    @pytest.mark.parametrize(
        "edge",
        [
            Edge(INGRESS, PRODUCTPAGE, "http", 100.0),
            Edge(INGRESS, TCP, "tcp", 300.0),
            Edge(UNKNOWN, TCP, "tcp", 800.0),
            Edge(PRODUCTPAGE, TCP, "tcp", 62.0),
            Edge(REVIEWS_V3, DEPOSIT, "grpc", 50.0),
            Edge(REVIEWS_V3, UNKNOWN_SERVICE, "http", 4.0),
            Edge(PRODUCTPAGE, Node("workload", "bookinfo", "details-v1", "details", "v1"),
                 "http", 80.0),
            Edge(UNKNOWN, Node("workload", "bookinfo", "kiali-2412"), "http", 50.0),
        ],
        ids=lambda e: f"{e.source.workload or e.source.service}->"
        f"{e.target.workload or e.target.service}",
    )
    def test_specific_edges(self, edge: Edge) -> None:
        assert edge in edges_from_kiali(_kiali())

    def test_ids_are_resolved_not_copied(self) -> None:
        edges = edges_from_kiali(_kiali())
        ingress_edge = next(e for e in edges if e.source == INGRESS and e.target == PRODUCTPAGE)
        assert ingress_edge.to_json() == {
            "source": {"nodeType": "workload", "namespace": "istio-system",
                       "workload": "ingressgateway-unknown", "app": "ingressgateway",
                       "version": "latest", "service": None},
            "target": {"nodeType": "workload", "namespace": "bookinfo",
                       "workload": "productpage-v1", "app": "productpage", "version": "v1",
                       "service": None},
            "protocol": "http",
            "rate": 100.0,
        }

    def test_self_loops_and_cross_namespace_edges_are_kept(self) -> None:
        edges = edges_from_kiali(_kiali())
        loops = sorted(e.source.workload or "" for e in edges if e.source == e.target)
        assert loops == ["productpage-v1", "reviews-v2", "reviews-v3"]
        assert {e.target.workload for e in edges if e.target.namespace == "bankapp"} == {
            "pricing-v1", "deposit-v1"}

    def test_every_edge_has_a_rate(self) -> None:
        assert all(isinstance(e.rate, float) for e in edges_from_kiali(_kiali()))


# --------------------------------------------------------------------------- synthetic


def _kiali_doc(edges: list[dict[str, Any]], nodes: list[dict[str, Any]] | None = None) -> dict:
    nodes = nodes if nodes is not None else [
        {"data": {"id": "a", "nodeType": "workload", "namespace": "blockchain",
                  "workload": "composer", "app": "composer"}},
        {"data": {"id": "b", "nodeType": "workload", "namespace": "blockchain",
                  "workload": "vp0", "app": "vp0", "version": "v1"}},
    ]
    return {"timestamp": 1, "duration": 60, "graphType": "workload",
            "elements": {"nodes": nodes, "edges": [{"data": d} for d in edges]}}


@pytest.mark.parametrize(
    ("traffic", "protocol", "rate"),
    [
        ({"protocol": "http", "rates": {"http": "12.50", "httpPercentReq": "100.0"}}, "http", 12.5),
        ({"protocol": "grpc", "rates": {"grpc": "3"}}, "grpc", 3.0),
        ({"protocol": "tcp", "rates": {"tcp": 2048}}, "tcp", 2048.0),
        ({"protocol": "http"}, "http", None),  # idle edge: no rates
        ({"protocol": "tcp", "rates": {"http": "1.0"}}, "tcp", None),  # never mix units
        ({"rates": {"grpc": "4.0"}}, None, 4.0),
        (None, None, None),
    ],
)
def test_kiali_protocol_and_rate(traffic: Any, protocol: str | None, rate: float | None) -> None:
    data: dict[str, Any] = {"id": "e", "source": "a", "target": "b"}
    if traffic is not None:
        data["traffic"] = traffic
    (edge,) = edges_from_kiali(_kiali_doc([data]))
    assert (edge.protocol, edge.rate) == (protocol, rate)
    assert edge.source.to_json() == {"nodeType": "workload", "namespace": "blockchain",
                                     "workload": "composer", "app": "composer",
                                     "version": None, "service": None}


def test_kiali_empty_graph_with_null_lists() -> None:
    assert edges_from_kiali({"elements": {"nodes": None, "edges": None}}) == []


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "the top level is a list"),
        ({"configs": []}, "no 'elements' object"),
        ({"elements": {"nodes": {}}}, "elements.nodes is an object, expected a list"),
        ({"elements": {"nodes": [{"id": "a"}]}}, r"elements.nodes\[0\].data is null"),
        ({"elements": {"nodes": [{"data": {"nodeType": "app"}}]}}, "has no 'id'"),
        (_kiali_doc([{"id": "e", "source": "a", "target": "zz"}]),
         r"elements.edges\[0\].data.target refers to unknown node id 'zz'"),
        (_kiali_doc([{"id": "e", "source": "a", "target": "b", "traffic": "x"}]),
         "traffic is a str"),
        (_kiali_doc([{"id": "e", "source": "a", "target": "b",
                      "traffic": {"protocol": "http", "rates": {"http": "fast"}}}]),
         r"rates.http is 'fast', not a number"),
    ],
)
def test_kiali_errors_say_what_and_where(doc: Any, message: str) -> None:
    with pytest.raises(GraphError, match=message) as caught:
        edges_from_kiali(doc)
    assert isinstance(caught.value, ValueError)


def test_servicegraph_d3graph_shape_istio_1x_names() -> None:
    doc = {
        "nodes": [{"name": "productpage (productpage-v1)"}, {"name": "reviews (reviews-v2)"},
                  {"name": "unknown (unknown)"}],
        "links": [
            {"source": 2, "target": 0, "labels": {"reqs/sec": "0.200000"}},
            {"source": 0, "target": 1, "labels": {"bytes/sec": "512.000000"}},
        ],
    }
    assert servicegraph_edges(doc) == [
        Edge(Node("workload", app="unknown", workload="unknown"),
             Node("workload", app="productpage", workload="productpage-v1"), "http", 0.2),
        Edge(Node("workload", app="productpage", workload="productpage-v1"),
             Node("workload", app="reviews", workload="reviews-v2"), "tcp", 512.0),
    ]


def test_servicegraph_graph_shape_istio_0x_and_plain_names() -> None:
    doc = {
        "nodes": {"composer.blockchain.svc.cluster.local (unknown)": {}, "vp0.blockchain": {},
                  "membersrvc": {}},
        "edges": [
            {"source": "composer.blockchain.svc.cluster.local (unknown)",
             "target": "vp0.blockchain", "labels": {"reqs/sec": "1.5"}},
            {"source": "vp0.blockchain", "target": "membersrvc", "labels": {}},
        ],
    }
    composer = Node("service", "blockchain", service="composer", version="unknown")
    vp0 = Node("workload", "blockchain", "vp0")
    assert servicegraph_edges(doc) == [
        Edge(composer, vp0, "http", 1.5),
        Edge(vp0, Node("workload", workload="membersrvc"), None, None),
    ]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"nodes": [{"name": "a"}], "links": [{"source": 0, "target": 1}]},
         r"links\[0\].target is 1, not an index into the 1 nodes"),
        ({"nodes": [{"name": "a"}], "links": [{"source": True, "target": 0}]}, "not an index"),
        ({"nodes": {"a": {}}, "edges": [{"source": "a", "target": "b"}]},
         r"edges\[0\].target names unknown node 'b'"),
        ({"elements": {}}, "not a servicegraph response"),
    ],
)
def test_servicegraph_errors(doc: Any, message: str) -> None:
    with pytest.raises(GraphError, match=message):
        servicegraph_edges(doc)


def test_node_labels_for_tables() -> None:
    assert PRODUCTPAGE.label() == "bookinfo/productpage-v1"
    assert UNKNOWN_SERVICE.label() == "unknown/unknown"
    assert Node("app", "bookinfo", app="reviews", version="v2").label() == "bookinfo/reviews:v2"

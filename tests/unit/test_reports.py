"""The reports: HTML, cucumber JSON, the service-graph picture and the Gherkin console.

The renderers get synthetic records and the tests check what a reader must find (the
failed step's error, the waits, the edges, the bundle link). The same reports written by
the real plugin in a pytest run, with and without xdist, are
tests/integration/test_reports_plugin.py.
"""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from meshgate.reports import bundle_property, edge_entry, graph_property
from meshgate.reports.console import scenario_lines
from meshgate.reports.cucumber import to_cucumber
from meshgate.reports.graph_svg import layout, render_svg
from meshgate.reports.html import render_html
from meshgate.reports.model import (
    EdgeRecord,
    FeatureInfo,
    RunRecord,
    SampleRecord,
    ScenarioRecord,
    StepRecord,
    area_stats,
    merge_edges,
    parse_edges,
)

# --------------------------------------------------------------------------- synthetic data

FEATURE = FeatureInfo(name="Service-graph edges exist", uri="features/graph.feature",
                      description="Who talks to whom.", line=2, tags=["graph"])


def _edges() -> list[EdgeRecord]:
    return [
        EdgeRecord("istio-system/istio-ingressgateway", "composer", 2.5, "http"),
        EdgeRecord("composer", "vp0", 1.25, "http"),
        EdgeRecord("composer", "membersrvc", None, None, missing=True),
        EdgeRecord("vp0", "membersrvc", 0.5, "grpc"),
    ]


def _run(tmp_path: Path) -> RunRecord:
    bundle = tmp_path / "artifacts" / "bundles" / "graph-1"
    (bundle / "config_dumps").mkdir(parents=True)
    (bundle / "config_dumps" / "composer.json").write_text("{}")
    (bundle / "README.txt").write_text("what is here")
    passed = ScenarioRecord(
        nodeid="steps/test_scenarios.py::test_routes", name="composer's route is registered",
        feature=FeatureInfo(name="Routes are registered", uri="features/routes.feature",
                            tags=["routes"]),
        line=9, tags=["smoke"],
        steps=[StepRecord("Given", "given", "the composer workload is deployed", 7, "passed",
                          0.8, background=True),
               StepRecord("Then", "then", 'the sidecar of composer routes "composer" port 8080',
                          10, "passed", 0.02)],
        duration=0.9, worker="gw0",
        convergence=[SampleRecord("deploy", "composer is Ready", 0.75, True, 9, 0),
                     SampleRecord("routes", "route 8080 in composer", 0.02, True, 2, 1)],
    )
    failed = ScenarioRecord(
        nodeid="steps/test_scenarios.py::test_graph", name="traffic draws the graph",
        feature=FEATURE, line=12, tags=["smoke"], status="failed", duration=3.2, worker="gw1",
        steps=[StepRecord("Given", "given", "the workloads are deployed", 7, "passed", 0.5,
                          background=True),
               StepRecord("When", "when", '5 requests are sent to "/login"', 13, "passed", 0.1),
               StepRecord("Then", "then", "the service graph has these edges:", 14, "failed",
                          2.6, error="AssertionError: missing edges: composer → membersrvc",
                          datatable=[["source", "target"], ["composer", "membersrvc"]]),
               StepRecord("And", "then", "nothing else", 17)],
        convergence=[SampleRecord("graph", "4 edges in the graph", 2.6, False, 14, 2)],
        graph=_edges(), bundles=[str(bundle.relative_to(tmp_path))],
        longrepr="Traceback ... AssertionError",
    )
    skipped = ScenarioRecord(
        nodeid="steps/test_scenarios.py::test_kiali", name="Kiali draws it",
        feature=FEATURE, line=20, status="skipped",
        error="target unavailable: --target kind needs kind on the PATH",
        steps=[StepRecord("Given", "given", "the workloads are deployed", 7, background=True)],
    )
    outline = ScenarioRecord(
        nodeid="steps/test_scenarios.py::test_outline[composer-vp0]",
        name="composer can route to vp0 <script>alert(1)</script>",
        feature=FEATURE, keyword="Scenario Outline", line=30,
        example={"client": "composer", "service": "vp0"},
        steps=[StepRecord("Then", "then", "x", 31, "passed", 0.01)],
    )
    return RunRecord(scenarios=[passed, failed, skipped, outline], run_id="11251200abcd",
                     target="localmesh (booted in 0.4s)", started=1_764_000_000.0,
                     duration=12.5, workers=2)


# --------------------------------------------------------------------------- model


def test_parse_edges_reads_the_contract_and_skips_malformed_entries() -> None:
    raw = json.dumps([
        {"source": "composer", "target": "vp0", "rate": 1.5, "protocol": "http"},
        {"source": "composer", "target": "membersrvc", "rate": None, "missing": True},
        {"source": "", "target": "x"}, {"target": "x"}, "junk",
        {"source": "a", "target": "b", "rate": "NaN"}, {"source": "a", "target": "c",
                                                        "rate": "fast"},
    ])
    edges = parse_edges(raw)
    assert [(e.source, e.target, e.rate, e.missing) for e in edges] == [
        ("composer", "vp0", 1.5, False), ("composer", "membersrvc", None, True),
        ("a", "b", None, False), ("a", "c", None, False)]
    assert parse_edges("not json") == [] and parse_edges('{"a": 1}') == []


def test_merge_keeps_the_highest_rate_and_observed_beats_missing() -> None:
    merged = merge_edges([EdgeRecord("a", "b", 1.0), EdgeRecord("a", "b", 3.0),
                          EdgeRecord("a", "c", None, missing=True), EdgeRecord("a", "c", 0.2)])
    assert [(e.key(), e.rate, e.missing) for e in merged] == [
        (("a", "b"), 3.0, False), (("a", "c"), 0.2, False)]


def test_area_stats_are_per_area_in_the_suites_order() -> None:
    samples = [SampleRecord("graph", "g", 2.0, False), SampleRecord("deploy", "d", 1.0, True),
               SampleRecord("deploy", "d", 3.0, True), SampleRecord("deploy", "d", 2.0, True)]
    stats = area_stats(samples)
    assert [s.area for s in stats] == ["deploy", "graph"]
    deploy = stats[0]
    assert (deploy.waits, deploy.converged, deploy.timed_out) == (3, 3, 0)
    assert (deploy.median, deploy.p95, deploy.max) == (2.0, 3.0, 3.0)
    assert stats[1].timed_out == 1


def test_graph_property_labels_in_namespace_nodes_by_workload() -> None:
    from meshgate.graph import Edge, Node

    ns = "mg-1-x"
    edges = [Edge(Node("workload", "istio-system", "istio-ingressgateway"),
                  Node("workload", ns, "composer"), "http", 2.0)]
    name, value = graph_property(edges, ns, missing=[{"source": "composer",
                                                      "target": "vp0"}])
    assert name == "meshgate_graph"
    assert json.loads(value) == [
        {"source": "istio-system/istio-ingressgateway", "target": "composer", "rate": 2.0,
         "protocol": "http"},
        {"source": "composer", "target": "vp0", "rate": None, "missing": True}]
    assert edge_entry({"source": "a", "target": "b", "rate": 1}) == {
        "source": "a", "target": "b", "rate": 1.0}
    assert bundle_property(Path("/x/y")) == ("meshgate_bundle", "/x/y")


def test_records_survive_the_round_trip_through_plain_data(tmp_path: Path) -> None:
    """What crosses from an xdist worker is JSON-able data; nothing is lost on the way."""
    for scenario in _run(tmp_path).scenarios:
        data = json.loads(json.dumps(scenario.to_dict()))
        assert ScenarioRecord.from_dict(data) == scenario


# --------------------------------------------------------------------------- graph picture


def test_layout_flows_left_to_right_with_the_ingress_first() -> None:
    lay = layout(_edges())
    x = {label: node.x for label, node in lay.nodes.items() if not node.virtual}
    assert x["istio-system/istio-ingressgateway"] < x["composer"] < x["vp0"] < x["membersrvc"]
    assert lay.crossings() == 0


def test_layout_routes_long_edges_around_the_columns_they_skip() -> None:
    lay = layout([EdgeRecord("a", "b"), EdgeRecord("b", "c"), EdgeRecord("a", "c")])
    assert len(lay.routes[("a", "c")]) == 1  # one virtual point in b's column
    via = lay.nodes[lay.routes[("a", "c")][0]]
    b = lay.nodes["b"]
    assert via.layer == b.layer and not (b.y <= via.cy <= b.y + b.height)


def test_cycles_and_self_loops_are_drawn_not_dropped() -> None:
    edges = [EdgeRecord("a", "b", 1.0), EdgeRecord("b", "a", 1.0), EdgeRecord("b", "b", 0.1)]
    lay = layout(edges)
    assert len(lay.reversed) == 1
    svg = render_svg(edges)
    assert svg.count('<path class="edge') == 3


def test_svg_shows_nodes_rates_and_missing_edges() -> None:
    svg = render_svg(_edges(), id_prefix="t")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    for text in (">istio-ingressgateway<", ">istio-system<", ">composer<", ">vp0<",
                 ">membersrvc<", "2.5 req/s", "1.25 req/s", ">missing<"):
        assert text in svg, text
    assert 'stroke-dasharray="6 4"' in svg  # the missing edge
    assert 'id="t-arrow"' in svg
    ET.fromstring(svg)  # well-formed XML
    assert render_svg([]) == ""


def test_svg_escapes_labels() -> None:
    svg = render_svg([EdgeRecord("<a>", "b&c", 1.0)])
    assert "&lt;a&gt;" in svg and "b&amp;c" in svg and "<a>" not in svg
    ET.fromstring(svg)


# --------------------------------------------------------------------------- HTML


def test_html_report_shows_what_a_reader_needs(tmp_path: Path) -> None:
    run = _run(tmp_path)
    page = render_html(run, report_dir=tmp_path / "artifacts", base_dir=tmp_path)
    assert page.startswith("<!doctype html>")
    # verdict, counts and the run's identity
    assert 'class="verdict failed">FAILED' in page
    assert "11251200abcd" in page and "localmesh (booted in 0.4s)" in page
    assert "2 xdist workers" in page
    # features with their scenarios, tags and examples
    assert "Routes are registered" in page and "Service-graph edges exist" in page
    assert "features/graph.feature" in page and "@smoke" in page and "@graph" in page
    assert '<span class="ex">client = composer</span>' in page
    # steps: keyword, text (arguments emphasised), status, duration
    assert '<span class="kwd">Then</span>' in page
    assert 'routes <span class="arg">&quot;composer&quot;</span> port <span class="arg">8080' \
        in page
    assert 'class="ico failed"' in page and 'class="ico skipped"' in page
    assert "800 ms" in page and "2.60 s" in page
    # the failed step's error, its data table, the skip reason
    assert "missing edges: composer → membersrvc" in page
    assert "<th>source</th><th>target</th>" in page
    assert "--target kind needs kind on the PATH" in page
    # convergence: per area and per wait, timeouts marked
    assert re.search(r"<b>graph</b></td><td class=\"num\">1</td><td class=\"num\">0</td>"
                     r"<td class=\"num\">1</td>", page)
    assert "4 edges in the graph <b>(timed out)</b>" in page
    assert "graph timed out in 2.60 s" in page
    # the service graph of the run and of the failed scenario
    assert page.count("<svg") >= 2 and "3 observed, 1 expected but missing" in page
    # the failure bundle, linked relative to the report, with its files
    assert 'href="bundles/graph-1"' in page
    assert 'href="bundles/graph-1/config_dumps/composer.json"' in page
    # escaping: a scenario name cannot inject markup
    assert "<script>" not in page and "&lt;script&gt;" in page
    # failed scenarios open, passed ones collapsed; filters need no script
    assert 'class="scenario st-failed" id="sc-steps-test_scenarios-py-test_graph" open' in page
    assert 'class="scenario st-passed" id="sc-steps-test_scenarios-py-test_routes">' in page
    assert "<script" not in page.lower().replace("&lt;script", "")


def test_html_report_of_an_empty_run_says_nothing_ran() -> None:
    page = render_html(RunRecord())
    assert "NOTHING RAN" in page and "No scenarios ran." in page
    assert "No waits were recorded" in page and "No scenario reported service-graph" in page


# --------------------------------------------------------------------------- cucumber JSON


STEP_STATUSES = {"passed", "failed", "skipped", "undefined", "pending", "ambiguous"}


def validate_cucumber(doc: Any) -> None:
    """The shape Cucumber's JSON formatter writes (what report tools read)."""
    assert isinstance(doc, list)
    for feature in doc:
        for key, kind in (("uri", str), ("id", str), ("keyword", str), ("name", str),
                          ("description", str), ("line", int), ("tags", list),
                          ("elements", list)):
            assert isinstance(feature.get(key), kind), (key, feature.get(key))
        for tag in feature["tags"]:
            assert tag["name"].startswith("@") and isinstance(tag["line"], int)
        for element in feature["elements"]:
            assert element["type"] in ("scenario", "background")
            assert isinstance(element["keyword"], str) and isinstance(element["line"], int)
            if element["type"] == "scenario":
                assert isinstance(element["id"], str) and element["id"]
                assert all(t["name"].startswith("@") for t in element["tags"])
            for hook in element.get("before", []) + element.get("after", []):
                assert hook["result"]["status"] in STEP_STATUSES
            for step in element["steps"]:
                assert step["keyword"].endswith(" ") and isinstance(step["name"], str)
                assert isinstance(step["line"], int) and "location" in step["match"]
                result = step["result"]
                assert result["status"] in STEP_STATUSES
                assert isinstance(result["duration"], int) and result["duration"] >= 0
                if result["status"] == "failed":
                    assert result.get("error_message")
                for embedding in step.get("embeddings", []):
                    assert embedding["mime_type"] == "application/json"
                    json.loads(base64.b64decode(embedding["data"]))


def test_cucumber_json_follows_cucumbers_shape(tmp_path: Path) -> None:
    doc = to_cucumber(_run(tmp_path))
    validate_cucumber(doc)
    graph = next(f for f in doc if f["uri"] == "features/graph.feature")
    kinds = [e["type"] for e in graph["elements"]]
    assert kinds == ["background", "scenario", "background", "scenario", "scenario"]
    failed = graph["elements"][1]
    statuses = [s["result"]["status"] for s in failed["steps"]]
    assert statuses == ["passed", "failed", "skipped"]
    then = failed["steps"][1]
    assert then["result"]["error_message"].startswith("AssertionError: missing edges")
    assert then["result"]["duration"] == 2_600_000_000
    assert then["rows"] == [{"cells": ["source", "target"]}, {"cells": ["composer",
                                                                        "membersrvc"]}]
    waits = json.loads(base64.b64decode(then["embeddings"][0]["data"]))
    assert waits[0]["area"] == "graph" and waits[0]["converged"] is False
    assert "timed out after 2.600s" in then["output"][0]
    assert failed["after"][0]["output"][0].startswith("failure bundle: artifacts/bundles")
    skipped = graph["elements"][3]
    assert skipped["before"][0]["result"]["status"] == "skipped"
    assert "kind needs kind" in skipped["before"][0]["result"]["error_message"]
    assert [t["name"] for t in failed["tags"]] == ["@graph", "@smoke"]


# --------------------------------------------------------------------------- console


def test_console_lines_show_steps_status_and_the_error(tmp_path: Path) -> None:
    failed = _run(tmp_path).scenarios[1]
    lines = [text for text, _ in scenario_lines(failed, show_feature=True, verbose=True)]
    assert lines[0] == "Feature: Service-graph edges exist"
    assert lines[1].startswith("  Scenario: traffic draws the graph  FAILED 3.20s [gw1]")
    assert any(re.match(r"\s+Then the service graph has these edges:\s+failed 2.60s", t)
               for t in lines)
    assert any("AssertionError: missing edges" in t for t in lines)
    assert any("wait [graph] timed out in 2.60s (14 polls)" in t for t in lines)
    assert any(t.strip().startswith("And nothing else") and t.endswith("skipped")
               for t in lines)
    assert lines[-1].strip().startswith("failure bundle: ")

"""The reports written by the real plugin (fixtures/reporting.py) in a pytest run.

A tiny pytest-bdd project runs in a temporary folder, with and without ``-n 2``, and the
cucumber JSON, the HTML, the JUnit XML and the console are checked — the same under xdist
as without it, which is what pytest-bdd's own ``--cucumberjson`` and
``--gherkin-terminal-reporter`` do not manage.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.support import child_env
from tests.unit.test_reports import validate_cucumber

FEATURE_FILE = """\
@graph
Feature: Graph edges exist
  The mesh's service graph shows traffic between the workloads.

  Background:
    Given the workloads are deployed

  @smoke
  Scenario: composer calls vp0
    When traffic flows
    Then the graph has the edge composer -> vp0

  Scenario: a wait times out
    Then the route "r1" converges within 0.05 seconds

  Scenario Outline: <client> reaches <service>
    Then <client> reaches <service> on port <port>

    Examples:
      | client   | service    | port |
      | composer | membersrvc | 7054 |
      | vp0      | membersrvc | 7054 |

  Scenario: something is skipped
    Then Kiali is installed

  Scenario: a step is missing
    Then nobody defined this step
"""

CONFTEST = '''\
import pytest
from pytest_bdd import given, parsers, then, when

from meshgate.reports import bundle_property, graph_property
from meshgate.waiting import Waits, wait_until

pytest_plugins = ["fixtures.plugins.reporting"]


@pytest.fixture(scope="session")
def waits():
    return Waits()


@pytest.fixture(scope="session")
def convergence(waits):
    return waits.log


@pytest.fixture(autouse=True)
def namespace(convergence):
    wait_until(lambda: True, area="deploy", what="namespace is Active", timeout=1,
               log=convergence)
    return "ns"


@given("the workloads are deployed")
def deployed(convergence, namespace):
    wait_until(lambda: True, area="deploy", what="rollout of composer", timeout=1,
               log=convergence)


@when("traffic flows")
def traffic():
    pass


@then("the graph has the edge composer -> vp0")
def edge(request, convergence):
    wait_until(lambda: True, area="graph", what="edge composer -> vp0", timeout=1,
               log=convergence)
    request.node.user_properties.append(graph_property(
        [{"source": "istio-system/istio-ingressgateway", "target": "composer", "rate": 2.5},
         {"source": "composer", "target": "vp0", "rate": 1.25, "protocol": "http"}],
        missing=[{"source": "composer", "target": "membersrvc"}]))


@then(parsers.parse('the route "{name}" converges within {secs:f} seconds'))
def times_out(request, name, secs, convergence):
    bundle = request.config.rootpath / "artifacts" / "bundles" / name
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "config_dump.json").write_text("{}")
    request.node.user_properties.append(bundle_property(bundle))
    wait_until(lambda: False, area="routes", what=f"route {name}", timeout=secs,
               log=convergence)


@then(parsers.parse("{client} reaches {service} on port {port:d}"))
def reaches(client, service, port):
    assert port == 7054


@then("Kiali is installed")
def kiali():
    pytest.skip("Kiali is not installed in istio-system")
'''


def _project(root: Path) -> Path:
    (root / "features").mkdir(parents=True)
    (root / "features" / "mesh.feature").write_text(FEATURE_FILE)
    (root / "conftest.py").write_text(CONFTEST)
    (root / "test_mesh.py").write_text('from pytest_bdd import scenarios\n\n'
                                       'scenarios("features")\n')
    (root / "pytest.ini").write_text(textwrap.dedent("""\
        [pytest]
        markers =
            graph: graph
            smoke: smoke
        """))
    return root


def _pytest(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--color=no",
         "--cucumberjson=out/cucumber.json", "--html-report=out/report.html",
         "--junitxml=out/junit.xml", *args],
        cwd=root, env=child_env(COLUMNS="120"), capture_output=True, text=True, timeout=120,
    )


def _normalise(doc: list[dict[str, Any]], root: Path) -> list[dict[str, Any]]:
    """Cucumber JSON without what legitimately differs between runs: timings, the
    project's own folder."""
    out = json.loads(json.dumps(doc).replace(str(root), "<root>"))
    for feature in out:
        for element in feature["elements"]:
            for entry in element["steps"] + element.get("before", []) + element.get("after", []):
                entry["result"]["duration"] = 0
                entry.pop("embeddings", None)
                entry["output"] = [re.sub(r"\d+\.\d+s \(\d+ polls\)", "Ns", o)
                                   for o in entry.get("output", [])]
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any]]:
    """The synthetic project run twice: in one process and with two xdist workers."""
    out = {}
    for mode, extra in (("serial", ()), ("xdist", ("-n", "2"))):
        root = _project(tmp_path_factory.mktemp(mode))
        result = _pytest(root, *extra)
        assert result.returncode == 1, result.stdout + result.stderr  # two scenarios fail
        out[mode] = (root, result)
    return out


@pytest.mark.parametrize("mode", ["serial", "xdist"])
def test_cucumber_json_is_complete_with_and_without_xdist(runs: dict, mode: str) -> None:
    root, _ = runs[mode]
    doc = json.loads((root / "out" / "cucumber.json").read_text())
    validate_cucumber(doc)
    (feature,) = doc
    scenarios = {e["name"]: e for e in feature["elements"] if e["type"] == "scenario"}
    assert set(scenarios) == {"composer calls vp0", "a wait times out",
                              "composer reaches membersrvc", "vp0 reaches membersrvc",
                              "something is skipped", "a step is missing"}

    def statuses(name: str) -> list[str]:
        return [s["result"]["status"] for s in scenarios[name]["steps"]]

    assert statuses("composer calls vp0") == ["passed", "passed"]
    assert statuses("a wait times out") == ["failed"]
    assert statuses("something is skipped") == ["skipped"]
    assert statuses("a step is missing") == ["undefined"]
    failed = scenarios["a wait times out"]["steps"][0]
    assert "WaitTimeout: route r1" in failed["result"]["error_message"]
    assert any("wait [routes] route r1: timed out" in o for o in failed["output"])
    assert failed["match"]["location"].startswith("conftest.py:")
    assert [t["name"] for t in scenarios["composer calls vp0"]["tags"]] == ["@graph",
                                                                           "@smoke"]


def test_cucumber_json_is_the_same_under_xdist(runs: dict) -> None:
    serial = json.loads((runs["serial"][0] / "out" / "cucumber.json").read_text())
    xdist = json.loads((runs["xdist"][0] / "out" / "cucumber.json").read_text())
    assert _normalise(serial, runs["serial"][0]) == _normalise(xdist, runs["xdist"][0])


@pytest.mark.parametrize("mode", ["serial", "xdist"])
def test_html_report_has_steps_waits_graph_and_bundle(runs: dict, mode: str) -> None:
    root, _ = runs[mode]
    page = (root / "out" / "report.html").read_text()
    for text in ("composer calls vp0", "the route <span class=\"arg\">&quot;r1&quot;</span>",
                 "WaitTimeout: route r1", "Kiali is not installed in istio-system",
                 "no step definition matches Then", ">composer<", ">vp0<", "2.5 req/s",
                 "route r1 <b>(timed out)</b>", "namespace is Active",
                 'href="../artifacts/bundles/r1"'):
        assert text in page, text
    counts = re.search(r'<label for="f-all">All \((\d+)\)</label>', page)
    assert counts is not None and counts.group(1) == "6"
    # each scenario's waits: 2 deploy (fixture + background step) everywhere, +1 graph, +1
    rows = re.findall(r"<td>(deploy|graph|routes)</td>", page)
    assert rows.count("deploy") == 12 and rows.count("graph") == 1 and rows.count("routes") == 1
    if mode == "xdist":
        assert "2 xdist workers" in page and re.search(r"· gw[01]</span>", page)


@pytest.mark.parametrize("mode", ["serial", "xdist"])
def test_junit_xml_carries_waits_edges_and_bundles(runs: dict, mode: str) -> None:
    root, _ = runs[mode]
    tree = ET.parse(root / "out" / "junit.xml")
    cases = {c.get("name"): c for c in tree.iter("testcase")}
    assert len(cases) == 6

    def props(case: str) -> dict[str, str]:
        return {p.get("name"): p.get("value") for p in cases[case].iter("property")}

    graph = props("test_composer_calls_vp0")
    assert json.loads(graph["meshgate_graph"])[1] == {
        "source": "composer", "target": "vp0", "rate": 1.25, "protocol": "http"}
    waits = json.loads(graph["meshgate_convergence"])
    assert [w["area"] for w in waits] == ["deploy", "deploy", "graph"]
    assert [w["step"] for w in waits] == [None, 0, 2]
    assert props("test_a_wait_times_out")["meshgate_bundle"].endswith("artifacts/bundles/r1")
    suite_props = {p.get("name") for p in tree.getroot().iter("property")}
    assert "meshgate_convergence_by_area" in suite_props


@pytest.mark.parametrize("mode", ["serial", "xdist"])
def test_console_prints_gherkin_steps(runs: dict, mode: str) -> None:
    _, result = runs[mode]
    out = result.stdout
    assert "Feature: Graph edges exist" in out
    assert re.search(r"Scenario: composer calls vp0  PASSED", out)
    assert re.search(r"\n\s+When traffic flows\s+passed", out)
    assert re.search(r"\n\s+Then the route \"r1\" converges within 0.05 seconds\s+failed", out)
    assert "skipped: Kiali is not installed in istio-system" in out
    assert "meshgate convergence (seconds)" in out
    assert "meshgate HTML report: out/report.html" in out
    if mode == "xdist":
        assert re.search(r"PASSED \d+\.\d+s \[gw[01]\]", out)


def test_pytest_bdds_flags_are_served_by_the_plugin(tmp_path: Path) -> None:
    """--gherkin-terminal-reporter no longer breaks or silences xdist: ours prints."""
    root = _project(tmp_path / "p")
    result = _pytest(root, "-n", "2", "--gherkin-terminal-reporter", "-k", "composer_calls")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Then the graph has the edge composer -> vp0" in result.stdout
    doc = json.loads((root / "out" / "cucumber.json").read_text())
    assert [e["name"] for e in doc[0]["elements"] if e["type"] == "scenario"] == [
        "composer calls vp0"]

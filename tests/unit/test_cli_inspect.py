"""Tests for the offline inspection commands ``meshgate routes`` and ``meshgate edges``,
through ``cli.main([...])`` in-process. That the entry point, the exit code and the
one-line error survive a real process boundary is tests/integration/test_cli_process.py.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from meshgate import cli
from meshgate.config_dump import load_config_dump, route_entries
from tests.support import GOLDEN, needs_golden

ISTIO = GOLDEN / "istio"
GATEWAY = ISTIO / "ingressgateway-http-config.json"
KIALI_GRAPH = GOLDEN / "kiali" / "workload-graph.json"
PRODUCTPAGE_9080 = "outbound|9080||productpage.default.svc.cluster.local"


def _golden_dumps() -> list[Path]:
    found = sorted(ISTIO.glob("*configdump*")) if ISTIO.is_dir() else []
    return [*found, GATEWAY]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(err: str, command: str, source: str, fragment: str) -> None:
    """The contract: ``meshgate CMD: error: WHAT, in FILE: WHAT TO DO`` on one line."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"meshgate {command}: error: "), lines[0]
    assert fragment in lines[0], lines[0]
    what_to_do = lines[0].split(f", in {source}: ", 1)
    assert len(what_to_do) == 2 and what_to_do[1], lines[0]


# --------------------------------------------------------------------------- routes


@needs_golden
class TestRoutesOnGoldenDumps:
    @pytest.mark.parametrize("dump", _golden_dumps(), ids=lambda p: p.name)
    def test_json_equals_the_library_view(
        self, capsys: pytest.CaptureFixture[str], dump: Path
    ) -> None:
        code, out, err = _run(capsys, "routes", "--config-dump", str(dump), "--json")
        assert (code, err) == (0, "")
        expected = [e.to_json() for e in route_entries(load_config_dump(dump.read_text()))]
        assert json.loads(out) == expected
        assert out.startswith("[\n  ") or out == "[]\n"  # indent=2

    def test_gateway_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = _run(capsys, "routes", "--config-dump", str(GATEWAY), "--json")
        routes = json.loads(out)
        assert code == 0 and len(routes) == 5
        assert routes[2] == {
            "route_config": "http.8080",
            "virtual_host": "*:80",
            "domains": ["*"],
            "match": {"path": "/login"},
            "cluster": PRODUCTPAGE_9080,
        }

    def test_gateway_table(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = _run(capsys, "routes", "--config-dump", str(GATEWAY))
        lines = out.splitlines()
        assert code == 0 and len(lines) == 6
        assert lines[0].split() == ["ROUTE", "CONFIG", "VIRTUAL", "HOST", "DOMAINS", "MATCH",
                                    "CLUSTER"]
        assert lines[3].split() == ["http.8080", "*:80", "*", "path", "/login", PRODUCTPAGE_9080]
        # aligned: every row's cluster column starts at the same offset
        assert len({line.index("outbound|") for line in lines[1:]}) == 1

    def test_sidecar_table_shortens_domain_lists(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        dump = ISTIO / "sidecar-configdump-1.5.0-productpage.json"
        _, out, _ = _run(capsys, "routes", "--config-dump", str(dump))
        assert "reviews.default.svc.cluster.local (+11 more)" in out
        assert "PassthroughCluster" in out


def test_routes_from_stdin_with_weighted_clusters(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = [{"name": "8080", "virtual_hosts": [{"name": "composer:8080", "domains": ["composer"],
             "routes": [{"match": {"safe_regex": {"regex": "/chain/.*"}},
                         "route": {"weighted_clusters": {"clusters": [
                             {"name": "b", "weight": 50}, {"name": "a", "weight": 50}]}}}]}]}]
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(bare)))
    code, out, _ = _run(capsys, "routes", "--config-dump", "-")
    assert code == 0
    assert out.splitlines()[1].split() == ["8080", "composer:8080", "composer", "safe_regex",
                                           "/chain/.*", "weighted:", "a,", "b"]


# --------------------------------------------------------------------------- edges


@needs_golden
class TestEdgesOnGoldenGraph:
    def test_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, err = _run(capsys, "edges", "--kiali-graph", str(KIALI_GRAPH), "--json")
        edges = json.loads(out)
        assert (code, err, len(edges)) == (0, "", 18)
        assert all(list(e) == ["source", "target", "protocol", "rate"] for e in edges)
        assert {
            "source": {"nodeType": "workload", "namespace": "bookinfo", "workload": "reviews-v3",
                       "app": "reviews", "version": "v3", "service": None},
            "target": {"nodeType": "workload", "namespace": "bankapp", "workload": "deposit-v1",
                       "app": "deposit", "version": "v1", "service": None},
            "protocol": "grpc",
            "rate": 50.0,
        } in edges

    def test_table(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = _run(capsys, "edges", "--kiali-graph", str(KIALI_GRAPH))
        lines = out.splitlines()
        assert code == 0 and len(lines) == 19
        assert lines[0].split() == ["SOURCE", "TARGET", "PROTOCOL", "RATE"]
        assert ["istio-system/ingressgateway-unknown", "bookinfo/productpage-v1", "http",
                "100"] in [line.split() for line in lines]

    def test_a_config_dump_is_not_a_graph(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, err = _run(capsys, "edges", "--kiali-graph", str(GATEWAY))
        assert (code, out) == (2, "")
        _assert_one_line_error(err, "edges", str(GATEWAY), "no 'elements' object")

    def test_a_graph_is_not_a_config_dump(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, err = _run(capsys, "routes", "--config-dump", str(KIALI_GRAPH))
        assert (code, out) == (2, "")
        _assert_one_line_error(err, "routes", str(KIALI_GRAPH), "not an Envoy config dump")

    def test_a_pod_manifest_is_not_a_config_dump(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        pod = ISTIO / "injected-pod.yaml"
        code, _, err = _run(capsys, "routes", "--config-dump", str(pod))
        assert code == 2
        _assert_one_line_error(err, "routes", str(pod), "expected a single document")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "empty input"),
        (b'{"configs": [', "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8 text"),
        (b'{"configs": [{"dynamic_route_configs": [{"route_config": {"virtual_hosts": 1}}]}]}',
         "virtual_hosts is an int"),
    ],
)
def test_routes_bad_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, fragment: str
) -> None:
    path = tmp_path / "dump.json"
    path.write_bytes(content)
    code, out, err = _run(capsys, "routes", "--config-dump", str(path))
    assert (code, out) == (2, "")
    _assert_one_line_error(err, "routes", str(path), fragment)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "empty file"),
        (b"{nope", "not valid JSON"),
        (b'{"elements": {"nodes": [], "edges": [{"data": {"source": "x", "target": "y"}}]}}',
         "unknown node id 'x'"),
    ],
)
def test_edges_bad_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, fragment: str
) -> None:
    path = tmp_path / "graph.json"
    path.write_bytes(content)
    code, out, err = _run(capsys, "edges", "--kiali-graph", str(path))
    assert (code, out) == (2, "")
    _assert_one_line_error(err, "edges", str(path), fragment)


def test_undecodable_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xff\xfe\x00")))
    code, out, err = _run(capsys, "routes", "--config-dump", "-")
    assert (code, out) == (2, "")
    _assert_one_line_error(err, "routes", "<stdin>", "not UTF-8 text")


def test_missing_file_and_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.json")
    code, _, err = _run(capsys, "routes", "--config-dump", missing)
    assert code == 2
    _assert_one_line_error(err, "routes", missing, "file not found")
    code, _, err = _run(capsys, "edges", "--kiali-graph", str(tmp_path))
    assert code == 2
    _assert_one_line_error(err, "edges", str(tmp_path), "is a directory")


def test_usage_errors_return_2_and_help_returns_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "routes")
    assert code == 2 and "the following arguments are required: --config-dump" in err
    code, _, err = _run(capsys)
    assert code == 2 and "meshgate: error:" in err
    code, out, _ = _run(capsys, "edges", "--help")
    assert code == 0 and "--kiali-graph FILE" in out


def test_subcommands_are_registered_in_one_place() -> None:
    assert [sub.name for sub in cli.SUBCOMMANDS] == ["routes", "edges"]
    parser = cli.build_parser()
    args = parser.parse_args(["routes", "--config-dump", "x.json", "--json"])
    assert args.subcommand.name == "routes" and args.config_dump == "x.json" and args.json

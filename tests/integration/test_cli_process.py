"""meshgate's commands across a real process boundary and against a real API server.

The in-process tests (tests/unit/test_cli_*.py) call ``cli.main``; these prove what only a
real process shows: the ``python -m meshgate`` entry point, its exit codes (pytest's,
passed through ``meshgate run`` unchanged) and its one-line errors on stderr; and the
sweep's label query and deletes against a real Kubernetes API (localmesh without the mesh).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshgate import children, cli, namespaces
from meshgate.cluster import Cluster
from tests.support import GOLDEN, REPO, boot_localmesh, child_env, needs_golden, poll


def _python_m_meshgate(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m meshgate`` from the checkout, with the interpreter running the tests."""
    return subprocess.run([sys.executable, "-m", "meshgate", *argv], cwd=REPO,
                          env=child_env(), capture_output=True, text=True, timeout=timeout,
                          check=False)


# --------------------------------------------------------------------------- routes


@needs_golden
def test_python_m_meshgate_routes() -> None:
    gateway = GOLDEN / "istio" / "ingressgateway-http-config.json"
    done = _python_m_meshgate("routes", "--config-dump", str(gateway), "--json")
    assert (done.returncode, done.stderr) == (0, "")
    routes: list[dict[str, Any]] = json.loads(done.stdout)
    assert [r["match"] for r in routes if r["match"].get("path") == "/login"] == [
        {"path": "/login"}
    ]


def test_python_m_meshgate_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.json")
    done = _python_m_meshgate("routes", "--config-dump", missing)
    assert (done.returncode, done.stdout) == (2, "")
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("meshgate routes: error: ") and "file not found" in lines[0]
    assert f", in {missing}: " in lines[0], lines[0]


# --------------------------------------------------------------------------- run


@pytest.mark.parametrize(("args", "code"), [
    (["--collect-only", "-q", "-k", "no_scenario_is_called_this"], 5),  # nothing selected
    (["--collect-only", "-q", "--no-such-pytest-option"], 4),  # pytest's usage error
])
def test_run_passes_pytests_exit_code_through(args: list[str], code: int) -> None:
    """A real ``python -m meshgate run``: collect-only, so no cluster is started."""
    result = _python_m_meshgate("run", "-p", "no:cacheprovider", *args, timeout=120)
    assert result.returncode == code, result.stdout + result.stderr


def test_a_child_s_exit_code_comes_back() -> None:
    assert children.run([sys.executable, "-c", "raise SystemExit(3)"]) == 3


# --------------------------------------------------------------------------- sweep


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real Kubernetes API (localmesh without the mesh), for the sweep's own calls."""
    with boot_localmesh(tmp_path_factory.mktemp("sweep-api"), mesh=False) as handle:
        yield handle.kubeconfig


def test_sweep_against_a_real_api_server(capsys: pytest.CaptureFixture[str],
                                         api_server: Path) -> None:
    cluster = Cluster(api_server)
    namespaces.create(cluster, "mg-sweep-expired", "sweeprun", ttl=-60)
    namespaces.create(cluster, "mg-sweep-live", "sweeprun", ttl=3600)
    cluster.apply({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "not-meshgate"}}, None)

    def sweep(*argv: str) -> tuple[int, str]:
        code = cli.main(["sweep", "--kubeconfig", str(api_server), *argv])
        return code, capsys.readouterr().out

    assert sweep("--dry-run") == (0, "would delete namespace mg-sweep-expired\n")
    assert sweep() == (0, "deleted namespace mg-sweep-expired\n")

    def gone() -> bool:
        ns = cluster.get("v1", "Namespace", "mg-sweep-expired", None)
        return ns is None or (ns.get("status") or {}).get("phase") == "Terminating"

    poll(gone, timeout=10, what="namespace mg-sweep-expired deleted or Terminating")
    assert cluster.get("v1", "Namespace", "mg-sweep-live", None) is not None
    assert cluster.get("v1", "Namespace", "not-meshgate", None) is not None

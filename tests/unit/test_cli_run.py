"""``meshgate run``, ``meshgate sweep`` and ``meshgate --version``.

``run`` is checked through the command line it builds and then for real (pytest's exit
code must come back unchanged); ``sweep`` against a fake cluster for its decisions and
against a real local API server (localmesh without the mesh) for the label query and
the deletes.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from meshgate import children, cli, namespaces
from meshgate.cluster import ClusterError

REPO = Path(__file__).resolve().parents[2]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str, command: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"meshgate {command}: error: "), lines[0]
    return lines[0]


# --------------------------------------------------------------------------- version


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--version")
    assert (code, out) == (0, f"meshgate {version('meshgate')}\n")


# --------------------------------------------------------------------------- run


def _command(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    code, out, err = _run(capsys, "run", "--print-command", *argv)
    assert (code, err) == (0, ""), err
    return shlex.split(out)


def test_run_runs_pytest_on_the_steps(capsys: pytest.CaptureFixture[str]) -> None:
    assert _command(capsys) == [sys.executable, "-m", "pytest", str(REPO / "steps")]


def test_run_passes_target_options_and_pytest_arguments_in_order(
        capsys: pytest.CaptureFixture[str]) -> None:
    command = _command(capsys, "--target", "kind", "-n", "2", "-m", "smoke and not local",
                       "--kube-context", "ci", "--junitxml=artifacts/junit.xml", "-x")
    assert command[3:] == [str(REPO / "steps"), "--target", "kind", "--kube-context", "ci",
                           "-n", "2", "-m", "smoke and not local",
                           "--junitxml=artifacts/junit.xml", "-x"]


def test_run_does_not_take_pytest_options_for_its_own(
        capsys: pytest.CaptureFixture[str]) -> None:
    """No abbreviations: pytest's --keep or --kube... prefixes stay pytest's."""
    command = _command(capsys, "--keep=always", "--", "-k", "routes")
    assert command[4:] == ["--keep=always", "-k", "routes"]


def test_run_with_explicit_tests_does_not_add_the_steps_folder(
        capsys: pytest.CaptureFixture[str]) -> None:
    command = _command(capsys, "steps/test_scenarios.py::test_x", "-v")
    assert command[3:] == ["steps/test_scenarios.py::test_x", "-v"]


def test_run_passes_suite_options_in_both_forms(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    """`--manifests DIR` is a suite option with its value, not a test path."""
    spaced = _command(capsys, "--manifests", str(tmp_path), "-m", "routes",
                      "--timeout-routes", "5")
    joined = _command(capsys, f"--manifests={tmp_path}", "-m", "routes", "--timeout-routes=5")
    assert spaced[3:] == [str(REPO / "steps"), "--manifests", str(tmp_path), "-m", "routes",
                          "--timeout-routes", "5"]
    assert joined[3:] == [str(REPO / "steps"), f"--manifests={tmp_path}", "-m", "routes",
                          "--timeout-routes=5"]


def _value_options(path: Path) -> dict[str, str]:
    """Every option the suite's plugins register that takes a value, read from their
    registration through pytest's own parser, with a valid value (a path where any text
    will do)."""
    from _pytest.config import get_config

    from meshgate.cli.suite import suite_plugins

    config = get_config()
    for plugin in suite_plugins(REPO):
        config.pluginmanager.import_plugin(plugin)
    out = {}
    for group in config._parser._groups:
        if group.name.startswith("meshgate"):
            for option in group.options:
                attrs = option.attrs()
                if attrs.get("nargs") == 0:  # a flag: store_true and its kin
                    continue
                value = (attrs["choices"][0] if attrs.get("choices")
                         else "5" if attrs.get("type") is float else str(path))
                out.update({n: value for n in option.names() if n.startswith("--")})
    return out


def test_every_suite_option_with_a_value_is_told_from_a_test_path(tmp_path: Path) -> None:
    from meshgate.cli.suite import named_tests

    options = _value_options(tmp_path)
    assert {"--manifests", "--artifacts", "--kubeconfig", "--timeout-routes",
            "--html-report"} <= set(options)
    for option, value in options.items():
        assert named_tests([option, value], REPO) == [], option
        assert named_tests([f"{option}={value}"], REPO) == [], option
    assert named_tests(["--manifests", str(tmp_path), "steps/test_scenarios.py::x"],
                       REPO) == ["steps/test_scenarios.py::x"]


def test_run_names_the_valid_targets_for_a_misspelt_one(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "run", "--target", "kidn")
    line = _one_line_error(err, "run")
    assert code == 2 and out == ""
    assert "unknown target 'kidn' (did you mean 'kind'?)" in line
    assert line.endswith("choose one of local, kubeconfig, kind, k3s")


def test_run_refuses_a_missing_kubeconfig(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    code, _, err = _run(capsys, "run", "--target", "kubeconfig", "--kubeconfig",
                        str(tmp_path / "nope"))
    assert code == 2
    assert "kubeconfig not found, in " in _one_line_error(err, "run")


def test_other_commands_still_refuse_unknown_arguments(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "sweep", "--bogus")
    assert code == 2 and "unrecognized arguments: --bogus" in err


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MESHGATE_", "PYTEST_"))}


@pytest.mark.parametrize(("args", "code"), [
    (["--collect-only", "-q", "-k", "no_scenario_is_called_this"], 5),  # nothing selected
    (["--collect-only", "-q", "--no-such-pytest-option"], 4),  # pytest's usage error
])
def test_run_passes_pytests_exit_code_through(args: list[str], code: int) -> None:
    """A real ``python -m meshgate run``: collect-only, so no cluster is started."""
    result = subprocess.run([sys.executable, "-m", "meshgate", "run", "-p", "no:cacheprovider",
                             *args], cwd=REPO, env=_clean_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == code, result.stdout + result.stderr


def test_a_child_s_exit_code_comes_back() -> None:
    assert children.run([sys.executable, "-c", "raise SystemExit(3)"]) == 3


# --------------------------------------------------------------------------- sweep


class FakeCluster:
    """Just enough of meshgate.cluster.Cluster for namespaces.expired/delete."""

    def __init__(self, namespaces_: list[dict[str, Any]], fail_delete: set[str] = frozenset()
                 ) -> None:
        self.objects = namespaces_
        self.deleted: list[str] = []
        self.fail_delete = fail_delete
        self.selectors: list[str | None] = []

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:
        assert (api_version, kind, namespace) == ("v1", "Namespace", None)
        self.selectors.append(label_selector)
        return self.objects

    def has_api(self, group_version: str, kind: str | None = None) -> bool:
        return False  # no OpenShift Service Mesh member roll to leave

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        if name in self.fail_delete:
            raise ClusterError(f"forbidden to delete namespace {name}")
        self.deleted.append(name)
        return True


def _ns(name: str, expires: float | str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {namespaces.OWNER_LABEL: "meshgate",
                                                  namespaces.EXPIRES_LABEL: str(expires)}}}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    now = time.time()
    cluster = FakeCluster([_ns("mg-old-a", int(now) - 10), _ns("mg-new", int(now) + 3600),
                           _ns("mg-old-b", int(now) - 1), _ns("mg-bad-label", "soon")])
    import meshgate.cluster

    monkeypatch.setattr(meshgate.cluster, "Cluster", lambda kubeconfig, context: cluster)
    return cluster


def test_sweep_deletes_only_expired_namespaces(capsys: pytest.CaptureFixture[str],
                                               fake: FakeCluster) -> None:
    code, out, err = _run(capsys, "sweep")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["deleted namespace mg-old-a", "deleted namespace mg-old-b"]
    assert fake.deleted == ["mg-old-a", "mg-old-b"]
    assert fake.selectors == [f"{namespaces.OWNER_LABEL}=meshgate"]


def test_sweep_dry_run_deletes_nothing(capsys: pytest.CaptureFixture[str],
                                       fake: FakeCluster) -> None:
    code, out, _ = _run(capsys, "sweep", "--dry-run")
    assert code == 0 and fake.deleted == []
    assert out.splitlines() == ["would delete namespace mg-old-a",
                                "would delete namespace mg-old-b"]


def test_sweep_reports_a_failed_delete_and_goes_on(capsys: pytest.CaptureFixture[str],
                                                   fake: FakeCluster) -> None:
    fake.fail_delete = {"mg-old-a"}
    code, out, err = _run(capsys, "sweep")
    assert code == 1 and out == "deleted namespace mg-old-b\n"
    assert "could not delete namespace mg-old-a: forbidden" in err


def test_sweep_turns_cluster_errors_into_one_line(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import meshgate.cluster

    def unreachable(kubeconfig: Any, context: Any) -> None:
        raise ClusterError("cannot reach the API server at https://127.0.0.1:1: is the "
                           "cluster running?")

    monkeypatch.setattr(meshgate.cluster, "Cluster", unreachable)
    code, _, err = _run(capsys, "sweep", "--kube-context", "x")
    assert code == 2 and "cannot reach the API server" in _one_line_error(err, "sweep")


def test_sweep_refuses_a_missing_kubeconfig(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    code, _, err = _run(capsys, "sweep", "--kubeconfig", str(tmp_path / "nope"))
    assert code == 2 and "kubeconfig not found" in _one_line_error(err, "sweep")


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real Kubernetes API (localmesh without the mesh), for the sweep's own calls."""
    try:
        from localmesh.cli import LaunchError, launch
    except ImportError:  # pragma: no cover
        pytest.skip("localmesh is not importable")
    try:
        handle = launch(tmp_path_factory.mktemp("sweep-api"), mesh=False, timeout=30,
                        tied=True)
    except LaunchError as exc:  # pragma: no cover - environment without localmesh's needs
        pytest.skip(f"cannot start a local API server: {exc}")
    try:
        yield handle.kubeconfig
    finally:
        handle.stop()


def test_sweep_against_a_real_api_server(capsys: pytest.CaptureFixture[str],
                                         api_server: Path) -> None:
    from meshgate.cluster import Cluster

    cluster = Cluster(api_server)
    namespaces.create(cluster, "mg-sweep-expired", "sweeprun", ttl=-60)
    namespaces.create(cluster, "mg-sweep-live", "sweeprun", ttl=3600)
    cluster.apply({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "not-meshgate"}}, None)

    code, out, _ = _run(capsys, "sweep", "--kubeconfig", str(api_server), "--dry-run")
    assert (code, out) == (0, "would delete namespace mg-sweep-expired\n")
    code, out, _ = _run(capsys, "sweep", "--kubeconfig", str(api_server))
    assert (code, out) == (0, "deleted namespace mg-sweep-expired\n")

    def gone() -> bool:
        ns = cluster.get("v1", "Namespace", "mg-sweep-expired", None)
        return ns is None or (ns.get("status") or {}).get("phase") == "Terminating"

    deadline = time.monotonic() + 10
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone()
    assert cluster.get("v1", "Namespace", "mg-sweep-live", None) is not None
    assert cluster.get("v1", "Namespace", "not-meshgate", None) is not None

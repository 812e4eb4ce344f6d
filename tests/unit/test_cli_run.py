"""``meshgate run``, ``meshgate sweep`` and ``meshgate --version``, in-process.

``run`` is checked through the command line it builds; ``sweep`` against a fake cluster
for its decisions. Both for real (pytest's exit code through a real ``meshgate run``, the
sweep's label query and deletes against a real API server) are
tests/integration/test_cli_process.py.
"""

from __future__ import annotations

import shlex
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from meshgate import cli, namespaces
from meshgate.cluster import ClusterError
from tests.support import REPO


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
                # a flag: store_true and its kin (older pytests leave nargs out)
                if attrs.get("nargs") == 0 or str(attrs.get("action", "")).startswith(
                        ("store_true", "store_false", "store_const", "count")):
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

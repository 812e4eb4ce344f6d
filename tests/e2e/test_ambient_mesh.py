"""The suite run whole against ``localmesh --mesh ambient``, as a user runs it against a
cluster it did not create (``meshgate run --target kubeconfig``): with the namespace in the
ambient data plane, without and with a waypoint, and a sidecar namespace beside them on
the same cluster (Istio's ambient profile keeps injection). Each run passes, finds the data
plane by the namespace's labels, skips only what checks sidecars (saying so), and records
the data plane each scenario met in run.json."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from localmesh.cli import Handle
from localmesh.shape import Shape
from tests.support import REPO, boot_localmesh, child_env, needs_prometheus

pytestmark = needs_prometheus


@pytest.fixture(scope="module")
def ambient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handle]:
    with boot_localmesh(tmp_path_factory.mktemp("ambient-e2e"), mesh=True,
                        shape=Shape(mesh="ambient")) as handle:
        yield handle


def run_suite(handle: Handle, artifacts: Path, data_plane: str) -> tuple[str, dict]:
    r = subprocess.run(
        [sys.executable, "-m", "meshgate", "run", "--target", "kubeconfig", "--kubeconfig",
         str(handle.kubeconfig), "--data-plane", data_plane, "--", "-p", "no:cacheprovider",
         "--no-html-report", f"--artifacts={artifacts}", "-rs"],
        cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    return out, json.loads((artifacts / "run.json").read_text())


@pytest.mark.parametrize(("data_plane", "seen"), [
    ("ambient", "ambient (ztunnel, no waypoint)"),
    ("waypoint", "ambient (ztunnel, waypoint waypoint)"),
    ("sidecar", "sidecar (injected istio-proxy)"),
])
def test_the_gate_passes_on_each_data_plane(ambient: Handle, tmp_path: Path, data_plane: str,
                                             seen: str) -> None:
    out, run = run_suite(ambient, tmp_path, data_plane)
    scenarios = run["scenarios"]
    assert scenarios and not [s["name"] for s in scenarios if s["status"] == "failed"]
    met = {s["data_plane"] for s in scenarios if s.get("data_plane")}
    assert met == {seen}
    if data_plane == "sidecar":
        assert all(s["status"] == "passed" for s in scenarios), out[-2000:]
        return
    skipped = [s for s in scenarios if s["status"] == "skipped"]
    assert skipped and all("needs sidecars" in (s.get("error") or "") or any(
        "needs sidecars" in (st.get("error") or "") for st in s["steps"]) for s in skipped)
    routed = [c for s in scenarios for c in s.get("checked") or [] if "routes" in c
              or "ztunnel knows" in c]
    assert routed, "the routes scenarios say what they checked"
    if data_plane == "waypoint":
        assert any("the waypoint waypoint counts" in c for s in scenarios
                   for c in s.get("checked") or [])
    else:
        assert any("ztunnel knows" in c and "(HBONE)" in c for c in routed)

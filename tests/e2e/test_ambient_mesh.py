"""The suite run whole against ``localmesh --mesh ambient``, as a user runs it against a
cluster it did not create (``meshgate run --target kubeconfig``): with the namespace in the
ambient data plane, without and with a waypoint, with sidecars (Istio's ambient profile
keeps injection), and mixed (two workers, a sidecar namespace beside an ambient one). Each
run passes, finds the data plane by the namespace's labels, skips only what checks
sidecars (saying so, and only in ambient namespaces), checks the callers' identities over
mutual TLS where their HBONE ends, and records the data plane each scenario met in
run.json."""

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


def run_suite(handle: Handle, artifacts: Path, data_plane: str,
              extra: tuple[str, ...] = ()) -> tuple[str, dict]:
    r = subprocess.run(
        [sys.executable, "-m", "meshgate", "run", "--target", "kubeconfig", "--kubeconfig",
         str(handle.kubeconfig), "--data-plane", data_plane, "--", "-p", "no:cacheprovider",
         "--no-html-report", f"--artifacts={artifacts}", "-rs", *extra],
        cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    return out, json.loads((artifacts / "run.json").read_text())


NO_MIXER = "this mesh has no Mixer"


def why(scenario: dict) -> str:
    """A scenario's skip reason, on it or on the step that skipped it."""
    return " ".join([scenario.get("error") or "",
                     *(st.get("error") or "" for st in scenario["steps"])])


AMBIENT = "ambient (ztunnel, no waypoint)"
SIDECAR = "sidecar (injected istio-proxy)"


@pytest.mark.parametrize(("data_plane", "seen", "extra"), [
    pytest.param("ambient", {AMBIENT}, (), id="ambient"),
    pytest.param("waypoint", {"ambient (ztunnel, waypoint waypoint)"}, (), id="waypoint"),
    pytest.param("sidecar", {SIDECAR}, (), id="sidecar"),
    # Two workers: gw0's namespace has sidecars, gw1's is ambient, side by side.
    pytest.param("mixed", {SIDECAR, AMBIENT}, ("-n", "2"), id="mixed"),
])
def test_the_gate_passes_on_each_data_plane(ambient: Handle, tmp_path: Path, data_plane: str,
                                             seen: set[str], extra: tuple[str, ...]) -> None:
    out, run = run_suite(ambient, tmp_path, data_plane, extra)
    scenarios = run["scenarios"]
    assert scenarios and not [s["name"] for s in scenarios if s["status"] == "failed"]
    met = {s["data_plane"] for s in scenarios if s.get("data_plane")}
    assert met == seen
    # Istio 1.28 has no Mixer: its one scenario is skipped on every data plane, saying so.
    skipped = [s for s in scenarios if s["status"] == "skipped" and NO_MIXER not in why(s)]
    assert [s for s in scenarios if NO_MIXER in why(s)], "the Mixer scenario says why it skips"
    if data_plane == "sidecar":
        assert skipped == [] and all(s["status"] in ("passed", "skipped")
                                     for s in scenarios), out[-2000:]
        return
    # With two workers, the ambient one may or may not draw a sidecar check.
    assert skipped or data_plane == "mixed", "the sidecar checks skip on ambient, saying so"
    assert all("needs sidecars" in why(s) for s in skipped), [why(s) for s in skipped]
    assert all(s.get("data_plane") == AMBIENT or "waypoint" in (s.get("data_plane") or "")
               for s in skipped), "only ambient namespaces skip the sidecar checks"
    checked = [c for s in scenarios for c in s.get("checked") or []]
    if data_plane != "mixed":  # with two workers, the routes may all run on the sidecar one
        routed = [c for c in checked if "routes" in c or "ztunnel knows" in c]
        assert routed, "the routes scenarios say what they checked"
        if data_plane == "ambient":
            assert any("ztunnel knows" in c and "(HBONE)" in c for c in routed)
    # The callers' identities over mutual TLS, read where their HBONE ends.
    identities = next(s for s in scenarios
                      if s["name"] == "the ingress gateway and composer call with their own "
                                      "identities")
    assert identities["status"] == "passed"
    gateway = "sa/istio-ingressgateway-service-account over mutual_tls"
    if identities["data_plane"] == AMBIENT:
        assert any("the destination ztunnel counts connections to composer" in c and
                   gateway in c for c in identities["checked"]), identities["checked"]
    elif identities["data_plane"] != SIDECAR:
        assert any("the waypoint waypoint counts" in c and gateway in c
                   for c in identities["checked"]), identities["checked"]

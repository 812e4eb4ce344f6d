"""Istio's canary upgrade gated with live traffic, as the suite's users run it:

    .venv/bin/meshgate change --change-dir DIR -- deploy/canary-upgrade.sh 1-2x

on a localmesh the change boots for itself, with the project's manifests deployed by the
gate checks. Done right (the new revision installed, the namespace relabelled, its
Deployments restarted with graceful drain, the gateway moved, the old revision removed) it
loses no request and the report lists every proxy's move ``default → 1-2x``; done in the
wrong order (the old istiod deleted before the workloads move) it is reported as
disruptive, with its failed requests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import REPO, child_env, needs_prometheus, process_table

pytestmark = needs_prometheus
VERSION = "1.29.0"
WORKLOADS = ("composer", "vp0", "membersrvc")


def _meshgate(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`meshgate` from this environment's bin folder, as a user runs it."""
    entry = Path(sys.executable).parent / "meshgate"
    command = [str(entry)] if entry.exists() else [sys.executable, "-m", "meshgate"]
    return subprocess.run([*command, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=child_env(ISTIO_VERSION=VERSION))


def _left_running(folder: Path) -> list[str]:
    return [p.command for p in process_table().values() if str(folder) in p.command]


def test_a_canary_upgrade_passes_the_gate_and_moves_every_proxy(tmp_path: Path) -> None:
    r = _meshgate("change", "--change-dir", str(tmp_path), "--change-keep", "never", "--",
                  "deploy/canary-upgrade.sh", "1-2x")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "the change passed the gate" in out
    report = json.loads((tmp_path / "change.json").read_text())
    assert report["ok"] and report["command_status"] == 0
    assert all(f["failed"] == 0 and f["sent"] > 0 for f in report["flows"]), report["flows"]
    changes = {line.split(":", 1)[0]: line for line in report["proxy_changes"]}
    for w in WORKLOADS:
        assert "revision default → 1-2x" in changes[w], changes
        assert f"image docker.io/istio/proxyv2:1.28.0 → docker.io/istio/proxyv2:{VERSION}" \
            in changes[w], changes
        assert "control plane default → 1-2x" in changes[w], changes
    assert report["proxies_after"] and all(
        (p["revision"], p["control_plane"]) == ("1-2x", "1-2x")
        for p in report["proxies_after"])
    command_output = (tmp_path / "command-output.txt").read_text()
    assert "revision default removed" in command_output, command_output[-2000:]
    assert _left_running(tmp_path) == []


def test_the_old_istiod_deleted_before_the_workloads_move_is_reported_as_disruptive(
        tmp_path: Path) -> None:
    wrong_order = ("sh", "-c", "kubectl -n istio-system delete deployment/istiod "
                               "service/istiod && deploy/canary-upgrade.sh 1-2x")
    r = _meshgate("change", "--change-dir", str(tmp_path), "--change-keep", "never", "--",
                  *wrong_order)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-4000:]
    assert "failed requests (at most 0 allowed)" in out, out[-4000:]
    report = json.loads((tmp_path / "change.json").read_text())
    assert not report["ok"] and report["command_status"] == 0  # the command itself worked
    assert all(f["failed"] > 0 for f in report["flows"]), report["flows"]
    assert _left_running(tmp_path) == []

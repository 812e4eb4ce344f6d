"""Gating a change with live traffic (``meshgate change``, ``meshgate run --phase``), as a
pipeline runs it, on a localmesh the change boots for itself.

A change that deletes vp0's pod without a grace period must fail the gate with its
numbers; a harmless one must pass; the two halves run as separate processes must give the
same verdict; a change command that fails or hangs is reported, bounded, and nothing of
the change is left running.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, child_env, needs_prometheus, process_table

pytestmark = needs_prometheus
DISRUPTIVE = ("sh", "-c", 'sleep 2; kubectl -n "$MESHGATE_NAMESPACE" delete pod -l app=vp0 '
              "--grace-period=0 --force; sleep 3")


def _meshgate(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meshgate", *args], cwd=REPO,
                          env=child_env(), capture_output=True, text=True, timeout=timeout)


def _left_running(folder: Path) -> list[str]:
    """Processes that still name the change's folder (its localmesh, its recorder)."""
    return [p.command for p in process_table().values() if str(folder) in p.command]


def test_a_disruptive_change_fails_the_gate_with_its_numbers(tmp_path: Path) -> None:
    r = _meshgate("change", "--change-dir", str(tmp_path), "--change-keep", "never", "--",
                  *DISRUPTIVE)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-3000:]
    assert "failed requests (at most 0 allowed)" in out, out[-3000:]
    assert "longest gap without a success" in out
    report = json.loads((tmp_path / "change.json").read_text())
    assert not report["ok"] and sum(f["failed"] for f in report["flows"]) > 0
    assert any("/chain/blocks/0" in f["flow"] and f["failed"] for f in report["flows"])
    assert "<svg" in (tmp_path / "change.html").read_text()
    assert _left_running(tmp_path) == []


def test_a_harmless_change_passes(tmp_path: Path) -> None:
    r = _meshgate("change", "--change-dir", str(tmp_path), "--", "true")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    report = json.loads((tmp_path / "change.json").read_text())
    assert report["ok"] and report["flows"] and all(f["failed"] == 0 for f in report["flows"])
    assert all(f["sent"] > 0 for f in report["flows"])
    assert "the change passed the gate" in out
    assert _left_running(tmp_path) == []


def test_the_two_halves_in_two_processes_give_the_same_verdict(tmp_path: Path) -> None:
    r = _meshgate("run", "--phase", "before", "--change-dir", str(tmp_path))
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    state = json.loads((tmp_path / "state.json").read_text())
    subprocess.run(DISRUPTIVE, env=child_env(KUBECONFIG=state["kubeconfig"],
                                             MESHGATE_NAMESPACE=state["namespaces"][0]),
                   check=True, timeout=120, capture_output=True)
    r = _meshgate("run", "--phase", "after", "--change-dir", str(tmp_path),
                  "--change-keep", "never")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-3000:]
    assert "failed requests (at most 0 allowed)" in out
    assert _left_running(tmp_path) == []


@pytest.mark.parametrize(("command", "says"), [
    (("sh", "-c", "echo started; exit 7"), "the change command exited with 7"),
    (("sh", "-c", "echo started; sleep 120"), "after its timeout"),
], ids=["fails", "hangs"])
def test_a_failing_or_hanging_change_command_is_reported(tmp_path: Path, command: tuple[str, ...],
                                                         says: str) -> None:
    r = _meshgate("change", "--change-dir", str(tmp_path), "--change-keep", "never",
                  "--change-timeout", "3", "--", *command)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-3000:]
    assert says in out, out[-3000:]
    assert "started" in (tmp_path / "command-output.txt").read_text()
    assert _left_running(tmp_path) == []

"""The suite against ``localmesh --runtime podman``: the workloads run as containers of
the image built from workloads/Dockerfile (beside real Envoy sidecars, still processes),
and ``meshgate run --target kubeconfig`` passes there as it does on processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from localmesh.kubelet.podman import LABEL_STATE_DIR
from localmesh.shape import Shape
from tests.support import (
    REPO,
    boot_localmesh,
    child_env,
    needs_podman,
    needs_prometheus,
    podman_out,
    workloads_image,
)

pytestmark = [needs_podman, needs_prometheus]


def _workload_containers(state_dir: Path) -> list[str]:
    out = podman_out("ps", "--filter", f"label={LABEL_STATE_DIR}={state_dir}", "--format",
                     '{{ index .Labels "io.kubernetes.container.name" }}')
    return sorted(out.split())


def test_the_gate_passes_with_the_workloads_in_containers(tmp_path: Path) -> None:
    workloads_image()
    with boot_localmesh(tmp_path / "state", mesh=True,
                        shape=Shape(runtime="podman")) as handle:
        r = subprocess.run(
            [sys.executable, "-m", "meshgate", "run", "--target", "kubeconfig",
             "--kubeconfig", str(handle.kubeconfig), "--keep", "always", "--", "-p",
             "no:cacheprovider", "--no-html-report", f"--artifacts={tmp_path / 'art'}"],
            cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=420)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out[-4000:]
        assert " passed" in out and " failed" not in out
        # The run kept its namespaces: their workloads are containers (`podman ps`), the
        # three and the traffic client of the scenarios that send requests from a pod.
        running = _workload_containers(handle.state_dir)
        assert {"composer", "membersrvc", "vp0"} <= set(running), running
    assert _workload_containers(handle.state_dir) == []


def test_the_ambient_gate_passes_with_the_workloads_in_containers(tmp_path: Path) -> None:
    """``--mesh ambient --runtime podman``: the workloads are containers redirected to the
    node's ztunnel (a process) on the pod's loopback addresses, and the gate passes on the
    ambient data plane."""
    workloads_image()
    with boot_localmesh(tmp_path / "state", mesh=True,
                        shape=Shape(mesh="ambient", runtime="podman")) as handle:
        r = subprocess.run(
            [sys.executable, "-m", "meshgate", "run", "--target", "kubeconfig",
             "--kubeconfig", str(handle.kubeconfig), "--data-plane", "ambient", "--keep",
             "always", "--", "-p", "no:cacheprovider", "--no-html-report",
             f"--artifacts={tmp_path / 'art'}"],
            cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=420)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out[-4000:]
        assert " passed" in out and " failed" not in out
        assert "ambient (ztunnel, no waypoint)" in (tmp_path / "art" / "run.json").read_text()
        running = _workload_containers(handle.state_dir)
        assert {"composer", "membersrvc", "vp0"} <= set(running), running
    assert _workload_containers(handle.state_dir) == []

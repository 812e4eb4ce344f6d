"""Safe on clusters the run did not create: the gate profile by default, and no
cluster-wide fault without the explicit opt-in (meshgate.profiles).

``meshgate run --target kubeconfig`` is pointed at a running localmesh, as a user points
it at a shared cluster; the control plane's and Prometheus's pods must keep their UIDs.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from localmesh.cli import Handle
from meshgate.cluster import Cluster
from tests.support import REPO, StopWaiting, boot_localmesh, child_env, needs_prometheus, poll

pytestmark = needs_prometheus


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handle]:
    """A cluster this run did not create."""
    with boot_localmesh(tmp_path_factory.mktemp("shared"), mesh=True) as handle:
        yield handle


def _uids(handle: Handle) -> dict[str, str]:
    cluster = Cluster(handle.kubeconfig)
    return {p["metadata"]["name"]: p["metadata"]["uid"]
            for p in cluster.list("v1", "Pod", "istio-system")
            if p["metadata"]["labels"].get("app") in ("istiod", "prometheus")}


def _meshgate_run(handle: Handle, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "meshgate", "run", "--target", "kubeconfig", "--kubeconfig",
         str(handle.kubeconfig), "--", "-p", "no:cacheprovider", "--no-html-report",
         f"--artifacts={tmp}", "-rs", *args],
        cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=300)


def test_no_profile_option_runs_the_gate_and_disrupts_nothing(shared: Handle,
                                                              tmp_path: Path) -> None:
    before = _uids(shared)
    assert len(before) == 2, before
    r = _meshgate_run(shared, tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "meshgate: profile gate (the default on a cluster this run did not create " \
           "(--target kubeconfig)" in out
    assert "deselected" in out  # the @nightly/@chaos scenarios
    assert _uids(shared) == before


def test_nightly_refuses_cluster_wide_faults_without_the_opt_in(shared: Handle,
                                                                tmp_path: Path) -> None:
    before = _uids(shared)
    r = _meshgate_run(shared, tmp_path, "--profile", "nightly", "-m", "chaos")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "cluster-wide faults are skipped without --allow-cluster-faults" in out
    assert "pass --allow-cluster-faults to run cluster-wide faults" in out
    assert "2 passed, 2 skipped" in out  # the faults inside the run's own namespace ran
    assert _uids(shared) == before


def test_an_interrupted_run_removes_its_namespaces(shared: Handle, tmp_path: Path) -> None:
    """SIGTERM in the middle of a run on a cluster it did not create: the run deletes its
    own namespaces before it exits (under --keep=on-failure an interrupt is no failure)."""
    cluster = Cluster(shared.kubeconfig)
    selector = "meshgate.io/run=shint"
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshgate", "run", "--target", "kubeconfig", "--kubeconfig",
         str(shared.kubeconfig), "--", "-p", "no:cacheprovider", "--no-html-report",
         f"--artifacts={tmp_path}", "--run-id", "shint"],
        cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def pods_running() -> bool:
        if proc.poll() is not None:
            raise StopWaiting("the run ended before it could be interrupted")
        names = [n["metadata"]["name"] for n in cluster.list("v1", "Namespace",
                                                             label_selector=selector)]
        return any(p.get("status", {}).get("phase") == "Running"
                   for n in names for p in cluster.list("v1", "Pod", n))

    poll(pods_running, timeout=120, interval=0.1, what="the run's pods running")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    left = [n["metadata"]["name"] for n in cluster.list("v1", "Namespace",
                                                          label_selector=selector)
            if not n["metadata"].get("deletionTimestamp")]
    assert left == []

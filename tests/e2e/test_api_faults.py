"""The gate against a struggling API server (``localmesh up --api-faults``), as a user runs
it: ``meshgate run --target kubeconfig --profile gate``. It passes through throttling,
restarts and expiring tokens, saying in run.json what the retries cost; against an API
server that dies it stops within the deploy timeout with one message naming the server
and its last answer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localmesh.api.faults import parse_metrics
from localmesh.shape import Shape
from meshgate.cluster import Cluster
from tests.support import REPO, boot_localmesh, child_env, needs_prometheus, poll

pytestmark = needs_prometheus

DEPLOY_TIMEOUT = 120.0  # meshgate.waiting's default for the deploy area


def _gate(kubeconfig: Path, artifacts: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "meshgate", "run", "--target", "kubeconfig", "--kubeconfig",
         str(kubeconfig), "--profile", "gate", "--", "-p", "no:cacheprovider",
         "--no-html-report", f"--artifacts={artifacts}"],
        cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=600)
    return r, time.monotonic() - t0


def _injected(kubeconfig: Path) -> dict[str, int]:
    status, body = Cluster(kubeconfig).raw_get("/metrics")
    assert status == 200, body[:200]
    return parse_metrics(body.decode()) or {"nothing": 0}


@pytest.mark.parametrize(("shape", "retried"), [
    (Shape(api_faults="flaky", api_fault_rate=0.05, api_fault_seed=16),
     ("429-retry-after", "500-retry-after", "503-retry-after")),
    (Shape(api_faults="restart", api_restart_every=8.0, api_restart_down=1.5),
     ("connection", "unreachable")),
    # Tokens of 2 s: a gate run on a quiet machine takes ~8 s, and must outlive several.
    (Shape(api_faults="token-expiry", api_token_ttl=2.0), ()),
], ids=["flaky", "restart", "token-expiry"])
def test_the_gate_passes_against_a_struggling_api_server(
        shape: Shape, retried: tuple[str, ...], tmp_path: Path) -> None:
    with boot_localmesh(tmp_path / "state", mesh=True, shape=shape) as handle:
        if shape.api_faults == "restart":
            # Start just after a restart, so that the run's first request finds the API
            # server up: one that never answered a run is a wrong address (as to kubectl)
            # and stops it at once. From there on the run rides out the restarts.
            poll(lambda: _injected(handle.kubeconfig).get("restart", 0) >= 1,
                 what="a first restart", timeout=20.0)
        r, wall = _gate(handle.kubeconfig, tmp_path / "artifacts")
        out = r.stdout + r.stderr
        assert r.returncode == 0, out[-4000:]
        # Polled: a restarting API server may be between restarts just now.
        injected = poll(lambda: _injected(handle.kubeconfig), what="the API server's "
                        "/metrics", timeout=15.0)
    run = json.loads((tmp_path / "artifacts" / "run.json").read_text())
    assert run["counts"]["failed"] == 0 and run["counts"]["passed"] > 0
    print(f"{shape.api_faults}: gate {wall:.1f} s, retries {run['api_retries']}, "
          f"injected {injected}")
    if retried:
        # The faults met the suite's requests, and the suite retried them.
        assert sum(run["api_retries"].get(cause, 0) for cause in retried) > 0, run
        assert sum(injected.values()) > 0, injected
    else:
        # Tokens lived shorter than the run: each was replaced before it expired.
        assert run["duration"] > 2 * shape.api_token_ttl


def test_the_gate_stops_with_one_message_when_the_api_server_dies(tmp_path: Path) -> None:
    # It answers the suite's first requests, then stops for good during the deploy.
    shape = Shape(api_faults="outage", api_outage_after=150)
    with boot_localmesh(tmp_path / "state", mesh=True, shape=shape) as handle:
        r, wall = _gate(handle.kubeconfig, tmp_path / "artifacts")
        server = handle.server
    out = r.stdout + r.stderr
    print(f"outage: exit {r.returncode} after {wall:.1f} s")
    assert r.returncode != 0, out[-4000:]
    assert wall < DEPLOY_TIMEOUT, out[-4000:]
    assert out.count(f"the API server at {server} ") == 1, out[-4000:]
    assert "it last answered 200 to " in out and "Traceback" not in out, out[-4000:]

"""``meshgate soak --runs N``: the suite N times against one localmesh, fresh namespaces
each time, to find flakes. Each run gets its own run id (so its own namespaces); the
failures are printed with their failure bundles. A flake found is a bug to fix at its
cause, not a reason to retry.

``--api-faults PROFILE`` boots that localmesh with a struggling API server
(localmesh/api/faults.py); the report then says how many retries each run's API clients
took (run.json's ``api_retries``) and how many faults the API server injected (its
``/metrics``).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshgate.bench import BenchResult, result_json, run_suite


@dataclass
class SoakReport:
    runs: list[BenchResult]
    api_faults: str = "none"
    injected: dict[str, int] = field(default_factory=dict)  # by the API server, by fault

    @property
    def retries(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for r in self.runs:
            total.update(r.api_retries)
        return dict(sorted(total.items()))

    @property
    def passed(self) -> int:
        return sum(1 for r in self.runs if r.returncode == 0)

    def to_json(self) -> dict:
        return {"runs": len(self.runs), "passed": self.passed, "api_faults": self.api_faults,
                "api_retries": self.retries, "injected_faults": self.injected,
                "wall_seconds": round(sum(r.wall for r in self.runs), 3),
                "results": [result_json(r) for r in self.runs]}

    def format(self) -> str:
        wall = sum(r.wall for r in self.runs)
        lines = [f"soak: {self.passed} of {len(self.runs)} runs passed in {wall:.0f} s"]
        if self.api_faults != "none":
            retries = self.retries
            lines.append(f"soak: API faults {self.api_faults}: the API server injected "
                         f"{_counts(self.injected)}; the clients retried "
                         f"{sum(retries.values())} time(s) ({_counts(retries)})")
        for i, r in enumerate(self.runs, 1):
            failed = [n for n, _, s in r.scenarios if s == "failed"]
            lines.append(f"  run {i:3d}: {'pass' if r.returncode == 0 else 'FAIL'} "
                         f"{r.wall:6.1f}s  {r.retries:4d} retries  {r.summary}")
            for name in failed:
                lines.append(f"           failed: {name}")
            for b in r.bundles:
                lines.append(f"           bundle: {b}")
        return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing"


def soak(runs: int, pytest_args: list[str], artifacts: Path,
         shape: dict[str, Any] | None = None) -> SoakReport:
    """Boot one localmesh (of ``shape``: localmesh.shape.Shape's fields), run the suite
    ``runs`` times against it, stop it."""
    from meshgate.targets.local import LocalTarget

    runs = max(1, min(runs, 500))
    target = LocalTarget(state_dir=Path(tempfile.gettempdir()), shape=dict(shape or {}))
    provided = target.start()
    results: list[BenchResult] = []
    injected: dict[str, int] = {}
    try:
        for i in range(runs):
            out = artifacts / f"run-{i + 1:03d}"
            if out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True)
            result = _run_with_cluster(pytest_args, out, provided.kubeconfig)
            results.append(result)
            print(f"soak: run {i + 1}/{runs}: {'pass' if result.returncode == 0 else 'FAIL'} "
                  f"({result.wall:.1f}s, {result.retries} API retries)", file=sys.stderr,
                  flush=True)
        injected = target.injected_faults()
    finally:
        target.stop()
    return SoakReport(results, str((shape or {}).get("api_faults", "none")), injected)


def owned_cluster_args(pytest_args: list[str]) -> list[str]:
    """The soak created its localmesh, so its runs may do what a run that creates its
    cluster does: the nightly profile by default, cluster-wide faults included. (Each run
    reuses the cluster through --kubeconfig, which on its own would make the safe choice
    for a cluster the run did not create: the gate profile.)"""
    extra = [] if any(a == "--profile" or a.startswith("--profile=") for a in pytest_args) \
        else ["--profile", "nightly"]
    return [*extra, "--allow-cluster-faults"]


def _run_with_cluster(pytest_args: list[str], out: Path, kubeconfig: Path) -> BenchResult:
    # The suite reuses the running localmesh through --kubeconfig (target local reuse).
    return run_suite(["--target", "local", "--kubeconfig", str(kubeconfig),
                      *owned_cluster_args(pytest_args), *pytest_args], out)

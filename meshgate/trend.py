"""Nightly runs as a trend: how long the mesh took to converge, run after run.

A run writes ``run.json`` (fixtures.plugins.collector); with ``--history DIR`` it also
keeps a copy there, one file per run. ``meshgate trend DIR`` reads them in the order they
ran and gives, per convergence area, each run's median and p95 wait, which runs failed,
and where the mesh's version changed — the picture is meshgate.reports.trend_html — and
flags regressions by one stated rule:

    an area regressed in the latest run when its median wait is more than
    ``FACTOR`` × the median of the previous runs' medians, and at least
    ``FLOOR_SECONDS`` more (so that noise on millisecond waits is not a regression),
    with at least ``MIN_HISTORY`` earlier runs to compare with.

The latest run can also be exported as OpenMetrics text for a Pushgateway, so a team can
chart it in the Grafana it already runs.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshgate.reports.model import SampleRecord, area_stats

FACTOR = 1.5
FLOOR_SECONDS = 0.05
MIN_HISTORY = 3
RULE = (f"an area regressed when the latest run's median wait exceeds {FACTOR:g}× the "
        f"median of the earlier runs' medians and is at least {FLOOR_SECONDS:g}s longer "
        f"(with {MIN_HISTORY} or more earlier runs)")


class TrendError(ValueError):
    """The history cannot be read (the message names the file and why)."""


@dataclass
class RunPoint:
    """One run, as the trend sees it."""

    run_id: str
    started: float
    version: str | None
    failed: bool
    counts: dict[str, int]
    areas: dict[str, tuple[float, float]]  # area -> (median, p95)
    duration: float
    source: str = ""


def keep(record_path: Path, history: Path) -> Path:
    """Copy a run's ``run.json`` into the history folder (named by start time and id)."""
    doc = json.loads(record_path.read_text())
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(float(doc.get("started") or 0)))
    history.mkdir(parents=True, exist_ok=True)
    out = history / f"{stamp}-{doc.get('run_id') or 'run'}.json"
    out.write_text(record_path.read_text())
    return out


def point(doc: dict[str, Any], source: str = "") -> RunPoint:
    samples = [SampleRecord.from_dict(s) for sc in doc.get("scenarios") or []
               for s in sc.get("convergence") or []]
    stats = area_stats(s for s in samples if s.converged)
    counts = {str(k): int(v) for k, v in (doc.get("counts") or {}).items()}
    return RunPoint(
        run_id=str(doc.get("run_id") or "?"), started=float(doc.get("started") or 0),
        version=doc.get("istio_version"),
        failed=bool(counts.get("failed", 0) or counts.get("error", 0)),
        counts=counts, areas={a.area: (a.median, a.p95) for a in stats},
        duration=float(doc.get("duration") or 0), source=source)


def load(history: Path) -> list[RunPoint]:
    """Every run in the folder, oldest first."""
    if not history.is_dir():
        raise TrendError(f"{history} is not a folder of run records: pass the folder given "
                         "to --history")
    points = []
    for path in sorted(history.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise TrendError(f"{path} is not a run record ({exc}): remove it or fix it") \
                from None
        if not isinstance(doc, dict) or "scenarios" not in doc:
            raise TrendError(f"{path} is not a run record (no scenarios): remove it")
        points.append(point(doc, path.name))
    if not points:
        raise TrendError(f"{history} holds no run records (*.json): run the suite with "
                         f"--history {history} first")
    return sorted(points, key=lambda p: p.started)


@dataclass
class Regression:
    area: str
    latest: float
    baseline: float

    def describe(self) -> str:
        return (f"{self.area}: median {self.latest:.3f}s, {self.latest / self.baseline:.1f}× "
                f"the earlier runs' {self.baseline:.3f}s")


def regressions(points: list[RunPoint]) -> list[Regression]:
    """The latest run's areas that regressed, by :data:`RULE`."""
    if len(points) <= MIN_HISTORY:
        return []
    *earlier, latest = points
    out = []
    for area, (median, _) in sorted(latest.areas.items()):
        previous = [p.areas[area][0] for p in earlier if area in p.areas]
        if len(previous) < MIN_HISTORY:
            continue
        baseline = statistics.median(previous)
        if median > FACTOR * baseline and median - baseline >= FLOOR_SECONDS:
            out.append(Regression(area, median, baseline))
    return out


def version_changes(points: list[RunPoint]) -> list[tuple[int, str]]:
    """(index of the run, "old → new") wherever the mesh's version changed."""
    out = []
    for i in range(1, len(points)):
        before, after = points[i - 1].version, points[i].version
        if before and after and before != after:
            out.append((i, f"{before} → {after}"))
    return out


@dataclass
class Trend:
    points: list[RunPoint]
    regressions: list[Regression] = field(default_factory=list)

    @classmethod
    def of(cls, history: Path) -> Trend:
        points = load(history)
        return cls(points, regressions(points))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def openmetrics(latest: RunPoint) -> str:
    """The latest run as OpenMetrics text (what a Pushgateway takes), ending in ``# EOF``."""
    lines = ["# TYPE meshgate_convergence_seconds gauge",
             "# HELP meshgate_convergence_seconds How long the mesh took to converge, "
             "per area (median and 95th percentile of the run's waits)."]
    for area, (median, p95) in sorted(latest.areas.items()):
        for quantile, value in (("0.5", median), ("0.95", p95)):
            lines.append(f'meshgate_convergence_seconds{{area="{_label(area)}",'
                         f'quantile="{quantile}"}} {value:.6f}')
    lines += ["# TYPE meshgate_scenarios gauge",
              "# HELP meshgate_scenarios Scenarios of the run, per status."]
    lines += [f'meshgate_scenarios{{status="{_label(k)}"}} {v}'
              for k, v in sorted(latest.counts.items())]
    lines += ["# TYPE meshgate_run_duration_seconds gauge",
              "# HELP meshgate_run_duration_seconds Wall time of the run.",
              f"meshgate_run_duration_seconds {latest.duration:.3f}",
              "# TYPE meshgate_run_failed gauge",
              "# HELP meshgate_run_failed 1 when a scenario failed.",
              f"meshgate_run_failed {int(latest.failed)}", "# EOF"]
    return "\n".join(lines) + "\n"

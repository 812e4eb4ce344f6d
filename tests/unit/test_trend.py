"""Nightly runs as a trend (meshgate.trend): the regression rule, version changes, and the
OpenMetrics export a Pushgateway takes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from meshgate.trend import RULE, Trend, TrendError, keep, openmetrics, regressions
from meshgate.trend import load as load_history


def run_doc(run_id: str, started: float, routes: list[float], *, failed: int = 0,
            version: str = "1.28.0") -> dict:
    samples = [{"area": "routes", "what": "x", "seconds": s, "converged": True, "polls": 1}
               for s in routes]
    samples.append({"area": "deploy", "what": "y", "seconds": 9.0, "converged": False,
                    "polls": 9})  # a timed-out wait is not a convergence time
    return {"run_id": run_id, "started": started, "duration": 12.0, "istio_version": version,
            "counts": {"passed": 10, "failed": failed},
            "scenarios": [{"convergence": samples}]}


def write_history(folder: Path, medians: list[float], **kw: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, m in enumerate(medians):
        doc = run_doc(f"r{i}", 1_000_000.0 + i * 86400, [m * 0.5, m, m * 1.5], **kw)
        (folder / f"{i:02d}.json").write_text(json.dumps(doc))
    return folder


def test_a_slower_latest_run_is_flagged_by_the_stated_rule(tmp_path: Path) -> None:
    trend = Trend.of(write_history(tmp_path, [0.2, 0.21, 0.19, 0.2, 0.5]))
    (flagged,) = trend.regressions
    assert flagged.area == "routes" and flagged.latest == 0.5 and flagged.baseline == 0.2
    assert "2.5× the earlier runs' 0.200s" in flagged.describe()
    assert "1.5×" in RULE


@pytest.mark.parametrize("medians", [
    [0.2, 0.21, 0.19, 0.2, 0.28],  # within the factor
    [0.01, 0.01, 0.01, 0.01, 0.04],  # 4× but under the absolute floor: noise
    [0.2, 0.2, 0.6],  # too little history
])
def test_what_is_not_a_regression(tmp_path: Path, medians: list[float]) -> None:
    assert regressions(load_history(write_history(tmp_path, medians))) == []


def test_timed_out_waits_are_not_convergence_times(tmp_path: Path) -> None:
    (only,) = load_history(write_history(tmp_path, [0.2]))
    assert "deploy" not in only.areas and only.areas["routes"] == pytest.approx((0.2, 0.3))


def test_the_latest_run_as_openmetrics(tmp_path: Path) -> None:
    (latest,) = load_history(write_history(tmp_path, [0.2], failed=1))
    text = openmetrics(latest)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}
    assert samples[("meshgate_convergence_seconds", (("area", "routes"),
                                                     ("quantile", "0.5")))] == 0.2
    assert samples[("meshgate_scenarios", (("status", "failed"),))] == 1
    assert samples[("meshgate_run_failed", ())] == 1


def test_bad_history_gets_one_message(tmp_path: Path) -> None:
    with pytest.raises(TrendError, match="holds no run records"):
        load_history(tmp_path)
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(TrendError, match=r"x.json is not a run record"):
        load_history(tmp_path)
    with pytest.raises(TrendError, match="is not a folder"):
        load_history(tmp_path / "missing")


def test_keep_names_the_copy_by_time_and_run(tmp_path: Path) -> None:
    record = tmp_path / "run.json"
    record.write_text(json.dumps(run_doc("abc", 0.0, [0.1])))
    kept = keep(record, tmp_path / "history")
    assert kept.name == "19700101T000000-abc.json"
    assert json.loads(kept.read_text())["run_id"] == "abc"

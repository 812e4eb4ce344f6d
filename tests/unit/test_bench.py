"""``meshgate bench``: the numbers it prints and the arguments it refuses.

The formatting and the comparison are checked on synthetic results (a real run takes
10 s and is what the closing notes report); the argument checks go through ``main``,
which must refuse bad input in one line before running anything.
"""

from __future__ import annotations

import json

import pytest

from meshgate import cli
from meshgate.bench import BenchResult, format_comparison, format_result, median_run


def _result(wall: float, *, code: int = 0, boot: float = 0.7,
            waits: tuple[float, ...] = (1.0, 4.0)) -> BenchResult:
    return BenchResult(
        returncode=code, wall=wall, boot=boot,
        scenarios=[("test_routes", 0.1, "passed")],
        convergence=[{"area": "telemetry", "seconds": w} for w in waits],
        peak_mib=400.0, summary="1 passed")


def test_overhead_ratio_is_wall_over_boot_plus_waits() -> None:
    r = _result(6.85, boot=0.85, waits=(1.0, 4.0))
    assert r.overhead_ratio == pytest.approx(6.85 / 5.85)
    text = format_result(r)
    assert "overhead ratio: 1.17" in text and "telemetry" in text


def test_median_run_is_the_middle_wall_time() -> None:
    runs = [_result(w) for w in (9.0, 8.0, 12.0, 10.0)]
    assert median_run(runs).wall == 9.0  # the lower middle of an even count
    assert median_run(runs[:3]).wall == 9.0


def test_comparison_says_which_count_is_slower() -> None:
    text = format_comparison({"0": [_result(9.0), _result(8.0), _result(10.0)],
                              "2": [_result(9.5), _result(8.5), _result(13.0, code=1)]})
    lines = text.splitlines()
    assert lines[1].split()[:6] == ["-n", "0", "3", "9.00", "8.00", "10.00"]
    assert lines[2].split()[-1] == "1"  # one failed run at -n 2
    assert lines[-1] == "-n 2 vs -n 0: median wall +0.50s (+6%): slower"
    faster = format_comparison({"0": [_result(9.0)], "2": [_result(8.9)]})
    assert faster.splitlines()[-1].endswith("no slower")


def test_comparison_names_a_failed_runs_scenarios_and_kept_artifacts() -> None:
    failed = _result(13.0, code=1)
    failed.scenarios.append(("test_telemetry[/login]", 4.0, "failed"))
    failed.kept = "/tmp/meshgate-bench-x"
    text = format_comparison({"0": [_result(9.0)], "2": [_result(9.5), failed]})
    assert ("-n 2 run 2 failed (exit 1): test_telemetry[/login]; "
            "artifacts kept in /tmp/meshgate-bench-x") in text.splitlines()


@pytest.mark.parametrize("argv, says", [
    (["--workers", "2"], "--workers '2' is not a list of worker counts"),
    (["--workers", "0,two"], "is not a list of worker counts"),
    (["--workers", "0,2", "-n", "2"], "both --workers and pytest's -n were given"),
    (["--workers", "0,2", "--repeat", "0"], "--repeat 0 is out of range"),
    (["--workers", "0,2", "--keep-artifacts", "x"], "--keep-artifacts keeps one run"),
])
def test_bad_arguments_get_one_line_and_run_nothing(capsys: pytest.CaptureFixture[str],
                                                    argv: list[str], says: str) -> None:
    code = cli.main(["bench", *argv])
    out, err = capsys.readouterr()
    assert code == cli.USAGE_ERROR and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("meshgate bench: error: "), err
    assert says in err


def test_a_leading_double_dash_only_separates(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`meshgate bench -- --profile gate` hands pytest `--profile gate`, not a file "--"."""
    seen: list[list[str]] = []
    result = BenchResult(0, 1.0, 0.5, [], [], 10.0, "1 passed")
    monkeypatch.setattr("meshgate.bench.bench",
                        lambda args, keep: (seen.append(args), result)[1])
    assert cli.main(["bench", "--", "--profile", "gate"]) == 0
    assert seen == [["--profile", "gate"]]
    assert "total wall time: 1.00s" in capsys.readouterr().out


def test_bench_json_is_one_object_with_the_numbers(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    result = BenchResult(1, 12.5, 0.7, [("s1", 1.5, "passed"), ("s2", 2.0, "failed")],
                         [{"area": "routes", "seconds": 0.2}, {"area": "routes",
                                                               "seconds": 0.4}], 512.0,
                         "1 failed, 1 passed")
    monkeypatch.setattr("meshgate.bench.bench", lambda args, keep: result)
    assert cli.main(["bench", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["wall_seconds"] == 12.5 and doc["returncode"] == 1
    assert doc["scenarios"][1] == {"name": "s2", "seconds": 2.0, "status": "failed"}
    assert doc["convergence"]["routes"] == {"count": 2, "median": pytest.approx(0.3),
                                            "max": 0.4, "sum": pytest.approx(0.6)}

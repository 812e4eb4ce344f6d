"""``meshgate bench`` and ``meshgate soak``: the suite on localmesh, measured or repeated.

Both run the suite as a child process (``pytest steps``) through :mod:`meshgate.children`:
a signal stops the run in progress, lets it clean up, and ends the command with 128 + the
signal instead of starting the next run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from meshgate.cli.base import CommandError, print_json


def configure_bench(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``meshgate bench`` (other arguments go to pytest)."""
    parser.add_argument("--keep-artifacts", metavar="DIR", default=None,
                        help="keep the run's reports and convergence logs in DIR")
    parser.add_argument("--workers", metavar="N,M", default=None,
                        help="compare xdist worker counts, e.g. 0,2 (runs alternate)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs per worker count with --workers (default 1); calls of "
                             "the routes check per size with --mesh-sizes (default 5)")
    parser.add_argument("--mesh-sizes", metavar="N,M,...", default=None,
                        help="measure the checks and the mesh at these numbers of extra "
                             "services (localmesh --synthetic-services), e.g. 10,500,2000")
    parser.add_argument("--json", action="store_true",
                        help="print the numbers as one JSON object")


def _worker_counts(text: str) -> list[str]:
    counts = [c.strip() for c in text.split(",") if c.strip()]
    if len(counts) < 2 or any(not c.isdigit() or int(c) > 64 for c in counts):
        raise CommandError(f"--workers {text!r} is not a list of worker counts", None,
                           "give two or more counts from 0 to 64, e.g. --workers 0,2")
    return counts


def run_bench(args: argparse.Namespace) -> int:
    """The whole suite on localmesh from cold, with the numbers that matter."""
    from meshgate.bench import (
        bench,
        compare,
        comparison_code,
        format_compared,
        format_result,
        result_json,
    )

    extra = list(getattr(args, "passthrough", None) or [])
    if args.repeat is not None and not 1 <= args.repeat <= 50:
        raise CommandError(f"--repeat {args.repeat} is out of range", None,
                           "give a number of runs from 1 to 50")
    if args.mesh_sizes is not None:
        return _bench_sizes(args, extra)
    if args.workers is None:
        result = bench(extra, Path(args.keep_artifacts) if args.keep_artifacts else None)
        if args.json:
            print_json(result_json(result))
        else:
            print(format_result(result))
        return result.returncode
    if any(a in ("-n", "--numprocesses") or a.startswith(("-n", "--numprocesses="))
           for a in extra):
        raise CommandError("both --workers and pytest's -n were given", None,
                           "give the worker counts to compare in --workers only")
    if args.keep_artifacts:
        raise CommandError("--keep-artifacts keeps one run; --workers makes several",
                           None, "drop one of the two options")
    results = compare(extra, _worker_counts(args.workers), args.repeat or 1)
    if args.json:
        print_json({w: [result_json(r) for r in runs] for w, runs in results.items()})
    else:
        print(format_compared(results))
    return comparison_code(results)


def _bench_sizes(args: argparse.Namespace, extra: list[str]) -> int:
    """``--mesh-sizes``: a fresh localmesh per size, the checks and pushes measured."""
    from meshgate.scale import format_sizes, measure, parse_sizes

    for given, option in ((args.workers, "--workers"), (args.keep_artifacts,
                                                         "--keep-artifacts"),
                          (extra or None, " ".join(extra))):
        if given is not None:
            raise CommandError(f"--mesh-sizes measures the checks, not the suite: {option} "
                               "does not apply", None, f"drop {option}, or run the suite's "
                               "bench without --mesh-sizes")
    try:
        sizes = parse_sizes(args.mesh_sizes)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    results = [measure(n, args.repeat or 5) for n in sizes]
    if args.json:
        print_json({"sizes": [r.to_json() for r in results]})
    else:
        print(format_sizes(results))
    return 0


def configure_soak(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``meshgate soak`` (other arguments go to pytest)."""
    parser.add_argument("--runs", type=int, default=20, help="how many runs (default 20)")
    parser.add_argument("--artifacts", default="artifacts/soak",
                        help="where each run's reports and failure bundles go")
    parser.add_argument("--json", action="store_true",
                        help="print every run's result as one JSON object")


def run_soak(args: argparse.Namespace) -> int:
    """The suite N times against one localmesh; passes, failures and their bundles."""
    from meshgate.soak import soak

    if args.runs < 1 or args.runs > 500:
        raise CommandError(f"--runs {args.runs} is out of range", None,
                           "give a number of runs from 1 to 500")
    report = soak(args.runs, list(getattr(args, "passthrough", None) or []),
                  Path(args.artifacts).resolve())
    if args.json:
        print_json(report.to_json())
    else:
        print(report.format())
    return 0 if report.passed == len(report.runs) else 1


def configure_trend(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``meshgate trend``."""
    parser.add_argument("history", metavar="DIR",
                        help="the folder the runs kept their run.json in (--history DIR)")
    parser.add_argument("--output", metavar="FILE", default=None,
                        help="where to write the page (default DIR/trend.html)")
    parser.add_argument("--openmetrics", metavar="FILE", default=None,
                        help="also write the latest run as OpenMetrics text ('-': stdout), "
                             "for a Pushgateway")


def run_trend(args: argparse.Namespace) -> int:
    """The trend page of the runs in DIR; exit 1 when the latest run regressed."""
    from meshgate.reports.trend_html import render_trend
    from meshgate.trend import Trend, TrendError, openmetrics

    history = Path(args.history)
    try:
        trend = Trend.of(history)
    except TrendError as error:
        raise CommandError(str(error)) from None
    out = Path(args.output) if args.output else history / "trend.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_trend(trend), encoding="utf-8")
    if args.openmetrics == "-":
        print(openmetrics(trend.points[-1]), end="")
    elif args.openmetrics:
        Path(args.openmetrics).write_text(openmetrics(trend.points[-1]), encoding="utf-8")
    for regression in trend.regressions:
        print(f"meshgate trend: regression: {regression.describe()}", file=sys.stderr)
    if args.openmetrics != "-":
        print(f"meshgate trend: {len(trend.points)} runs; page {out}")
    return 1 if trend.regressions else 0

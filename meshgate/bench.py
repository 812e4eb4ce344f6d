"""``meshgate bench``: the whole suite on localmesh from cold, measured.

It runs ``pytest steps`` in a subprocess (so the numbers include everything a user
waits for), samples the memory of the whole process tree while it runs, and reads back
the JUnit report (time per scenario) and the convergence logs (every wait). It prints
the localmesh boot, each scenario's time, every convergence area's median and max, the
total wall time, the peak memory, and the overhead ratio:

    total wall time ÷ (boot + the sum of the measured convergence waits)

i.e. how much time the suite adds on top of what the mesh itself needs.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from meshgate import children

REPO = Path(__file__).resolve().parents[1]


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [root]
    while todo:
        cur = todo.pop()
        out.append(cur)
        todo.extend(children.get(cur, []))
    return out


def pss_mib(pids: list[int]) -> float:
    """Proportional set size: shared pages (Envoy's binary) are counted once overall."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total / 1024


@dataclass
class BenchResult:
    returncode: int
    wall: float
    boot: float | None
    scenarios: list[tuple[str, float, str]]
    convergence: list[dict]
    peak_mib: float
    summary: str = ""
    bundles: list[str] = field(default_factory=list)
    kept: str | None = None  # the artifacts folder of a failed run, left for reading

    @property
    def failed(self) -> list[str]:
        return [name for name, _, status in self.scenarios if status == "failed"]

    @property
    def waits(self) -> float:
        return sum(s["seconds"] for s in self.convergence)

    @property
    def overhead_ratio(self) -> float | None:
        base = (self.boot or 0.0) + self.waits
        return self.wall / base if base > 0 else None


def run_suite(pytest_args: list[str], artifacts: Path, *, sample_every: float = 1.0,
              timeout: float = 1800.0) -> BenchResult:
    """Run the suite once; bounded by ``timeout``. Memory is sampled once a second: reading
    every process's smaps is not free, and a faster sampler would slow what it measures."""
    junit = artifacts / "junit.xml"
    if "--target" not in pytest_args:
        pytest_args = ["--target", "local", *pytest_args]
    cmd = [sys.executable, "-m", "pytest", "steps", "-p", "no:cacheprovider", "-q",
           f"--artifacts={artifacts}", f"--junitxml={junit}", "--no-html-report",
           *pytest_args]
    start = time.monotonic()
    child = children.start(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = 0.0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, pss_mib(process_tree(child.process.pid)))
            stop.wait(sample_every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        returncode, output, _ = children.collect(child, timeout)
    finally:
        stop.set()
        sampler.join(timeout=5)
    wall = time.monotonic() - start
    m = re.search(r"booted in ([0-9.]+)s", output)
    scenarios = []
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            status = "failed" if case.find("failure") is not None or case.find(
                "error") is not None else "skipped" if case.find("skipped") is not None \
                else "passed"
            scenarios.append((case.get("name", "?"), float(case.get("time", 0)), status))
    convergence = []
    for f in sorted(artifacts.glob("convergence-*.json")):
        convergence += json.loads(f.read_text())
    last = [line for line in output.splitlines() if line.strip()]
    bundles = sorted(str(p) for p in (artifacts / "bundles").glob("*/*") if p.is_dir())
    return BenchResult(returncode, wall, float(m.group(1)) if m else None,
                       scenarios, convergence, peak, last[-1] if last else "", bundles)


def format_result(r: BenchResult) -> str:
    lines = [f"localmesh boot: {r.boot:.2f}s" if r.boot is not None else
             "localmesh boot: (not measured: not the local target)"]
    lines.append("")
    lines.append(f"{'scenario':78} {'seconds':>8}  status")
    for name, secs, status in r.scenarios:
        lines.append(f"{name[:78]:78} {secs:8.2f}  {status}")
    lines.append("")
    lines.append(f"{'convergence (area)':24} {'count':>5} {'median':>8} {'max':>8} {'sum':>8}")
    areas: dict[str, list[float]] = {}
    for s in r.convergence:
        areas.setdefault(s["area"], []).append(s["seconds"])
    for area, values in sorted(areas.items()):
        lines.append(f"{area:24} {len(values):5d} {statistics.median(values):8.3f} "
                     f"{max(values):8.3f} {sum(values):8.2f}")
    lines.append("")
    lines.append(f"total wall time: {r.wall:.2f}s")
    lines.append(f"peak memory (PSS of the whole run): {r.peak_mib:.0f} MiB")
    ratio = r.overhead_ratio
    lines.append(f"overhead ratio: {ratio:.2f}" if ratio else "overhead ratio: n/a")
    lines.append(f"result: {r.summary}")
    return "\n".join(lines)


def result_json(r: BenchResult) -> dict:
    """One run's numbers as plain data (``meshgate bench --json``)."""
    areas: dict[str, list[float]] = {}
    for s in r.convergence:
        areas.setdefault(s["area"], []).append(s["seconds"])
    return {
        "returncode": r.returncode, "wall_seconds": round(r.wall, 3),
        "boot_seconds": r.boot, "peak_pss_mib": round(r.peak_mib, 1),
        "overhead_ratio": None if r.overhead_ratio is None else round(r.overhead_ratio, 3),
        "summary": r.summary, "bundles": r.bundles, "kept": r.kept,
        "failed": r.failed,
        "scenarios": [{"name": n, "seconds": t, "status": st} for n, t, st in r.scenarios],
        "convergence": {a: {"count": len(v), "median": statistics.median(v), "max": max(v),
                            "sum": sum(v)} for a, v in sorted(areas.items())},
    }


def bench(pytest_args: list[str], keep: Path | None = None) -> BenchResult:
    """Run once from cold."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return run_suite(pytest_args, keep)
    with tempfile.TemporaryDirectory(prefix="meshgate-bench-") as tmp:
        return run_suite(pytest_args, Path(tmp))


def median_run(runs: list[BenchResult]) -> BenchResult:
    """The run whose wall time is the median (the lower one for an even count)."""
    ordered = sorted(runs, key=lambda r: r.wall)
    return ordered[(len(ordered) - 1) // 2]


def format_comparison(results: dict[str, list[BenchResult]]) -> str:
    """One line per worker count (median, min and max wall time, median overhead ratio,
    peak memory, failures), then each count's median run against the first count's.

    Several alternating runs, not one: a new pod's first scrape waits for Prometheus's
    5-second discovery batch, so single runs differ by seconds for reasons that are not
    the suite's.
    """
    lines = [f"{'workers':>8} {'runs':>5} {'median':>8} {'min':>8} {'max':>8} "
             f"{'ratio':>6} {'peak MiB':>9} {'failed':>7}"]
    medians: dict[str, float] = {}
    for workers, runs in results.items():
        walls = [r.wall for r in runs]
        ratios = [r.overhead_ratio for r in runs if r.overhead_ratio]
        medians[workers] = statistics.median(walls)
        lines.append(
            f"{'-n ' + workers:>8} {len(runs):5d} {medians[workers]:8.2f} {min(walls):8.2f} "
            f"{max(walls):8.2f} {statistics.median(ratios) if ratios else float('nan'):6.2f} "
            f"{max(r.peak_mib for r in runs):9.0f} "
            f"{sum(1 for r in runs if r.returncode):7d}")
    for workers, runs in results.items():
        for i, r in enumerate(runs, 1):
            if r.returncode:
                lines.append(f"-n {workers} run {i} failed (exit {r.returncode}): "
                             f"{', '.join(r.failed) or r.summary}"
                             + (f"; artifacts kept in {r.kept}" if r.kept else ""))
    first, *others = list(results)
    for workers in others:
        diff = medians[workers] - medians[first]
        lines.append(f"-n {workers} vs -n {first}: median wall {diff:+.2f}s "
                     f"({100 * diff / medians[first]:+.0f}%): "
                     f"{'no slower' if diff <= 0 else 'slower'}")
    return "\n".join(lines)


def compare(pytest_args: list[str], workers: list[str], repeat: int
            ) -> dict[str, list[BenchResult]]:
    """Run the suite ``repeat`` times for each worker count, alternating the counts so that
    whatever else the machine does falls on all of them."""
    results: dict[str, list[BenchResult]] = {w: [] for w in workers}
    for _ in range(repeat):
        for w in workers:
            tmp = Path(tempfile.mkdtemp(prefix="meshgate-bench-"))
            try:
                result = run_suite([*pytest_args, "-n", w], tmp)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            results[w].append(result)
            if result.returncode == 0:
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                # A failed run's artifacts (junit, bundles, logs) are what explains it.
                result.kept = str(tmp)
    return results


def comparison_code(results: dict[str, list[BenchResult]]) -> int:
    failed = [r.returncode for runs in results.values() for r in runs if r.returncode]
    return failed[0] if failed else 0


def format_compared(results: dict[str, list[BenchResult]]) -> str:
    """Each count's median run in full, then the comparison."""
    parts = []
    for w, runs in results.items():
        parts.append(f"== -n {w}: the median of {len(runs)} runs ==")
        parts.append(format_result(median_run(runs)))
        parts.append("")
    parts.append(format_comparison(results))
    return "\n".join(parts)

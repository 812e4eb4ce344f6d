"""Scenarios that count scraped telemetry are dealt over the xdist workers, one group per
worker, and the chaos scenarios share the first group (fixtures/plugins/scheduling.py).

A tiny pytest-bdd project runs with ``-n 2 --dist loadgroup`` (what pyproject's addopts
select) through the real plugin; each scenario records the worker it ran on. Plain load
balancing would interleave the tagged and untagged scenarios on both workers, so the test
fails without the grouping — or when pytest-xdist stops honouring ``xdist_group``, as it
does on pytest 9.2 (pytest-dev/pytest-xdist#1386; pyproject pins pytest below it).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support import child_env

FEATURE = """\
Feature: mixed
{scenarios}
"""

CONFTEST = '''\
import os
from pathlib import Path

from pytest_bdd import parsers, then

pytest_plugins = ["fixtures.plugins.scheduling"]


@then(parsers.parse("record {name}"))
def record(name):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(Path(__file__).parent / "ran.txt", "a") as f:
        f.write(f"{name} {worker}\\n")
'''


def _project(root: Path) -> None:
    blocks = []
    for i in range(6):
        blocks.append(f"  @telemetry\n  Scenario: scraped {i}\n    Then record scraped-{i}\n")
        blocks.append(f"  Scenario: proxy {i}\n    Then record proxy-{i}\n")
    blocks.append("  @chaos\n  Scenario: chaos\n    Then record scraped-chaos\n")
    (root / "features").mkdir()
    (root / "features" / "mixed.feature").write_text(FEATURE.format(scenarios="\n".join(blocks)))
    (root / "conftest.py").write_text(CONFTEST)
    (root / "test_mixed.py").write_text("from pytest_bdd import scenarios\n\n"
                                        "scenarios('features')\n")
    (root / "pytest.ini").write_text(textwrap.dedent("""\
        [pytest]
        markers =
            telemetry: telemetry
            graph: graph
            chaos: chaos
        """))


def test_scraped_scenarios_are_dealt_one_group_per_worker(tmp_path: Path) -> None:
    _project(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "2",
         "--dist", "loadgroup"],
        cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    ran = dict(line.split() for line in (tmp_path / "ran.txt").read_text().splitlines())
    assert len(ran) == 13, ran
    # Dealt in collection order: scraped-0, -2, -4 (and the chaos scenario) in one group,
    # scraped-1, -3, -5 in the other; each group on one worker, the two on different ones.
    first = {ran[f"scraped-{i}"] for i in (0, 2, 4)} | {ran["scraped-chaos"]}
    second = {ran[f"scraped-{i}"] for i in (1, 3, 5)}
    assert len(first) == 1 and len(second) == 1, f"a group was split over workers: {ran}"
    assert first != second, f"both groups ran on one worker: {ran}"
    assert first | second == {"gw0", "gw1"}, ran

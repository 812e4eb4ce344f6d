"""Time limits per test folder, so that a hung test fails with its stack (pytest-timeout)
instead of hanging CI until the job's own limit.

pyproject's ``timeout`` (900 s) is sized for the acceptance scenarios, whose legitimate
waits add up to minutes on a slow cluster (the default per-area waits alone are 120 + 60 +
90 + 90 + 60 s). The tests here are far quicker, so each folder gets its own limit, well
above what its slowest test takes on a shared 2-core machine (``--durations`` on
2026-12-05: e2e 18.5 s, localmesh 8.4 s, integration 1.9 s, unit well under a second, an
acceptance scenario 6 s); e2e's is above the time limits of the suite runs it starts (up to
420 s each), so those fail first, with their own message. A ``@pytest.mark.timeout`` on a
test, or ``--timeout`` on the command line (0 turns the limits off), wins over these.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent
TIME_LIMITS = {"unit": 60, "integration": 300, "localmesh": 300, "e2e": 1200}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("timeout", None) is not None:
        return  # the command line's --timeout is for every test
    for item in items:
        try:
            folder = item.path.relative_to(HERE).parts[0]
        except ValueError:
            continue  # not a test of this folder (the acceptance scenarios)
        if folder in TIME_LIMITS and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TIME_LIMITS[folder]))
        if folder in TIME_LIMITS and item.get_closest_marker("xdist_group") is None:
            # Under xdist (`./dev test` runs -n 2, --dist loadgroup) a module's tests stay
            # on one worker: its module-scoped fixtures (a booted localmesh, deployed
            # workloads) are set up once, not once per worker.
            item.add_marker(pytest.mark.xdist_group(item.path.relative_to(HERE).as_posix()))

"""The scheduling's pure parts (fixtures/plugins/scheduling.py): the group of a scenario for a
worker count, the node ids reports show, and pyproject selecting ``--dist loadgroup``.
The grouping through the real plugin under ``-n 2`` is
tests/integration/test_scheduling_xdist.py."""

from __future__ import annotations

from tests.support import REPO


def test_groups_follow_the_worker_count() -> None:
    from fixtures.plugins.scheduling import group_of

    assert [group_of(i, 2) for i in range(4)] == ["scraped-0", "scraped-1"] * 2
    assert {group_of(i, 1) for i in range(4)} == {"scraped-0"}


def test_pyproject_selects_loadgroup() -> None:
    """The grouping only exists with ``--dist loadgroup``; without ``-n`` it means nothing."""
    import tomllib

    addopts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"][
        "ini_options"]["addopts"]
    assert "--dist loadgroup" in addopts


def test_public_nodeid_drops_only_xdists_group_suffix() -> None:
    from fixtures.plugins.scheduling import public_nodeid

    base = "steps/test_scenarios.py::test_counted[/login-composer]"
    assert public_nodeid(base + "@scraped-0") == base
    assert public_nodeid(base) == base
    assert public_nodeid("t.py::test[a@b]") == "t.py::test[a@b]"  # an @ inside a parameter
    assert public_nodeid("t.py::test_x@g") == "t.py::test_x"

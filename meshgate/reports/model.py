"""What the reports are made of: scenarios, their steps, waits, observed edges and bundles.

The records are plain dataclasses that turn into JSON-able dicts and back, because a
scenario that ran in an xdist worker reaches the controller only as data attached to
pytest's test reports. Every report format (console, cucumber JSON, HTML) is rendered
from the same :class:`RunRecord`, so they cannot disagree about what happened.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "STATUSES",
    "AreaStats",
    "EdgeRecord",
    "FeatureInfo",
    "RunRecord",
    "SampleRecord",
    "ScenarioRecord",
    "StepRecord",
    "area_stats",
    "merge_edges",
    "parse_edges",
]

# Step statuses use Cucumber's words, so the cucumber JSON needs no translation.
STEP_STATUSES = ("passed", "failed", "skipped", "undefined")
# Scenario statuses: "error" is a failure outside the steps (fixture setup or teardown).
STATUSES = ("passed", "failed", "error", "skipped")


@dataclass
class SampleRecord:
    """One wait of :func:`meshgate.waiting.wait_until`, and the step it happened in.

    ``step`` is the index of the step in :attr:`ScenarioRecord.steps`, or None when the
    wait happened in a fixture (setup or teardown) rather than in a step.
    """

    area: str
    what: str
    seconds: float
    converged: bool
    polls: int = 0
    step: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SampleRecord:
        """Read a sample as Convergence.as_dicts() or to_dict() wrote it."""
        return cls(
            area=str(data.get("area", "?")),
            what=str(data.get("what", "")),
            seconds=float(data.get("seconds") or 0.0),
            converged=bool(data.get("converged")),
            polls=int(data.get("polls") or 0),
            step=None if data.get("step") is None else int(data["step"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StepRecord:
    """A Gherkin step as it ran: what it said, how it ended and how long it took."""

    keyword: str  # as written: Given, When, Then, And, But
    type: str  # given, when or then (what "And" continues)
    text: str
    line: int
    status: str = "skipped"
    duration: float = 0.0
    error: str | None = None
    location: str | None = None  # the step definition, "steps/routes.py:12"
    background: bool = False
    docstring: str | None = None
    datatable: list[list[str]] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepRecord:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FeatureInfo:
    """The feature a scenario belongs to, as the reader sees it in the .feature file."""

    name: str
    uri: str  # the .feature file relative to the rootdir
    keyword: str = "Feature"
    description: str = ""
    line: int = 1
    tags: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureInfo:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class EdgeRecord:
    """A service-graph edge as a scenario reported it (docs/reports.md, "meshgate_graph").

    ``source`` and ``target`` are display labels; ``missing`` marks an edge the scenario
    expected and did not observe, so the picture can show what is absent as well.
    """

    source: str
    target: str
    rate: float | None = None
    protocol: str | None = None
    missing: bool = False

    def key(self) -> tuple[str, str]:
        return (self.source, self.target)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScenarioRecord:
    """One scenario (one pytest item): its feature, steps, outcome, waits, edges, bundles."""

    nodeid: str
    name: str
    feature: FeatureInfo
    keyword: str = "Scenario"
    line: int = 0
    description: str = ""
    tags: list[str] = field(default_factory=list)  # the scenario's own tags
    rule: str | None = None
    example: dict[str, str] = field(default_factory=dict)  # Scenario Outline parameters
    steps: list[StepRecord] = field(default_factory=list)
    status: str = "passed"
    duration: float = 0.0
    error: str | None = None  # a failure or skip outside the steps (setup, teardown)
    longrepr: str | None = None  # pytest's full failure text, for the curious
    worker: str | None = None
    started: float | None = None  # Unix time
    convergence: list[SampleRecord] = field(default_factory=list)
    graph: list[EdgeRecord] = field(default_factory=list)
    bundles: list[str] = field(default_factory=list)
    # The data plane the scenario met (its namespace's: sidecar, ambient with or without a
    # waypoint) and what its data-plane checks read, one line each.
    data_plane: str | None = None
    checked: list[str] = field(default_factory=list)

    @property
    def all_tags(self) -> list[str]:
        """Feature tags then the scenario's own, without repeats (what a run selects on)."""
        seen: dict[str, None] = dict.fromkeys(self.feature.tags)
        seen.update(dict.fromkeys(self.tags))
        return list(seen)

    @property
    def failed_step(self) -> StepRecord | None:
        return next((s for s in self.steps if s.status in ("failed", "undefined")), None)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScenarioRecord:
        plain = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        plain["feature"] = FeatureInfo.from_dict(data.get("feature") or {"name": "", "uri": ""})
        plain["steps"] = [StepRecord.from_dict(s) for s in data.get("steps") or []]
        plain["convergence"] = [SampleRecord.from_dict(s) for s in data.get("convergence") or []]
        plain["graph"] = [EdgeRecord(**e) for e in data.get("graph") or []]
        plain["bundles"] = list(data.get("bundles") or [])
        plain["checked"] = list(data.get("checked") or [])
        return cls(**plain)


@dataclass
class RunRecord:
    """A whole run: what the reports are rendered from."""

    scenarios: list[ScenarioRecord] = field(default_factory=list)
    run_id: str | None = None
    target: str | None = None
    profile: str | None = None  # the profile in force and why
    mesh: str | None = None  # the platform and mesh found (MeshInfo.describe())
    started: float | None = None  # Unix time
    duration: float = 0.0  # wall time of the session
    workers: int = 0  # xdist workers (0 without xdist)
    title: str = "meshgate acceptance report"

    def counts(self) -> dict[str, int]:
        """Scenarios per status, every status present (0 when none)."""
        out = dict.fromkeys(STATUSES, 0)
        for scenario in self.scenarios:
            out[scenario.status] = out.get(scenario.status, 0) + 1
        return out

    def features(self) -> list[tuple[FeatureInfo, list[ScenarioRecord]]]:
        """Scenarios grouped by feature file, both in file order."""
        groups: dict[str, tuple[FeatureInfo, list[ScenarioRecord]]] = {}
        for scenario in sorted(self.scenarios, key=_scenario_order):
            groups.setdefault(scenario.feature.uri, (scenario.feature, []))[1].append(scenario)
        return list(groups.values())

    def samples(self) -> list[tuple[ScenarioRecord, SampleRecord]]:
        return [(sc, s) for sc in sorted(self.scenarios, key=_scenario_order)
                for s in sc.convergence]

    def graph(self) -> list[EdgeRecord]:
        """The service graph of the whole run: the union of what the scenarios reported."""
        return merge_edges(e for sc in self.scenarios for e in sc.graph)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "target": self.target, "started": self.started,
            "duration": self.duration, "workers": self.workers, "title": self.title,
            "scenarios": [s.to_dict() for s in self.scenarios],
        }


def _scenario_order(scenario: ScenarioRecord) -> tuple[str, int, str]:
    return (scenario.feature.uri, scenario.line, scenario.nodeid)


# --------------------------------------------------------------------------- edges


def parse_edges(raw: str | Sequence[Any]) -> list[EdgeRecord]:
    """Read the value of a ``meshgate_graph`` property (JSON text or an already-parsed list).

    Malformed entries are skipped rather than failing the report: a report that breaks
    over one bad property would hide every other result of the run.
    """
    try:
        items = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return []
    if not isinstance(items, list):
        return []
    out: list[EdgeRecord] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        source, target = item.get("source"), item.get("target")
        if not isinstance(source, str) or not isinstance(target, str) or not source or not target:
            continue
        rate = item.get("rate")
        try:
            rate = None if rate is None else float(rate)
        except (TypeError, ValueError):
            rate = None
        if rate is not None and not math.isfinite(rate):
            rate = None
        protocol = item.get("protocol")
        out.append(EdgeRecord(source, target, rate,
                              protocol if isinstance(protocol, str) else None,
                              bool(item.get("missing", False))))
    return out


def merge_edges(edges: Iterable[EdgeRecord]) -> list[EdgeRecord]:
    """One edge per (source, target): observed beats missing, the highest rate is kept.

    Scenarios observe the same edge at different moments; the highest rate says the most
    about "traffic flowed", and an edge one scenario saw is not missing from the run.
    """
    merged: dict[tuple[str, str], EdgeRecord] = {}
    for edge in edges:
        have = merged.get(edge.key())
        if have is None:
            merged[edge.key()] = EdgeRecord(**edge.to_dict())
            continue
        if have.missing and not edge.missing:
            merged[edge.key()] = EdgeRecord(**edge.to_dict())
            continue
        if edge.missing:
            continue
        if edge.rate is not None and (have.rate is None or edge.rate > have.rate):
            have.rate = edge.rate
        have.protocol = have.protocol or edge.protocol
    return sorted(merged.values(), key=lambda e: e.key())


# --------------------------------------------------------------------------- convergence


@dataclass
class AreaStats:
    """How one area's waits went: the numbers a nightly run trends."""

    area: str
    waits: int
    converged: int
    timed_out: int
    median: float
    p95: float
    max: float
    total: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: the value is one that was measured)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def area_stats(samples: Iterable[SampleRecord]) -> list[AreaStats]:
    """Per-area statistics, areas in meshgate.waiting.AREAS order and then by name."""
    from meshgate.waiting import AREAS

    by_area: dict[str, list[SampleRecord]] = {}
    for sample in samples:
        by_area.setdefault(sample.area, []).append(sample)
    order = {area: i for i, area in enumerate(AREAS)}
    out = []
    for area in sorted(by_area, key=lambda a: (order.get(a, len(order)), a)):
        group = by_area[area]
        seconds = [s.seconds for s in group]
        converged = sum(1 for s in group if s.converged)
        out.append(AreaStats(
            area=area, waits=len(group), converged=converged,
            timed_out=len(group) - converged, median=_percentile(seconds, 0.5),
            p95=_percentile(seconds, 0.95), max=max(seconds), total=sum(seconds),
        ))
    return out

"""Cucumber JSON, rendered from the run's records (so it is right under pytest-xdist too).

pytest-bdd's own ``--cucumberjson`` keys its data by the in-process report object, so
under xdist the controller finds nothing and writes ``[]``; the reporting plugin takes
the option over and writes this instead. The shape follows Cucumber's JSON formatter
(what Jenkins' cucumber-reports, cucumber-html-reporter and Allure read): a list of
features, each with ``elements`` — a ``background`` element before each scenario that
has background steps, as Cucumber writes it — tags with their ``@``, keywords with a
trailing space, durations in nanoseconds, and step statuses passed, failed, skipped or
undefined.

meshgate adds, within the format: each step's waits (the convergence samples) as a JSON
embedding and as readable ``output`` lines, a failure outside the steps (fixture setup
or teardown) as a ``before``/``after`` hook result, and failure bundles as ``output`` of
an ``after`` hook.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from meshgate.reports.model import RunRecord, SampleRecord, ScenarioRecord, StepRecord

__all__ = ["render_cucumber", "slug", "to_cucumber"]


def slug(text: str) -> str:
    """Cucumber's id style: lower case, spaces as dashes."""
    return re.sub(r"\s+", "-", text.strip().lower()) or "unnamed"


def _ns(seconds: float) -> int:
    return max(0, round(seconds * 1e9))


def _tags(names: list[str], line: int) -> list[dict[str, Any]]:
    return [{"name": f"@{t.lstrip('@')}", "line": max(1, line)} for t in names]


def _sample_line(sample: SampleRecord) -> str:
    state = "converged" if sample.converged else "timed out"
    return (f"wait [{sample.area}] {sample.what}: {state} after {sample.seconds:.3f}s "
            f"({sample.polls} polls)")


def _step(step: StepRecord, samples: list[SampleRecord]) -> dict[str, Any]:
    result: dict[str, Any] = {"status": step.status, "duration": _ns(step.duration)}
    if step.status in ("failed", "undefined") and step.error:
        result["error_message"] = step.error
    out: dict[str, Any] = {
        "keyword": f"{step.keyword} ",
        "name": step.text,
        "line": step.line,
        "match": {"location": step.location or ""},
        "result": result,
    }
    if step.docstring is not None:
        out["doc_string"] = {"value": step.docstring, "content_type": "", "line": step.line + 1}
    if step.datatable:
        out["rows"] = [{"cells": list(row)} for row in step.datatable]
    if samples:
        out["output"] = [_sample_line(s) for s in samples]
        payload = json.dumps([s.to_dict() for s in samples], sort_keys=True).encode()
        out["embeddings"] = [{
            "mime_type": "application/json",
            "name": "meshgate convergence",
            "data": base64.b64encode(payload).decode("ascii"),
        }]
    return out


def _hook(status: str, message: str | None, location: str,
          output: list[str] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"status": status, "duration": 0}
    if message:
        result["error_message"] = message
    hook: dict[str, Any] = {"match": {"location": location}, "result": result}
    if output:
        hook["output"] = output
    return hook


def _elements(scenario: ScenarioRecord, feature_id: str) -> list[dict[str, Any]]:
    by_step: dict[int, list[SampleRecord]] = {}
    loose: list[SampleRecord] = []
    for sample in scenario.convergence:
        if sample.step is None:
            loose.append(sample)
        else:
            by_step.setdefault(sample.step, []).append(sample)
    indexed = list(enumerate(scenario.steps))
    background = [(i, s) for i, s in indexed if s.background]
    own = [(i, s) for i, s in indexed if not s.background]

    elements: list[dict[str, Any]] = []
    if background:
        elements.append({
            "keyword": "Background",
            "name": "",
            "description": "",
            "line": min(s.line for _, s in background) - 1,
            "type": "background",
            "steps": [_step(s, by_step.get(i, [])) for i, s in background],
        })
    suffix = slug(scenario.name)
    if scenario.example:
        suffix += ";" + ";".join(f"{k}={v}" for k, v in scenario.example.items())
    element: dict[str, Any] = {
        "keyword": scenario.keyword,
        "id": f"{feature_id};{suffix}",
        "name": scenario.name,
        "description": scenario.description,
        "line": scenario.line,
        "type": "scenario",
        "tags": _tags(scenario.all_tags, scenario.line - 1),
        "steps": [_step(s, by_step.get(i, [])) for i, s in own],
    }
    before, after = [], []
    if scenario.error and scenario.status in ("error", "skipped") and not any(
        s.status in ("passed", "failed", "undefined") for s in scenario.steps
    ):
        status = "skipped" if scenario.status == "skipped" else "failed"
        before.append(_hook(status, scenario.error, "fixture setup",
                            [_sample_line(s) for s in loose] or None))
    elif scenario.error and scenario.status == "error":
        after.append(_hook("failed", scenario.error, "fixture teardown"))
    elif loose:
        before.append(_hook("passed", None, "fixtures", [_sample_line(s) for s in loose]))
    if scenario.bundles:
        after.append(_hook("passed", None, "failure bundle",
                           [f"failure bundle: {b}" for b in scenario.bundles]))
    if before:
        element["before"] = before
    if after:
        element["after"] = after
    elements.append(element)
    return elements


def to_cucumber(run: RunRecord) -> list[dict[str, Any]]:
    """The run as Cucumber JSON data (a list of features)."""
    features = []
    for feature, scenarios in run.features():
        feature_id = slug(feature.name or feature.uri)
        elements: list[dict[str, Any]] = []
        for scenario in scenarios:
            elements += _elements(scenario, feature_id)
        features.append({
            "uri": feature.uri,
            "id": feature_id,
            "keyword": feature.keyword,
            "name": feature.name or feature.uri,
            "description": feature.description,
            "line": feature.line,
            "tags": _tags(feature.tags, feature.line - 1),
            "elements": elements,
        })
    return features


def render_cucumber(run: RunRecord) -> str:
    """The cucumber JSON text (indented, stable key order)."""
    return json.dumps(to_cucumber(run), indent=2) + "\n"

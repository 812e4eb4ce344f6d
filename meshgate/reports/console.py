"""Gherkin progress for the console: each finished scenario as Feature / Scenario / steps.

pytest-bdd's ``--gherkin-terminal-reporter`` replaces pytest's terminal reporter and finds
no steps under xdist (its data stays in the workers), so the reporting plugin prints
these lines from the controller instead, from the same records as the other reports.
The functions here only format; they return ``(text, markup)`` pairs for pytest's
terminal writer (markup such as ``{"green": True}``).
"""

from __future__ import annotations

from meshgate.reports.model import ScenarioRecord

__all__ = ["STATUS_MARKUP", "scenario_lines"]

STATUS_MARKUP: dict[str, dict[str, bool]] = {
    "passed": {"green": True},
    "failed": {"red": True, "bold": True},
    "error": {"red": True, "bold": True},
    "undefined": {"yellow": True, "bold": True},
    "skipped": {"yellow": True},
}
_WORDS = {"passed": "PASSED", "failed": "FAILED", "error": "ERROR", "skipped": "SKIPPED"}


def _first_line(text: str | None, limit: int = 240) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def scenario_lines(scenario: ScenarioRecord, *, show_feature: bool, verbose: bool = False,
                   width: int = 100) -> list[tuple[str, dict[str, bool]]]:
    """The lines for one finished scenario.

    ``show_feature`` prints the ``Feature:`` line (the caller omits it while consecutive
    scenarios share a feature); ``verbose`` adds each step's waits under the step.
    """
    lines: list[tuple[str, dict[str, bool]]] = []
    if show_feature:
        lines.append((f"{scenario.feature.keyword}: {scenario.feature.name}", {"blue": True,
                                                                               "bold": True}))
    indent = "  "
    if scenario.rule:
        lines.append((f"  Rule: {scenario.rule}", {"purple": True}))
        indent = "    "
    word = _WORDS.get(scenario.status, scenario.status.upper())
    where = f" [{scenario.worker}]" if scenario.worker else ""
    lines.append((f"{indent}{scenario.keyword}: {scenario.name}  {word} "
                  f"{scenario.duration:.2f}s{where}", STATUS_MARKUP.get(scenario.status, {})))
    text_width = max(20, min(width - len(indent) - 20,
                             max((len(s.keyword) + 1 + len(s.text) for s in scenario.steps),
                                 default=20)))
    for index, step in enumerate(scenario.steps):
        sentence = f"{step.keyword} {step.text}"
        timing = f"{step.duration:.2f}s" if step.status in ("passed", "failed") else ""
        lines.append((f"{indent}  {sentence.ljust(text_width)}  {step.status} {timing}".rstrip(),
                      STATUS_MARKUP.get(step.status, {})))
        if step.status in ("failed", "undefined") and step.error:
            lines.append((f"{indent}      {_first_line(step.error)}", {"red": True}))
        if verbose:
            for sample in scenario.convergence:
                if sample.step == index:
                    state = "converged" if sample.converged else "timed out"
                    lines.append((f"{indent}      wait [{sample.area}] {state} in "
                                  f"{sample.seconds:.2f}s ({sample.polls} polls): {sample.what}",
                                  {}))
    if scenario.error and not scenario.failed_step:
        prefix = "skipped: " if scenario.status == "skipped" else ""
        lines.append((f"{indent}  {prefix}{_first_line(scenario.error)}",
                      STATUS_MARKUP.get(scenario.status, {})))
    for bundle in scenario.bundles:
        lines.append((f"{indent}  failure bundle: {bundle}", {"yellow": True}))
    return lines

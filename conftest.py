"""Wires the suite's plugins, fixtures and step definitions into pytest; nothing else.

Listed so that every module is registered before another of the list imports it (pytest
can only rewrite the asserts of a plugin module it imports itself).
"""

pytest_plugins = [
    "fixtures.plugins.options",
    "fixtures.plugins.scheduling",
    "fixtures.plugins.lifecycle",
    "fixtures.plugins.capabilities",
    "fixtures.cluster",
    "fixtures.scenario",
    "fixtures.plugins.reporting",
    "fixtures.plugins.bundle",
    "steps.deploy",
    "steps.routes",
    "steps.traffic",
    "steps.telemetry",
    "steps.graph",
    "steps.ingress",
    "steps.security",
    "steps.chaos",
    "steps.upgrade",
]

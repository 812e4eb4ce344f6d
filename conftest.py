"""Wires the suite's fixtures and step definitions into pytest; nothing else."""

pytest_plugins = [
    "fixtures.options",
    "fixtures.cluster",
    "fixtures.namespace",
    "steps.deploy",
    "steps.routes",
]

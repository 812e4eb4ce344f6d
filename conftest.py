"""Wires the suite's fixtures and step definitions into pytest; nothing else."""

pytest_plugins = [
    "fixtures.options",
    "fixtures.cluster",
    "fixtures.scheduling",
    "fixtures.warmup",
    "fixtures.namespace",
    "fixtures.reporting",
    "fixtures.world",
    "fixtures.bundle",
    "steps.deploy",
    "steps.routes",
    "steps.traffic",
    "steps.telemetry",
    "steps.graph",
    "steps.ingress",
    "steps.chaos",
]

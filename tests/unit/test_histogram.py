"""localmesh's histogram prints what Prometheus' parser reads back: cumulative buckets,
sum and count (pilot_proxy_convergence_time, read by meshgate bench --mesh-sizes)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from localmesh.istio.histogram import Histogram, convergence_time


def test_buckets_are_cumulative_and_parse_back() -> None:
    h = Histogram("x_seconds", "x", (0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 7.0):
        h.observe(v)
    family = next(iter(text_string_to_metric_families("\n".join(h.lines()) + "\n")))
    got = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert got[("x_seconds_bucket", "0.1")] == 2  # le is inclusive
    assert got[("x_seconds_bucket", "1.0")] == 3
    assert got[("x_seconds_bucket", "+Inf")] == 4 == got[("x_seconds_count", None)]
    assert got[("x_seconds_sum", None)] == 7.65


def test_istios_name_and_buckets() -> None:
    h = convergence_time()
    assert h.name == "pilot_proxy_convergence_time" and h.buckets[0] == 0.1 and h.count == 0

"""Prometheus text and PromQL as the suite reads and writes them (meshgate.telemetry)."""

from __future__ import annotations

from meshgate.telemetry import quote, selector, sum_samples

_REQUESTS = "istio_requests_total"
EXPOSITION = "\n".join([
    "# HELP istio_requests_total Total requests.",
    "# TYPE istio_requests_total counter",
    f'{_REQUESTS}{{reporter="destination",destination_service_name="vp0",'
    'response_code="200"} 7 1733380000000',
    f'{_REQUESTS}{{reporter="destination",destination_service_name="vp0",'
    'response_code="503"} 2',
    f'{_REQUESTS}{{reporter="source",destination_service_name="vp0",response_code="200"}} 40',
    f'{_REQUESTS}{{reporter="destination",destination_service_name="say \\"hi\\"",'
    'response_code="200"} 3',
    "# TYPE istio_request_bytes histogram",
    'istio_request_bytes_bucket{reporter="destination",le="+Inf"} 9',
    "",
])

def test_a_sample_with_a_timestamp_counts_its_value_not_the_timestamp() -> None:
    wanted = {"reporter": "destination", "destination_service_name": "vp0",
              "response_code": "200"}
    assert sum_samples(EXPOSITION, "istio_requests_total", wanted) == 7


def test_samples_are_summed_over_the_labels_not_wanted() -> None:
    wanted = {"reporter": "destination", "destination_service_name": "vp0"}
    assert sum_samples(EXPOSITION, "istio_requests_total", wanted) == 9


def test_escaped_quotes_in_label_values_are_read() -> None:
    wanted = {"destination_service_name": 'say "hi"'}
    assert sum_samples(EXPOSITION, "istio_requests_total", wanted) == 3


def test_promql_label_values_are_escaped() -> None:
    assert quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert selector({"b": "x", "a": 'q"'}) == '{a="q\\"",b="x"}'


def test_a_baseline_counts_only_the_series_a_check_wants() -> None:
    """Plaintext requests to composer from outside the mesh must not count toward the
    baseline of its mutual-TLS requests from the ingress gateway, or the check would wait
    for a total the subset never reaches."""
    from meshgate.telemetry import Baselines

    gateway = {"destination_service_name": "composer", "source_workload": "istio-ingressgateway",
               "connection_security_policy": "mutual_tls", "source_principal": "spiffe://gw"}
    outside = {"destination_service_name": "composer", "source_workload": "unknown",
               "connection_security_policy": "none", "source_principal": "unknown"}
    base = Baselines({"composer": 12.0}, [(gateway, 7.0), (outside, 5.0)])
    total = {"reporter": "destination", "destination_service_name": "composer",
             "response_code": "200"}
    assert base.of(total) == 12.0
    assert base.of({**total, "connection_security_policy": "mutual_tls",
                    "source_principal": "spiffe://gw"}) == 7.0
    assert base.of({**total, "connection_security_policy": "none"}) == 5.0
    assert base.of({**total, "source_principal": "spiffe://other"}) == 0.0
    assert base.of({**total, "destination_service_name": "vp0"}) == 0.0


def test_growth_is_counted_series_by_series_so_a_replaced_pod_neither_counts_nor_hides() -> None:
    """A rollout between scenarios leaves the old pod's series in Prometheus until it goes
    stale: summed, the baseline included it and the total then fell by as much, so a check
    waited for requests that had all arrived (seen in CI: 20 counted, 35 wanted)."""
    from meshgate.telemetry import Baselines

    def series(instance: str, value: float, code: str = "200") -> tuple[dict, float]:
        return ({"destination_service_name": "composer", "source_workload": "gw",
                 "response_code": code, "instance": instance}, value)

    base = Baselines(series=[series("old:15020", 10.0), series("new:15020", 20.0)])
    # The old pod's series went stale; the new one grew by 5; a third pod is new.
    assert base.increase([series("new:15020", 25.0)]) == 5.0
    assert base.increase([series("new:15020", 25.0), series("third:15020", 2.0)]) == 7.0
    # A counter that restarted (its sidecar restarted) counts from zero.
    assert base.increase([series("new:15020", 3.0)]) == 3.0
    # Another response code is another series: its whole value is new.
    assert base.increase([series("new:15020", 4.0, code="403")]) == 4.0
    # Nothing sent, nothing counted (the check can fail).
    assert base.increase([series("old:15020", 10.0), series("new:15020", 20.0)]) == 0.0


def test_the_sidecars_unscraped_lag_is_waited_for_only_by_whole_service_checks() -> None:
    from meshgate.telemetry import Baselines

    base = Baselines(lag={"composer": 3.0})
    whole = {"reporter": "destination", "destination_service_name": "composer",
             "response_code": "200"}
    assert base.wanted_more(whole, 5) == 8.0
    assert base.wanted_more({**whole, "source_workload": "gw"}, 5) == 5.0
    assert base.wanted_more({**whole, "response_code": "403"}, 5) == 5.0

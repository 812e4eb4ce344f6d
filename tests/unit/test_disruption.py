"""What a change did to the traffic, and the gate on it (meshgate.disruption), and its
pictures (meshgate.reports.timeline_svg, change_html)."""

from __future__ import annotations

import json

from meshgate.disruption import (
    FlowStats,
    Proxy,
    flow_stats,
    judge,
    proxy_changes,
    read_records,
)
from meshgate.reports.change_html import render_change
from meshgate.reports.timeline_svg import render_timeline


def _r(t: float, flow: str, ok: bool, **extra: object) -> dict:
    return {"t": t, "flow": flow, "ok": ok, "status": 200 if ok else 503, **extra}


RECORDS = [
    _r(100.0, "new /login", True), _r(100.5, "new /login", False),
    _r(101.0, "new /login", False), _r(102.0, "new /login", True),
    _r(100.2, "kept /login", True), _r(100.6, "kept /login", False, status=None,
                                       error="ConnectionError: reset", reset=True),
    _r(100.9, "kept /login", True), _r(103.0, "kept /login", False),
]


def test_per_flow_counts_resets_and_the_longest_gap() -> None:
    stats = {s.flow: s for s in flow_stats(RECORDS, start=99.0, end=104.0)}
    new = stats["new /login"]
    assert (new.sent, new.failed, new.resets) == (4, 2, 0)
    assert new.longest_gap == 2.0 and new.gap_from == 100.0  # from 100.0 to 102.0
    assert new.errors == {"HTTP 503": 2}
    kept = stats["kept /login"]
    assert (kept.sent, kept.failed, kept.resets) == (4, 2, 1)
    # Failing at the end: the gap runs to the end of the window.
    assert kept.longest_gap == 104.0 - 100.9
    assert kept.errors == {"ConnectionError": 1, "HTTP 503": 1}


def test_the_window_start_counts_before_the_first_success() -> None:
    (only,) = flow_stats([_r(10.0, "f", True)], start=5.0, end=10.5)
    assert only.longest_gap == 5.0


def test_the_gate_names_what_it_broke() -> None:
    flows = flow_stats(RECORDS, start=99.0, end=104.0)
    verdict = judge(flows)
    assert not verdict.ok and verdict.reasons[0].startswith("4 failed requests (at most 0")
    assert judge(flows, max_failed=4).ok
    gap = judge(flows, max_failed=4, max_gap=1.0)
    assert not gap.ok and "kept /login went 3.10s without a success" in gap.reasons[0]
    assert not judge([]).ok and "no traffic was recorded" in judge([]).reasons[0]
    assert judge([FlowStats("f", sent=3)]).ok


def test_a_torn_last_line_is_skipped() -> None:
    text = json.dumps(RECORDS[0]) + "\n" + '{"t": 1, "fl'
    assert read_records(text) == [RECORDS[0]]


def test_proxy_changes_are_told_per_workload() -> None:
    before = [Proxy("vp0-abc12-xyz34", "default", "istio/proxyv2:1.28.0", "default"),
              Proxy("composer-abc12-q1", "default", "istio/proxyv2:1.28.0", "default")]
    after = [Proxy("vp0-def56-uvw78", "1-2x", "istio/proxyv2:1.29.0", "1-2x"),
             Proxy("composer-abc12-q1", "default", "istio/proxyv2:1.28.0", "default"),
             Proxy("client-aa-bb", "default", "istio/proxyv2:1.28.0", "default")]
    assert proxy_changes(before, after) == [
        "vp0: revision default → 1-2x, image istio/proxyv2:1.28.0 → istio/proxyv2:1.29.0, "
        "control plane default → 1-2x",
        "client: new, revision default"]


def test_the_timeline_draws_every_flow_and_the_marks() -> None:
    svg = render_timeline(RECORDS, 99.0, 104.0, [(101.0, "change starts")])
    assert svg.startswith("<svg") and svg.count("</svg>") == 1
    assert "new /login" in svg and "kept /login" in svg and "change starts" in svg
    assert "#d1352b" in svg and "#2e9d57" in svg  # failed and succeeded bins
    assert render_timeline([], 0, 1) == ""


def test_the_change_report_masks_secrets_in_the_command_output() -> None:
    report = {"ok": False, "reasons": ["2 failed requests"], "started": 99.0, "ended": 104.0,
              "flows": [], "hops": [], "proxy_changes": [], "command": ["./upgrade.sh"],
              "command_status": 0, "restarts": [[101.5, "vp0-x restarted"]]}
    page = render_change(report, RECORDS, "token: sekr1t-value-123\nAuthorization: Bearer abc")
    assert "FAILED" in page and "2 failed requests" in page and "vp0-x restarted" in page
    assert "sekr1t-value-123" not in page

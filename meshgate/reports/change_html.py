"""The report of a gated change: one self-contained HTML page (``<artifacts>/change.html``).

The verdict and its reasons first, then the timeline of the change window (what people
look at), then the numbers behind it: per flow, per hop, the proxies that changed, and the
change command with its output (secrets masked, as in failure bundles).
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from typing import Any

from meshgate.redact import Redactor
from meshgate.reports.timeline_svg import render_timeline

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#22252a}
h1{font-size:1.4rem;margin:0 0 .3rem} h2{font-size:1.1rem;margin-top:1.6rem}
.verdict{display:inline-block;padding:.2rem .7rem;border-radius:4px;color:#fff;font-weight:600}
.pass{background:#2e9d57}.fail{background:#d1352b}
table{border-collapse:collapse;margin:.4rem 0} td,th{border:1px solid #d8dbe0;
padding:.25rem .6rem;text-align:left;font-size:.9rem} th{background:#f3f4f6}
td.num{text-align:right} pre{background:#f6f7f9;padding:.8rem;overflow:auto;max-height:24rem}
.meta{color:#5b616b}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{_e(c)}</td>' if isinstance(c, int | float) else f"<td>{_e(c)}</td>"
        for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _clock(t: float | None) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t)) if t else "-"


def render_change(report: dict[str, Any], records: list[dict[str, Any]], output: str) -> str:
    ok = bool(report.get("ok"))
    start, end = float(report["started"]), float(report["ended"])
    marks = [(float(t), label) for t, label in report.get("restarts") or []]
    if report.get("command_started"):
        marks.append((float(report["command_started"]), "change starts"))
    if report.get("command_ended"):
        marks.append((float(report["command_ended"]), "change ends"))
    reasons = "".join(f"<li>{_e(r)}</li>" for r in report.get("reasons") or [])
    flows = _table(["flow", "sent", "failed", "resets", "longest gap (s)", "errors"], [
        (f["flow"], f["sent"], f["failed"], f["resets"], round(f["longest_gap"], 2),
         ", ".join(f"{n}× {k}" for k, n in f["errors"].items()) or "-")
        for f in report.get("flows") or []])
    hops = _table(["source", "destination", "sent", "failed"], [
        (h["source"], h["destination"], h["sent"], h["failed"])
        for h in report.get("hops") or []]) if report.get("hops") else \
        "<p>No telemetry backend: per-hop numbers are not known.</p>"
    changes = "".join(f"<li>{_e(c)}</li>" for c in report.get("proxy_changes") or []) or \
        "<li>no proxy changed revision, image or control plane</li>"
    command = " ".join(report.get("command") or []) or "(none: the change ran elsewhere)"
    masked = Redactor().text(output)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>meshgate change report</title>
<style>{STYLE}</style></head><body>
<h1>Change gated: <span class="verdict {'pass' if ok else 'fail'}">{
        'PASSED' if ok else 'FAILED'}</span></h1>
<div class="meta">run {_e(report.get('run_id'))} · namespaces {
        _e(', '.join(report.get('namespaces') or []))} · through {_e(report.get('entry'))}
 (Host {_e(report.get('host'))}) · {_clock(start)}–{_clock(end)} UTC ({end - start:.1f}s)</div>
<ul>{reasons or '<li>no failed request, every check passed</li>'}</ul>
<h2>Timeline</h2>
{render_timeline(records, start, end, marks)}
<h2>Requests through the ingress, per flow</h2>{flows}
<h2>Requests between the workloads, per hop (the sidecars' telemetry)</h2>{hops}
<h2>Proxies</h2><ul>{changes}</ul>
<h2>The change</h2><p><code>{_e(command)}</code> exited with {
        _e(report.get('command_status'))} ({_clock(report.get('command_started'))}–{
        _clock(report.get('command_ended'))} UTC)</p>
<pre>{_e(masked[-20000:])}</pre>
</body></html>
"""

"""The trend page of nightly runs (``meshgate trend``): one self-contained HTML file, an SVG
chart per convergence area.

Each chart has the runs left to right (oldest first), the median wait as a solid line and
the p95 as a dashed one; a failed run is a red dot on the axis, a change of the mesh's
version a labelled vertical line; an area that regressed in the latest run is named above
the charts with the rule that flagged it. No script, no external file: the page opens
from a CI artifact as it is.
"""

from __future__ import annotations

import html
import time

from meshgate.trend import RULE, Trend, version_changes

W, H = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 18, 34
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#22252a}
h1{font-size:1.4rem} h2{font-size:1.05rem;margin:1.4rem 0 .3rem}
.bad{color:#d1352b;font-weight:600} .ok{color:#2e9d57;font-weight:600}
.rule,.meta{color:#5b616b;font-size:.9rem}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _chart(trend: Trend, area: str) -> str:
    points = trend.points
    n = len(points)
    values = [p.areas.get(area) for p in points]
    top = max([v[1] for v in values if v] + [0.001])
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="trend" role="img" '
           f'viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-size="11" '
           f'font-family="system-ui, sans-serif"><title>{_e(area)}</title>',
           f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafbfc" '
           'stroke="#d8dbe0"/>']
    for k in range(5):
        tick = top * k / 4
        out.append(f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
                   f'fill="#8a9099">{tick:.3g}s</text>')
    for i, label in version_changes(points):
        out.append(f'<line x1="{x(i):.1f}" y1="{TOP}" x2="{x(i):.1f}" y2="{TOP + plot_h}" '
                   'stroke="#6b4fbb" stroke-dasharray="3 3"/>'
                   f'<text x="{x(i) + 3:.1f}" y="{TOP + 10}" fill="#6b4fbb">{_e(label)}</text>')
    for index, dash, colour in ((0, "", "#2563c9"), (1, ' stroke-dasharray="5 4"', "#7aa3e5")):
        pts = " ".join(f"{x(i):.1f},{y(v[index]):.1f}" for i, v in enumerate(values) if v)
        if pts:
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" '
                       f'stroke-width="2"{dash}/>')
    for i, (p, v) in enumerate(zip(points, values, strict=True)):
        if v:
            out.append(f'<circle cx="{x(i):.1f}" cy="{y(v[0]):.1f}" r="3" fill="#2563c9">'
                       f"<title>{_e(p.run_id)}: median {v[0]:.3f}s, p95 {v[1]:.3f}s"
                       "</title></circle>")
        if p.failed:
            out.append(f'<circle cx="{x(i):.1f}" cy="{TOP + plot_h}" r="5" fill="#d1352b">'
                       f"<title>{_e(p.run_id)} failed</title></circle>")
    for i in sorted({0, n - 1}):
        anchor = "start" if i == 0 else "end"
        out.append(f'<text x="{x(i):.1f}" y="{H - 12}" text-anchor="{anchor}" '
                   f'fill="#8a9099">'
                   f"{time.strftime('%m-%d %H:%M', time.gmtime(points[i].started))}</text>")
    out.append("</svg>")
    return "".join(out)


def render_trend(trend: Trend) -> str:
    points = trend.points
    areas = sorted({a for p in points for a in p.areas})
    latest = points[-1]
    flagged = "".join(f'<li class="bad">{_e(r.describe())}</li>' for r in trend.regressions)
    verdict = (f'<p class="bad">Regressions in the latest run ({_e(latest.run_id)}):</p>'
               f"<ul>{flagged}</ul>") if trend.regressions else \
        f'<p class="ok">No regression in the latest run ({_e(latest.run_id)}).</p>'
    failed = sum(p.failed for p in points)
    charts = "".join(f"<h2>{_e(area)}</h2>{_chart(trend, area)}" for area in areas)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>meshgate trend</title>
<style>{STYLE}</style></head><body>
<h1>meshgate: how long the mesh takes to converge, run after run</h1>
<p class="meta">{len(points)} runs, {failed} failed; solid line: median wait, dashed: p95;
red dot: a failed run; purple line: the mesh's version changed.</p>
{verdict}
<p class="rule">Rule: {_e(RULE)}.</p>
{charts}
</body></html>
"""

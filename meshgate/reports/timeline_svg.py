"""The change window as a picture: request outcomes over time, one row per flow.

People look at this rather than read numbers: a red band across every row at the moment the
old control plane went away says more than a failure count. Time runs left to right from
the start of the recording; each row is cut into bins, green where every request of the
bin succeeded, red where every one failed, amber where some did, grey where none was sent.
Dashed lines mark events (the change command's start and end, pods restarting), labelled
at the top.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

WIDTH = 920
LABEL_WIDTH = 190
ROW = 22
BINS = 180
COLOURS = {"ok": "#2e9d57", "failed": "#d1352b", "mixed": "#e8a317", "none": "#e4e6ea",
           "mark": "#4a4f57", "text": "#22252a", "axis": "#8a9099"}


def _bins(rows: list[dict[str, Any]], start: float, end: float) -> list[str]:
    span = max(end - start, 1e-6)
    counts = [[0, 0] for _ in range(BINS)]
    for r in rows:
        i = min(BINS - 1, max(0, int((r["t"] - start) / span * BINS)))
        counts[i][0 if r.get("ok") else 1] += 1
    out = []
    for ok, failed in counts:
        out.append("none" if ok + failed == 0 else "ok" if not failed
                   else "failed" if not ok else "mixed")
    return out


def render_timeline(records: Iterable[dict[str, Any]], start: float, end: float,
                    marks: Iterable[tuple[float, str]] = (),
                    title: str = "Requests during the change") -> str:
    """An ``<svg>`` element (an empty string when nothing was recorded)."""
    by_flow: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_flow.setdefault(str(r["flow"]), []).append(r)
    if not by_flow:
        return ""
    marks = sorted(marks)
    top = 34 + 14 * min(len(marks), 4)
    height = top + ROW * len(by_flow) + 30
    plot = WIDTH - LABEL_WIDTH - 10
    bin_w = plot / BINS
    span = max(end - start, 1e-6)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" '
           f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
           f'font-family="system-ui, sans-serif" font-size="12">',
           f"<title>{html.escape(title)}</title>",
           f'<text x="0" y="14" font-weight="600" fill="{COLOURS["text"]}">'
           f"{html.escape(title)}</text>"]
    for row, (flow, rows) in enumerate(sorted(by_flow.items())):
        y = top + row * ROW
        out.append(f'<text x="0" y="{y + 15}" fill="{COLOURS["text"]}">'
                   f"{html.escape(flow)}</text>")
        for i, state in enumerate(_bins(rows, start, end)):
            out.append(f'<rect x="{LABEL_WIDTH + i * bin_w:.1f}" y="{y + 3}" '
                       f'width="{bin_w + 0.3:.1f}" height="{ROW - 6}" '
                       f'fill="{COLOURS[state]}"><title>{html.escape(flow)}: {state}</title>'
                       "</rect>")
    bottom = top + ROW * len(by_flow)
    for n, (t, label) in enumerate(marks):
        x = LABEL_WIDTH + (min(max(t, start), end) - start) / span * plot
        out.append(f'<line x1="{x:.1f}" y1="{22 + 14 * (n % 4)}" x2="{x:.1f}" y2="{bottom}" '
                   f'stroke="{COLOURS["mark"]}" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x + 3:.1f}" y="{32 + 14 * (n % 4)}" fill="{COLOURS["mark"]}">'
                   f"{html.escape(label)}</text>")
    for k in range(0, 6):
        x = LABEL_WIDTH + plot * k / 5
        out.append(f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle" '
                   f'fill="{COLOURS["axis"]}">{span * k / 5:.1f}s</text>')
    out.append("</svg>")
    return "\n".join(out)

"""The HTML report: one self-contained page (inline CSS and SVG, no scripts, no network).

It is read by a platform engineer after a red gate and by whoever trends the nightly
runs, so it leads with the verdict and the failures, then gives the numbers: per-feature
counts, how long the mesh took to converge in each area, the service graph the
scenarios observed, and every scenario with its steps (keyword, text, status, duration),
the error of the failed step, its waits and links to its failure bundle.

Filtering (all / failed / passed / skipped) is done with radio buttons and CSS, so the
page works where scripts are blocked (CI artifact viewers often block them).
"""

from __future__ import annotations

import html
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from meshgate.reports.graph_svg import render_svg
from meshgate.reports.model import (
    AreaStats,
    EdgeRecord,
    RunRecord,
    SampleRecord,
    ScenarioRecord,
    StepRecord,
    area_stats,
)

__all__ = ["render_html"]

BUNDLE_FILES_SHOWN = 12
_ICON = {"passed": "✓", "failed": "✗", "error": "!", "skipped": "–", "undefined": "?"}

CSS = """
:root{--bg:#f6f7f9;--card:#fff;--ink:#1f2933;--muted:#616e7c;--line:#e3e7ec;
--pass:#1a7f37;--pass-bg:#dafbe1;--fail:#cf222e;--fail-bg:#ffebe9;--err:#bc4c00;
--err-bg:#fff1e5;--skip:#8a6100;--skip-bg:#fff8c5;--accent:#3a7bd5}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,
"Segoe UI",Helvetica,Arial,sans-serif}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
a{color:var(--accent)}
header.top{background:#17212b;color:#fff;padding:20px 32px 18px;display:flex;gap:24px;
align-items:center;flex-wrap:wrap}
header.top h1{margin:0;font-size:22px;font-weight:650;letter-spacing:.2px}
header.top .meta{color:#c3ccd6;font-size:13px;margin-top:4px}
header.top .meta code{color:#fff;background:rgba(255,255,255,.1);padding:1px 5px;border-radius:4px}
.verdict{margin-left:auto;font-weight:700;font-size:15px;padding:8px 16px;border-radius:999px;
letter-spacing:.6px}
.verdict.passed{background:var(--pass);color:#fff}.verdict.failed{background:var(--fail);color:#fff}
.verdict.skipped{background:#8a6100;color:#fff}
nav{background:#fff;border-bottom:1px solid var(--line);padding:0 32px;display:flex;gap:22px;
position:sticky;top:0;z-index:2}
nav a{display:block;padding:11px 0;text-decoration:none;color:var(--muted);font-weight:550}
nav a:hover{color:var(--ink)}
main{padding:22px 32px 40px;max-width:1500px}
section{margin-bottom:30px}
h2{font-size:17px;margin:0 0 12px;font-weight:650}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:14px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 16px;
min-width:120px}
.card .n{font-size:26px;font-weight:700;line-height:1.1}
.card .l{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.5px}
.card.passed .n{color:var(--pass)}.card.failed .n{color:var(--fail)}
.card.error .n{color:var(--err)}.card.skipped .n{color:var(--skip)}
.stack{display:flex;height:10px;border-radius:5px;overflow:hidden;background:var(--line);
margin:4px 0 16px;max-width:720px}
.stack span{display:block;height:100%}
.stack .passed{background:var(--pass)}.stack .failed{background:var(--fail)}
.stack .error{background:var(--err)}.stack .skipped{background:#d4a72c}
table{border-collapse:collapse;background:var(--card);border:1px solid var(--line);
border-radius:10px;overflow:hidden;width:100%}
th,td{text-align:left;padding:7px 12px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#f0f2f5;font-size:12px;text-transform:uppercase;letter-spacing:.4px;
color:var(--muted);font-weight:600}
tr:last-child td{border-bottom:none}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.panel{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px}
.bar{position:relative;height:8px;background:#eef1f4;border-radius:4px;min-width:140px}
.bar i{position:absolute;left:0;top:0;bottom:0;background:var(--accent);border-radius:4px}
.bar i.to{background:var(--fail)}
.bar b{position:absolute;top:-3px;width:2px;height:14px;background:#17212b}
tr.timeout td{background:#fff6f5}
.pill{display:inline-block;font-size:11px;font-weight:700;padding:2px 8px;border-radius:999px;
letter-spacing:.4px;text-transform:uppercase}
.pill.passed{background:var(--pass-bg);color:var(--pass)}
.pill.failed{background:var(--fail-bg);color:var(--fail)}
.pill.error{background:var(--err-bg);color:var(--err)}
.pill.skipped,.pill.undefined{background:var(--skip-bg);color:var(--skip)}
.tag{display:inline-block;font-size:11.5px;color:#4b5a69;background:#eef1f4;border-radius:4px;
padding:1px 6px;margin-right:4px}
.ex{display:inline-block;font-size:11.5px;color:#0b5394;background:#e7f0fb;border-radius:4px;
padding:1px 6px;margin-right:4px}
.feature{margin-bottom:18px}
.feature h3{font-size:15.5px;margin:18px 0 4px}
.feature h3 .kw{color:var(--muted);font-weight:600}
.feature .uri{color:var(--muted);font-weight:400;font-size:12px;margin-left:8px}
.desc{color:var(--muted);white-space:pre-line;margin:2px 0 10px;max-width:980px}
details.scenario{background:var(--card);border:1px solid var(--line);border-left:4px solid
var(--line);border-radius:8px;margin:8px 0}
details.scenario.st-passed{border-left-color:var(--pass)}
details.scenario.st-failed{border-left-color:var(--fail)}
details.scenario.st-error{border-left-color:var(--err)}
details.scenario.st-skipped{border-left-color:#d4a72c}
details.scenario>summary{cursor:pointer;padding:10px 14px;display:flex;gap:10px;
align-items:center;flex-wrap:wrap;list-style:none}
details.scenario>summary::-webkit-details-marker{display:none}
details.scenario>summary::before{content:"▸";color:var(--muted);width:10px}
details.scenario[open]>summary::before{content:"▾"}
summary .name{font-weight:600}
summary .kw{color:var(--muted);font-weight:600}
summary .right{margin-left:auto;color:var(--muted);font-size:12.5px;white-space:nowrap}
.body{padding:2px 16px 14px 38px}
table.steps{border:none;background:transparent}
table.steps td{border-bottom:1px solid #f0f2f5;padding:5px 8px}
table.steps tr.bg td{color:#52606d}
.ico{display:inline-flex;width:18px;height:18px;border-radius:50%;align-items:center;
justify-content:center;font-size:11px;font-weight:800;color:#fff}
.ico.passed{background:var(--pass)}.ico.failed{background:var(--fail)}
.ico.skipped{background:#c9ced6}.ico.undefined{background:#d4a72c}
.kwd{font-weight:700;color:#0b5394;white-space:nowrap}
.arg{color:#8250df;font-weight:600}
.waits{margin-top:4px}
.wait{display:inline-block;font-size:11.5px;border-radius:4px;padding:1px 6px;margin:2px 4px 0 0;
background:#eef4fc;color:#23528f}
.wait.to{background:var(--fail-bg);color:var(--fail)}
pre.err{background:#fff5f5;border:1px solid #ffd2cf;color:#8e1519;border-radius:6px;
padding:8px 10px;margin:6px 0 2px;white-space:pre-wrap;word-break:break-word;max-height:320px;
overflow:auto}
pre.doc{background:#f6f8fa;border-radius:6px;padding:6px 8px;margin:4px 0;white-space:pre-wrap}
table.dt{width:auto;margin:4px 0;border-radius:6px}
table.dt td,table.dt th{padding:3px 10px;font-size:12.5px}
table.dt th{text-transform:none;letter-spacing:0;color:var(--ink)}
.note{color:var(--muted)}
.skipnote{background:var(--skip-bg);color:#5c4200;border-radius:6px;padding:6px 10px;
margin:6px 0}
.bundle{background:#fff8e6;border:1px solid #f2d48f;border-radius:6px;padding:8px 10px;
margin:8px 0}
.bundle ul{margin:4px 0 0 18px;padding:0;columns:2}
details.tb summary{cursor:pointer;color:var(--muted);margin-top:8px}
.graphbox{overflow:auto;background:#fbfcfd;border:1px solid var(--line);border-radius:10px;
padding:8px}
.graphbox svg{display:block;margin:0 auto;max-width:100%;height:auto}
.legend{display:flex;gap:18px;color:var(--muted);font-size:12.5px;margin-top:8px;flex-wrap:wrap}
.legend svg{vertical-align:middle;margin-right:5px}
.filters{display:flex;gap:8px;margin:0 0 8px}
.filters input{position:absolute;opacity:0;pointer-events:none}
.filters label{border:1px solid var(--line);background:#fff;border-radius:999px;padding:4px 12px;
cursor:pointer;font-size:13px;color:var(--muted)}
#f-all:checked~.filters label[for=f-all],#f-failed:checked~.filters label[for=f-failed],
#f-passed:checked~.filters label[for=f-passed],#f-skipped:checked~.filters label[for=f-skipped]
{background:#17212b;color:#fff;border-color:#17212b}
#f-failed:checked~.list details.scenario:not(.st-failed):not(.st-error){display:none}
#f-passed:checked~.list details.scenario:not(.st-passed){display:none}
#f-skipped:checked~.list details.scenario:not(.st-skipped){display:none}
.hidden-radio{position:absolute;opacity:0;pointer-events:none}
footer{color:var(--muted);font-size:12px;padding:0 32px 30px}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _secs(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


_ARG = re.compile(r'("[^"]*"|\'[^\']*\'|\b\d+(?:\.\d+)?\b)')


def _step_text(text: str) -> str:
    """The step sentence with its quoted strings and numbers emphasised, as Gherkin
    editors show the arguments a step definition receives."""
    out, last = [], 0
    for match in _ARG.finditer(text):
        out.append(_e(text[last:match.start()]))
        out.append(f'<span class="arg">{_e(match.group(0))}</span>')
        last = match.end()
    out.append(_e(text[last:]))
    return "".join(out)


def _anchor(scenario: ScenarioRecord) -> str:
    return "sc-" + re.sub(r"[^A-Za-z0-9_-]+", "-", scenario.nodeid).strip("-")


def _tags(tags: Iterable[str]) -> str:
    return "".join(f'<span class="tag">@{_e(t.lstrip("@"))}</span>' for t in tags)


def _verdict(run: RunRecord) -> str:
    counts = run.counts()
    if counts["failed"] or counts["error"]:
        return "failed"
    if not run.scenarios or counts["passed"] == 0:
        return "skipped"
    return "passed"


# --------------------------------------------------------------------------- sections


def _header(run: RunRecord) -> str:
    verdict = _verdict(run)
    started = (time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(run.started))
               if run.started else "")
    meta = []
    if run.run_id:
        meta.append(f"run <code>{_e(run.run_id)}</code>")
    if run.target:
        meta.append(f"target {_e(run.target)}")
    if run.profile:
        meta.append(_e(run.profile))
    if run.mesh:
        meta.append(_e(run.mesh))
    if started:
        meta.append(f"started {started}")
    meta.append(f"wall time {_secs(run.duration)}")
    meta.append(f"{run.workers} xdist workers" if run.workers else "no xdist")
    word = {"passed": "PASSED", "failed": "FAILED", "skipped": "NOTHING RAN"}[verdict]
    return (f'<header class="top"><div><h1>{_e(run.title)}</h1>'
            f'<div class="meta">{" · ".join(meta)}</div></div>'
            f'<div class="verdict {verdict}">{word}</div></header>')


def _summary(run: RunRecord) -> str:
    counts = run.counts()
    total = len(run.scenarios)
    steps = sum(len(s.steps) for s in run.scenarios)
    samples = [s for _, s in run.samples()]
    timeouts = sum(1 for s in samples if not s.converged)
    cards = [("", total, "scenarios")]
    cards += [(k, counts[k], k) for k in ("passed", "failed", "error", "skipped")
              if counts[k] or k in ("passed", "failed")]
    cards += [("", steps, "steps"), ("failed" if timeouts else "", len(samples),
                                     f"waits ({timeouts} timed out)")]
    out = ['<section id="summary"><h2>Summary</h2><div class="cards">']
    out += [f'<div class="card {cls}"><div class="n">{n}</div><div class="l">{_e(label)}'
            f"</div></div>" for cls, n, label in cards]
    out.append("</div>")
    if total:
        out.append('<div class="stack" title="scenarios by status">')
        for key in ("passed", "failed", "error", "skipped"):
            if counts[key]:
                out.append(f'<span class="{key}" style="width:{counts[key] / total * 100:.2f}%" '
                           f'title="{counts[key]} {key}"></span>')
        out.append("</div>")
    out.append('<table><thead><tr><th>Feature</th><th>File</th><th class="num">Scenarios</th>'
               '<th class="num">Passed</th><th class="num">Failed</th>'
               '<th class="num">Skipped</th><th class="num">Duration</th></tr></thead><tbody>')
    for feature, scenarios in run.features():
        failed = sum(1 for s in scenarios if s.status in ("failed", "error"))
        passed = sum(1 for s in scenarios if s.status == "passed")
        skipped = sum(1 for s in scenarios if s.status == "skipped")
        pill = "failed" if failed else ("passed" if passed else "skipped")
        out.append(
            f'<tr><td><span class="pill {pill}">{pill}</span> '
            f'<a href="#ft-{_e(_slug(feature.uri))}">{_e(feature.name or feature.uri)}</a></td>'
            f'<td class="mono">{_e(feature.uri)}</td><td class="num">{len(scenarios)}</td>'
            f'<td class="num">{passed}</td><td class="num">{failed}</td>'
            f'<td class="num">{skipped}</td>'
            f'<td class="num">{_secs(sum(s.duration for s in scenarios))}</td></tr>'
        )
    out.append("</tbody></table></section>")
    return "".join(out)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")


def _bar(value: float, scale: float, *, mark: float | None = None, bad: bool = False) -> str:
    width = 0.0 if scale <= 0 else min(100.0, value / scale * 100)
    marker = ""
    if mark is not None and scale > 0:
        marker = f'<b style="left:{min(100.0, mark / scale * 100):.2f}%" title="median"></b>'
    cls = ' class="to"' if bad else ""
    return f'<div class="bar"><i{cls} style="width:{width:.2f}%"></i>{marker}</div>'


def _convergence(run: RunRecord) -> str:
    pairs = run.samples()
    out = ['<section id="convergence"><h2>Convergence</h2>']
    if not pairs:
        out.append('<p class="note">No waits were recorded (no scenario polled the mesh).</p>'
                   "</section>")
        return "".join(out)
    stats: list[AreaStats] = area_stats(s for _, s in pairs)
    scale = max(a.max for a in stats) or 1.0
    out.append('<p class="note">How long the mesh took to reach each expected state, per '
               "area (the bar spans to the slowest wait; the dark tick is the median).</p>")
    out.append('<table><thead><tr><th>Area</th><th class="num">Waits</th>'
               '<th class="num">Converged</th><th class="num">Timed out</th>'
               '<th class="num">Median</th><th class="num">p95</th><th class="num">Max</th>'
               '<th style="width:32%"></th></tr></thead><tbody>')
    for a in stats:
        out.append(
            f'<tr{" class=timeout" if a.timed_out else ""}><td><b>{_e(a.area)}</b></td>'
            f'<td class="num">{a.waits}</td><td class="num">{a.converged}</td>'
            f'<td class="num">{a.timed_out}</td><td class="num">{_secs(a.median)}</td>'
            f'<td class="num">{_secs(a.p95)}</td><td class="num">{_secs(a.max)}</td>'
            f"<td>{_bar(a.max, scale, mark=a.median, bad=bool(a.timed_out))}</td></tr>"
        )
    out.append("</tbody></table>")
    out.append(f'<details class="tb" {"open" if len(pairs) <= 25 else ""}>'
               f"<summary>Every wait ({len(pairs)})</summary>")
    out.append('<table style="margin-top:8px"><thead><tr><th>Scenario</th><th>Area</th>'
               '<th>Waited for</th><th class="num">Polls</th><th class="num">Seconds</th>'
               '<th style="width:22%"></th></tr></thead><tbody>')
    top = max(s.seconds for _, s in pairs) or 1.0
    for scenario, sample in pairs:
        out.append(
            f'<tr{"" if sample.converged else " class=timeout"}>'
            f'<td><a href="#{_anchor(scenario)}">{_e(scenario.name)}</a></td>'
            f"<td>{_e(sample.area)}</td><td>{_e(sample.what)}"
            f'{"" if sample.converged else " <b>(timed out)</b>"}</td>'
            f'<td class="num">{sample.polls}</td><td class="num">{sample.seconds:.3f}</td>'
            f"<td>{_bar(sample.seconds, top, bad=not sample.converged)}</td></tr>"
        )
    out.append("</tbody></table></details></section>")
    return "".join(out)


def _legend() -> str:
    line = ('<svg width="34" height="10"><line x1="1" y1="5" x2="33" y2="5" stroke="{c}" '
            'stroke-width="2"{d}/></svg>')
    observed = line.format(c="#3a7bd5", d="")
    missing = line.format(c="#d64545", d=' stroke-dasharray="6 4"')
    return (
        '<div class="legend">'
        f"<span>{observed}observed edge (label: rate; thicker = more traffic)</span>"
        f"<span>{missing}expected, not observed</span>"
        "<span>nodes: workload, namespace below it when outside the scenario's own</span>"
        "</div>"
    )


def _graph(run: RunRecord) -> str:
    edges: list[EdgeRecord] = run.graph()
    out = ['<section id="graph"><h2>Service graph</h2>']
    if not edges:
        out.append('<p class="note">No scenario reported service-graph edges (scenarios '
                   "report them as the <code>meshgate_graph</code> property; see "
                   "docs/reports.md).</p></section>")
        return "".join(out)
    reporters = sum(1 for s in run.scenarios if s.graph)
    missing = sum(1 for e in edges if e.missing)
    note = (f"The union of the edges {reporters} scenario{'s' if reporters != 1 else ''} "
            f"observed: {len(edges) - missing} observed")
    note += f", {missing} expected but missing." if missing else "."
    out.append(f'<p class="note">{_e(note)}</p>')
    out.append(f'<div class="graphbox">{render_svg(edges, id_prefix="run")}</div>')
    out.append(_legend())
    out.append("</section>")
    return "".join(out)


# --------------------------------------------------------------------------- scenarios


def _href(path: str, report_dir: Path, base_dir: Path) -> str:
    target = Path(path)
    if not target.is_absolute():
        target = base_dir / target
    try:
        rel = os.path.relpath(target, report_dir)
    except ValueError:
        rel = str(target)
    return quote(Path(rel).as_posix())


def _bundles(scenario: ScenarioRecord, report_dir: Path, base_dir: Path) -> str:
    if not scenario.bundles:
        return ""
    out = ['<div class="bundle"><b>Failure bundle</b>']
    for bundle in scenario.bundles:
        href = _href(bundle, report_dir, base_dir)
        out.append(f' <a href="{href}">{_e(bundle)}</a>')
        folder = Path(bundle) if Path(bundle).is_absolute() else base_dir / bundle
        if folder.is_dir():
            files = sorted(p for p in folder.rglob("*") if p.is_file())
            if files:
                out.append("<ul>")
                for f in files[:BUNDLE_FILES_SHOWN]:
                    rel = f.relative_to(folder).as_posix()
                    out.append(f'<li><a href="{href}/{quote(rel)}">{_e(rel)}</a></li>')
                out.append("</ul>")
                if len(files) > BUNDLE_FILES_SHOWN:
                    out.append(f'<span class="note">and {len(files) - BUNDLE_FILES_SHOWN} '
                               "more files</span>")
    out.append("</div>")
    return "".join(out)


def _wait_chips(samples: list[SampleRecord]) -> str:
    if not samples:
        return ""
    chips = []
    for s in samples:
        state = "" if s.converged else " to"
        verb = "converged" if s.converged else "timed out"
        chips.append(f'<span class="wait{state}" title="{_e(s.what)} ({s.polls} polls)">'
                     f"{_e(s.area)} {verb} in {_secs(s.seconds)}</span>")
    return f'<div class="waits">{"".join(chips)}</div>'


def _step_row(step: StepRecord, samples: list[SampleRecord]) -> str:
    extra = ""
    if step.docstring is not None:
        extra += f'<pre class="doc">{_e(step.docstring)}</pre>'
    if step.datatable:
        # Gherkin tables conventionally start with a header row; show it as one.
        rows = "".join(
            "<tr>" + "".join(f"<{tag}>{_e(c)}</{tag}>" for c in row) + "</tr>"
            for tag, row in ((("th" if i == 0 else "td"), r)
                             for i, r in enumerate(step.datatable))
        )
        extra += f'<table class="dt">{rows}</table>'
    if step.status in ("failed", "undefined") and step.error:
        extra += f'<pre class="err">{_e(step.error)}</pre>'
    extra += _wait_chips(samples)
    where = f' title="{_e(step.location)}"' if step.location else ""
    duration = _secs(step.duration) if step.status in ("passed", "failed") else ""
    return (
        f'<tr class="{"bg" if step.background else ""}">'
        f'<td style="width:26px"><span class="ico {step.status}" title="{step.status}">'
        f"{_ICON.get(step.status, '?')}</span></td>"
        f'<td style="width:1%"><span class="kwd">{_e(step.keyword)}</span></td>'
        f"<td{where}>{_step_text(step.text)}{extra}</td>"
        f'<td class="num note" style="width:80px">{duration}</td></tr>'
    )


def _scenario(scenario: ScenarioRecord, report_dir: Path, base_dir: Path) -> str:
    by_step: dict[int | None, list[SampleRecord]] = {}
    for sample in scenario.convergence:
        by_step.setdefault(sample.step, []).append(sample)
    open_ = " open" if scenario.status in ("failed", "error") else ""
    examples = "".join(f'<span class="ex">{_e(k)} = {_e(v)}</span>'
                       for k, v in scenario.example.items())
    where = f" · {_e(scenario.worker)}" if scenario.worker else ""
    reason = ""
    if scenario.status == "skipped" and scenario.error:
        reason = f'<span class="note">— {_e(scenario.error.splitlines()[0][:140])}</span>'
    out = [
        f'<details class="scenario st-{scenario.status}" id="{_anchor(scenario)}"{open_}>',
        f'<summary><span class="pill {scenario.status}">{scenario.status}</span>'
        f'<span><span class="kw">{_e(scenario.keyword)}:</span> '
        f'<span class="name">{_e(scenario.name)}</span></span>{examples}'
        f"{_tags(scenario.tags)}{reason}"
        f'<span class="right">{_secs(scenario.duration)}{where}</span></summary>',
        '<div class="body">',
    ]
    if scenario.description:
        out.append(f'<p class="desc">{_e(scenario.description)}</p>')
    if scenario.data_plane:
        checked = "".join(f"<li>{_e(line)}</li>" for line in scenario.checked)
        out.append(f'<div class="note">Data plane: {_e(scenario.data_plane)}'
                   + (f"<ul>{checked}</ul>" if checked else "") + "</div>")
    if scenario.status == "skipped" and scenario.error:
        out.append(f'<div class="skipnote">Skipped: {_e(scenario.error)}</div>')
    out.append('<table class="steps"><tbody>')
    for index, step in enumerate(scenario.steps):
        out.append(_step_row(step, by_step.get(index, [])))
    out.append("</tbody></table>")
    if by_step.get(None):
        out.append(f'<div class="note" style="margin-top:6px">Waits in fixtures: '
                   f"{_wait_chips(by_step[None])}</div>")
    if scenario.error and scenario.status in ("failed", "error"):
        out.append(f'<pre class="err">{_e(scenario.error)}</pre>')
    out.append(_bundles(scenario, report_dir, base_dir))
    if scenario.graph:
        svg = render_svg(scenario.graph, title=f"Service graph of {scenario.name}",
                         id_prefix=_anchor(scenario))
        out.append(f'<div style="margin-top:10px"><b>Service graph observed</b>'
                   f'<div class="graphbox" style="margin-top:6px">{svg}</div></div>')
    if scenario.longrepr:
        out.append(f'<details class="tb"><summary>Full pytest output</summary>'
                   f'<pre class="err">{_e(scenario.longrepr)}</pre></details>')
    out.append(f'<div class="note mono" style="margin-top:8px">{_e(scenario.nodeid)}</div>')
    out.append("</div></details>")
    return "".join(out)


def _scenarios(run: RunRecord, report_dir: Path, base_dir: Path) -> str:
    counts = run.counts()
    bad = counts["failed"] + counts["error"]
    out = [
        '<section id="scenarios"><h2>Scenarios</h2>',
        '<input type="radio" name="f" id="f-all" class="hidden-radio" checked>',
        '<input type="radio" name="f" id="f-failed" class="hidden-radio">',
        '<input type="radio" name="f" id="f-passed" class="hidden-radio">',
        '<input type="radio" name="f" id="f-skipped" class="hidden-radio">',
        '<div class="filters">',
        f'<label for="f-all">All ({len(run.scenarios)})</label>',
        f'<label for="f-failed">Failed ({bad})</label>',
        f'<label for="f-passed">Passed ({counts["passed"]})</label>',
        f'<label for="f-skipped">Skipped ({counts["skipped"]})</label>',
        "</div>",
        '<div class="list">',
    ]
    if not run.scenarios:
        out.append('<p class="note">No scenarios ran.</p>')
    for feature, scenarios in run.features():
        out.append(f'<div class="feature" id="ft-{_e(_slug(feature.uri))}">'
                   f'<h3><span class="kw">{_e(feature.keyword)}:</span> '
                   f'{_e(feature.name or feature.uri)}<span class="uri">{_e(feature.uri)}'
                   f"</span></h3>")
        if feature.tags:
            out.append(f"<div>{_tags(feature.tags)}</div>")
        if feature.description:
            out.append(f'<p class="desc">{_e(feature.description)}</p>')
        out += [_scenario(s, report_dir, base_dir) for s in scenarios]
        out.append("</div>")
    out.append("</div></section>")
    return "".join(out)


def render_html(run: RunRecord, *, report_dir: Path | None = None,
                base_dir: Path | None = None) -> str:
    """The whole page.

    ``report_dir`` is where the page will be written (links to failure bundles are made
    relative to it, so the artifacts folder can be moved or downloaded as a whole);
    ``base_dir`` is what relative bundle paths are relative to (the run's working
    directory).
    """
    report_dir = (report_dir or Path.cwd()).resolve()
    base_dir = (base_dir or Path.cwd()).resolve()
    counts = run.counts()
    title = (f"{run.title}: {counts['passed']} passed, {counts['failed'] + counts['error']} "
             f"failed, {counts['skipped']} skipped")
    try:
        from importlib.metadata import version

        made_by = f"meshgate {version('meshgate')}"
    except Exception:  # noqa: BLE001 - not installed as a distribution
        made_by = "meshgate"
    return "\n".join([
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        _header(run),
        '<nav><a href="#summary">Summary</a><a href="#convergence">Convergence</a>'
        '<a href="#graph">Service graph</a><a href="#scenarios">Scenarios</a></nav>',
        "<main>",
        _summary(run),
        _convergence(run),
        _graph(run),
        _scenarios(run, report_dir, base_dir),
        "</main>",
        f"<footer>Generated by {_e(made_by)}. Cucumber JSON and JUnit XML of the same run "
        "carry the same steps, waits and properties.</footer>",
        "</body></html>",
    ]) + "\n"

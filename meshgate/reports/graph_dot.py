"""A service graph in Graphviz's DOT language, for ``meshgate edges --dot``.

The same edges the HTML report draws as SVG, for tools that lay graphs out themselves
(``dot -Tpng``) or diff them as text. Edges are labelled with their protocol and rate as
Kiali shows them; an expected edge that was not observed is dashed and red.
"""

from __future__ import annotations

from collections.abc import Iterable

from meshgate.reports.model import EdgeRecord


def _quote(text: str) -> str:
    """A DOT quoted string: only the double quote and the backslash need escaping
    (graphviz.org/doc/info/lang.html, "ID")."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(edges: Iterable[EdgeRecord], *, title: str = "service graph") -> str:
    """``digraph`` text with one statement per node and per edge, in a stable order."""
    edges = sorted(edges, key=lambda e: (e.source, e.target))
    nodes = sorted({e.source for e in edges} | {e.target for e in edges})
    lines = [f"digraph {_quote(title)} {{", "  rankdir=LR;",
             '  node [shape=box, style=rounded, fontname="sans-serif"];']
    lines += [f"  {_quote(n)};" for n in nodes]
    for e in edges:
        parts = [p for p in (e.protocol, None if e.rate is None else f"{e.rate:g}/s") if p]
        attrs = [f"label={_quote(' '.join(parts))}"] if parts else []
        if e.missing:
            attrs += ["style=dashed", "color=red", "fontcolor=red"]
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"  {_quote(e.source)} -> {_quote(e.target)}{suffix};")
    lines.append("}")
    return "\n".join(lines)

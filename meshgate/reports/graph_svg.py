"""Draw a service graph as an inline SVG, laid out here (no Graphviz, no JavaScript).

The report must open anywhere (a CI artifact viewer, a mail attachment, a browser with
no network), so the picture is computed in Python: a small layered ("Sugiyama") layout —
break cycles, put each node in the column of its longest path from a source, route
long edges through virtual points, order each column by the barycentre of its
neighbours to reduce crossings — then draw left-to-right as traffic flows, from the
ingress on the left to the backends on the right. Mesh graphs are small (a handful of
workloads), so the simple quadratic steps here are plenty fast.

Edges that were expected but not observed (``missing``) are drawn dashed in red; the
rate, when known, labels the edge (req/s for HTTP and gRPC, B/s for TCP, as Kiali).
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from meshgate.reports.model import EdgeRecord, merge_edges

__all__ = ["Layout", "PlacedNode", "layout", "render_svg"]

NODE_HEIGHT = 46.0
NAME_CHAR = 7.6  # px per character of a 13px bold sans-serif label (estimate)
NS_CHAR = 6.3  # px per character of the 11px namespace line
NODE_PAD = 26.0
LAYER_GAP = 120.0  # horizontal room for the edges and their labels between columns
ROW_GAP = 30.0
MARGIN = 24.0
LOOP_ROOM = 34.0  # room above a node for a self-loop
VIRTUAL = "\0virtual"

COLOURS = {
    "node_fill": "#ffffff",
    "node_stroke": "#5b6b7c",
    "node_text": "#1f2933",
    "ns_text": "#6b7785",
    "edge": "#3a7bd5",
    "missing": "#d64545",
    "label_bg": "#ffffff",
}


@dataclass
class PlacedNode:
    """A node's box: top-left corner, size and the column (layer) it sits in."""

    label: str
    x: float
    y: float
    width: float
    height: float
    layer: int
    virtual: bool = False

    @property
    def name(self) -> str:
        """The workload part of ``namespace/workload``."""
        return self.label.rsplit("/", 1)[-1]

    @property
    def namespace(self) -> str | None:
        return self.label.rsplit("/", 1)[0] if "/" in self.label else None

    @property
    def cx(self) -> float:
        return self.x + self.width / 2

    @property
    def cy(self) -> float:
        return self.y + self.height / 2


@dataclass
class Layout:
    """Where everything goes: node boxes, the points each edge passes, the canvas size."""

    nodes: dict[str, PlacedNode]
    edges: list[EdgeRecord]
    routes: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # via virtuals
    reversed: set[tuple[str, str]] = field(default_factory=set)  # drawn as back arcs
    width: float = 0.0
    height: float = 0.0

    def crossings(self) -> int:
        """Crossings between adjacent columns (what the ordering tries to minimise)."""
        segments: dict[int, list[tuple[float, float]]] = {}
        for key, via in self.routes.items():
            chain = [key[0], *via, key[1]]
            for a, b in itertools.pairwise(chain):
                na, nb = self.nodes[a], self.nodes[b]
                if nb.layer == na.layer + 1:
                    segments.setdefault(na.layer, []).append((na.cy, nb.cy))
        count = 0
        for segs in segments.values():
            for i, (a1, b1) in enumerate(segs):
                for a2, b2 in segs[i + 1:]:
                    if (a1 - a2) * (b1 - b2) < 0:
                        count += 1
        return count


def _node_width(label: str) -> float:
    name = label.rsplit("/", 1)[-1]
    namespace = label.rsplit("/", 1)[0] if "/" in label else ""
    return max(len(name) * NAME_CHAR, len(namespace) * NS_CHAR, 40.0) + NODE_PAD


def _break_cycles(nodes: Sequence[str], edges: Sequence[tuple[str, str]]
                  ) -> set[tuple[str, str]]:
    """The edges to reverse so the graph has no cycle (back edges of a DFS)."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    indeg = dict.fromkeys(nodes, 0)
    for s, t in edges:
        succ[s].append(t)
        indeg[t] += 1
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    roots = [n for n in nodes if indeg[n] == 0] + [n for n in nodes if indeg[n] != 0]
    for root in roots:
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            node, i = stack[-1]
            if i < len(succ[node]):
                stack[-1] = (node, i + 1)
                nxt = succ[node][i]
                if state.get(nxt) == 1:
                    back.add((node, nxt))
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                stack.pop()
    return back


def _layers(nodes: Sequence[str], dag: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Longest path from a source: traffic's direction reads left to right."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    indeg = dict.fromkeys(nodes, 0)
    for s, t in dag:
        succ[s].append(t)
        indeg[t] += 1
    layer = dict.fromkeys(nodes, 0)
    ready = [n for n in nodes if indeg[n] == 0]
    while ready:
        node = ready.pop(0)
        for nxt in succ[node]:
            layer[nxt] = max(layer[nxt], layer[node] + 1)
            indeg[nxt] -= 1
            if indeg[nxt] == 0:
                ready.append(nxt)
    return layer


def _order(columns: list[list[str]], links: Sequence[tuple[str, str]],
           layer: dict[str, int]) -> list[list[str]]:
    """Barycentre sweeps over the columns; keep the ordering with the fewest crossings."""
    preds: dict[str, list[str]] = {}
    succs: dict[str, list[str]] = {}
    for a, b in links:
        preds.setdefault(b, []).append(a)
        succs.setdefault(a, []).append(b)

    def crossings(cols: list[list[str]]) -> int:
        pos = {n: i for col in cols for i, n in enumerate(col)}
        count = 0
        segs_by_layer: dict[int, list[tuple[int, int]]] = {}
        for a, b in links:
            segs_by_layer.setdefault(layer[a], []).append((pos[a], pos[b]))
        for segs in segs_by_layer.values():
            for i, (a1, b1) in enumerate(segs):
                for a2, b2 in segs[i + 1:]:
                    if (a1 - a2) * (b1 - b2) < 0:
                        count += 1
        return count

    def sweep(cols: list[list[str]], downward: bool) -> list[list[str]]:
        cols = [list(c) for c in cols]
        indices = range(1, len(cols)) if downward else range(len(cols) - 2, -1, -1)
        for i in indices:
            ref = cols[i - 1] if downward else cols[i + 1]
            ref_pos = {n: p for p, n in enumerate(ref)}
            neighbours = preds if downward else succs

            def bary(node: str, col: list[str] = cols[i], ref_pos: dict = ref_pos,
                     neighbours: dict = neighbours) -> tuple[float, int]:
                near = [ref_pos[n] for n in neighbours.get(node, []) if n in ref_pos]
                here = col.index(node)
                return (sum(near) / len(near) if near else float(here), here)

            cols[i] = sorted(cols[i], key=bary)
        return cols

    best, best_score = columns, crossings(columns)
    current = columns
    for _ in range(6):
        current = sweep(sweep(current, True), False)
        score = crossings(current)
        if score < best_score:
            best, best_score = current, score
        if best_score == 0:
            break
    return best


def layout(edges: Iterable[EdgeRecord]) -> Layout:
    """Place the nodes and route the edges of a service graph (see the module docstring)."""
    merged = merge_edges(edges)
    labels: dict[str, None] = {}
    for edge in merged:
        labels.setdefault(edge.source)
        labels.setdefault(edge.target)
    nodes = sorted(labels)
    pairs = [e.key() for e in merged if e.source != e.target]
    back = _break_cycles(nodes, pairs)
    dag = [(t, s) if (s, t) in back else (s, t) for s, t in pairs]
    layer = _layers(nodes, dag)

    # Long forward edges pass through one virtual point per column they skip, so the
    # ordering keeps them clear of the boxes in between.
    links: list[tuple[str, str]] = []
    routes: dict[tuple[str, str], list[str]] = {}
    for s, t in pairs:
        if (s, t) in back:
            continue
        via = []
        prev = s
        for k in range(layer[s] + 1, layer[t]):
            v = f"{VIRTUAL}:{s}->{t}:{k}"
            layer[v] = k
            via.append(v)
            links.append((prev, v))
            prev = v
        links.append((prev, t))
        routes[(s, t)] = via

    depth = max(layer.values(), default=0) + 1
    columns: list[list[str]] = [[] for _ in range(depth)]
    for node in sorted(layer, key=lambda n: (layer[n], n.startswith(VIRTUAL), n)):
        columns[layer[node]].append(node)
    columns = _order(columns, links, layer)

    has_loop = any(e.source == e.target for e in merged)
    top = MARGIN + (LOOP_ROOM if has_loop else 0.0)
    col_width = [max((_node_width(n) for n in col if not n.startswith(VIRTUAL)), default=24.0)
                 for col in columns]

    def column_height(col: list[str]) -> float:
        sizes = [12.0 if n.startswith(VIRTUAL) else NODE_HEIGHT for n in col]
        return sum(sizes) + ROW_GAP * max(0, len(col) - 1)

    tallest = max((column_height(c) for c in columns), default=0.0)
    placed: dict[str, PlacedNode] = {}
    x = MARGIN
    for i, col in enumerate(columns):
        y = top + (tallest - column_height(col)) / 2
        for node in col:
            virtual = node.startswith(VIRTUAL)
            h = 12.0 if virtual else NODE_HEIGHT
            w = 0.0 if virtual else col_width[i]
            nx = x + (col_width[i] - w) / 2
            placed[node] = PlacedNode(node, nx, y, w, h, i, virtual)
            y += h + ROW_GAP
        x += col_width[i] + LAYER_GAP

    back_room = 0.0
    if back:
        back_room = 30.0 + 16.0 * len(back)
    width = max(x - LAYER_GAP + MARGIN, 2 * MARGIN)
    height = top + tallest + MARGIN + back_room
    return Layout(placed, merged, routes, back, width, height)


# --------------------------------------------------------------------------- drawing


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _rate_text(edge: EdgeRecord) -> str:
    if edge.missing:
        return "missing"
    if edge.rate is None:
        return ""
    unit = "B/s" if (edge.protocol or "").lower() == "tcp" else "req/s"
    value = edge.rate
    text = f"{value:.3g}" if value < 1000 else f"{value:,.0f}"
    return f"{text} {unit}"


def _stroke_width(edge: EdgeRecord) -> float:
    if edge.missing or edge.rate is None or edge.rate <= 0:
        return 1.6
    return round(1.6 + min(3.0, math.log10(1.0 + edge.rate) * 1.5), 2)


def _forward_path(points: list[tuple[float, float]]) -> tuple[str, tuple[float, float]]:
    """Cubic segments with horizontal tangents through ``points``; returns the path and
    the midpoint of the middle segment (where the label goes)."""
    d = [f"M{_fmt(points[0][0])},{_fmt(points[0][1])}"]
    mids = []
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        dx = (x1 - x0) / 2
        d.append(f"C{_fmt(x0 + dx)},{_fmt(y0)} {_fmt(x1 - dx)},{_fmt(y1)} "
                 f"{_fmt(x1)},{_fmt(y1)}")
        mids.append(((x0 + x1) / 2, (y0 + y1) / 2))
    return " ".join(d), mids[len(mids) // 2]


def _label(x: float, y: float, text: str, colour: str) -> list[str]:
    if not text:
        return []
    width = len(text) * 6.4 + 8
    return [
        f'<rect x="{_fmt(x - width / 2)}" y="{_fmt(y - 9)}" width="{_fmt(width)}" '
        f'height="16" rx="3" fill="{COLOURS["label_bg"]}" fill-opacity="0.92"/>',
        f'<text x="{_fmt(x)}" y="{_fmt(y + 3.5)}" text-anchor="middle" font-size="11" '
        f'fill="{colour}">{html.escape(text)}</text>',
    ]


def render_svg(edges: Iterable[EdgeRecord], *, title: str = "Observed service graph",
               id_prefix: str = "g") -> str:
    """The graph as an ``<svg>`` element (empty string when there are no edges).

    ``id_prefix`` keeps marker ids unique when several graphs share one HTML page.
    """
    lay = layout(edges)
    if not lay.edges:
        return ""
    arrow, arrow_missing = f"{id_prefix}-arrow", f"{id_prefix}-arrow-missing"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" role="img" '
        f'viewBox="0 0 {_fmt(lay.width)} {_fmt(lay.height)}" width="{_fmt(lay.width)}" '
        f'height="{_fmt(lay.height)}" font-family="system-ui, -apple-system, Segoe UI, '
        f'Helvetica, Arial, sans-serif" aria-label="{html.escape(title)}">',
        f"<title>{html.escape(title)}</title>",
        "<defs>",
        f'<marker id="{arrow}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        f'fill="{COLOURS["edge"]}"/></marker>',
        f'<marker id="{arrow_missing}" viewBox="0 0 10 10" refX="9" refY="5" '
        f'markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path '
        f'd="M0,0 L10,5 L0,10 z" fill="{COLOURS["missing"]}"/></marker>',
        "</defs>",
    ]
    labels: list[str] = []
    back_index = 0
    only_missing = {n for n in lay.nodes if not n.startswith(VIRTUAL)}
    for edge in lay.edges:
        if not edge.missing:
            only_missing.discard(edge.source)
            only_missing.discard(edge.target)

    for edge in lay.edges:
        colour = COLOURS["missing"] if edge.missing else COLOURS["edge"]
        marker = arrow_missing if edge.missing else arrow
        src, dst = lay.nodes[edge.source], lay.nodes[edge.target]
        if edge.source == edge.target:
            x0, x1, y = src.x + src.width * 0.62, src.x + src.width * 0.38, src.y
            d = (f"M{_fmt(x0)},{_fmt(y)} C{_fmt(x0 + 14)},{_fmt(y - LOOP_ROOM)} "
                 f"{_fmt(x1 - 14)},{_fmt(y - LOOP_ROOM)} {_fmt(x1)},{_fmt(y)}")
            mid = (src.cx, y - LOOP_ROOM * 0.75)
        elif edge.key() in lay.reversed:
            back_index += 1
            low = max(src.y + src.height, dst.y + dst.height) + 18 + 16 * back_index
            sx, dx_ = src.cx, dst.cx
            d = (f"M{_fmt(sx)},{_fmt(src.y + src.height)} C{_fmt(sx)},{_fmt(low)} "
                 f"{_fmt(dx_)},{_fmt(low)} {_fmt(dx_)},{_fmt(dst.y + dst.height)}")
            mid = ((sx + dx_) / 2, low - 6)
        else:
            via = [lay.nodes[v] for v in lay.routes.get(edge.key(), [])]
            points = [(src.x + src.width, src.cy), *[(v.cx, v.cy) for v in via],
                      (dst.x - 1.5, dst.cy)]
            d, mid = _forward_path(points)
        dash = ' stroke-dasharray="6 4"' if edge.missing else ""
        tip = f"{edge.source} → {edge.target}"
        text = _rate_text(edge)
        if edge.protocol:
            tip += f" ({edge.protocol})"
        if text:
            tip += f": {text}"
        out.append(
            f'<path class="edge{" missing" if edge.missing else ""}" d="{d}" fill="none" '
            f'stroke="{colour}" stroke-width="{_stroke_width(edge)}"{dash} '
            f'marker-end="url(#{marker})"><title>{html.escape(tip)}</title></path>'
        )
        labels += _label(mid[0], mid[1], text, colour)

    for node in sorted(lay.nodes.values(), key=lambda n: (n.layer, n.y)):
        if node.virtual:
            continue
        dash = ' stroke-dasharray="5 3"' if node.label in only_missing else ""
        stroke = COLOURS["missing"] if node.label in only_missing else COLOURS["node_stroke"]
        out.append(f'<g class="node"><title>{html.escape(node.label)}</title>')
        out.append(
            f'<rect x="{_fmt(node.x)}" y="{_fmt(node.y)}" width="{_fmt(node.width)}" '
            f'height="{_fmt(node.height)}" rx="8" fill="{COLOURS["node_fill"]}" '
            f'stroke="{stroke}" stroke-width="1.4"{dash}/>'
        )
        if node.namespace:
            out.append(
                f'<text x="{_fmt(node.cx)}" y="{_fmt(node.y + 19)}" text-anchor="middle" '
                f'font-size="13" font-weight="600" fill="{COLOURS["node_text"]}">'
                f"{html.escape(node.name)}</text>"
            )
            out.append(
                f'<text x="{_fmt(node.cx)}" y="{_fmt(node.y + 35)}" text-anchor="middle" '
                f'font-size="11" fill="{COLOURS["ns_text"]}">{html.escape(node.namespace)}</text>'
            )
        else:
            out.append(
                f'<text x="{_fmt(node.cx)}" y="{_fmt(node.cy + 4.5)}" text-anchor="middle" '
                f'font-size="13" font-weight="600" fill="{COLOURS["node_text"]}">'
                f"{html.escape(node.name)}</text>"
            )
        out.append("</g>")
    out += labels
    out.append("</svg>")
    return "\n".join(out)

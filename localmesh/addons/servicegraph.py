"""The Istio 0.x-1.1 servicegraph addon, reading Istio's metrics from Prometheus.

The 2017 walkthrough checked the mesh's graph with this addon's ``/d3graph``
(``docker.io/istio/servicegraph``, port 8088; istio/istio tag 0.2.7
``install/kubernetes/addons/servicegraph.yaml``). Its last source is
istio/istio tag 1.1.0 ``addons/servicegraph`` (removed in 1.2, commit e007bee2b05); this
program serves the same endpoints with the same documents:

* ``/graph`` — ``{"nodes": {name: {}}, "edges": [{"source", "target", "labels"}]}``
  (``servicegraph.go`` ``Dynamic``/``Edge``);
* ``/d3graph`` — ``{"nodes": [{"name"}], "links": [{"source": i, "target": j,
  "labels"}]}`` with indexes into ``nodes`` (``d3graph.go``);
* ``/dotgraph`` — ``digraph "istio-servicegraph" { "a" -> "b" [label="reqs/sec: …"]; … }``
  with node ids where ``/``, ``.`` and space become ``_`` (``dot/dot.go``);
* ``/dotviz`` — an HTML page carrying that DOT text, rendered client-side when a
  ``Viz`` renderer is present and shown as text otherwise;
* ``/node?name=…`` (POST) — add a static node, as ``cmd/server/main.go`` ``addNode``.

Every graph endpoint takes ``time_horizon`` (default ``5m``), ``filter_empty=true``,
``destination_namespace``, ``destination_workload``, ``source_namespace`` and
``source_workload`` (the addon's README).

The queries are ``promgen/promgen.go``'s at 1.1.0:

    sum(rate(istio_requests_total{reporter="destination"<filters>}[<h>]))
        by (source_workload, destination_workload, source_app, destination_app)   → reqs/sec
    sum(rate(istio_tcp_received_bytes_total{reporter="destination"<filters>}[<h>]))
        by (source_workload, destination_workload, source_app, destination_app)   → bytes/sec

with `` > 0`` appended for ``filter_empty=true``, and the value written with 6 decimals
(``strconv.FormatFloat(v, 'f', 6, 64)``).

Node names are the 1.1 addon's: ``<app> (<workload>)`` from ``source_app`` /
``source_workload`` (and the destination's), e.g. ``composer (composer)`` or
``unknown (unknown)`` for callers outside the mesh. Not ``<workload>.<namespace>``: the
1.1 addon never put a namespace in a name, and a suite that passes here must pass
against the real addon. (0.2.7 — the walkthrough's version — named nodes by service FQDN
and version from Mixer's ``request_count``; that metric no longer exists.)
meshgate.graph.servicegraph_edges reads both spellings.

Differences from the 1.1 addon, on purpose:

* The namespace filters use ``destination_workload_namespace`` /
  ``source_workload_namespace``. 1.1 filtered on ``destination_namespace`` /
  ``source_namespace``, labels Istio's standard metrics do not have
  (https://istio.io/latest/docs/reference/config/metrics/), so those filters matched
  nothing; the intent (the README: "where the destination workload is in the given
  namespace") is what is implemented. Filter values
  are quoted as PromQL strings (1.1 pasted them in).
* New series count from zero (localmesh/addons/promql.py): where ``rate`` has no positive
  value for a group, the counter's growth since it appeared in the window is used, so a
  request sent seconds ago draws its edge.
* Prometheus failures answer 503 with ``{"error": reason}``; a bad ``time_horizon``
  answers 400 (1.1 answered 500 with plain text for both). ``/healthz`` is added for the
  kubelet's probes. The static asset routes (``/force/forcegraph.html``, ``/js/…``) are
  not served.
"""

from __future__ import annotations

import asyncio
import html
import json
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from localmesh.addons import AddonConfig, error_json, log_problem, main, problem_middleware
from localmesh.addons.promql import (
    NEW_SERIES_TEMPLATE,
    Prometheus,
    PrometheusUnavailable,
    counter_rates,
    label_matcher,
    parse_duration,
    rate_queries,
)

PROGRAM = "servicegraph"
DEFAULT_PORT = 8088
DEFAULT_TIME_HORIZON = "5m"

GROUP_BY = "source_workload, destination_workload, source_app, destination_app"
# promgen.go reqsFmt / tcpFmt, as templates for promql.rate_queries.
RATE_TEMPLATE = "sum(rate({metric}{selector}[{window}])) by ({by}){idle}"

# (metric, edge label) in the order promgen.go merges them: requests first, then TCP.
GRAPH_METRICS = (("istio_requests_total", "reqs/sec"),
                 ("istio_tcp_received_bytes_total", "bytes/sec"))

# query parameter → the label it filters (see the module docstring for the namespaces).
FILTERS = (
    ("destination_namespace", "destination_workload_namespace"),
    ("destination_workload", "destination_workload"),
    ("source_namespace", "source_workload_namespace"),
    ("source_workload", "source_workload"),
)


class BadRequest(Exception):
    """A query parameter the addon cannot use; the message is the 400 body's error."""


@dataclass
class Graph:
    """servicegraph.go Dynamic: named nodes and labelled edges, in discovery order."""

    nodes: dict[str, dict] = field(default_factory=dict)
    edges: list[dict] = field(default_factory=list)

    def add_edge(self, source: str, target: str, labels: dict[str, str]) -> None:
        self.edges.append({"source": source, "target": target, "labels": labels})
        self.nodes.setdefault(source, {})
        self.nodes.setdefault(target, {})

    def to_json(self) -> dict:
        """``/graph``: Go's encoder writes map keys sorted."""
        return {"nodes": {name: {} for name in sorted(self.nodes)}, "edges": self.edges}

    def to_d3(self) -> dict:
        """``/d3graph``: nodes as a list (sorted, for a stable answer) and index links."""
        names = sorted(self.nodes)
        index = {name: i for i, name in enumerate(names)}
        return {
            "nodes": [{"name": name} for name in names],
            "links": [{"source": index[e["source"]], "target": index[e["target"]],
                       "labels": e["labels"]} for e in self.edges],
        }

    def to_dot(self) -> str:
        """``/dotgraph``: dot.go generateDot."""
        lines = ['digraph "istio-servicegraph" {']
        for e in self.edges:
            label = ", ".join(f"{k}: {v}" for k, v in e["labels"].items())
            lines.append(f"{_quote(_dot_id(e['source']))} -> {_quote(_dot_id(e['target']))} "
                         f"[label={_quote(label)}];")
        for name in sorted(self.nodes):
            lines.append(f"{_quote(_dot_id(name))} [label={_quote(name)}];")
        lines.append("}")
        return "\n".join(lines) + "\n"


def _dot_id(name: str) -> str:
    """dot.go idStr: ``/``, ``.`` and space replaced by ``_``."""
    return name.replace("/", "_").replace(".", "_").replace(" ", "_")


def _quote(text: str) -> str:
    """Go's %q for the ASCII names used here (a JSON string is the same literal)."""
    return json.dumps(text)


def _node_name(app: str, workload: str) -> str:
    """promgen.go extractGraph: ``src+" ("+srcWorkload+")"``."""
    return f"{app} ({workload})"


@dataclass(frozen=True)
class GraphRequest:
    horizon: str
    horizon_seconds: float
    filter_empty: bool
    matchers: tuple[str, ...]


def parse_request(params: Mapping[str, str]) -> GraphRequest:
    horizon = params.get("time_horizon", "") or DEFAULT_TIME_HORIZON
    try:
        seconds = parse_duration(horizon)
    except ValueError as error:
        raise BadRequest(f"could not parse time_horizon: {error}") from None
    if seconds <= 0:
        raise BadRequest(f"could not parse time_horizon: {horizon!r} is not a positive window")
    matchers = [label_matcher("reporter", "=", "destination")]
    for param, label in FILTERS:
        if params.get(param):
            matchers.append(label_matcher(label, "=", params[param]))
    return GraphRequest(horizon, seconds, params.get("filter_empty") == "true", tuple(matchers))


async def generate(prometheus: Prometheus, request: GraphRequest,
                   static_nodes: set[str]) -> Graph:
    """promgen.go generate: the requests graph, then the TCP graph, merged with static nodes."""
    answers = await asyncio.gather(*(
        counter_rates(
            prometheus,
            rate_queries(metric, request.matchers, request.horizon, request.horizon_seconds,
                         GROUP_BY, keep_idle=not request.filter_empty,
                         rate_template=RATE_TEMPLATE, new_series_template=NEW_SERIES_TEMPLATE),
            None, keep_idle=not request.filter_empty)
        for metric, _ in GRAPH_METRICS))
    graph = Graph()
    for (_, label), samples in zip(GRAPH_METRICS, answers, strict=True):
        for sample in samples:
            m = sample.labels
            graph.add_edge(
                _node_name(m.get("source_app", ""), m.get("source_workload", "")),
                _node_name(m.get("destination_app", ""), m.get("destination_workload", "")),
                {label: f"{sample.value:.6f}"})
    for name in static_nodes:
        graph.nodes.setdefault(name, {})
    return graph


# --------------------------------------------------------------------------- HTTP

PROMETHEUS_KEY = web.AppKey("prometheus", Prometheus)
STATIC_NODES_KEY = web.AppKey("static_nodes", set)

_DOTVIZ_PAGE = """<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8">
    <title>istio-servicegraph</title>
  </head>
  <body>
    <script type="text/graphviz" id="cluster">
{dot_raw}
    </script>
    <pre id="dot">{dot_text}</pre>
    <script>
    // Render with viz.js when the page provides it (the 1.1 addon served /js/viz/viz-lite.js);
    // otherwise the DOT text above stays as the page's content.
    if (typeof Viz !== "undefined") {{
      document.getElementById("dot").outerHTML =
        Viz(document.getElementById("cluster").innerHTML, "svg");
    }}
    </script>
  </body>
</html>
"""


async def _graph_or_error(request: web.Request) -> Graph | web.Response:
    try:
        graph_request = parse_request(request.query)
    except BadRequest as error:
        return error_json(400, str(error))
    try:
        return await generate(request.app[PROMETHEUS_KEY], graph_request,
                              request.app[STATIC_NODES_KEY])
    except PrometheusUnavailable as error:
        log_problem(PROGRAM, f"graph unavailable: {error}")
        return error_json(503, f"Prometheus is unavailable: {error}")


async def graph_json(request: web.Request) -> web.Response:
    graph = await _graph_or_error(request)
    return graph if isinstance(graph, web.Response) else web.json_response(graph.to_json())


async def d3graph(request: web.Request) -> web.Response:
    graph = await _graph_or_error(request)
    return graph if isinstance(graph, web.Response) else web.json_response(graph.to_d3())


async def dotgraph(request: web.Request) -> web.Response:
    graph = await _graph_or_error(request)
    if isinstance(graph, web.Response):
        return graph
    return web.Response(text=graph.to_dot(), content_type="text/plain")


async def dotviz(request: web.Request) -> web.Response:
    graph = await _graph_or_error(request)
    if isinstance(graph, web.Response):
        return graph
    dot = graph.to_dot()
    # A script element's content is raw text (entities are not decoded, so "->" must stay
    # as is; dot.go used text/template for the same reason); only "</" could end it early.
    page = _DOTVIZ_PAGE.format(dot_raw=dot.replace("</", "<\\/"),
                               dot_text=html.escape(dot, quote=False))
    return web.Response(text=page, content_type="text/html")


async def add_node(request: web.Request) -> web.Response:
    """main.go addNode: POST ?name= adds a node that every later graph includes."""
    if request.method != "POST":
        return web.Response(status=501, text="requests of this type not supported at this time")
    name = request.query.get("name", "")
    if not name:
        return web.Response(status=400, text="missing argument 'name'")
    request.app[STATIC_NODES_KEY].add(name)
    return web.Response(status=200)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def build_app(config: AddonConfig) -> web.Application:
    app = web.Application(middlewares=[problem_middleware(PROGRAM)])
    app[STATIC_NODES_KEY] = set()

    async def prometheus_client(app: web.Application) -> AsyncIterator[None]:
        app[PROMETHEUS_KEY] = Prometheus(config.prometheus_url, config.prometheus_timeout)
        yield
        await app[PROMETHEUS_KEY].close()

    app.cleanup_ctx.append(prometheus_client)
    app.router.add_get("/graph", graph_json)
    app.router.add_get("/d3graph", d3graph)
    app.router.add_get("/dotgraph", dotgraph)
    app.router.add_get("/dotviz", dotviz)
    app.router.add_route("*", "/node", add_node)
    app.router.add_get("/healthz", healthz)
    return app


if __name__ == "__main__":
    sys.exit(main(build_app, PROGRAM, DEFAULT_PORT))

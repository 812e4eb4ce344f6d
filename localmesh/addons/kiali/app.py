"""Kiali's HTTP API as the addon pod serves it, under Kiali's ``web_root`` ``/kiali``:
``GET /kiali/api/namespaces/graph`` (``routing/routes.go`` "GraphNamespaces",
``graph/api/api.go``), ``GET /kiali/api`` (the status document) and the health checks.

Environment (besides the addons' own, localmesh/addons/__init__.py): ``ISTIO_NAMESPACE``,
Kiali's ``istio_namespace`` setting (localmesh's installer sets it; Istio's namespace if
unset), and ``LOG_QUERIES=1`` to log every PromQL expression a graph runs.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from localmesh.addons import AddonConfig, error_json, log_info, log_problem, problem_middleware
from localmesh.addons.kiali.cytoscape import to_config
from localmesh.addons.kiali.finalizers import (
    mark_outside_or_inaccessible,
    mark_traffic_generators,
    merge_traffic_maps,
    reduce_to_service_graph,
)
from localmesh.addons.kiali.graph import TrafficMap
from localmesh.addons.kiali.options import GRAPH_SERVICE, BadRequest, Options, parse_options
from localmesh.addons.kiali.telemetry import TrafficBuilder, namespace_queries
from localmesh.addons.promql import Prometheus, PrometheusUnavailable, counter_rates
from localmesh.istio.names import ISTIO_NAMESPACE

PROGRAM = "kiali"
DEFAULT_PORT = 20001
WEB_ROOT = "/kiali"
KIALI_VERSION = "v2.x-localmesh"  # what /api reports; this is an emulation of the graph API


async def build_graph(prometheus: Prometheus, o: Options, *, istio_namespace: str,
                      log_queries: bool = False) -> dict[str, Any]:
    """BuildNamespacesTrafficMap then NewConfig: the whole graph request.

    All queries of all namespaces run concurrently; their answers are then applied in
    Kiali's order (namespace by namespace, query by query), because the first series
    applied to an edge is the one the de-duplication keeps.
    """
    plans = [namespace_queries(ns, o) for ns in o.namespaces]
    flat = [q for plan in plans for q in plan]
    if log_queries:
        for q in flat:
            log_info(PROGRAM, f"query {q.queries.rate} | new-series {q.queries.new_series}")
    answers = await asyncio.gather(*(
        counter_rates(prometheus, q.queries, o.query_time, keep_idle=o.include_idle_edges)
        for q in flat))
    builder = TrafficBuilder(o, istio_namespace)
    traffic: TrafficMap = {}
    index = 0
    for namespace, plan in zip(o.namespaces, plans, strict=True):
        ns_traffic: TrafficMap = {}
        for query in plan:
            builder.populate(ns_traffic, answers[index], query.metric)
            index += 1
        merge_traffic_maps(traffic, namespace, ns_traffic)
    mark_outside_or_inaccessible(traffic, o.namespaces)
    mark_traffic_generators(traffic)
    if o.graph_type == GRAPH_SERVICE:
        traffic = reduce_to_service_graph(traffic)
    for reason in builder.skipped[:5]:
        log_problem(PROGRAM, f"skipped a series as Kiali does: {reason}")
    if len(builder.skipped) > 5:
        log_problem(PROGRAM, f"... and {len(builder.skipped) - 5} more skipped series")
    return to_config(traffic, o)


# --------------------------------------------------------------------------- HTTP

PROMETHEUS_KEY = web.AppKey("prometheus", Prometheus)
CONFIG_KEY = web.AppKey("config", AddonConfig)
ISTIO_NAMESPACE_KEY = web.AppKey("istio_namespace", str)


async def graph_namespaces(request: web.Request) -> web.Response:
    """``GET /kiali/api/namespaces/graph`` (routing/routes.go "GraphNamespaces")."""
    try:
        options = parse_options(request.query)
    except BadRequest as error:
        return error_json(400, str(error))
    log_queries = os.environ.get("LOG_QUERIES", "") not in ("", "0", "false")
    try:
        doc = await build_graph(request.app[PROMETHEUS_KEY], options,
                                istio_namespace=request.app[ISTIO_NAMESPACE_KEY],
                                log_queries=log_queries)
    except PrometheusUnavailable as error:
        log_problem(PROGRAM, f"graph unavailable: {error}")
        return error_json(503, f"Prometheus is unavailable: {error}")
    return web.json_response(doc)


async def api_status(request: web.Request) -> web.Response:
    """``GET /kiali/api``: Kiali's status document (handlers/root.go Root)."""
    prometheus = request.app[PROMETHEUS_KEY]
    info = await prometheus.build_info()
    external = [{"name": "Prometheus", "version": info.get("version", "")} if info
                else {"name": "Prometheus", "version": "unreachable"}]
    return web.json_response({
        "status": {"Kiali state": "running", "Kiali version": KIALI_VERSION,
                   "Kiali commit hash": "localmesh", "Kiali container version": KIALI_VERSION},
        "externalServices": external,
        "warningMessages": [] if info else [f"Prometheus at {prometheus.url} is unreachable"],
        "istioEnvironment": {"isMaistra": False, "istioAPIEnabled": True},
    })


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def build_app(config: AddonConfig) -> web.Application:
    """The aiohttp application: Kiali's routes under its web_root, JSON errors elsewhere."""
    app = web.Application(middlewares=[problem_middleware(PROGRAM)])
    app[CONFIG_KEY] = config
    app[ISTIO_NAMESPACE_KEY] = os.environ.get("ISTIO_NAMESPACE", "").strip() or ISTIO_NAMESPACE

    async def prometheus_client(app: web.Application) -> AsyncIterator[None]:
        app[PROMETHEUS_KEY] = Prometheus(config.prometheus_url, config.prometheus_timeout)
        yield
        await app[PROMETHEUS_KEY].close()

    app.cleanup_ctx.append(prometheus_client)
    app.router.add_get(f"{WEB_ROOT}/api/namespaces/graph", graph_namespaces)
    app.router.add_get(f"{WEB_ROOT}/api", api_status)
    app.router.add_get(f"{WEB_ROOT}/api/", api_status)
    app.router.add_get(f"{WEB_ROOT}/healthz", healthz)
    app.router.add_get("/healthz", healthz)
    return app

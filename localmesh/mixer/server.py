"""The program of Mixer's image (``docker.io/istio/mixer``): istio-telemetry and
istio-policy.

Mixer 1.4 (``mixs server``) took the sidecars' ``Report`` calls on 9091, ran its config's
rules and instances over each report's attributes, and dispatched them to adapters; it
served its own monitoring on 15014 and the Prometheus adapter's series on 42422. Here the
reports arrive as the sidecars' gRPC access-log streams on the same port (Envoy 1.40 has
no Mixer filter; localmesh/mixer/xds.py points their loggers here), each entry becomes an
attribute bag (attributes.py) and the 1.4 defaults are applied (adapters.py): the stdio
handler's JSON ``accesslog`` lines on stdout (``kubectl logs … -c mixer``), the Prometheus
handler's ``istio_*`` series on ``:42422/metrics``, and ``:15014/metrics`` and
``/version`` for Mixer itself. With ``--log_output_level=api:debug`` each report's
attribute bag is also logged, one attribute per line, as Mixer's ``api`` scope did when
asked. istio-policy runs the same program; sidecars never ask it for checks
(``disablePolicyChecks: true``), so it only idles, as a 1.4 install with policy disabled.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import signal
import sys

import grpc
from aiohttp import web
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc

from localmesh.mixer.adapters import PrometheusHandler, http_rule, stdio_line
from localmesh.mixer.attributes import Bag, bag_of

VERSION = "1.4.10"


def log(level: str, scope: str, message: str) -> None:
    """Istio's log line (``pkg/log``): time, level, scope, message, tab-separated."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    scope_part = "" if scope == "default" else f"{scope}\t"
    print(f"{now}\t{level}\t{scope_part}{message}", file=sys.stderr, flush=True)


def _debug_bag(bag: Bag) -> None:
    log("debug", "api", "Dispatching Report 1 out of 1")
    for name in sorted(bag):
        value = bag[name]
        if isinstance(value, datetime.datetime):
            value = value.isoformat()
        log("debug", "api", f"  {name:<32}: {value}")


class Reports(als_pb2_grpc.AccessLogServiceServicer):
    """The sidecars' report streams: each entry's bag through stdio and prometheus."""

    def __init__(self, handler: PrometheusHandler, debug: bool) -> None:
        self.handler = handler
        self.debug = debug

    def report(self, log_name: str, entry: object) -> None:
        bag = bag_of(log_name, entry)
        with self.handler.lock:
            self.handler.reports += 1
        if self.debug:
            _debug_bag(bag)
        if bag.get("context.protocol") in ("http", "grpc"):
            print(stdio_line(bag), flush=True)
            with self.handler.lock:
                self.handler.dispatches["stdio"] += 1
        if http_rule(bag):
            self.handler.record(bag)

    async def StreamAccessLogs(self, request_iterator, context):
        log_name = ""
        async for msg in request_iterator:
            if msg.HasField("identifier"):
                log_name = msg.identifier.log_name
            for entry in msg.http_logs.log_entry:
                self.report(log_name, entry)
        return als_pb2.StreamAccessLogsResponse()


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mixs", add_help=False)
    parser.add_argument("command", nargs="?", default="server")
    parser.add_argument("--monitoringPort", type=int, default=15014)
    parser.add_argument("--port", type=int, default=9091)
    parser.add_argument("--log_output_level", default="default:info")
    args, _ = parser.parse_known_args(argv)
    return args


async def serve(argv: list[str]) -> int:
    args = _arguments(argv)
    bind = os.environ.get("BIND_ADDRESS") or os.environ.get("LOCALMESH_POD_IP", "127.0.0.1")
    handler = PrometheusHandler()
    debug = "api:debug" in args.log_output_level
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    als_pb2_grpc.add_AccessLogServiceServicer_to_server(Reports(handler, debug), server)
    server.add_insecure_port(f"{bind}:{args.port}")
    await server.start()
    log("info", "default", f"Starting gRPC server on port {args.port}")

    async def prometheus(request: web.Request) -> web.Response:
        return web.Response(text=handler.exposition(), content_type="text/plain")

    async def monitoring(request: web.Request) -> web.Response:
        return web.Response(text=handler.self_monitoring(), content_type="text/plain")

    async def version(request: web.Request) -> web.Response:
        return web.Response(text=f"{VERSION}\n")

    adapter = web.Application()
    adapter.router.add_get("/metrics", prometheus)
    monitor = web.Application()
    monitor.router.add_get("/metrics", monitoring)
    monitor.router.add_get("/version", version)
    runners = []
    for app, port in ((adapter, 42422), (monitor, args.monitoringPort)):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, bind, port).start()
        runners.append(runner)
    log("info", "default", f"Starting monitor server on port {args.monitoringPort}")
    log("info", "adapters", "serving prometheus metrics on 42422")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.5)
    for runner in runners:
        await runner.cleanup()
    return 0


def main() -> int:
    return asyncio.run(serve(sys.argv[1:]))


if __name__ == "__main__":
    raise SystemExit(main())

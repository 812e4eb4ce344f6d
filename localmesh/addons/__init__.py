"""Istio's observability addons as local programs: Kiali's graph API and the 0.x servicegraph.

localmesh's kubelet runs an addon pod's image as ``python -m localmesh.addons.<name>``
(see localmesh/kubelet/catalogue.py) with the environment a pod would get:

* ``BIND_ADDRESS`` — the pod IP (a 127.x.y.z address); the only address bound.
* ``PORT`` — the container port (Kiali 20001, servicegraph 8088). ``0`` picks a free
  port; the ``listening http host:port`` line on stdout always carries the real one.
* ``PROMETHEUS_URL`` — the Prometheus the addon reads, e.g. ``http://127.10.1.5:9090``.
* ``PROMETHEUS_TIMEOUT`` — optional, seconds per query (default 10).
* ``LOG_QUERIES=1`` — optional (Kiali): log every PromQL expression a graph runs.

This module holds what a pod process needs regardless of the addon: reading that
environment, one-line logs (stdout for events and access lines, stderr for problems, as
the workloads do, so pod logs read the same), JSON error answers instead of tracebacks,
and a clean exit 0 on SIGTERM, which is how the kubelet stops a pod.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TextIO

from aiohttp import web

from localmesh.addons.promql import DEFAULT_TIMEOUT_SECONDS, check_loopback_url

__all__ = ["AddonConfig", "error_json", "log_info", "log_problem", "main", "problem_middleware"]

# How long in-flight requests get to finish after SIGTERM; a graph query takes well
# under this, and the kubelet's grace period is longer.
SHUTDOWN_GRACE_SECONDS = 2.0

# The same one-line records as workloads/log.py, on purpose not shared with it: localmesh
# never imports the workloads package (it runs it as a program, from the image catalogue),
# and the workloads are the app image, built alone (workloads/Dockerfile); an emulated
# Istio addon depending on the test application's code would couple the two.
_log_lock = threading.Lock()


def _stamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def _write(stream: TextIO, program: str, message: str) -> None:
    line = f"{_stamp()} {program} {message}".replace("\n", "\\n") + "\n"
    with _log_lock:
        stream.write(line)
        stream.flush()


def log_info(program: str, message: str) -> None:
    """One flushed line on stdout: the pod log a failure bundle captures."""
    _write(sys.stdout, program, message)


def log_problem(program: str, message: str) -> None:
    """One flushed line on stderr, where an operator looks first."""
    _write(sys.stderr, program, message)


@dataclass(frozen=True)
class AddonConfig:
    """The pod environment an addon runs with."""

    bind_address: str
    port: int
    prometheus_url: str
    prometheus_timeout: float

    @classmethod
    def from_environment(cls, default_port: int) -> AddonConfig:
        """Read and check the environment; ValueError with a readable message if wrong."""
        bind = os.environ.get("BIND_ADDRESS", "127.0.0.1").strip()
        try:
            if not ipaddress.ip_address(bind).is_loopback:
                raise ValueError
        except ValueError:
            raise ValueError(f"BIND_ADDRESS={bind!r} is not a loopback IP address") from None
        port_text = os.environ.get("PORT", str(default_port)).strip()
        if not port_text.isdigit() or int(port_text) > 65535:
            raise ValueError(f"PORT={port_text!r} is not a TCP port number")
        url = os.environ.get("PROMETHEUS_URL", "").strip()
        if not url:
            raise ValueError("PROMETHEUS_URL is not set (e.g. http://127.10.1.5:9090)")
        check_loopback_url(url)
        timeout_text = os.environ.get("PROMETHEUS_TIMEOUT", str(DEFAULT_TIMEOUT_SECONDS))
        try:
            timeout = float(timeout_text)
            if timeout <= 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"PROMETHEUS_TIMEOUT={timeout_text!r} is not a positive number") \
                from None
        return cls(bind, int(port_text), url, timeout)


def error_json(status: int, message: str) -> web.Response:
    """Kiali's error body (``{"error": message}``, handlers/utils.go RespondWithError)."""
    return web.json_response({"error": message}, status=status)


def problem_middleware(program: str) -> Callable:
    """Access lines on stdout; unknown paths → 404 JSON; a crash → 500 JSON, trace on stderr.

    The graph addons are diagnosed from their pod logs (the failure bundle), so every
    answer but a healthy probe leaves one line with its status and duration.
    """

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.monotonic()
        try:
            response = await handler(request)
        except web.HTTPException as http_error:
            if http_error.status == 404:
                response = error_json(404, f"no such endpoint: {request.method} {request.path}")
            elif http_error.status == 405:
                response = error_json(405, f"method {request.method} not allowed on "
                                           f"{request.path}")
            else:
                raise
        except Exception as error:  # noqa: BLE001 - the pod must answer, not die
            log_problem(program, f"error serving {request.method} {request.path_qs}: "
                                 f"{error!r}\n{traceback.format_exc()}")
            response = error_json(500, f"internal error: {error}")
        elapsed_ms = (time.monotonic() - started) * 1000
        # The kubelet probes /healthz every few seconds; a healthy answer is not news.
        if not (request.path.endswith("/healthz") and response.status < 400):
            log_info(program, f"{request.method} {request.path_qs} {response.status} "
                              f"{elapsed_ms:.0f}ms")
        return response

    return middleware


async def _serve(app: web.Application, config: AddonConfig, program: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_SECONDS)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.bind_address, config.port)
        await site.start()
        for address in runner.addresses:
            host, port = address[0], address[1]
            log_info(program, f"listening http {host}:{port}")
        log_info(program, f"reading Prometheus at {config.prometheus_url}")
        await stop.wait()
        log_info(program, "stopping (signal)")
    finally:
        await runner.cleanup()


def main(build_app: Callable[[AddonConfig], web.Application], program: str,
         default_port: int) -> int:
    """Run an addon until SIGTERM; the exit code is 0 after a signal, 2 on bad config."""
    try:
        config = AddonConfig.from_environment(default_port)
    except ValueError as error:
        log_problem(program, f"configuration error: {error}")
        return 2
    try:
        asyncio.run(_serve(build_app(config), config, program))
    except OSError as error:  # e.g. the address is taken
        log_problem(program, f"cannot serve on {config.bind_address}:{config.port}: {error}")
        return 1
    return 0

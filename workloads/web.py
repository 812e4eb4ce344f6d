"""The HTTP/1.1 server every workload uses, tuned for life behind an Envoy sidecar.

* ``protocol_version = "HTTP/1.1"``: Envoy keeps upstream connections alive; answering
  with HTTP/1.0 would make it open a connection per request.
* ``disable_nagle_algorithm = True``: ``BaseHTTPRequestHandler`` writes headers and body
  in two sends; with Nagle on, delayed ACKs on Envoy's reused connection stall every
  request after the first by about 40 ms (measured behind localmesh's Envoy).
* One access line per request on stdout, with the request id and trace id, so a reader of
  the pod logs can follow a request across hops.
* Keep-alive connections must not hold up shutdown: handler threads are daemons and the
  server does not join them on close.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from . import log, tracing
from .lifecycle import Lifecycle
from .settings import join_host_port


@dataclass
class Response:
    """What a route returns; the handler turns it into bytes on the wire."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, document: object) -> Response:
    """A JSON response (Fabric's REST API answers JSON for errors too)."""
    body = json.dumps(document, indent=2, sort_keys=False).encode() + b"\n"
    return Response(status, body, "application/json")


def text_response(status: int, text: str) -> Response:
    """A plain-text response."""
    return Response(status, text.encode())


class WorkloadHandler(BaseHTTPRequestHandler):
    """Base request handler: GET/HEAD routing, access log, trace context, safe errors.

    Subclasses set ``program`` and implement :meth:`route`.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 300  # drop idle keep-alive connections eventually, never mid-request
    server_version = "meshgate-workload/0.1"
    sys_version = ""
    program = "workload"

    def version_string(self) -> str:
        """``Server`` header: the workload, not the Python version."""
        return self.server_version

    def route(self, path: str) -> Response:  # pragma: no cover - overridden
        """Answer a GET for ``path`` (query string removed)."""
        return json_response(404, {"Error": f"no route for {path}"})

    @property
    def trace_context(self) -> dict[str, str]:
        """The inbound headers to copy onto outbound calls made while serving.

        Empty when the request line could not be parsed (no headers were read).
        """
        headers = getattr(self, "headers", None)
        return tracing.pick(headers.items()) if headers is not None else {}

    def do_GET(self) -> None:
        started = time.monotonic()
        path = urlsplit(self.path).path or "/"
        try:
            response = self.route(path)
        except Exception as error:  # noqa: BLE001 - a bug must answer 500, not hang up
            log.problem(self.program, f"GET {path} failed: {type(error).__name__}: {error}")
            response = json_response(500, {"Error": "internal error"})
        self.respond(response, started, with_body=self.command != "HEAD")

    do_HEAD = do_GET

    def _refuse(self) -> None:
        """Answer methods the workloads do not serve; close, since the body is unread."""
        started = time.monotonic()
        self.close_connection = True
        response = json_response(405, {"Error": f"method {self.command} not allowed"})
        response.headers.update({"Allow": "GET, HEAD", "Connection": "close"})
        self.respond(response, started)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def respond(self, response: Response, started: float, with_body: bool = True) -> None:
        """Write status, headers and (unless answering HEAD) body, then the access line."""
        self.send_response_only(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Date", self.date_time_string())
        self.send_header("Server", self.version_string())
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(response.body)
        self._access(response.status, len(response.body), started)

    def _access(self, status: int | str, size: int | str, started: float | None) -> None:
        elapsed = f"{(time.monotonic() - started) * 1000:.1f}ms" if started else "-"
        client = join_host_port(self.client_address[0], self.client_address[1])
        log.info(
            self.program,
            f'http {client} "{self.requestline}" {status} {size} {elapsed} '
            f"{tracing.describe(self.trace_context)}",
        )

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Access line for answers the base class writes itself (400, 501 ...)."""
        self._access(int(code) if isinstance(code, int) else code, size, None)

    def log_message(self, format: str, *args: Any) -> None:
        """Protocol errors go to stderr, one line, never with request headers."""
        log.problem(self.program, "http " + (format % args))


class WorkloadServer(ThreadingHTTPServer):
    """A threading HTTP server that binds IPv4 or IPv6 and never blocks shutdown."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, host: str, port: int, handler: Callable[..., WorkloadHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), handler)

    def server_bind(self) -> None:
        """Bind without ``HTTPServer``'s reverse DNS lookup of the bind address.

        ``HTTPServer.server_bind`` calls ``socket.getfqdn``, which can block for seconds
        in a pod or sandbox without working reverse DNS.
        """
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


def serve(
    program: str,
    host: str,
    port: int,
    handler: Callable[..., WorkloadHandler],
    lifecycle: Lifecycle,
    label: str = "http",
) -> WorkloadServer:
    """Bind, start serving on a thread, log ``listening`` and register the shutdown.

    The ``listening <label> host:port`` line carries the real port, so a caller that
    asked for port 0 learns which one it got.
    """
    server = WorkloadServer(host, port, handler)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name=f"{program}-{label}",
        daemon=True,
    )
    thread.start()

    def close() -> None:
        server.shutdown()
        server.server_close()

    lifecycle.on_stop(f"{label} server", close)
    log.info(program, f"listening {label} {join_host_port(host, server.server_port)}")
    return server

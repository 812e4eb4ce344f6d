"""gRPC with JSON messages: serving generic unary handlers and dialing through the mesh.

Why JSON over gRPC instead of generated protobuf code: the mesh only sees HTTP/2 frames,
the ``content-type: application/grpc`` header, the ``:path`` (``/package.Service/Method``)
and ``grpc-status`` trailers. Those are what Istio routes, counts (``request_protocol=
"grpc"``, ``grpc_response_status``) and draws, and they are identical whatever the
payload encoding is, so the workloads stay stdlib + grpcio with nothing to generate.

Outbound dialing has two modes, chosen by ``MESH_OUTBOUND_PROXY``:

* set (local emulator): connect to that ``host:port`` in plaintext HTTP/2 and set the
  ``:authority`` to the real target, because the sidecar picks the route by authority,
  exactly as it does for traffic redirected by iptables on a cluster;
* unset (cluster): dial the target by name; iptables sends it through the sidecar.

Either way grpc's own ``http_proxy`` support (HTTP CONNECT) is switched off: the emulator
sets ``HTTP_PROXY`` for urllib, and grpc would otherwise tunnel gRPC through it as opaque
TCP, hiding the :path and authority from the sidecar.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc

from . import log, tracing
from .lifecycle import Lifecycle
from .settings import ConfigError, join_host_port


class Malformed:
    """Marker for a request body that is not a JSON object (answered INVALID_ARGUMENT)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def encode(message: Mapping[str, Any]) -> bytes:
    """Serialize a message: compact UTF-8 JSON."""
    return json.dumps(message, separators=(",", ":"), sort_keys=True).encode()


def decode(data: bytes) -> dict[str, Any] | Malformed:
    """Deserialize a request without raising: grpc would turn an exception into INTERNAL."""
    if not data:
        return {}
    try:
        message = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        return Malformed(f"request is not JSON: {type(error).__name__}")
    if not isinstance(message, dict):
        return Malformed("request is not a JSON object")
    return message


def decode_response(data: bytes) -> dict[str, Any]:
    """Deserialize a response; a malformed one is a bug on the other side, so raise."""
    message = json.loads(data.decode("utf-8")) if data else {}
    if not isinstance(message, dict):
        raise TypeError("response is not a JSON object")
    return message


class RpcFailure(Exception):
    """Raised by a handler to end the call with a gRPC status other than OK."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Call:
    """What a handler knows about the call it serves, and notes for its access line."""

    method: str
    peer: str
    trace_context: dict[str, str]
    notes: list[str] = field(default_factory=list)

    def note(self, key: str, value: object) -> None:
        """Add ``key=value`` to the access line (never pass a secret here)."""
        self.notes.append(f"{key}={value}")


Handler = Callable[[dict[str, Any], Call], dict[str, Any]]


def _unary(program: str, method: str, handler: Handler) -> grpc.RpcMethodHandler:
    def behaviour(request: dict[str, Any] | Malformed, context: grpc.ServicerContext) -> Any:
        started = time.monotonic()
        metadata = [(str(key), str(value)) for key, value in context.invocation_metadata()]
        call = Call(method, context.peer(), tracing.pick(metadata))
        code, message, response = grpc.StatusCode.OK, "", None
        try:
            if isinstance(request, Malformed):
                raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
            response = handler(request, call)
        except RpcFailure as failure:
            code, message = failure.code, failure.message
        except Exception as error:  # noqa: BLE001 - answer INTERNAL, keep serving
            code, message = grpc.StatusCode.INTERNAL, "internal error"
            log.problem(program, f"grpc {method} failed: {type(error).__name__}: {error}")
        notes = "".join(f" {note}" for note in call.notes)
        log.info(
            program,
            f'grpc {call.peer} "{method}" {code.name} '
            f"{(time.monotonic() - started) * 1000:.1f}ms "
            f"{tracing.describe(call.trace_context)}{notes}",
        )
        if code is not grpc.StatusCode.OK:
            context.abort(code, message)
        return response

    return grpc.unary_unary_rpc_method_handler(
        behaviour, request_deserializer=decode, response_serializer=encode
    )


def serve(
    program: str,
    host: str,
    port: int,
    services: Mapping[str, Mapping[str, Handler]],
    lifecycle: Lifecycle,
    label: str = "grpc",
) -> grpc.Server:
    """Serve ``{"pkg.Service": {"Method": handler}}`` on ``host:port`` in plaintext.

    Logs ``listening <label> host:port`` with the bound port (``port`` may be 0).
    """
    server = grpc.server(
        ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"{program}-grpc"),
        # No SO_REUSEPORT: a second process on the same port must fail, not share it.
        options=[("grpc.so_reuseport", 0)],
    )
    server.add_generic_rpc_handlers(
        tuple(
            grpc.method_handlers_generic_handler(
                service,
                {name: _unary(program, f"/{service}/{name}", fn) for name, fn in methods.items()},
            )
            for service, methods in services.items()
        )
    )
    wanted = join_host_port(host, port)
    try:
        bound = server.add_insecure_port(wanted)
    except RuntimeError as error:
        raise ConfigError(f"cannot listen on {wanted}: {error}") from None
    if not bound:
        raise ConfigError(f"cannot listen on {wanted}")
    server.start()
    lifecycle.on_stop(f"{label} server", lambda: server.stop(grace=0.3).wait(1.0))
    log.info(program, f"listening {label} {join_host_port(host, bound)}")
    return server


def dial(target: str) -> grpc.Channel:
    """Open a plaintext channel to ``target`` (``host:port``) the way the mesh expects.

    Reconnect back-off is capped at 2 s so that a workload started before its server
    (normal in a namespace being created) recovers within one enrollment interval
    instead of grpc's default of up to two minutes.
    """
    options: list[tuple[str, Any]] = [
        ("grpc.enable_http_proxy", 0),
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.min_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]
    proxy = os.environ.get("MESH_OUTBOUND_PROXY", "")
    if proxy:
        options.append(("grpc.default_authority", target))
        return grpc.insecure_channel(proxy, options=options)
    return grpc.insecure_channel(target, options=options)


def invoke(
    channel: grpc.Channel,
    method: str,
    request: Mapping[str, Any],
    *,
    timeout: float,
    trace_context: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Make one unary call; raises ``grpc.RpcError`` on any non-OK status."""
    stub = channel.unary_unary(
        method, request_serializer=encode, response_deserializer=decode_response
    )
    metadata = tuple((key, value) for key, value in (trace_context or {}).items())
    result: dict[str, Any] = stub(request, timeout=timeout, metadata=metadata or None)
    return result


def failure_text(error: grpc.RpcError) -> str:
    """Describe a failed call in one line: status name and the server's detail."""
    code = error.code() if isinstance(error, grpc.Call) else None
    details = error.details() if isinstance(error, grpc.Call) else str(error)
    name = code.name if code is not None else "UNKNOWN"
    return f"{name}: {details}"

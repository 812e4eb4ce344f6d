"""Trace-context propagation: which inbound headers a workload copies onto its calls.

Envoy starts a span per hop on its own, but joining hops into one trace needs the
application to copy these headers from the request it serves onto the requests it makes
(Istio's distributed-tracing docs list exactly these).
"""

from __future__ import annotations

from collections.abc import Iterable

PROPAGATED_HEADERS: tuple[str, ...] = (
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
)


def pick(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Return the propagated headers among ``headers``, names lowercased.

    Values that are not printable ASCII are dropped: gRPC refuses them as metadata, and a
    trace header is never worth failing the call it rides on.
    """
    wanted = set(PROPAGATED_HEADERS)
    found: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if key in wanted and key not in found and value.isascii() and value.isprintable():
            found[key] = value
    return found


def trace_id(context: dict[str, str]) -> str:
    """Return the trace id carried by W3C ``traceparent`` or B3, or ``-`` for logs."""
    parent = context.get("traceparent", "")
    parts = parent.split("-")
    if len(parts) >= 4 and parts[1]:
        return parts[1]
    if context.get("x-b3-traceid"):
        return context["x-b3-traceid"]
    single = context.get("b3", "")
    return single.split("-")[0] if single else "-"


def describe(context: dict[str, str]) -> str:
    """Render the request id and trace id for an access line."""
    return f"rid={context.get('x-request-id') or '-'} trace={trace_id(context)}"

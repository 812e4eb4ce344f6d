"""The API server's proxy subresources: passing a request through to a pod or a Service.

``pods/{name}/proxy`` and ``services/{name}/proxy`` forward any method, path and query
to the target, as k8s.io/apimachinery ``pkg/util/proxy`` (``UpgradeAwareHandler``) does
for kube-apiserver: hop-by-hop headers and the client's credentials stay behind, and an
unreachable target is a 503 Status. The kubelet (pods/proxy, localmesh/kubelet/streams.py)
and the service proxy (services/proxy, localmesh/controllers/serviceproxy.py) share it.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from localmesh.api.status import ApiError

# Hop-by-hop headers (RFC 9110 §7.6.1), plus the caller's credentials and framing.
HOP_HEADERS = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
               "trailers", "transfer-encoding", "upgrade", "authorization", "host",
               "content-length"}


def split_proxy_name(name: str) -> tuple[str, str, str | None]:
    """``[scheme:]name[:port]`` of a proxy URL → (scheme, name, port or None)."""
    parts = name.split(":")
    if len(parts) == 3:
        return parts[0] or "http", parts[1], parts[2] or None
    if len(parts) == 2:
        return "http", parts[0], parts[1] or None
    return "http", parts[0], None


def proxied_path(path: str) -> str:
    """The part of a proxy request's path after ``/proxy``: the path the target sees."""
    marker = "/proxy"
    idx = path.find(marker + "/")
    if idx < 0:
        return "/"
    return path[idx + len(marker):]


async def forward_http(request: web.Request, url: str) -> web.StreamResponse:
    """Pass a request through to a pod or service, any method, path and query."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
    body = await request.read()
    if request.query_string:
        url = f"{url}?{request.query_string}"
    timeout = aiohttp.ClientTimeout(total=60, connect=5)
    try:
        async with aiohttp.ClientSession(trust_env=False, timeout=timeout,
                                         auto_decompress=False) as session:
            async with session.request(request.method, url, headers=headers, data=body,
                                       allow_redirects=False) as upstream:
                out_headers = {k: v for k, v in upstream.headers.items()
                               if k.lower() not in HOP_HEADERS}
                payload = await upstream.read()
                return web.Response(status=upstream.status, body=payload, headers=out_headers)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise ApiError(503, "ServiceUnavailable",
                       f"error trying to reach service: {exc.__class__.__name__}: {exc}") \
            from exc

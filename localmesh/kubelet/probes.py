"""Readiness, liveness and startup probes: httpGet, tcpSocket, exec and grpc.

A probe reaches the container where its program listens (the pod IP, or the pod's local
address when a sidecar intercepts inbound traffic, the way Istio rewrites app probes to
go around the sidecar).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

# Runs a command in the container, bounded by a timeout; answers its exit code.
ExecInContainer = Callable[[list[str], float], Awaitable[int]]


def _port(container: dict, port: object) -> int | None:
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p.get("containerPort")
    return None


async def run_probe(probe: dict, host: str, container: dict,
                    exec_in_container: ExecInContainer) -> bool:
    """One probe of ``container`` (its spec), whose program listens on ``host``."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            hg = probe["httpGet"]
            port = _port(container, hg.get("port"))
            if port is None:
                return False
            return await asyncio.wait_for(_http(host, port, hg.get("path", "/"),
                                                hg.get("httpHeaders") or []), timeout)
        if "tcpSocket" in probe:
            port = _port(container, probe["tcpSocket"].get("port"))
            if port is None:
                return False
            _, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            w.close()
            return True
        if "exec" in probe:
            return await exec_in_container(probe["exec"]["command"], timeout) == 0
        if "grpc" in probe:
            port = probe["grpc"].get("port")
            _, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            w.close()
            return True
    except (TimeoutError, OSError):
        return False
    return False


async def _http(host: str, port: int, path: str, headers: list[dict]) -> bool:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        extra = "".join(f"{h['name']}: {h['value']}\r\n" for h in headers)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: "
                     f"kube-probe/1.33\r\n{extra}Connection: close\r\n\r\n".encode())
        await writer.drain()
        line = await reader.readline()
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            return False
        return 200 <= int(parts[1]) < 400
    finally:
        writer.close()

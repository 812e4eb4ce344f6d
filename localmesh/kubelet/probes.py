"""Readiness, liveness and startup probes: httpGet, tcpSocket, exec and grpc.

A probe reaches the container where its program listens (the pod IP, or the pod's local
address when a sidecar intercepts inbound traffic, the way Istio rewrites app probes to
go around the sidecar).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localmesh.kubelet.pods import ContainerState, PodWorker


def _port(c: ContainerState, port: object) -> int | None:
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in c.spec.get("ports") or []:
        if p.get("name") == port:
            return p.get("containerPort")
    return None


async def run_probe(pod: PodWorker, c: ContainerState, probe: dict) -> bool:
    timeout = float(probe.get("timeoutSeconds", 1))
    host = pod.bind_address(c)
    try:
        if "httpGet" in probe:
            hg = probe["httpGet"]
            port = _port(c, hg.get("port"))
            if port is None:
                return False
            return await asyncio.wait_for(_http(host, port, hg.get("path", "/"),
                                                hg.get("httpHeaders") or []), timeout)
        if "tcpSocket" in probe:
            port = _port(c, probe["tcpSocket"].get("port"))
            if port is None:
                return False
            _, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            w.close()
            return True
        if "exec" in probe:
            code, _, _ = await pod.kubelet.exec_capture(pod, c, probe["exec"]["command"],
                                                        timeout)
            return code == 0
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

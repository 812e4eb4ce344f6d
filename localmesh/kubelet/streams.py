"""Pod subresources that stream: exec, attach and portforward, log, and proxy.

exec, attach and port-forward come over SPDY/3.1 (kubectl <= 1.29, and kubectl >= 1.31's
port-forward tunnelled in a WebSocket) — localmesh/kubelet/spdy_streams.py — or over
WebSocket channels (kubectl >= 1.30 exec, the Python client), here.

WebSocket framing follows the Kubernetes remotecommand protocol: each binary message starts
with a channel byte (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; ``v5`` adds 255 =
close a channel). The error channel carries a ``Status`` with the exit code, which is how
kubectl and the Python client learn that a command failed. Port-forward uses a pair of
channels per port (data 2i, error 2i+1), each opened by a two-byte little-endian port
number.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from localmesh.api import status
from localmesh.api.proxy import forward_http, proxied_path, split_proxy_name
from localmesh.api.status import ApiError
from localmesh.kubelet import spdy_streams
from localmesh.resources import ResourceType

if TYPE_CHECKING:
    from localmesh.kubelet.node import Kubelet
    from localmesh.kubelet.pods import ContainerState, PodWorker

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io",
                  "v2.channel.k8s.io", "channel.k8s.io")
# SPDY tunnelled in a WebSocket first (what kubectl >= 1.31 asks for), then the
# channel protocols the Python client's portforward() speaks.
PORTFORWARD_PROTOCOLS = ("SPDY/3.1+portforward.k8s.io", "v4.channel.k8s.io",
                         "portforward.k8s.io", "channel.k8s.io")



def _pod_and_container(kubelet: Kubelet, namespace: str, name: str,
                       container: str | None) -> tuple[PodWorker, ContainerState]:
    pod = kubelet.store.get(("", "pods"), namespace, name)
    if pod is None:
        raise status.not_found("pods", name)
    worker = kubelet.workers.get(pod["metadata"]["uid"])
    if worker is None:
        raise status.bad_request(f"pod {name} is not running on this node")
    c = worker.container(container)
    if c is None:
        names = [x.name for x in worker.containers + worker.inits]
        if container:
            raise status.bad_request(
                f"container {container} is not valid for pod {name}")
        raise status.bad_request(
            f"a container name must be specified for pod {name}, choose one of: {names}")
    return worker, c


def handlers(kubelet: Kubelet) -> dict[str, Callable[..., Awaitable[web.StreamResponse]]]:
    """The handlers of the pod subresources the node serves, by subresource name: exec,
    attach, log, portforward and proxy (the API server routes them here)."""

    async def exec_handler(request: web.Request, rt: ResourceType, namespace: str,
                           name: str) -> web.StreamResponse:
        return await remote_command(request, namespace, name, attach=False)

    async def attach_handler(request: web.Request, rt: ResourceType, namespace: str,
                             name: str) -> web.StreamResponse:
        return await remote_command(request, namespace, name, attach=True)

    async def remote_command(request: web.Request, namespace: str, name: str, *,
                             attach: bool) -> web.StreamResponse:
        """exec or attach, over SPDY (kubectl <= 1.29) or WebSocket (1.30+, clients)."""
        q = request.query
        command = q.getall("command", [])
        if not command and not attach:
            raise status.bad_request("you must specify at least 1 command")
        worker, c = _pod_and_container(kubelet, namespace, name, q.get("container"))
        if c.process is None or c.process.exit_code is not None:
            raise status.bad_request(
                f"container {c.name} is not valid for pod {name}: container not running")
        if spdy_streams.wants_spdy(request):
            up = await spdy_streams.upgrade(request, spdy_streams.EXEC_PROTOCOLS)
            if isinstance(up, web.Response):
                return up
            channel, protocol, resp = up
            runner = spdy_streams.attach_runner(worker, c) if attach else \
                spdy_streams.exec_runner(kubelet, worker, c, command, _tty(q))
            kubelet.open_streams.add(channel)
            try:
                await spdy_streams.serve_remotecommand(channel, protocol, q, runner)
            finally:
                kubelet.open_streams.discard(channel)
            return resp
        if attach:
            raise ApiError(400, "BadRequest", "Upgrade request required: localmesh serves "
                                              "attach over SPDY")
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, max_msg_size=0)
        if not ws.can_prepare(request).ok:
            raise ApiError(400, "BadRequest",
                           "Upgrade request required: exec is served over SPDY/3.1 or "
                           "WebSocket")
        await ws.prepare(request)
        want_stdin = q.get("stdin") in ("1", "true")
        kubelet.open_streams.add(ws)
        try:
            await _run_exec(kubelet, worker, c, command, ws, want_stdin)
        finally:
            kubelet.open_streams.discard(ws)
        return ws

    async def log_handler(request: web.Request, rt: ResourceType, namespace: str,
                          name: str) -> web.StreamResponse:
        q = request.query
        worker, c = _pod_and_container(kubelet, namespace, name, q.get("container"))
        if q.get("previous") in ("1", "true"):
            path = c.log_path(worker.dir, previous=True)
            if path is None:
                # The kubelet's message (pkg/kubelet/kuberuntime/kuberuntime_container.go).
                raise status.bad_request(
                    f'previous terminated container "{c.name}" in pod "{name}" not found')
            follow = False
        else:
            path = c.log_path(worker.dir)
            if path is None:
                reason = c.waiting[0] if c.waiting else "ContainerCreating"
                raise status.bad_request(
                    f'container "{c.name}" in pod "{name}" is waiting to start: {reason}')
            follow = q.get("follow") in ("1", "true")
        try:
            tail = int(q["tailLines"]) if q.get("tailLines") else None
            limit = int(q["limitBytes"]) if q.get("limitBytes") else None
        except ValueError as exc:
            raise status.bad_request(f"invalid log options: {exc}") from exc
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        raw = path.read_bytes() if path.exists() else b""
        data = raw
        if tail is not None:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-tail:]) if tail > 0 else b""
        if limit is not None:
            data = data[:limit]
        await resp.write(data)
        if follow and limit is None:
            # Continue from exactly what was read, so nothing written meanwhile is lost.
            await _follow(path, len(raw), resp, c, worker)
        await resp.write_eof()
        return resp

    async def portforward_handler(request: web.Request, rt: ResourceType, namespace: str,
                                  name: str) -> web.StreamResponse:
        pod = kubelet.store.get(("", "pods"), namespace, name)
        if pod is None:
            raise status.not_found("pods", name)
        worker = kubelet.workers.get(pod["metadata"]["uid"])
        if worker is None or not worker.ip:
            raise status.bad_request(f"pod {name} is not running")
        if spdy_streams.wants_spdy(request):
            # kubectl <= 1.30: SPDY on the upgraded connection; the ports come as stream
            # headers, not in the query.
            up = await spdy_streams.upgrade(request, spdy_streams.PORTFORWARD_PROTOCOLS)
            if isinstance(up, web.Response):
                return up
            channel, _, resp = up
            kubelet.open_streams.add(channel)
            try:
                await spdy_streams.serve_portforward(channel, worker)
            finally:
                kubelet.open_streams.discard(channel)
            return resp
        ws = web.WebSocketResponse(protocols=PORTFORWARD_PROTOCOLS, max_msg_size=0)
        if not ws.can_prepare(request).ok:
            raise ApiError(400, "BadRequest",
                           "Upgrade request required: port-forward is served over SPDY/3.1 "
                           "or WebSocket")
        await ws.prepare(request)
        if (ws.ws_protocol or "").startswith(spdy_streams.TUNNEL_PREFIX):
            # kubectl >= 1.31: the SPDY session tunnelled in the WebSocket (KEP-4006).
            kubelet.open_streams.add(ws)
            try:
                await spdy_streams.serve_portforward(spdy_streams.WebSocketChannel(ws), worker)
            finally:
                kubelet.open_streams.discard(ws)
            return ws
        ports = [int(p) for p in request.query.getall("ports", []) if p.isdigit()]
        if not ports:
            await ws.close(code=1002, message=b"at least one port must be specified")
            return ws
        kubelet.open_streams.add(ws)
        try:
            await _run_portforward(worker, ports, ws)
        finally:
            kubelet.open_streams.discard(ws)
        return ws

    async def proxy_handler(request: web.Request, rt: ResourceType, namespace: str,
                            name: str) -> web.StreamResponse:
        scheme, pod_name, port = split_proxy_name(name)
        pod = kubelet.store.get(("", "pods"), namespace, pod_name)
        if pod is None:
            raise status.not_found("pods", pod_name)
        ip = pod.get("status", {}).get("podIP")
        if not ip:
            raise ApiError(503, "ServiceUnavailable", f"pod {pod_name} has no IP yet")
        if port is None:
            port = _first_port(pod)
        elif not port.isdigit():
            port = _named_port(pod, port)
        if port is None:
            raise status.bad_request(f"no port given for pod {pod_name}")
        rest = proxied_path(request.path)
        return await forward_http(request, f"{scheme}://{ip}:{port}{rest}")

    return {"exec": exec_handler, "attach": attach_handler, "log": log_handler,
            "portforward": portforward_handler, "proxy": proxy_handler}


def _tty(query: object) -> bool:
    return getattr(query, "get", lambda _k: None)("tty") in ("1", "true", "True")


def _first_port(pod: dict) -> str | None:
    for c in pod["spec"].get("containers") or []:
        for p in c.get("ports") or []:
            return str(p["containerPort"])
    return None


def _named_port(pod: dict, name: str) -> str | None:
    for c in pod["spec"].get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == name:
                return str(p["containerPort"])
    return None


async def _follow(path: Path, offset: int, resp: web.StreamResponse, c: ContainerState,
                  worker: PodWorker) -> None:
    proc = c.process
    while True:
        if path.exists() and path.stat().st_size > offset:
            with path.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            await resp.write(chunk)
            continue
        if proc is None or proc.exit_code is not None or worker.terminating.is_set():
            return
        await asyncio.sleep(0.1)


async def _run_exec(kubelet: Kubelet, worker: PodWorker, c: ContainerState, command: list[str],
                    ws: web.WebSocketResponse, want_stdin: bool) -> None:
    proto = ws.ws_protocol or "channel.k8s.io"
    v4 = proto in ("v4.channel.k8s.io", "v5.channel.k8s.io")
    try:
        proc = await kubelet.exec_process(worker, c, command, want_stdin)
    except OSError as exc:
        msg: dict[str, object] = {
            "metadata": {}, "status": "Failure", "message": f"exec: {exc}",
            "reason": "InternalError" if v4 else None}
        await ws.send_bytes(b"\x03" + json.dumps(msg).encode())
        await ws.close()
        return

    async def pipe(stream: asyncio.StreamReader, channel: int) -> None:
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                return
            await ws.send_bytes(bytes([channel]) + chunk)

    async def read_stdin() -> None:
        async for msg in ws:
            if msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                if not data:
                    continue
                ch, payload = data[0], data[1:]
                if ch == 0 and proc.stdin is not None:
                    proc.stdin.write(payload)
                    await proc.stdin.drain()
                elif ch == 255 and payload[:1] == b"\x00" and proc.stdin is not None:
                    proc.stdin.close()
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                return

    stdin_task = asyncio.ensure_future(read_stdin())
    assert proc.stdout is not None and proc.stderr is not None
    await asyncio.gather(pipe(proc.stdout, 1), pipe(proc.stderr, 2))
    code = await proc.wait()
    if code == 0:
        result = {"metadata": {}, "status": "Success"}
    else:
        result = {"metadata": {}, "status": "Failure",
                  "message": f"command terminated with non-zero exit code: exit status {code}",
                  "reason": "NonZeroExitCode",
                  "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
    await ws.send_bytes(b"\x03" + json.dumps(result).encode())
    stdin_task.cancel()
    await ws.close()


async def _run_portforward(worker: PodWorker, ports: list[int],
                           ws: web.WebSocketResponse) -> None:
    """One TCP connection per requested port for the life of the WebSocket, as the kubelet's
    WebSocket port-forward does (pkg/kubelet/cri/streaming/portforward/websocket.go): when
    every port's connection has ended, the WebSocket closes, which is how the client learns
    the far end hung up."""
    conns: dict[int, asyncio.StreamWriter] = {}
    pumps: list[asyncio.Task] = []
    for i, port in enumerate(ports):
        header = struct.pack("<H", port)
        await ws.send_bytes(bytes([2 * i]) + header)
        await ws.send_bytes(bytes([2 * i + 1]) + header)
        reader = writer = None
        for host in (worker.local_ip, worker.ip):
            try:
                reader, writer = await asyncio.open_connection(host, port)
                break
            except OSError:
                continue
        if reader is None or writer is None:
            await ws.send_bytes(bytes([2 * i + 1]) + (
                f"error forwarding port {port} to pod {worker.name}, uid {worker.uid}: "
                f"dial tcp {worker.ip}:{port}: connect: connection refused").encode())
            continue
        conns[i] = writer

        async def pump(r: asyncio.StreamReader, ch: int) -> None:
            try:
                while True:
                    chunk = await r.read(65536)
                    if not chunk:
                        return
                    await ws.send_bytes(bytes([ch]) + chunk)
            except (ConnectionError, OSError):
                return

        pumps.append(asyncio.ensure_future(pump(reader, 2 * i)))

    async def from_client() -> None:
        async for msg in ws:
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                return
            if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                continue
            ch, payload = msg.data[0], msg.data[1:]
            w = conns.get(ch // 2)
            if ch % 2 == 0 and w is not None and payload:
                w.write(payload)
                try:
                    await w.drain()
                except (ConnectionError, OSError):
                    continue

    client_task = asyncio.ensure_future(from_client())
    try:
        if pumps:
            # Ends when every pod-side connection has closed, or the client goes away.
            done_all = asyncio.ensure_future(asyncio.gather(*pumps, return_exceptions=True))
            await asyncio.wait([done_all, client_task], return_when=asyncio.FIRST_COMPLETED)
            done_all.cancel()
        else:
            await asyncio.wait([client_task], timeout=1.0)
    finally:
        client_task.cancel()
        for t in pumps:
            t.cancel()
        for w in conns.values():
            w.close()
        await ws.close()

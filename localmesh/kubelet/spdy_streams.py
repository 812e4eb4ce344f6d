"""exec, attach and port-forward over SPDY, as the kubelet serves them
(k8s.io/kubelet ``pkg/cri/streaming``: ``remotecommand`` and ``portforward/httpstream.go``).

- The upgrade: the client offers its protocols in ``X-Stream-Protocol-Version``
  headers; the first one it offers that the server speaks is chosen (``httpstream.Handshake``)
  and the answer is ``101 Switching Protocols`` with ``Upgrade: SPDY/3.1``. kubectl 1.31+
  port-forward asks for the same inside a WebSocket (subprotocol
  ``SPDY/3.1+portforward.k8s.io``, KEP-4006) and gets the same SPDY session there.
- exec/attach (``v4.channel.k8s.io`` … ``channel.k8s.io``): the client opens one stream
  per ``streamType`` header — ``error`` always, ``stdin``, ``stdout``, ``stderr`` as the
  request asks, ``resize`` with a TTY; the command's output goes on ``stdout``/``stderr``
  and, in v4, its end on ``error`` as a ``Status`` (``NonZeroExitCode`` with the exit code
  as a cause); then every stream is finished and the session goes away.
- port-forward (``portforward.k8s.io``): for each connection the client opens an
  ``error`` stream and then a ``data`` stream with the same ``requestID`` and ``port``
  headers; the server connects to the port in the pod, copies both ways, and finishes
  both streams when the pod's side is done (a failure to connect is written on ``error``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from localmesh.kubelet.spdy import Session, Stream

if TYPE_CHECKING:
    from localmesh.kubelet.node import Kubelet
    from localmesh.kubelet.pods import ContainerState, PodWorker

EXEC_PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                  "channel.k8s.io")
PORTFORWARD_PROTOCOLS = ("portforward.k8s.io",)
TUNNEL_PREFIX = "SPDY/3.1+"  # k8s.io/apimachinery pkg/util/portforward constants
STREAM_CREATION_TIMEOUT = 30.0  # the kubelet's streamCreationTimeout


def wants_spdy(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower().startswith("spdy/")


def offered_protocols(request: web.Request) -> list[str]:
    out: list[str] = []
    for value in request.headers.getall("X-Stream-Protocol-Version", []):
        out.extend(p.strip() for p in value.split(",") if p.strip())
    return out


class UpgradedChannel:
    """The HTTP connection itself after ``101 Switching Protocols``: aiohttp hands it every
    byte that arrives (it is installed as the connection's payload parser, as aiohttp's
    WebSocketResponse installs its reader) and writes go to the transport."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    # -- what aiohttp calls --------------------------------------------------------------
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(b"")

    # -- Channel -------------------------------------------------------------------------
    async def read(self) -> bytes:
        return await self.queue.get()

    async def write(self, data: bytes) -> None:
        transport = self.request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client went away")
        transport.write(data)
        drain = getattr(self.request.protocol, "_drain_helper", None)
        if drain is not None:
            await drain()

    async def close(self, code: int = 1001) -> None:
        """The connection goes (``code`` only matches a WebSocket's close, for the kubelet
        closing every open stream at stop)."""
        transport = self.request.transport
        if transport is not None:
            transport.close()


class WebSocketChannel:
    """A WebSocket whose binary messages carry the SPDY bytes (tunneling_connection.go)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def read(self) -> bytes:
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                if msg.data:
                    return bytes(msg.data)
                continue
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR):
                return b""

    async def write(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def close(self) -> None:
        await self.ws.close()


Upgraded = tuple[UpgradedChannel, str, web.StreamResponse]


async def upgrade(request: web.Request, supported: tuple[str, ...]) -> Upgraded | web.Response:
    """``httpstream.Handshake`` then the SPDY upgrade; an error answer when it fails."""
    offered = offered_protocols(request)
    if not offered:
        return web.Response(status=400, text="unable to upgrade: X-Stream-Protocol-Version "
                                             "is required\n")
    chosen = next((p for p in offered if p in supported), None)
    if chosen is None:
        return web.Response(status=403, text=(
            f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
            f"server supports {list(supported)}\n"))
    channel = UpgradedChannel(request)
    resp = web.StreamResponse(status=101, headers={
        "Connection": "Upgrade", "Upgrade": "SPDY/3.1",
        "X-Stream-Protocol-Version": chosen})
    resp.force_close()
    await resp.prepare(request)
    request.protocol.set_parser(channel)  # type: ignore[arg-type,unused-ignore]
    return channel, chosen, resp


# -- exec and attach ------------------------------------------------------------------------
def _flag(query: Any, name: str) -> bool:
    return query.get(name) in ("1", "true", "True")


def exit_status(code: int) -> dict:
    """The v4 error stream's Status for an exit code (remotecommand's errorDecoderV4 reads
    ``NonZeroExitCode`` and the ``ExitCode`` cause)."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


async def _wait_streams(session: Session, wanted: set[str],
                        streams: dict[str, Stream], arrived: asyncio.Event) -> bool:
    serving = asyncio.ensure_future(session.ended.wait())
    waiting = asyncio.ensure_future(arrived.wait())
    try:
        await asyncio.wait([serving, waiting], timeout=STREAM_CREATION_TIMEOUT,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        serving.cancel()
        waiting.cancel()
    return wanted <= set(streams)


Runner = Callable[[dict[str, Stream]], Awaitable[int]]


async def serve_remotecommand(channel: Any, protocol: str, query: Any, run: Runner) -> None:
    """One exec or attach session: the streams the request asks for, ``run`` with them,
    then the exit status on ``error`` (v4) and every stream finished."""
    tty = _flag(query, "tty")
    wanted = {"error"}
    for name in ("stdin", "stdout"):
        if _flag(query, name):
            wanted.add(name)
    if _flag(query, "stderr") and not tty:
        wanted.add("stderr")
    streams: dict[str, Stream] = {}
    arrived = asyncio.Event()

    def on_stream(stream: Stream) -> None:
        streams[stream.header("streamType")] = stream
        if wanted <= set(streams):
            arrived.set()

    session = Session(channel, on_stream)
    serving = asyncio.ensure_future(session.serve())
    try:
        if not await _wait_streams(session, wanted, streams, arrived):
            return
        try:
            code = await run(streams)
        except OSError as exc:
            await _report(streams["error"], protocol, {
                "metadata": {}, "status": "Failure", "message": f"exec: {exc}",
                "reason": "InternalError"}, str(exc))
        else:
            if protocol == "v4.channel.k8s.io":
                await streams["error"].write(json.dumps(exit_status(code)).encode())
            elif code != 0:
                await streams["error"].write(
                    f"command terminated with non-zero exit code: exit status {code}".encode())
        for name in ("stdout", "stderr", "error"):
            if name in streams:
                await streams[name].close()
        await session.close()
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving


async def _report(stream: Stream, protocol: str, status: dict, text: str) -> None:
    await stream.write(json.dumps(status).encode() if protocol == "v4.channel.k8s.io"
                       else text.encode())


def exec_runner(kubelet: Kubelet, worker: PodWorker, c: ContainerState,
                command: list[str], tty: bool) -> Runner:
    """Run ``command`` in the container with the session's streams as its stdio."""

    async def run(streams: dict[str, Stream]) -> int:
        stdin = streams.get("stdin")
        proc = await kubelet.exec_process(worker, c, command, stdin is not None)

        async def feed() -> None:
            assert stdin is not None and proc.stdin is not None
            while True:
                data = await stdin.read()
                if not data:
                    break
                try:
                    proc.stdin.write(data)
                    await proc.stdin.drain()
                except (ConnectionError, OSError):
                    break
            with contextlib.suppress(OSError):
                proc.stdin.close()

        async def pump(source: asyncio.StreamReader | None, target: Stream | None) -> None:
            if source is None:
                return
            while True:
                chunk = await source.read(65536)
                if not chunk:
                    return
                if target is not None:
                    await target.write(chunk)

        feeding = asyncio.ensure_future(feed()) if stdin is not None else None
        out = streams.get("stdout")
        err = streams.get("stderr") or (out if tty else None)
        await asyncio.gather(pump(proc.stdout, out), pump(proc.stderr, err))
        code = await proc.wait()
        if feeding is not None:
            feeding.cancel()
        return code

    return run


def attach_runner(worker: PodWorker, c: ContainerState) -> Runner:
    """Attach: the container's output from now on, until it exits (localmesh starts
    containers without a stdin to attach to, see docs/localmesh.md)."""

    async def run(streams: dict[str, Stream]) -> int:
        out = streams.get("stdout")
        proc = c.process
        path = c.log_path(worker.dir)
        offset = path.stat().st_size if path is not None and path.exists() else 0
        while True:
            if path is not None and path.exists() and path.stat().st_size > offset:
                with path.open("rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                offset += len(chunk)
                if out is not None:
                    await out.write(chunk)
                continue
            if proc is None or proc.exit_code is not None or worker.terminating.is_set():
                return proc.exit_code or 0 if proc is not None else 0
            await asyncio.sleep(0.1)

    return run


# -- port-forward ---------------------------------------------------------------------------
async def serve_portforward(channel: Any, worker: PodWorker) -> None:
    """Every connection the client forwards, for as long as the session lasts."""
    pairs: dict[str, dict[str, Stream]] = {}
    tasks: set[asyncio.Task] = set()

    def on_stream(stream: Stream) -> None:
        request_id = stream.header("requestID")
        pair = pairs.setdefault(request_id, {})
        pair[stream.header("streamType")] = stream
        if "error" in pair and "data" in pair:
            pairs.pop(request_id)
            task = asyncio.ensure_future(_forward(worker, pair["data"], pair["error"]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    session = Session(channel, on_stream)
    try:
        await session.serve()
    finally:
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            await channel.close()


async def _forward(worker: PodWorker, data: Stream, error: Stream) -> None:
    """One forwarded connection: the pod's port ↔ the data stream."""
    port_text = data.header("port")
    try:
        port = int(port_text)
    except ValueError:
        await error.write(f'invalid port "{port_text}"'.encode())
        await error.close()
        await data.close()
        return
    reader = writer = None
    for host in (worker.local_ip, worker.ip):
        try:
            reader, writer = await asyncio.open_connection(host, port)
            break
        except OSError:
            continue
    if reader is None or writer is None:
        await error.write(
            f"error forwarding port {port} to pod {worker.name}_{worker.ns}, uid "
            f"{worker.uid}: dial tcp {worker.ip}:{port}: connect: connection refused".encode())
        await error.close()
        await data.close()
        return

    async def to_pod() -> None:
        assert writer is not None
        while True:
            chunk = await data.read()
            if not chunk:
                break
            writer.write(chunk)
            try:
                await writer.drain()
            except (ConnectionError, OSError):
                return
        if data.reset:
            writer.close()
        elif writer.can_write_eof():
            with contextlib.suppress(OSError):
                writer.write_eof()

    sending = asyncio.ensure_future(to_pod())
    try:
        while True:
            try:
                chunk = await reader.read(65536)
            except (ConnectionError, OSError):
                break
            if not chunk or data.reset:
                break
            await data.write(chunk)
        await data.close()
        await error.close()
        # The client resets the data stream once it has read everything.
        await asyncio.wait_for(asyncio.shield(sending), timeout=5.0)
    except (TimeoutError, asyncio.CancelledError):
        pass
    finally:
        sending.cancel()
        writer.close()

"""SPDY/3.1, the server side of the multiplexing that Kubernetes' exec, attach and
port-forward streams still ride on: kubectl up to 1.29 speaks it on an upgraded HTTP
connection, and kubectl from 1.31 tunnels it inside a WebSocket for port-forward
(KEP-4006, subprotocol ``SPDY/3.1+portforward.k8s.io``).

What Kubernetes' side of it (moby/spdystream, used by client-go and the kubelet) needs,
after the SPDY/3 draft (chromium.org "SPDY Protocol - Draft 3"):

- frames: a control frame is ``1 | version 3 | type`` then ``flags | 24-bit length``; a
  data frame ``0 | stream id`` then ``flags | length``; FIN (0x01) ends a direction;
- the client opens streams with SYN_STREAM; the server answers each with SYN_REPLY
  before either side sends data on it (spdystream drops data on unreplied streams);
- header blocks (count, then length-prefixed names and values, multiple values joined by
  NUL) are zlib-compressed with SPDY's preset dictionary, one compression context per
  direction for the whole session, each block ending in a sync flush;
- PING is echoed, GOAWAY ends the session, RST_STREAM ends a stream at once; spdystream
  implements no flow control, so SETTINGS and WINDOW_UPDATE are read and ignored, and
  none are sent.

A :class:`Session` runs over a :class:`Channel`, so the same code serves the upgraded
connection and the WebSocket tunnel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import zlib
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger("localmesh.kubelet.spdy")

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9)
FLAG_FIN = 0x01
RST_CANCEL = 5
DATA_CHUNK = 32 * 1024

# The preset zlib dictionary of SPDY/3 header compression (SPDY draft 3, section 2.6.10.1;
# the same 1,423 bytes as spdystream's headerDictionary): header names, each with a 4-byte
# length, then a run of common values.
_DICTIONARY_NAMES = (
    "options,head,post,put,delete,trace,accept,accept-charset,accept-encoding,"
    "accept-language,accept-ranges,age,allow,authorization,cache-control,connection,"
    "content-base,content-encoding,content-language,content-length,content-location,"
    "content-md5,content-range,content-type,date,etag,expect,expires,from,host,if-match,"
    "if-modified-since,if-none-match,if-range,if-unmodified-since,last-modified,location,"
    "max-forwards,pragma,proxy-authenticate,proxy-authorization,range,referer,retry-after,"
    "server,te,trailer,transfer-encoding,upgrade,user-agent,vary,via,warning,"
    "www-authenticate,method,get,status,200 OK,version,HTTP/1.1,url,public,set-cookie,"
    "keep-alive,origin"
)
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502"
    "504505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad "
    "Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not "
    "Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec "
    "00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,"
    "image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,"
    "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)


def _dictionary() -> bytes:
    entries = _DICTIONARY_NAMES.split(",")
    body = b"".join(struct.pack(">I", len(e)) + e.encode() for e in entries)
    return body + _DICTIONARY_TAIL.encode()


DICTIONARY = _dictionary()
assert len(DICTIONARY) == 1423, len(DICTIONARY)

Headers = dict[str, list[str]]


class Channel(Protocol):
    """A byte stream both ways: an upgraded HTTP connection or a WebSocket tunnel."""

    async def read(self) -> bytes:
        """The next bytes; b"" once the peer has gone."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class Stream:
    """One SPDY stream the client opened: its headers, what it sent, and a way back."""

    def __init__(self, session: Session, stream_id: int, headers: Headers) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.remote_closed = False
        self.local_closed = False
        self.reset = False

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower()) or [""]
        return values[0]

    async def read(self) -> bytes:
        """The next data the client sent; b"" once it finished (FIN or reset)."""
        if self.remote_closed and self.incoming.empty():
            return b""
        return await self.incoming.get()

    async def write(self, data: bytes) -> None:
        if self.local_closed or self.reset or self.session.closed:
            return
        for start in range(0, len(data), DATA_CHUNK):
            await self.session.send(data_frame(self.id, data[start:start + DATA_CHUNK]))

    async def close(self) -> None:
        """Our direction is done (an empty DATA frame with FIN)."""
        if self.local_closed or self.reset or self.session.closed:
            return
        self.local_closed = True
        await self.session.send(data_frame(self.id, b"", FLAG_FIN))

    def _finish(self) -> None:
        if not self.remote_closed:
            self.remote_closed = True
            self.incoming.put_nowait(b"")


def control_frame(kind: int, payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def data_frame(stream_id: int, data: bytes, flags: int = 0) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


def encode_headers(headers: Headers) -> bytes:
    """A header block before compression: names lower-cased, values NUL-joined."""
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        n, v = name.lower().encode(), "\x00".join(values).encode()
        out.append(struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v)
    return b"".join(out)


def decode_headers(block: bytes) -> Headers:
    (count,) = struct.unpack_from(">I", block, 0)
    pos, out = 4, {}
    for _ in range(count):
        (n_len,) = struct.unpack_from(">I", block, pos)
        name = block[pos + 4:pos + 4 + n_len].decode()
        pos += 4 + n_len
        (v_len,) = struct.unpack_from(">I", block, pos)
        value = block[pos + 4:pos + 4 + v_len].decode()
        pos += 4 + v_len
        out[name.lower()] = value.split("\x00")
    return out


class Session:
    """The server end of one SPDY session: streams the client opens are replied to and
    handed to ``on_stream``; the session ends when the client goes away."""

    def __init__(self, channel: Channel,
                 on_stream: Callable[[Stream], Awaitable[None] | None]) -> None:
        self.channel = channel
        self.on_stream = on_stream
        self.streams: dict[int, Stream] = {}
        self.closed = False
        self._buffer = b""
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15,
                                         zdict=DICTIONARY)
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        self.ended = asyncio.Event()

    async def send(self, frame: bytes) -> None:
        if self.closed:
            return
        async with self._send_lock:
            try:
                await self.channel.write(frame)
            except (ConnectionError, OSError, RuntimeError):
                self.closed = True

    def _compressed(self, headers: Headers) -> bytes:
        block = encode_headers(headers)
        return self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    async def reply(self, stream: Stream, headers: Headers | None = None) -> None:
        payload = struct.pack(">I", stream.id & 0x7FFFFFFF) + self._compressed(headers or {})
        await self.send(control_frame(SYN_REPLY, payload))

    async def reset_stream(self, stream: Stream, status: int = RST_CANCEL) -> None:
        stream.reset = True
        await self.send(control_frame(RST_STREAM, struct.pack(">II", stream.id, status)))

    async def goaway(self) -> None:
        last = max(self.streams, default=0)
        await self.send(control_frame(GOAWAY, struct.pack(">II", last, 0)))

    async def close(self) -> None:
        """GOAWAY, then the channel goes."""
        if self.closed:
            return
        await self.goaway()
        self.closed = True
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            await self.channel.close()

    async def serve(self) -> None:
        """Read frames until the client goes away; returns when the session has ended."""
        try:
            while not self.closed:
                frame = await self._next_frame()
                if frame is None:
                    break
                await self._handle(*frame)
        except (ConnectionError, OSError, zlib.error, struct.error, UnicodeDecodeError) as exc:
            log.debug("spdy session ended: %s", exc)
        finally:
            self.closed = True
            for s in self.streams.values():
                s._finish()
            self.ended.set()

    async def _read_exactly(self, n: int) -> bytes | None:
        while len(self._buffer) < n:
            chunk = await self.channel.read()
            if not chunk:
                return None
            self._buffer += chunk
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    async def _next_frame(self) -> tuple[bool, int, int, bytes] | None:
        head = await self._read_exactly(8)
        if head is None:
            return None
        first, second = struct.unpack(">II", head)
        flags, length = second >> 24, second & 0xFFFFFF
        payload = await self._read_exactly(length)
        if payload is None:
            return None
        control = bool(first & 0x80000000)
        kind = first & 0xFFFF if control else first & 0x7FFFFFFF
        return control, kind, flags, payload

    async def _handle(self, control: bool, kind: int, flags: int, payload: bytes) -> None:
        if not control:
            stream = self.streams.get(kind)
            if stream is None or stream.remote_closed:
                return
            if payload:
                stream.incoming.put_nowait(payload)
            if flags & FLAG_FIN:
                stream._finish()
            return
        if kind == SYN_STREAM:
            stream_id = struct.unpack_from(">I", payload, 0)[0] & 0x7FFFFFFF
            headers = decode_headers(self._inflate.decompress(payload[10:]))
            stream = Stream(self, stream_id, headers)
            self.streams[stream_id] = stream
            if flags & FLAG_FIN:
                stream._finish()
            await self.reply(stream)
            result = self.on_stream(stream)
            if asyncio.iscoroutine(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        elif kind == RST_STREAM:
            stream_id = struct.unpack_from(">I", payload, 0)[0] & 0x7FFFFFFF
            stream = self.streams.get(stream_id)
            if stream is not None:
                stream.reset = True
                stream._finish()
        elif kind == PING:
            await self.send(control_frame(PING, payload))
        elif kind == GOAWAY:
            self.closed = True
        elif kind == HEADERS:
            self._inflate.decompress(payload[4:])  # keep the decompression context in step
        # SETTINGS and WINDOW_UPDATE: spdystream has no flow control to honour.

"""The ``install-cni`` container of localmesh's ``istio-cni-node`` pods.

Istio's container installs the CNI plugin on the node and runs the node agent, which
answers ``/readyz`` on 8000 once the plugin is installed. localmesh's node agent runs in
localmesh's own process (localmesh/istio/ambient/cni.py, the kubelet's chained network
plugin), so this program only answers the readiness probe, on the pod IP, until stopped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys


async def _serve() -> int:
    host = os.environ.get("LOCALMESH_POD_IP", "127.0.0.1")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            ok = request.split(b" ", 2)[1:2] == [b"/readyz"]
            body = b"ok\n" if ok else b"404 page not found\n"
            status = b"200 OK" if ok else b"404 Not Found"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: " +
                         str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, 8000)
    print("install-cni: istio-cni node agent ready (localmesh: the agent runs in "
          "localmesh's process)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    return 0


def main() -> int:
    return asyncio.run(_serve())


if __name__ == "__main__":
    sys.exit(main())

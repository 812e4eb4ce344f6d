"""The program of istiod's pod (image ``istio/pilot``).

istiod's logic runs inside the localmesh process, where it watches the object store
directly; this pod gives it the presence it has on a real cluster: a Deployment, a pod
with an IP and readiness, and a Service (``istiod.istio-system.svc``) that sidecars dial.
It forwards the pod's xDS (15010 plaintext; 15012, TLS with the certificate service, as on
a real istiod), monitoring (15014) and injection webhook (15017, HTTPS) ports to the
in-process istiod given in
``ISTIOD_UPSTREAM``. Deleting or killing the pod
drops every proxy's ADS stream, so the proxies reconnect and resync as they do when istiod
restarts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from functools import partial

PORTS = {15010: 15010, 15012: 15012, 15014: 15014, 15017: 15017}


async def _pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        w.close()


async def _serve(bind: str, upstream: str) -> int:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     port: int) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(upstream, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer))

    servers = []
    for listen, target in PORTS.items():
        servers.append(await asyncio.start_server(partial(handle, port=target), bind, listen))
    print(f"istiod pod: serving {', '.join(map(str, PORTS))} on {bind} for istiod at "
          f"{upstream}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for s in servers:
        s.close()
    return 0


def main() -> int:
    upstream = os.environ.get("ISTIOD_UPSTREAM")
    if not upstream:
        print("istiod pod: ISTIOD_UPSTREAM is not set; this image runs only on localmesh",
              file=sys.stderr)
        return 1
    return asyncio.run(_serve(os.environ.get("BIND_ADDRESS", "127.0.0.1"), upstream))


if __name__ == "__main__":
    sys.exit(main())

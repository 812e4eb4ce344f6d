"""The API server's listening socket, which the ``restart`` and ``outage`` faults close.

A kube-apiserver that restarts (a control-plane upgrade, a static pod that is replaced)
or dies stops listening: new connections are refused ("The connection to the server
127.0.0.1:6443 was refused - did you specify the right host or port?", kubectl says) and
open ones — watches, exec streams, idle keep-alive connections — end with the process.
A restarted one listens again on the same address. :class:`Listener` does that to
localmesh's API server without stopping the rest of localmesh: the object store, the
controllers and the pods live on, as etcd and the nodes do while an API server restarts.

For ``outage`` the socket is closed for good rather than left accepting and silent: a
dead kube-apiserver process on a host that is up (kind, k3s, kubeadm's single control
plane) is exactly a refused connection, the commonest dead control plane a suite meets.
(A silent one — a load balancer with no healthy backend — is covered by the suite's own
timeouts; tests/integration/test_api_retries.py holds that case.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time

from aiohttp import web

from localmesh.api.faults import FaultConfig, Faults

log = logging.getLogger("localmesh.api.listener")


class Listener:
    """One TLS listening socket on ``host:port`` for ``runner``, closable and reopenable."""

    def __init__(self, runner: web.AppRunner, host: str, port: int,
                 ssl_context: ssl.SSLContext) -> None:
        self.runner = runner
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self._site: web.TCPSite | None = None

    @property
    def open(self) -> bool:
        return self._site is not None

    async def start(self) -> None:
        if self._site is not None:
            return
        site = web.TCPSite(self.runner, self.host, self.port, ssl_context=self.ssl_context,
                           reuse_address=True)
        await site.start()
        self._site = site

    async def stop(self) -> int:
        """Stop listening and close every open connection, as a process that exits does;
        the number of connections closed."""
        if self._site is None:
            return 0
        site, self._site = self._site, None
        await site.stop()
        server = self.runner.server
        connections = server.connections if server is not None else []
        for conn in connections:
            conn.force_close()
        return len(connections)


class Disruptions:
    """The ``restart`` and ``outage`` profiles, driving a :class:`Listener`."""

    def __init__(self, config: FaultConfig, listener: Listener, faults: Faults) -> None:
        self.config = config
        self.listener = listener
        self.faults = faults
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin the profile's schedule (after the kubeconfig has been written)."""
        if self.config.profile == "restart":
            self._task = asyncio.ensure_future(self._restarts())
        elif self.config.profile == "outage":
            self.faults.over_limit = self.go_down
            if self.config.outage_after <= 0:
                self._task = asyncio.ensure_future(self.go_down())

    async def go_down(self) -> None:
        """The outage: stop listening and close every connection, this request's too."""
        if self.faults.extra["outage"]:
            return
        self.faults.extra["outage"] = 1
        log.warning("API fault outage: stopping listening on %s:%d for good after %d "
                    "answered client request(s)", self.listener.host, self.listener.port,
                    self.config.outage_after)
        closed = await self.listener.stop()
        self.faults.extra["connections-closed"] += closed

    async def _restarts(self) -> None:
        up = max(self.config.restart_every - self.config.restart_down, 0.1)
        while True:
            await asyncio.sleep(up)  # the schedule: seconds of service between restarts
            closed = await self.listener.stop()
            self.faults.extra["restart"] += 1
            self.faults.extra["connections-closed"] += closed
            log.info("API fault restart: not listening for %.1f s (%d connection(s) "
                     "closed)", self.config.restart_down, closed)
            t0 = time.monotonic()
            await asyncio.sleep(self.config.restart_down)  # the downtime itself
            await self._reopen(t0)

    async def _reopen(self, t0: float) -> None:
        """Listen again on the same port; retried briefly while the port is busy."""
        for _ in range(50):
            try:
                await self.listener.start()
                log.info("API fault restart: listening again after %.1f s",
                         time.monotonic() - t0)
                return
            except OSError as exc:
                log.warning("API fault restart: cannot listen again yet: %s", exc)
                await asyncio.sleep(0.1)  # bounded: 50 tries
        raise RuntimeError(f"cannot listen on {self.listener.host}:{self.listener.port} "
                           "again after a restart")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

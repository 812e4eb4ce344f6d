"""The shape every reconciler shares: watch some kinds, then converge on each change.

Events are coalesced: a burst of changes (a Deployment applied with its Service) triggers
one pass, so reconcilers stay simple "look at everything I own and fix it" functions, the
level-triggered style of Kubernetes controllers.
"""

from __future__ import annotations

import asyncio
import logging

from localmesh.api.objects import ObjectAPI
from localmesh.store import Key, Watch

log = logging.getLogger("localmesh.controllers")


class Reconciler:
    """Watches ``keys`` and calls :meth:`reconcile` after every batch of events."""

    keys: tuple[Key, ...] = ()
    name = "reconciler"

    def __init__(self, api: ObjectAPI) -> None:
        self.api = api
        self._wake = asyncio.Event()
        self._watches: list[Watch] = []
        self._tasks: list[asyncio.Task] = []
        self.resync_seconds: float | None = None

    def start(self) -> None:
        for key in self.keys:
            w = self.api.store.watch(key)
            self._watches.append(w)
            self._tasks.append(asyncio.ensure_future(self._pump(w)))
        self._tasks.append(asyncio.ensure_future(self._loop()))
        self._wake.set()

    async def _pump(self, w: Watch) -> None:
        while True:
            await w.queue.get()
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            if self.resync_seconds:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.resync_seconds)
                except TimeoutError:
                    pass
            else:
                await self._wake.wait()
            self._wake.clear()
            try:
                result = self.reconcile()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("%s: reconcile failed; retrying", self.name)
                await asyncio.sleep(0.2)
                self._wake.set()

    def reconcile(self) -> object:
        raise NotImplementedError

    def retry_later(self, seconds: float = 1.0) -> None:
        """Run again after ``seconds`` even without an event: what was refused (a pod an
        admission webhook turned away, or could not be asked about) is tried again, as
        upstream controllers requeue with a back-off. Called from :meth:`reconcile`."""
        asyncio.get_running_loop().call_later(seconds, self._wake.set)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for w in self._watches:
            self.api.store.unwatch(w)
        await asyncio.gather(*self._tasks, return_exceptions=True)

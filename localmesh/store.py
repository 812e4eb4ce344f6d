"""The object store: one place that holds every object, hands out resourceVersions and fans
out watch events.

Like etcd behind a real API server, it knows nothing about kinds: it stores JSON objects by
(group, plural, namespace, name), bumps one global revision on every write, and keeps a
bounded history so a watch can resume from a recent resourceVersion (older ones get
``410 Gone``, as on a real cluster). All calls happen on the event loop thread.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import os
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

Key = tuple[str, str]  # (group, plural)


class StoreError(Exception):
    """A storage-level failure, mapped to a Kubernetes Status by the API layer."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


@dataclass
class Event:
    """One change. ``old`` is the object before it (MODIFIED, DELETED): a watcher with a
    selector needs it to tell "stopped matching" (DELETED to that watcher) from "never
    matched", as the API server's watch cache keeps ``PrevObject``."""

    type: str  # ADDED | MODIFIED | DELETED
    key: Key
    obj: dict
    revision: int
    old: dict | None = None


@dataclass
class Watch:
    """A subscription; the API layer and in-process controllers both use it."""

    key: Key | None
    namespace: str | None
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)

    def matches(self, ev: Event) -> bool:
        if self.key is not None and ev.key != self.key:
            return False
        if self.namespace and ev.obj.get("metadata", {}).get("namespace") != self.namespace:
            return False
        return True


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _history_size() -> int:
    """Events kept for watch resumption; ``LOCALMESH_WATCH_HISTORY`` overrides it (tests
    use a small window to reach 410 Gone quickly)."""
    try:
        return max(10, int(os.environ.get("LOCALMESH_WATCH_HISTORY", "20000")))
    except ValueError:
        return 20000


class Store:
    """In-memory objects with revisions and watch fan-out."""

    def __init__(self) -> None:
        self.revision = 1
        self.objects: dict[Key, dict[tuple[str, str], dict]] = {}
        self.history: deque[Event] = deque(maxlen=_history_size())
        self.watches: list[Watch] = []

    # -- reads ---------------------------------------------------------------------------
    def get(self, key: Key, namespace: str, name: str) -> dict | None:
        obj = self.objects.get(key, {}).get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    # `list` in this class's annotations from here on is this method, hence builtins.list.
    def list(self, key: Key, namespace: str | None = None) -> builtins.list[dict]:
        return [copy.deepcopy(o) for o in self.scan(key, namespace)]

    def scan(self, key: Key, namespace: str | None = None) -> builtins.list[dict]:
        """The stored objects themselves, sorted by (namespace, name), without copying.

        For in-process readers that only look (controllers scanning everything on each
        pass): a caller must not mutate what it gets, and must copy what it keeps.
        """
        bucket = self.objects.get(key, {})
        if namespace in (None, ""):
            return [o for _, o in sorted(bucket.items())]
        return [o for (ns, _), o in sorted(bucket.items()) if ns == namespace]

    # -- writes --------------------------------------------------------------------------
    def create(self, key: Key, obj: dict) -> dict:
        meta = obj.setdefault("metadata", {})
        ns, name = meta.get("namespace", ""), meta["name"]
        bucket = self.objects.setdefault(key, {})
        if (ns, name) in bucket:
            raise StoreError(409, "AlreadyExists", f'"{name}" already exists')
        self.revision += 1
        meta["uid"] = meta.get("uid") or str(uuid.uuid4())
        meta["resourceVersion"] = str(self.revision)
        meta.setdefault("creationTimestamp", now_rfc3339())
        meta["generation"] = 1 if "generation" not in meta else meta["generation"]
        bucket[(ns, name)] = copy.deepcopy(obj)
        self._emit("ADDED", key, obj)
        return copy.deepcopy(obj)

    def update(self, key: Key, obj: dict, *, check_version: bool = True) -> dict:
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        bucket = self.objects.setdefault(key, {})
        cur = bucket.get((ns, name))
        if cur is None:
            raise StoreError(404, "NotFound", f'"{name}" not found')
        rv = meta.get("resourceVersion")
        if check_version and rv and rv != cur["metadata"]["resourceVersion"]:
            raise StoreError(
                409, "Conflict",
                f'Operation cannot be fulfilled on "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
            )
        for immutable in ("uid", "creationTimestamp"):
            meta[immutable] = cur["metadata"].get(immutable)
        meta["resourceVersion"] = cur["metadata"]["resourceVersion"]
        if obj == cur:
            # A no-op write keeps the resourceVersion and sends no event, as etcd3's
            # GuaranteedUpdate does when the new bytes equal the old.
            return copy.deepcopy(cur)
        self.revision += 1
        meta["resourceVersion"] = str(self.revision)
        bucket[(ns, name)] = copy.deepcopy(obj)
        self._emit("MODIFIED", key, obj, old=cur)
        return copy.deepcopy(obj)

    def delete(self, key: Key, namespace: str, name: str) -> dict:
        bucket = self.objects.get(key, {})
        cur = bucket.pop((namespace, name), None)
        if cur is None:
            raise StoreError(404, "NotFound", f'"{name}" not found')
        self.revision += 1
        gone = {**cur, "metadata": {**cur["metadata"], "resourceVersion": str(self.revision)}}
        self._emit("DELETED", key, gone, old=cur)
        return copy.deepcopy(gone)

    # -- watch ---------------------------------------------------------------------------
    def watch(
        self, key: Key | None, namespace: str | None = None, since: int | None = None
    ) -> Watch:
        """Subscribe; with ``since``, replay history newer than that revision first."""
        w = Watch(key, namespace)
        if since is not None and since < self.revision:
            oldest = self.history[0].revision if self.history else self.revision + 1
            if since < oldest - 1 and len(self.history) == self.history.maxlen:
                # The watch cache's message (k8s.io/apiserver pkg/storage/cacher
                # watch_cache.go): the asked version, then the oldest it could serve.
                raise StoreError(410, "Expired",
                                 f"too old resource version: {since} ({oldest - 1})")
            for ev in self.history:
                if ev.revision > since and w.matches(ev):
                    w.queue.put_nowait(ev)
        self.watches.append(w)
        return w

    def unwatch(self, w: Watch) -> None:
        if w in self.watches:
            self.watches.remove(w)

    def _emit(self, type_: str, key: Key, obj: dict, old: dict | None = None) -> None:
        # ``old`` is the stored dict being replaced; nothing mutates it after this point.
        ev = Event(type_, key, copy.deepcopy(obj), self.revision, old)
        self.history.append(ev)
        for w in list(self.watches):
            if w.matches(ev):
                w.queue.put_nowait(ev)

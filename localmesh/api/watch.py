"""Watch: the API server's event streams over the object store.

``?watch=1`` on a collection (and the deprecated ``/api/v1/watch/...`` paths) streams
ADDED / MODIFIED / DELETED / BOOKMARK / ERROR events as newline-delimited JSON, with the
semantics of k8s.io/apiserver's watch cache: selectors decide visibility per event,
``resourceVersion`` resumes from the store's history (410 Expired once it is gone),
``sendInitialEvents`` and ``allowWatchBookmarks`` as upstream, and every stream ends when
localmesh stops.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from localmesh.api import status, tables, wire
from localmesh.api.discovery import not_served
from localmesh.api.negotiation import printer_for
from localmesh.api.objects import ObjectAPI
from localmesh.api.selectors import field_matcher, label_matcher
from localmesh.api.status import ApiError
from localmesh.resources import ResourceType
from localmesh.store import Event, StoreError

# How often an idle watch that allowed bookmarks gets one. The real API server sends them
# about once a minute (k8s.io/apiserver pkg/storage/cacher, bookmarkFrequency); localmesh
# is a test cluster, so sooner, and always one just before a watch's timeoutSeconds ends.
BOOKMARK_SECONDS = 5.0


class Watches:
    """The watch handlers of one API server; :meth:`stop` ends every open stream."""

    def __init__(self, objects: ObjectAPI) -> None:
        self.objects = objects
        self.stopping = asyncio.Event()

    def stop(self) -> None:
        self.stopping.set()

    async def legacy(self, request: web.Request, head: str, parts: list[str],
                            gv_len: int) -> web.StreamResponse:
        """``/api/v1/watch/[namespaces/{ns}/]{resource}[/{name}]`` (deprecated upstream,
        still served)."""
        group, version = ("", parts[1]) if head == "api" else (parts[1], parts[2])
        rest = parts[gv_len + 1:]
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        rt = self.objects.registry.find(group, version, rest[0]) if rest else None
        if rt is None or len(rest) > 2 or (namespace and not rt.namespaced):
            raise not_served()
        if request.method != "GET" or "watch" not in rt.verbs:
            raise status.method_not_allowed()
        return await self.watch(request, rt, namespace, rest[1] if len(rest) > 1 else "")

    async def watch(self, request: web.Request, rt: ResourceType,
                     namespace: str, name: str = "") -> web.StreamResponse:
        """A watch stream with the API server's semantics (k8s.io/apiserver
        ``pkg/storage/cacher/cache_watcher.go`` convertToWatchEvent): with a selector, an
        object that starts matching arrives as ADDED and one that stops matching as DELETED
        (carrying its last matching state); without a resourceVersion (or with "0") the
        stream starts with the current objects as ADDED; ``sendInitialEvents`` ends them with
        a bookmark annotated ``k8s.io/initial-events-end``."""
        q = request.query
        labels = label_matcher(q.get("labelSelector"))
        fields = field_matcher(q.get("fieldSelector"))
        rv = q.get("resourceVersion") or ""
        try:
            timeout = float(q.get("timeoutSeconds") or 1800)
        except ValueError as exc:
            raise status.bad_request("invalid timeoutSeconds") from exc
        bookmarks = q.get("allowWatchBookmarks") in ("1", "true", "True")
        send_initial = q.get("sendInitialEvents")
        if send_initial == "true" and (q.get("resourceVersionMatch") != "NotOlderThan"
                                       or not bookmarks):
            raise status.invalid("ListOptions", "", [
                ("resourceVersionMatch", "FieldValueForbidden",
                 "Forbidden: sendInitialEvents requires setting resourceVersionMatch to "
                 "NotOlderThan and allowWatchBookmarks to true")], "meta.k8s.io")
        store = self.objects.store
        since: int | None = None
        initial: list[dict] = []
        if rv not in ("", "0"):
            try:
                since = int(rv)
            except ValueError as exc:
                raise status.bad_request(f"invalid resourceVersion {rv!r}") from exc
        if send_initial == "true" or (since is None and send_initial != "false"):
            since = None
            initial = self.objects.list(rt, namespace or None)
        try:
            w = store.watch(rt.key, namespace or None, since)
        except StoreError as exc:
            if exc.code == 410:
                # Upstream answers 200 and a single ERROR event (the cacher's errWatcher).
                resp = web.StreamResponse(headers={"Content-Type": "application/json"})
                await resp.prepare(request)
                gone = ApiError(410, "Expired", exc.message).status()
                await resp.write(wire.watch_event("ERROR", gone))
                return resp
            raise
        accept = request.headers.get("Accept", "")
        table_version = tables.wants_table(accept)
        printer = printer_for(store, rt) if table_version else None
        include = q.get("includeObject", "Metadata")
        resp = web.StreamResponse(headers={"Content-Type": "application/json",
                                           "Transfer-Encoding": "chunked"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        def visible(obj: dict | None) -> bool:
            if obj is None:
                return False
            meta = obj.get("metadata", {})
            if name and meta.get("name") != name:
                return False
            return labels(meta.get("labels") or {}) and fields(obj)

        async def send(type_: str, obj: dict) -> None:
            obj = dict(obj)
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            if printer is not None and table_version:
                obj = printer.table([obj], {"resourceVersion": obj.get("metadata", {}).get(
                    "resourceVersion", "")}, include, table_version)
            else:
                obj = wire.ordered(obj, custom=rt.custom)
            await resp.write(wire.watch_event(type_, obj))

        async def bookmark(annotations: dict | None = None) -> None:
            # A typed object with only its resourceVersion set: Go writes the zero
            # creationTimestamp as null; an unstructured one has just what was set.
            meta: dict = {"resourceVersion": str(store.revision)}
            if not rt.custom:
                meta["creationTimestamp"] = None
            if annotations:
                meta["annotations"] = annotations
            body = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}
            await resp.write(wire.watch_event("BOOKMARK", wire.ordered(body, custom=rt.custom)))

        def convert(ev: Event) -> tuple[str, dict] | None:
            cur = ev.type != "DELETED" and visible(ev.obj)
            old = visible(ev.old) if ev.type != "ADDED" else False
            if ev.type == "DELETED":
                return ("DELETED", ev.obj) if old or visible(ev.obj) else None
            if cur and old:
                return "MODIFIED", ev.obj
            if cur:
                return "ADDED", ev.obj
            if old and ev.old is not None:
                gone = dict(ev.old)
                gone["metadata"] = {**ev.old.get("metadata", {}),
                                    "resourceVersion": str(ev.revision)}
                return "DELETED", gone
            return None

        deadline = time.monotonic() + timeout
        last_sent = time.monotonic()
        try:
            for obj in initial:
                if visible(obj):
                    await send("ADDED", obj)
            if send_initial == "true":
                await bookmark({"k8s.io/initial-events-end": "true"})
            while not self.stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    ev = await asyncio.wait_for(w.queue.get(), timeout=min(remaining, 1.0))
                except TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        break
                    idle = time.monotonic() - last_sent
                    closing = deadline - time.monotonic() <= 1.0
                    if bookmarks and (idle >= BOOKMARK_SECONDS or closing):
                        await bookmark()
                        last_sent = time.monotonic()
                    continue
                out = convert(ev)
                if out is not None:
                    await send(*out)
                    last_sent = time.monotonic()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            store.unwatch(w)
        return resp

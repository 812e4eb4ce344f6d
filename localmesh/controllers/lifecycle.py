"""Namespace termination and garbage collection by ownerReferences.

- Namespace: a namespace marked for deletion is emptied (every namespaced kind), and once
  nothing is left its ``kubernetes`` finalizer is removed and it goes (the namespace
  lifecycle controller). A live namespace gets its ``default`` ServiceAccount, as the
  serviceaccounts controller (pkg/controller/serviceaccount) creates it upstream.
- Garbage collector: dependents whose owner is gone are deleted (Background); an owner
  with the ``foregroundDeletion`` finalizer waits for its dependents; ``orphan`` strips the
  owner reference from dependents instead.
"""

from __future__ import annotations

import asyncio
import copy

from localmesh.api.objects import ObjectAPI
from localmesh.api.status import ApiError
from localmesh.controllers.base import Reconciler

NAMESPACES = ("", "namespaces")


class NamespaceController(Reconciler):
    name = "namespace-controller"
    keys = (NAMESPACES,)

    def __init__(self, api: ObjectAPI) -> None:
        super().__init__(api)
        self.resync_seconds = 0.25

    def reconcile(self) -> None:
        api = self.api
        ns_rt = api.rt("v1", "Namespace")
        for ns in api.store.scan(NAMESPACES):
            if not ns["metadata"].get("deletionTimestamp"):
                self._ensure_service_account(ns["metadata"]["name"])
                continue
            name = ns["metadata"]["name"]
            left = 0
            for rt in list(api.registry.types):
                if not rt.namespaced:
                    continue
                if api.registry.by_key(rt.key) is not rt:
                    continue  # one pass per stored kind, not per version
                for obj in api.store.scan(rt.key, name):
                    left += 1
                    if obj["metadata"].get("deletionTimestamp"):
                        continue
                    try:
                        api.delete(rt, name, obj["metadata"]["name"])
                    except ApiError as exc:
                        if exc.code != 404:
                            raise
            if left == 0 and ns.get("spec", {}).get("finalizers"):
                body = copy.deepcopy(ns)
                body["spec"]["finalizers"] = []
                body["metadata"]["resourceVersion"] = None
                try:
                    api.update(ns_rt, "", name, body, subresource="finalize",
                               check_version=False)
                except ApiError as exc:
                    if exc.code != 404:
                        raise


    def _ensure_service_account(self, namespace: str) -> None:
        if self.api.store.get(("", "serviceaccounts"), namespace, "default") is not None:
            return
        try:
            self.api.create(self.api.rt("v1", "ServiceAccount"), namespace,
                            {"metadata": {"name": "default"}})
        except ApiError as exc:
            if exc.code not in (403, 404, 409):
                raise


class GarbageCollector(Reconciler):
    name = "garbage-collector"
    keys = ()

    def __init__(self, api: ObjectAPI) -> None:
        super().__init__(api)
        self.resync_seconds = 0.5

    def start(self) -> None:
        w = self.api.store.watch(None)
        self._watches.append(w)
        self._tasks.append(asyncio.ensure_future(self._pump_deletes(w)))
        super().start()

    async def _pump_deletes(self, w) -> None:
        while True:
            ev = await w.queue.get()
            if ev.type == "DELETED" or ev.obj["metadata"].get("deletionTimestamp"):
                self._wake.set()

    def reconcile(self) -> None:
        api = self.api
        objects: list[tuple] = []
        uids: dict[str, dict] = {}
        for rt in list(api.registry.types):
            if api.registry.by_key(rt.key) is not rt:
                continue
            for obj in api.store.scan(rt.key):
                objects.append((rt, obj))
                uids[obj["metadata"]["uid"]] = obj
        dependents: dict[str, list[tuple]] = {}
        for rt, obj in objects:
            for ref in obj["metadata"].get("ownerReferences") or []:
                dependents.setdefault(ref.get("uid"), []).append((rt, obj))
        for rt, obj in objects:
            meta = obj["metadata"]
            refs = meta.get("ownerReferences") or []
            if refs and all(r.get("uid") not in uids for r in refs) and not meta.get(
                    "deletionTimestamp"):
                self._delete(rt, obj)
        for rt, obj in objects:
            meta = obj["metadata"]
            fins = meta.get("finalizers") or []
            if not meta.get("deletionTimestamp"):
                continue
            deps = dependents.get(meta["uid"], [])
            if "orphan" in fins:
                for drt, dep in deps:
                    body = copy.deepcopy(dep)
                    body["metadata"]["ownerReferences"] = [
                        r for r in dep["metadata"].get("ownerReferences") or []
                        if r.get("uid") != meta["uid"]]
                    if not body["metadata"]["ownerReferences"]:
                        body["metadata"].pop("ownerReferences")
                    self._update(drt, body)
                self._drop_finalizer(rt, obj, "orphan")
            elif "foregroundDeletion" in fins:
                live = [(drt, d) for drt, d in deps]
                for drt, dep in live:
                    if not dep["metadata"].get("deletionTimestamp"):
                        self._delete(drt, dep, "Foreground")
                if not live:
                    self._drop_finalizer(rt, obj, "foregroundDeletion")

    def _delete(self, rt, obj: dict, propagation: str | None = None) -> None:
        try:
            self.api.delete(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"],
                            propagation=propagation)
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _update(self, rt, body: dict) -> None:
        body["metadata"]["resourceVersion"] = None
        try:
            self.api.update(rt, body["metadata"].get("namespace", ""), body["metadata"]["name"],
                            body, check_version=False)
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _drop_finalizer(self, rt, obj: dict, fin: str) -> None:
        body = copy.deepcopy(obj)
        body["metadata"]["finalizers"] = [f for f in body["metadata"].get("finalizers", [])
                                          if f != fin]
        self._update(rt, body)

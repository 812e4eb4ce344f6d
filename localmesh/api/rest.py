"""The REST verbs on a resource: what create, get, list, update, patch and delete answer.

The handlers of k8s.io/apiserver ``pkg/endpoints/handlers`` (create.go, get.go, update.go,
patch.go, delete.go), over :class:`~localmesh.api.objects.ObjectAPI`, which holds what the
verbs *mean* (admission, graceful deletion, finalizers): here are the request options
(dry run, selectors, paging, DeleteOptions, patch types) and the shapes of the answers,
including the ``status``, ``scale`` and ``finalize`` subresources.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from localmesh.api import apply, fieldmanager, fieldvalidation, protobuf, status, wire
from localmesh.api.fieldvalidation import add_warnings
from localmesh.api.negotiation import (
    dry_run,
    json_response,
    read_body,
    read_body_checked,
    render,
    render_list,
)
from localmesh.api.objects import ObjectAPI
from localmesh.api.patch import apply_patch
from localmesh.api.selectors import field_matcher, label_matcher
from localmesh.api.status import ApiError
from localmesh.resources import ResourceType

# Served resources whose DELETE answers with the deleted object instead of a Status: those
# whose registry sets ReturnDeletedObject (k8s.io/kubernetes pkg/registry/core/{pod,service,
# serviceaccount}/storage/storage.go, pkg/registry/storage/storageclass).
RETURN_DELETED_OBJECT = frozenset({("", "pods"), ("", "services"), ("", "serviceaccounts"),
                                   ("storage.k8s.io", "storageclasses")})


class RestHandlers:
    """The verbs of every served resource, over one object API."""

    def __init__(self, objects: ObjectAPI) -> None:
        self.objects = objects

    async def collection(self, request: web.Request, rt: ResourceType, namespace: str,
                         verb: str) -> web.Response:
        """``list``, ``create`` or ``deletecollection`` on a collection."""
        if verb == "list":
            return render_list(request, self.objects.store, rt,
                               self.list(rt, namespace, request.query))
        if verb == "create":
            body = await self._decoded(request, rt, "CreateOptions")
            created = self.objects.create(rt, namespace, body.obj, dry_run=dry_run(request),
                                          managed_by=_manager(request))
            return add_warnings(render(request, self.objects.store, rt, created, 201),
                                body.warnings)
        return json_response(await self._delete_collection(request, rt, namespace))

    async def _decoded(self, request: web.Request, rt: ResourceType,
                       options_kind: str) -> fieldvalidation.Decoded:
        """A create's or update's body through fieldValidation."""
        mode = fieldvalidation.directive(request, options_kind)
        body, duplicates = await read_body_checked(request)
        return fieldvalidation.check_body(self.objects.schema(rt), body, duplicates, mode,
                                          rt.kind, rt.version)

    async def one(self, request: web.Request, rt: ResourceType, namespace: str,
                  name: str) -> web.Response:
        """``get``, ``update``, ``patch`` or ``delete`` on one object."""
        if request.method == "GET":
            return render(request, self.objects.store, rt, self.objects.get(rt, namespace, name))
        if request.method == "PUT":
            body = await self._decoded(request, rt, "UpdateOptions")
            out = self.objects.update(rt, namespace, name, body.obj, dry_run=dry_run(request),
                                      allow_create=rt.custom, managed_by=_manager(request))
            return add_warnings(render(request, self.objects.store, rt, out), body.warnings)
        if request.method == "PATCH":
            return await self._patch(request, rt, namespace, name)
        opts = await self._delete_options(request)
        out = self.objects.delete(rt, namespace, name, **opts)
        return json_response(self._deleted_response(rt, out))

    def _deleted_response(self, rt: ResourceType, out: dict) -> dict:
        """What DELETE answers: the object while it is still being deleted (graceful or
        finalizers); once it is gone, the object for the kinds whose registry sets
        ``ReturnDeletedObject`` (pods, services and serviceaccounts, see
        ``RETURN_DELETED_OBJECT``; and custom resources) and a Success Status for
        the rest. Clients depend on it: the Python client decodes a Service delete as a
        V1Service."""
        meta = out.get("metadata", {})
        current = self.objects.store.get(rt.key, meta.get("namespace", ""), meta.get("name", ""))
        still_there = current is not None and current["metadata"].get("uid") == meta.get("uid")
        if still_there or rt.key in RETURN_DELETED_OBJECT or rt.custom:
            return out
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": meta.get("name", ""), "group": rt.group,
                            "kind": rt.plural, "uid": meta.get("uid", "")}}

    def list(self, rt: ResourceType, namespace: str, q: Any) -> dict:
        """A list answer: label and field selectors, then ``limit``/``continue`` paging."""
        labels = label_matcher(q.get("labelSelector"))
        fields = field_matcher(q.get("fieldSelector"))
        items = [
            o for o in self.objects.list(rt, namespace or None)
            if labels(o.get("metadata", {}).get("labels") or {}) and fields(o)
        ]
        meta: dict = {"resourceVersion": str(self.objects.store.revision)}
        limit = int(q.get("limit") or 0)
        start = int(q.get("continue") or 0) if (q.get("continue") or "").isdigit() else 0
        if q.get("continue") and not q.get("continue", "").isdigit():
            raise status.bad_request("continue key is not valid")
        if limit:
            page = items[start:start + limit]
            if start + limit < len(items):
                meta["continue"] = str(start + limit)
                meta["remainingItemCount"] = len(items) - start - limit
            items = page
        if not rt.custom:
            # Typed lists carry no TypeMeta on their items; a custom resource list is
            # unstructured and keeps each item's apiVersion and kind, as upstream.
            for o in items:
                o.pop("apiVersion", None)
                o.pop("kind", None)
        kind = rt.list_kind or f"{rt.kind}List"
        return {"kind": kind, "apiVersion": rt.api_version, "metadata": meta, "items": items}

    async def _delete_collection(self, request: web.Request, rt: ResourceType,
                                 namespace: str) -> dict:
        listing = self.list(rt, namespace, request.query)
        opts = await self._delete_options(request)
        items = []
        for o in listing["items"]:
            try:
                out = self.objects.delete(rt, o["metadata"].get("namespace", ""),
                                          o["metadata"]["name"], **opts)
            except ApiError as exc:
                if exc.code != 404:
                    raise
                continue
            out.pop("apiVersion", None)
            out.pop("kind", None)
            items.append(out)
        listing["items"] = items
        listing["metadata"] = {"resourceVersion": str(self.objects.store.revision)}
        return listing

    async def _delete_options(self, request: web.Request) -> dict:
        opts: dict = {}
        q = request.query
        raw = await request.read()
        body: dict = {}
        if raw.startswith(protobuf.MAGIC):
            body = protobuf.decode(raw)
        elif raw.strip():
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise status.bad_request(f"invalid DeleteOptions: {exc}") from exc
            if not isinstance(body, dict):
                raise status.bad_request("invalid DeleteOptions: not a JSON object")
        prop = body.get("propagationPolicy") or q.get("propagationPolicy")
        if prop is None and body.get("orphanDependents") is True:
            prop = "Orphan"
        if prop is not None:
            if prop not in ("Orphan", "Background", "Foreground"):
                raise status.bad_request(f"unsupported propagationPolicy {prop!r}")
            opts["propagation"] = prop
        grace = body.get("gracePeriodSeconds", q.get("gracePeriodSeconds"))
        if grace is not None:
            opts["grace"] = int(grace)
        if body.get("preconditions"):
            opts["preconditions"] = body["preconditions"]
        opts["dry_run"] = dry_run(request) or "All" in (body.get("dryRun") or [])
        return opts

    async def _patch(self, request: web.Request, rt: ResourceType, namespace: str, name: str,
                     sub: str = "") -> web.Response:
        raw = await request.read()
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        is_apply = ctype == "application/apply-patch+yaml"
        if rt.custom and ctype == "application/strategic-merge-patch+json":
            # Custom resources have no Go struct tags to take merge keys from; the real API
            # server refuses (apiextensions-apiserver, customresource_handler.go).
            raise ApiError(415, "UnsupportedMediaType",
                           "the body of the request was in an unknown format - accepted media "
                           "types include: application/json-patch+json, "
                           "application/merge-patch+json, application/apply-patch+yaml")
        apply.check_options(request.query, is_apply)
        mode = fieldvalidation.directive(request, "PatchOptions")
        schema = self.objects.schema(rt)
        live = self.objects.store.get(rt.key, namespace if rt.namespaced else "", name)
        if is_apply:
            return await self._apply(request, rt, namespace, name, sub, raw, live)
        if live is None:
            raise status.not_found(rt.plural, name, rt.group)
        patched = apply_patch(live, raw, ctype)
        if not isinstance(patched, dict):
            # What decoding the patched document into the kind answers upstream.
            text = wire.encode(patched, pretty=False).decode().strip()
            raise status.invalid("", "", [(
                "patch", "FieldValueInvalid",
                f"Invalid value: {status.go_quote(text)}: json: cannot unmarshal "
                f"{'array' if isinstance(patched, list) else 'value'} into Go value of "
                f"type {rt.kind}")])
        patched.setdefault("metadata", {})
        if not isinstance(patched["metadata"], dict):
            raise status.bad_request("metadata must be an object")
        # Only what the patch brought in is judged (the live object passed already).
        known = set(fieldvalidation.strict_errors(schema, live, []))
        checked = fieldvalidation.check_patched(
            schema, patched, mode, lambda o: wire.encode(o, pretty=False).decode().strip(),
            known)
        patched = checked.obj
        # A patch is against the live object: it conflicts only when it names a
        # resourceVersion itself (a json-patch "test", or a merge patch carrying one).
        patched["metadata"]["resourceVersion"] = (
            patched["metadata"].get("resourceVersion") or live["metadata"]["resourceVersion"]
        )
        out = self.objects.update(rt, namespace, name, patched, subresource=sub,
                                  dry_run=dry_run(request), managed_by=_manager(request))
        return add_warnings(render(request, self.objects.store, rt, out), checked.warnings)

    async def _apply(self, request: web.Request, rt: ResourceType, namespace: str,
                     name: str, sub: str, raw: bytes, live: dict | None) -> web.Response:
        """Server-side apply (localmesh/api/apply.py): create when nothing is there."""
        if live is None and sub:
            raise status.not_found(rt.plural, name, rt.group)
        config = apply.decode(raw)
        force = request.query.get("force") in ("1", "true", "True")
        merged = apply.applied(rt, self.objects.schema(rt), live, config,
                               namespace=namespace, name=name,
                               manager=request.query.get("fieldManager", ""), force=force,
                               subresource=sub)
        merged.setdefault("metadata", {})["name"] = name
        if live is None:
            created = self.objects.create(rt, namespace, merged, dry_run=dry_run(request),
                                          keep_managed_fields=True)
            return render(request, self.objects.store, rt, created, 201)
        merged["metadata"]["resourceVersion"] = (
            (config.get("metadata") or {}).get("resourceVersion")
            or live["metadata"]["resourceVersion"])
        out = self.objects.update(rt, namespace, name, merged, subresource=sub,
                                  dry_run=dry_run(request), keep_managed_fields=True)
        return render(request, self.objects.store, rt, out)

    async def status_like(self, request: web.Request, rt: ResourceType, namespace: str,
                           name: str, sub: str) -> web.Response:
        if sub == "approval":
            # A CertificateSigningRequest's conditions, written like its status.
            sub = "status"
        if sub == "scale":
            return await self._scale(request, rt, namespace, name)
        if request.method == "GET":
            return json_response(self.objects.get(rt, namespace, name))
        if request.method == "PUT":
            body = await read_body(request)
            if sub == "finalize":
                live = self.objects.get(rt, namespace, name)
                live.setdefault("spec", {})["finalizers"] = body.get("spec", {}).get(
                    "finalizers", [])
                live["metadata"]["resourceVersion"] = body.get("metadata", {}).get(
                    "resourceVersion") or live["metadata"]["resourceVersion"]
                out = self.objects.update(rt, namespace, name, live, subresource="finalize")
                return json_response(out)
            return json_response(self.objects.update(rt, namespace, name, body,
                                                     subresource="status",
                                                     managed_by=_manager(request)))
        if request.method == "PATCH":
            return await self._patch(request, rt, namespace, name, sub="status")
        raise status.method_not_allowed()

    async def _scale(self, request: web.Request, rt: ResourceType, namespace: str,
                     name: str) -> web.Response:
        obj = self.objects.get(rt, namespace, name)

        def scale_of(o: dict) -> dict:
            return {
                "kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: o["metadata"].get(k) for k in
                             ("name", "namespace", "uid", "resourceVersion",
                              "creationTimestamp")},
                "spec": {"replicas": o.get("spec", {}).get("replicas", 1)},
                "status": {"replicas": o.get("status", {}).get("replicas", 0),
                           "selector": ",".join(f"{k}={v}" for k, v in _selector_map(
                               o.get("spec", {}).get("selector")).items())},
            }

        if request.method == "GET":
            return json_response(scale_of(obj))
        if request.method in ("PUT", "PATCH"):
            if request.method == "PUT":
                body = await read_body(request)
            else:
                body = apply_patch(scale_of(obj), await request.read(),
                                   request.headers.get("Content-Type", ""))
            replicas = body.get("spec", {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise status.invalid("Scale", name, [("spec.replicas", "FieldValueInvalid",
                                                      "Invalid value: must be >= 0")],
                                     "autoscaling")
            obj["spec"]["replicas"] = replicas
            out = self.objects.update(rt, namespace, name, obj, check_version=False)
            return json_response(scale_of(out))
        raise status.method_not_allowed()


def _selector_map(selector: Any) -> dict:
    """matchLabels of a LabelSelector, or a ReplicationController's plain map."""
    if not isinstance(selector, dict):
        return {}
    if "matchLabels" in selector or "matchExpressions" in selector:
        return dict(selector.get("matchLabels") or {})
    return dict(selector)


def _manager(request: web.Request) -> str:
    """Who a write is recorded for in managedFields (``managerOrUserAgent``)."""
    return fieldmanager.manager_name(request.query.get("fieldManager"),
                                     request.headers.get("User-Agent", ""))

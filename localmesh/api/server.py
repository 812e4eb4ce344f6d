"""The HTTP face of the API server: authentication, discovery, REST verbs, watch.

Paths and response shapes follow the Kubernetes API conventions so that the official
clients and kubectl work unchanged:
``/api/v1/namespaces/{ns}/{resource}/{name}/{subresource}`` and
``/apis/{group}/{version}/...``. Subresources that reach into pods (exec, log,
portforward, proxy) are delegated to the kubelet; services/proxy to the service proxy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from localmesh.api import authn, protobuf, status, tables
from localmesh.api.objects import ObjectAPI
from localmesh.api.patch import apply_patch
from localmesh.api.selectors import field_matcher, label_matcher
from localmesh.api.status import ApiError
from localmesh.resources import ResourceType
from localmesh.store import Event, StoreError

log = logging.getLogger("localmesh.api")

KUBE_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-localmesh",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

SubresourceHandler = Callable[[web.Request, ResourceType, str, str], Awaitable[web.StreamResponse]]


def _json(body: Any, code: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=code, content_type="application/json")


def _error(err: ApiError) -> web.Response:
    return _json(err.status(), err.code)


# How often an idle watch that allowed bookmarks gets one. The real API server sends them
# about once a minute (k8s.io/apiserver pkg/storage/cacher, bookmarkFrequency); localmesh
# is a test cluster, so sooner, and always one just before a watch's timeoutSeconds ends.
BOOKMARK_SECONDS = 5.0
# Served resources whose DELETE answers with the deleted object instead of a Status: those
# whose registry sets ReturnDeletedObject (k8s.io/kubernetes pkg/registry/core/{pod,service,
# serviceaccount}/storage/storage.go). storageclasses set it too, but localmesh does not
# serve them.
RETURN_DELETED_OBJECT = frozenset({("", "pods"), ("", "services"), ("", "serviceaccounts")})

# The verb a request is, for the resource's advertised verbs (405 otherwise).
_COLLECTION_VERBS = {"GET": "list", "POST": "create", "DELETE": "deletecollection"}
_OBJECT_VERBS = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


class APIServer:
    """Routes requests to the object API and to subresource providers."""

    def __init__(self, objects: ObjectAPI, token: str) -> None:
        self.objects = objects
        self.token = token
        # Who a request is (localmesh/api/authn.py) and what it may do (api/rbac.py; None:
        # every authenticated user may do everything).
        self.authn = authn.Authenticator(token)
        self.authz: Any = None
        self.subresources: dict[tuple[tuple[str, str], str], SubresourceHandler] = {}
        self.extra_routes: list[tuple[str, str, Callable]] = []
        self.openapi: Any = None  # set by localmesh.api.openapi
        self._stopping = asyncio.Event()

    # -- app -----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth], client_max_size=64 * 1024 * 1024)
        for method, path, handler in self.extra_routes:
            app.router.add_route(method, path, handler)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    def stop_watches(self) -> None:
        self._stopping.set()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        if request.path in ("/livez", "/readyz", "/healthz"):
            return await handler(request)
        user = self.authn.authenticate(request.headers.get("Authorization", ""))
        if user is None:
            return _error(status.unauthorized())
        if self.authz is not None:
            try:
                user = self.authz.impersonate(request, user)
                self.authz.authorize_request(request, user)
            except ApiError as err:
                return _error(err)
        current = authn.current_user.set(user)
        try:
            return await handler(request)
        except ApiError as err:
            return _error(err)
        except StoreError as err:
            return _error(ApiError(err.code, err.reason, err.message))
        except web.HTTPException:
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # answer as the API server does (500 Status), and log
            log.exception("%s %s failed", request.method, request.path)
            return _error(ApiError(500, "InternalError",
                                   f"Internal error occurred: {exc.__class__.__name__}: {exc}"))
        finally:
            authn.current_user.reset(current)

    # -- dispatch ------------------------------------------------------------------------
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            return _json({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez",
                                    "/openapi/v2", "/openapi/v3", "/readyz", "/version"]})
        head = parts[0]
        if head in ("healthz", "livez", "readyz"):
            return web.Response(text="ok")
        if head == "version":
            return _json(KUBE_VERSION)
        if head == "openapi":
            if self.openapi is None:
                raise status.not_found("openapi", "/".join(parts))
            return await self.openapi.handle(request, parts[1:])
        if head in ("api", "apis"):
            # The deprecated /api/v1/watch/... form (still served upstream): a watch of the
            # collection, or of one object through a metadata.name field selector.
            gv_len = 2 if head == "api" else 3
            if len(parts) > gv_len and parts[gv_len] == "watch":
                return await self._legacy_watch(request, head, parts, gv_len)
        if head == "api":
            if len(parts) == 1:
                return _json({"kind": "APIVersions", "versions": ["v1"],
                              "serverAddressByClientCIDRs": [
                                  {"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}]})
            return await self._resource(request, "", parts[1], parts[2:])
        if head == "apis":
            if len(parts) == 1:
                return _json(self._api_group_list())
            if len(parts) == 2:
                return _json(self._api_group(parts[1]))
            return await self._resource(request, parts[1], parts[2], parts[3:])
        raise status.not_found("", request.path)

    # -- discovery -----------------------------------------------------------------------
    def _group_doc(self, group: str, versions: list[str]) -> dict:
        vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": vs, "preferredVersion": vs[0]}

    def _api_group_list(self) -> dict:
        groups = [
            self._group_doc(g, vs)
            for g, vs in self.objects.registry.group_versions().items() if g
        ]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _api_group(self, group: str) -> dict:
        versions = self.objects.registry.group_versions().get(group)
        if not versions:
            raise status.not_found("", f"/apis/{group}")
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group_doc(group, versions)}

    def _resource_list(self, group: str, version: str) -> dict:
        types = self.objects.registry.in_group_version(group, version)
        if not types:
            raise status.not_found("", f"/apis/{group}/{version}")
        resources: list[dict] = []
        for rt in types:
            resources.extend(rt.discovery())
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": resources}

    # -- resources -----------------------------------------------------------------------
    async def _resource(self, request: web.Request, group: str, version: str,
                        rest: list[str]) -> web.StreamResponse:
        if not rest:
            if request.method != "GET":
                raise status.method_not_allowed()
            return _json(self._resource_list(group, version))
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2:]:
            ns_rt = self.objects.registry.find("", "v1", "namespaces")
            # /api/v1/namespaces/{ns}/{resource}... unless it is the namespace's own
            # subresource (/namespaces/{ns}/status|finalize).
            if not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize")):
                namespace, rest = rest[1], rest[2:]
            del ns_rt
        plural = rest[0]
        rt = self.objects.registry.find(group, version, plural)
        if rt is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if rt.namespaced is False and namespace:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if len(rest) > 3:
            if sub not in ("proxy",):
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub:
            if sub not in rt.subresources:
                raise ApiError(404, "NotFound",
                               "the server could not find the requested resource")
            if sub in ("status", "scale", "finalize"):
                return await self._status_like(request, rt, namespace, name, sub)
            handler = self.subresources.get((rt.key, sub))
            if handler is None:
                raise status.method_not_allowed()
            return await handler(request, rt, namespace, name)
        verb = (_OBJECT_VERBS if name else _COLLECTION_VERBS).get(request.method)
        if not name and request.method == "GET" and request.query.get("watch") in (
                "1", "true", "True"):
            verb = "watch"
        if verb is None or verb not in rt.verbs:
            raise status.method_not_allowed()
        if not name:
            if verb == "watch":
                return await self._watch(request, rt, namespace)
            if verb == "list":
                return self._render_list(request, rt, self._list(rt, namespace, request.query))
            if verb == "create":
                body = await self._body(request)
                created = self.objects.create(rt, namespace, body, dry_run=self._dry(request))
                return self._render(request, rt, created, 201)
            return _json(await self._delete_collection(request, rt, namespace))
        if request.method == "GET":
            return self._render(request, rt, self.objects.get(rt, namespace, name))
        if request.method == "PUT":
            body = await self._body(request)
            out = self.objects.update(rt, namespace, name, body, dry_run=self._dry(request),
                                      allow_create=rt.custom)
            return self._render(request, rt, out)
        if request.method == "PATCH":
            return await self._patch(request, rt, namespace, name)
        opts = await self._delete_options(request)
        out = self.objects.delete(rt, namespace, name, **opts)
        return _json(self._deleted_response(rt, out))

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

    # -- content negotiation -------------------------------------------------------------
    def _printer(self, rt: ResourceType) -> tables.Printer:
        version = None
        if rt.custom:
            crd = self.objects.store.get(("apiextensions.k8s.io", "customresourcedefinitions"),
                                         "", f"{rt.plural}.{rt.group}")
            version = next((v for v in ((crd or {}).get("spec") or {}).get("versions") or []
                            if v.get("name") == rt.version), {})
        return tables.Printer(rt.key, version)

    def _render(self, request: web.Request, rt: ResourceType, obj: dict,
                code: int = 200) -> web.Response:
        """One object as JSON, or as the Table / PartialObjectMetadata the client asked for."""
        accept = request.headers.get("Accept", "")
        tv = tables.wants_table(accept)
        if tv:
            meta = {"resourceVersion": obj.get("metadata", {}).get("resourceVersion", "")}
            include = request.query.get("includeObject", "Metadata")
            return _json(self._printer(rt).table([obj], meta, include, tv), code)
        pv = tables.wants_partial_metadata(accept)
        if pv:
            return _json(tables.partial_metadata(obj, pv), code)
        return _json(obj, code)

    def _render_list(self, request: web.Request, rt: ResourceType, listing: dict) -> web.Response:
        accept = request.headers.get("Accept", "")
        tv = tables.wants_table(accept)
        if tv:
            for o in listing["items"]:
                o["apiVersion"], o["kind"] = rt.api_version, rt.kind
            include = request.query.get("includeObject", "Metadata")
            return _json(self._printer(rt).table(listing["items"], listing["metadata"], include,
                                                 tv))
        pv = tables.wants_partial_metadata(accept)
        if pv:
            return _json({"kind": "PartialObjectMetadataList",
                          "apiVersion": f"meta.k8s.io/{pv}", "metadata": listing["metadata"],
                          "items": [tables.partial_metadata(o, pv) for o in listing["items"]]})
        return _json(listing)

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        ctype = request.headers.get("Content-Type", "application/json")
        if ctype.startswith(protobuf.MEDIA_TYPE):
            # kubectl >= 1.32's typed clients; see localmesh/api/protobuf.py.
            return protobuf.decode(raw)
        if "cbor" in ctype:
            # client-go falls back to JSON after a 415 to a CBOR body (KEP-4222).
            raise ApiError(415, "UnsupportedMediaType",
                           f"the body of the request was in an unknown format - accepted media "
                           f"types include: application/json, application/yaml, "
                           f"{protobuf.MEDIA_TYPE} (got {ctype})")
        try:
            if "yaml" in ctype:
                import yaml

                return yaml.safe_load(raw.decode())
            return json.loads(raw.decode() or "null")
        except Exception as exc:
            raise status.bad_request(
                f"the request body could not be decoded as {ctype}: {exc}") from exc

    @staticmethod
    def _dry(request: web.Request) -> bool:
        return "All" in request.query.getall("dryRun", [])

    def _list(self, rt: ResourceType, namespace: str, q: Any) -> dict:
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
        for o in items:
            o.pop("apiVersion", None)
            o.pop("kind", None)
        kind = rt.list_kind or f"{rt.kind}List"
        return {"kind": kind, "apiVersion": rt.api_version, "metadata": meta, "items": items}

    async def _delete_collection(self, request: web.Request, rt: ResourceType,
                                 namespace: str) -> dict:
        listing = self._list(rt, namespace, request.query)
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
        opts["dry_run"] = self._dry(request) or "All" in (body.get("dryRun") or [])
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
        live = self.objects.store.get(rt.key, namespace if rt.namespaced else "", name)
        if live is None:
            if not is_apply or sub:
                raise status.not_found(rt.plural, name, rt.group)
            body = apply_patch({}, raw, ctype)
            if not isinstance(body, dict):
                raise status.bad_request("the applied configuration is not an object")
            body.setdefault("metadata", {})["name"] = name
            created = self.objects.create(rt, namespace, body, dry_run=self._dry(request))
            return self._render(request, rt, created, 201)
        patched = apply_patch(live, raw, ctype)
        if not isinstance(patched, dict):
            raise status.bad_request("patched object is not a JSON object")
        patched.setdefault("metadata", {})
        if not isinstance(patched["metadata"], dict):
            raise status.bad_request("metadata must be an object")
        # A patch is against the live object: it conflicts only when it names a
        # resourceVersion itself (a json-patch "test", or a merge patch carrying one).
        patched["metadata"]["resourceVersion"] = (
            patched["metadata"].get("resourceVersion") or live["metadata"]["resourceVersion"]
        )
        out = self.objects.update(rt, namespace, name, patched, subresource=sub,
                                  dry_run=self._dry(request))
        return self._render(request, rt, out)

    async def _status_like(self, request: web.Request, rt: ResourceType, namespace: str,
                           name: str, sub: str) -> web.Response:
        if sub == "scale":
            return await self._scale(request, rt, namespace, name)
        if request.method == "GET":
            return _json(self.objects.get(rt, namespace, name))
        if request.method == "PUT":
            body = await self._body(request)
            if sub == "finalize":
                live = self.objects.get(rt, namespace, name)
                live.setdefault("spec", {})["finalizers"] = body.get("spec", {}).get(
                    "finalizers", [])
                live["metadata"]["resourceVersion"] = body.get("metadata", {}).get(
                    "resourceVersion") or live["metadata"]["resourceVersion"]
                out = self.objects.update(rt, namespace, name, live, subresource="finalize")
                return _json(out)
            return _json(self.objects.update(rt, namespace, name, body, subresource="status"))
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
                           "selector": ",".join(
                               f"{k}={v}" for k, v in (o.get("spec", {}).get("selector", {})
                                                       .get("matchLabels") or {}).items())},
            }

        if request.method == "GET":
            return _json(scale_of(obj))
        if request.method in ("PUT", "PATCH"):
            if request.method == "PUT":
                body = await self._body(request)
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
            return _json(scale_of(out))
        raise status.method_not_allowed()

    # -- watch ---------------------------------------------------------------------------
    async def _legacy_watch(self, request: web.Request, head: str, parts: list[str],
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
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if request.method != "GET" or "watch" not in rt.verbs:
            raise status.method_not_allowed()
        return await self._watch(request, rt, namespace, rest[1] if len(rest) > 1 else "")

    async def _watch(self, request: web.Request, rt: ResourceType,
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
                await resp.write(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
                return resp
            raise
        accept = request.headers.get("Accept", "")
        table_version = tables.wants_table(accept)
        printer = self._printer(rt) if table_version else None
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
            await resp.write(json.dumps({"type": type_, "object": obj}).encode() + b"\n")

        async def bookmark(annotations: dict | None = None) -> None:
            meta: dict = {"resourceVersion": str(store.revision)}
            if annotations:
                meta["annotations"] = annotations
            body = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}
            await resp.write(json.dumps({"type": "BOOKMARK", "object": body}).encode() + b"\n")

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
            while not self._stopping.is_set():
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

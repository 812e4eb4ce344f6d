"""The HTTP face of the API server: authentication and authorization, then routing.

Paths follow the Kubernetes API conventions so that the official clients and kubectl work
unchanged: ``/api/v1/namespaces/{ns}/{resource}/{name}/{subresource}`` and
``/apis/{group}/{version}/...``. Each request is authenticated (localmesh/api/authn.py),
impersonation and authorization are applied (localmesh/api/rbac/filters.py), and the
request goes to discovery (api/discovery.py), the OpenAPI documents (api/openapi.py), the
REST verbs (api/rest.py), watch (api/watch.py), or the subresource handlers given at
construction: the kubelet's exec/log/portforward/proxy, services/proxy, TokenRequest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiohttp import web

from localmesh.api import authn, discovery, status, wire
from localmesh.api.authn import Authenticator
from localmesh.api.faults import Faults
from localmesh.api.negotiation import error_response, json_response, page_not_found
from localmesh.api.objects import ObjectAPI, admission_warnings
from localmesh.api.openapi import OpenAPI
from localmesh.api.rbac.filters import RequestAuthorization
from localmesh.api.rest import RestHandlers
from localmesh.api.status import ApiError
from localmesh.api.watch import Watches
from localmesh.resources import ResourceType
from localmesh.store import StoreError

log = logging.getLogger("localmesh.api")

SubresourceHandler = Callable[[web.Request, ResourceType, str, str],
                              Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# (method, path, handler): an API served at a fixed path (the review APIs).
Route = tuple[str, str, Handler]

# The verb a request is, for the resource's advertised verbs (405 otherwise).
_COLLECTION_VERBS = {"GET": "list", "POST": "create", "DELETE": "deletecollection"}
_OBJECT_VERBS = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
# Subresources served by the REST handlers themselves; the rest come from their providers.
_OWN_SUBRESOURCES = ("status", "scale", "finalize", "approval")


class APIServer:
    """Routes requests to the object API and to the subresource providers it was given."""

    def __init__(self, objects: ObjectAPI, authenticator: Authenticator,
                 authorization: RequestAuthorization | None = None, *,
                 subresources: Mapping[tuple[tuple[str, str], str], SubresourceHandler]
                 | None = None, routes: Sequence[Route] = (),
                 openapi: OpenAPI | None = None, faults: Faults | None = None) -> None:
        """``authorization`` None lets every authenticated user do everything;
        ``subresources`` maps ((group, plural), subresource) to its handler; ``faults``
        (localmesh up --api-faults) sees every request first and serves ``/metrics``."""
        self.objects = objects
        self.authn = authenticator
        self.authz = authorization
        self.subresources = dict(subresources or {})
        self.routes = list(routes)
        self.openapi = openapi
        self.faults = faults
        self.rest = RestHandlers(objects)
        self.watches = Watches(objects)

    # -- app -----------------------------------------------------------------------------
    def app(self) -> web.Application:
        middlewares = [self._auth] if self.faults is None else [self.faults.middleware,
                                                                self._auth]
        app = web.Application(middlewares=middlewares, client_max_size=64 * 1024 * 1024)
        if self.faults is not None:
            app.router.add_get("/metrics", self.faults.metrics)
        for method, path, handler in self.routes:
            app.router.add_route(method, path, handler)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    def stop_watches(self) -> None:
        self.watches.stop()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        if request.path in ("/livez", "/readyz", "/healthz"):
            return await handler(request)
        wire.pretty_output.set(wire.wants_pretty(request.query,
                                                 request.headers.get("User-Agent", "")))
        user = self.authn.authenticate(request.headers.get("Authorization", ""))
        if user is None:
            return error_response(status.unauthorized())
        if self.authz is not None:
            try:
                user = self.authz.impersonate(request, user)
                self.authz.authorize_request(request, user)
            except ApiError as err:
                return error_response(err)
        current = authn.current_user.set(user)
        admission_warnings.set([])
        try:
            return await handler(request)
        except ApiError as err:
            return error_response(err)
        except StoreError as err:
            return error_response(ApiError(err.code, err.reason, err.message))
        except web.HTTPException:
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # answer as the API server does (500 Status), and log
            log.exception("%s %s failed", request.method, request.path)
            return error_response(ApiError(
                500, "InternalError", f"Internal error occurred: {exc.__class__.__name__}: {exc}"))
        finally:
            authn.current_user.reset(current)

    # -- dispatch ------------------------------------------------------------------------
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        registry = self.objects.registry
        if not parts:
            return json_response(discovery.ROOT_PATHS)
        head = parts[0]
        if head in ("healthz", "livez", "readyz"):
            return web.Response(text="ok")
        if head == "version":
            return json_response(discovery.KUBE_VERSION)
        if head == "openapi":
            if self.openapi is None:
                raise status.not_found("openapi", "/".join(parts))
            return await self.openapi.handle(request, parts[1:])
        if head in ("api", "apis"):
            # The deprecated /api/v1/watch/... form (still served upstream): a watch of the
            # collection, or of one object through a metadata.name field selector.
            gv_len = 2 if head == "api" else 3
            if len(parts) > gv_len and parts[gv_len] == "watch":
                return await self.watches.legacy(request, head, parts, gv_len)
        if head == "api":
            if len(parts) == 1:
                return json_response(discovery.api_versions(request.host))
            return await self._resource(request, "", parts[1], parts[2:])
        if head == "apis":
            if len(parts) == 1:
                return json_response(discovery.api_group_list(registry))
            if parts[1] not in registry.group_versions():
                return page_not_found()
            if len(parts) == 2:
                return json_response(discovery.api_group(registry, parts[1]))
            return await self._resource(request, parts[1], parts[2], parts[3:])
        return page_not_found()

    async def _resource(self, request: web.Request, group: str, version: str,
                        rest: list[str]) -> web.StreamResponse:
        """``{group-version}/[namespaces/{ns}/]{resource}[/{name}[/{subresource}...]]``.

        A group-version nobody serves is the plain 404 of an unknown path; inside a served
        one, an unknown resource is go-restful's 404 Status (``details`` empty)."""
        if version not in self.objects.registry.group_versions().get(group, []):
            return page_not_found()
        if not rest:
            if request.method != "GET":
                raise status.method_not_allowed()
            return json_response(discovery.resource_list(self.objects.registry, group,
                                                         version))
        namespace = ""
        # /api/v1/namespaces/{ns}/{resource}... unless it is the namespace's own
        # subresource (/namespaces/{ns}/status|finalize).
        if rest[0] == "namespaces" and len(rest) >= 3 and not (
                group == "" and len(rest) == 3 and rest[2] in ("status", "finalize")):
            namespace, rest = rest[1], rest[2:]
        rt = self.objects.registry.find(group, version, rest[0])
        if rt is None:
            raise discovery.not_served()
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if rt.namespaced is False and namespace:
            raise discovery.not_served()
        if len(rest) > 3 and sub != "proxy":
            raise discovery.not_served()
        if sub:
            if sub not in rt.subresources:
                raise discovery.not_served()
            if sub in _OWN_SUBRESOURCES:
                return await self.rest.status_like(request, rt, namespace, name, sub)
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
        if name:
            return await self.rest.one(request, rt, namespace, name)
        if verb == "watch":
            return await self.watches.watch(request, rt, namespace)
        return await self.rest.collection(request, rt, namespace, verb)

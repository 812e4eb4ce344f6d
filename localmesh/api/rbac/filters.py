"""The request filters: impersonation, then authorization with the handlers' extra checks.

k8s.io/apiserver ``pkg/endpoints/filters/impersonation.go`` (``WithImpersonation``: the
``impersonate`` verb on ``users``, ``groups``, ``serviceaccounts``, ``uids`` and
``userextras/<key>``) and ``authorization.go`` (``WithAuthorization``), plus the checks
the handlers add beyond the filter's one verb (localmesh/api/rbac/__init__.py, step 3).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from localmesh.api import authn, status
from localmesh.api.authn import UserInfo
from localmesh.api.rbac.authorizer import Authorizer, forbidden
from localmesh.api.rbac.request_info import Attributes, request_info
from localmesh.api.status import new_forbidden
from localmesh.resources import Registry

_STREAMING = ("exec", "attach", "portforward")


@dataclass
class RequestAuthorization:
    """Who a request acts as, and whether it may: raises the 403 (or 400) to answer."""

    authorizer: Authorizer
    registry: Registry

    def impersonate(self, request: web.Request, user: UserInfo) -> UserInfo:
        """Honour ``Impersonate-*`` headers after checking the ``impersonate`` verb."""
        name, groups, uid, extra = authn.impersonation(request.headers)
        if name is None:
            if groups or uid or extra:
                raise status.bad_request("requested impersonation of groups, uid or extra "
                                         "without impersonating a user")
            return user
        checks: list[Attributes] = []
        sa = authn.split_service_account(name)
        if sa is not None:
            checks.append(Attributes(user, "impersonate", True, request.path, "", "v1", sa[0],
                                     "serviceaccounts", "", sa[1]))
        else:
            checks.append(Attributes(user, "impersonate", True, request.path, "", "v1", "",
                                     "users", "", name))
        checks += [Attributes(user, "impersonate", True, request.path, "", "v1", "", "groups",
                              "", g) for g in groups]
        if uid:
            checks.append(Attributes(user, "impersonate", True, request.path,
                                     "authentication.k8s.io", "v1", "", "uids", "", uid))
        for key, values in extra.items():
            checks += [Attributes(user, "impersonate", True, request.path,
                                  "authentication.k8s.io", "v1", "", "userextras", key, v)
                       for v in values]
        for attrs in checks:
            decision = self.authorizer.authorize(attrs)
            if not decision.allowed:
                raise forbidden(attrs, decision.reason)
        return authn.impersonated(name, groups, uid, extra)

    def authorize_request(self, request: web.Request, user: UserInfo) -> Attributes:
        """The authorization filter and the handlers' extra checks; raises 403."""
        attrs = request_info(user, request.method, request.path, request.query)
        if user.privileged:
            return attrs
        decision = self.authorizer.authorize(attrs)
        if not decision.allowed:
            raise forbidden(attrs, decision.reason)
        if not attrs.resource_request:
            return attrs
        if attrs.verb == "get" and attrs.resource == "pods" and attrs.subresource in \
                _STREAMING and request.headers.get("Upgrade", "").lower() == "websocket":
            # AuthorizePodWebsocketUpgradeCreatePermission (Kubernetes 1.35+).
            create = attrs.with_verb("create")
            decision = self.authorizer.authorize(create)
            if not decision.allowed:
                raise forbidden(create, decision.reason)
        elif self._creates(request, attrs):
            create = attrs.with_verb("create")
            decision = self.authorizer.authorize(create)
            if not decision.allowed:
                # handlers/update.go withAuthorization: NewForbidden(gr, name, reason).
                raise new_forbidden(attrs.resource, attrs.api_group, attrs.name,
                                    decision.reason)
        return attrs

    def _creates(self, request: web.Request, attrs: Attributes) -> bool:
        """Does this PATCH (server-side apply) or PUT create the object it names?"""
        if attrs.verb not in ("patch", "update") or attrs.subresource or not attrs.name:
            return False
        if attrs.verb == "patch" and not request.headers.get("Content-Type", "").startswith(
                "application/apply-patch"):
            return False
        rt = self.registry.find(attrs.api_group, attrs.api_version, attrs.resource)
        if rt is None or (attrs.verb == "update" and not rt.custom):
            return False
        ns = attrs.namespace if rt.namespaced else ""
        return self.authorizer.peek(rt.key, ns, attrs.name) is None

"""The access reviews: ``kubectl auth can-i [--list]`` and its programmatic forms.

``SelfSubjectAccessReview``, ``SelfSubjectRulesReview``, ``SubjectAccessReview`` and
``LocalSubjectAccessReview`` (``authorization.k8s.io/v1``; k8s.io/kubernetes
``pkg/registry/authorization/*``): create-only, never stored, answered from the same
evaluation as the requests themselves.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from localmesh.api import authn, status
from localmesh.api.authn import UserInfo
from localmesh.api.negotiation import read_body
from localmesh.api.rbac.authorizer import Authorizer, Decision
from localmesh.api.rbac.request_info import Attributes

AUTHZ = "authorization.k8s.io"


def _review_attributes(kind: str, spec: dict, user: UserInfo) -> Attributes:
    res, nonres = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if bool(res) == bool(nonres):
        raise status.invalid(kind, "", [
            ("spec.resourceAttributes", "FieldValueInvalid",
             f"Invalid value: {json.dumps(res)}: exactly one of nonResourceAttributes or "
             "resourceAttributes must be specified")], AUTHZ)
    if nonres:
        return Attributes(user, nonres.get("verb", ""), False, nonres.get("path", ""))
    assert res is not None  # exactly one of the two is set, checked above
    return Attributes(user, res.get("verb", ""), True, "", res.get("group", ""),
                      res.get("version", ""), res.get("namespace", ""),
                      res.get("resource", ""), res.get("subresource", ""), res.get("name", ""))


def _review_status(decision: Decision) -> dict:
    out: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        out["reason"] = decision.reason
    return out


def _rule_info(rule: dict) -> dict:
    return {k: list(rule[k]) for k in ("verbs", "apiGroups", "resources", "resourceNames",
                                        "nonResourceURLs") if rule.get(k)}


class Reviews:
    """HTTP handlers of the review APIs (create-only, never stored)."""

    def __init__(self, authz: Authorizer) -> None:
        self.authz = authz

    def routes(self) -> list[tuple[str, str, Any]]:
        """(method, path, handler) of each review API, for the API server's router."""
        return [
            ("POST", f"/apis/{AUTHZ}/v1/selfsubjectaccessreviews",
             self.self_subject_access_review),
            ("POST", f"/apis/{AUTHZ}/v1/selfsubjectrulesreviews", self.self_subject_rules_review),
            ("POST", f"/apis/{AUTHZ}/v1/subjectaccessreviews", self.subject_access_review),
            ("POST", f"/apis/{AUTHZ}/v1/namespaces/{{namespace}}/localsubjectaccessreviews",
             self.subject_access_review),
        ]

    async def _body(self, request: web.Request, kind: str) -> dict:
        body = await read_body(request)
        if not isinstance(body, dict):
            raise status.bad_request("the body of the request was not a JSON object")
        if body.get("kind") not in (None, kind):
            raise status.bad_request(f"the kind in the data ({body.get('kind')}) does not "
                                     f"match the expected kind ({kind})")
        return body

    @staticmethod
    def _user() -> UserInfo:
        user = authn.current_user.get()
        if user is None:  # pragma: no cover - the middleware always sets one
            raise status.unauthorized()
        return user

    @staticmethod
    def _answer(kind: str, body: dict, spec: dict, st: dict,
                namespace: str | None = None) -> web.Response:
        meta: dict[str, Any] = {"creationTimestamp": None}
        if namespace is not None:
            meta["namespace"] = namespace
        meta.update({k: v for k, v in (body.get("metadata") or {}).items()
                     if k in ("name", "generateName", "labels", "annotations")})
        return web.json_response({"kind": kind, "apiVersion": f"{AUTHZ}/v1", "metadata": meta,
                                  "spec": spec, "status": st}, status=201)

    async def self_subject_access_review(self, request: web.Request) -> web.Response:
        body = await self._body(request, "SelfSubjectAccessReview")
        spec = body.get("spec") or {}
        attrs = _review_attributes("SelfSubjectAccessReview", spec, self._user())
        return self._answer("SelfSubjectAccessReview", body, spec,
                            _review_status(self.authz.authorize(attrs)))

    async def self_subject_rules_review(self, request: web.Request) -> web.Response:
        body = await self._body(request, "SelfSubjectRulesReview")
        spec = body.get("spec") or {}
        rules, errors = self.authz.rules_for(self._user(), spec.get("namespace", ""))
        st: dict[str, Any] = {
            "resourceRules": [_rule_info(r) for r in rules if not r.get("nonResourceURLs")],
            "nonResourceRules": [_rule_info(r) for r in rules if r.get("nonResourceURLs")],
            "incomplete": bool(errors)}
        if errors:
            st["evaluationError"] = "; ".join(errors)
        return self._answer("SelfSubjectRulesReview", body, spec, st)

    async def subject_access_review(self, request: web.Request) -> web.Response:
        namespace = request.match_info.get("namespace")
        kind = "LocalSubjectAccessReview" if namespace is not None else "SubjectAccessReview"
        body = await self._body(request, kind)
        spec = body.get("spec") or {}
        if not spec.get("user") and not spec.get("groups"):
            raise status.invalid(kind, "", [
                ("spec.user", "FieldValueInvalid",
                 'Invalid value: "": at least one of user or group must be specified')],
                AUTHZ)
        if namespace is not None:
            res = spec.get("resourceAttributes") or {}
            if res.get("namespace", namespace) != namespace or spec.get(
                    "nonResourceAttributes"):
                raise status.invalid(kind, "", [
                    ("spec.resourceAttributes.namespace", "FieldValueInvalid",
                     "Invalid value: must match metadata.namespace")], AUTHZ)
            spec = {**spec, "resourceAttributes": {**res, "namespace": namespace}}
        subject = UserInfo(spec.get("user", ""), spec.get("uid", ""),
                           tuple(spec.get("groups") or ()))
        attrs = _review_attributes(kind, spec, subject)
        return self._answer(kind, body, spec, _review_status(self.authz.authorize(attrs)),
                            namespace)

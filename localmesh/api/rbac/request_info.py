"""Request attributes: what an HTTP request asks to do, in RBAC's terms.

k8s.io/apiserver ``pkg/endpoints/request/requestinfo.go`` (``NewRequestInfo``) and
``pkg/authorization/authorizer`` (``AttributesRecord``); the mapping is described in
localmesh/api/rbac/__init__.py, step 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localmesh.api import status
from localmesh.api.authn import UserInfo

_TRUE = ("1", "t", "T", "true", "TRUE", "True")  # strconv.ParseBool
_SPECIAL_VERBS = ("proxy", "watch")
_NAMESPACE_SUBRESOURCES = ("status", "finalize")


@dataclass(frozen=True)
class Attributes:
    """k8s.io/apiserver ``authorizer.AttributesRecord``."""

    user: UserInfo
    verb: str
    resource_request: bool
    path: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""

    def with_verb(self, verb: str) -> Attributes:
        return Attributes(self.user, verb, self.resource_request, self.path, self.api_group,
                          self.api_version, self.namespace, self.resource, self.subresource,
                          self.name)


def _field_name(selector: str | None) -> str:
    """``RequiresExactMatch("metadata.name")`` of a field selector."""
    for term in (selector or "").split(","):
        for op in ("==", "="):
            key, sep, value = term.partition(op)
            if sep and key.strip() == "metadata.name" and "!" not in key:
                value = value.strip()
                if value and "/" not in value and value not in (".", ".."):
                    return value
                return ""
    return ""


def request_info(user: UserInfo, method: str, path: str, query: Any) -> Attributes:
    """The authorization attributes of an HTTP request (``NewRequestInfo``)."""
    parts = [p for p in path.strip("/").split("/") if p]
    verb = method.lower()
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return Attributes(user, verb, False, path)
    prefix, rest = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(rest) < 3:
            return Attributes(user, verb, False, path)
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]
    if rest[0] in _SPECIAL_VERBS:
        if len(rest) < 2:
            raise status.bad_request(f"unable to determine kind and namespace from url, {path}")
        verb, rest = rest[0], rest[1:]
    else:
        verb = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update",
                "PATCH": "patch", "DELETE": "delete"}.get(method.upper(), "")
    namespace = ""
    if rest[0] == "namespaces":
        if len(rest) > 1:
            namespace = rest[1]
            if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
                rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    sub = rest[2] if len(rest) >= 3 and verb != "proxy" else ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch") in _TRUE else "list"
        name = _field_name(query.get("fieldSelector"))
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(user, verb, True, path, group, version, namespace, resource, sub, name)

"""Kubernetes ``Status`` errors, with the reasons and codes the real API server uses.

Clients key their behaviour on these (kubectl apply turns a 404 into a create, the Python
client raises ``ApiException`` with ``reason``), so shapes follow k8s.io/apimachinery's
``metav1.Status`` exactly.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error to be answered with a Status body."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        kind: str | None = None,
        name: str | None = None,
        group: str = "",
        causes: list[dict] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.kind = kind
        self.name = name
        self.group = group
        self.causes = causes or []

    def status(self) -> dict:
        details: dict = {}
        if self.name is not None:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = self.causes
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            body["details"] = details
        return body


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    qual = f"{resource}.{group}" if group else resource
    return ApiError(404, "NotFound", f'{qual} "{name}" not found', kind=resource, name=name,
                    group=group)


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    qual = f"{resource}.{group}" if group else resource
    return ApiError(409, "AlreadyExists", f'{qual} "{name}" already exists', kind=resource,
                    name=name, group=group)


def conflict(resource: str, name: str, group: str = "") -> ApiError:
    qual = f"{resource}.{group}" if group else resource
    return ApiError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {qual} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        kind=resource, name=name, group=group,
    )


def invalid(kind: str, name: str, causes: list[tuple[str, str, str]], group: str = "") -> ApiError:
    """422 Invalid; causes are (field, reason type, message) as in field.ErrorList."""
    msgs = "; ".join(f"{f}: {m}" for f, _, m in causes)
    qual = f"{kind}.{group}" if group else kind
    return ApiError(
        422, "Invalid", f'{qual} "{name}" is invalid: {msgs}', kind=kind, name=name, group=group,
        causes=[{"reason": t, "message": m, "field": f} for f, t, m in causes],
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str = "the server does not allow this method on the requested "
                       "resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


class Forbidden(ApiError):
    """403 with ``details`` always present, as ``apierrors.NewForbidden`` renders it."""

    def status(self) -> dict:
        body = super().status()
        body.setdefault("details", {})
        return body


def new_forbidden(resource: str, group: str, name: str, err: str) -> Forbidden:
    """``apierrors.NewForbidden(groupResource, name, err)``."""
    qual = f"{resource}.{group}" if group else resource
    if not resource and not group:
        message = f"forbidden: {err}"
    elif not name:
        message = f"{qual} is forbidden: {err}"
    else:
        message = f'{qual} "{name}" is forbidden: {err}'
    return Forbidden(403, "Forbidden", message, kind=resource or None, name=name or None,
                     group=group)

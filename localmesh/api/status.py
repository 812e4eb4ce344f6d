"""Kubernetes ``Status`` errors, with the reasons, codes and messages the real API server
uses.

Clients key their behaviour on these (kubectl apply turns a 404 into a create, the Python
client raises ``ApiException`` with ``reason``), so shapes follow k8s.io/apimachinery's
``metav1.Status`` exactly, field order included (``kind, apiVersion, metadata, status,
message, reason, details, code``; details ``name, group, kind, uid, causes,
retryAfterSeconds``; a cause ``reason, message, field``), and the constructors are those of
``pkg/api/errors/errors.go``. localmesh/api/wire.py writes them byte for byte as the API
server does; tests/localmesh/fixtures/status/ holds recorded answers they are compared with.
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
        with_details: bool = False,
        retry_after: int = 0,
    ) -> None:
        """``with_details``: the constructor sets ``Details`` (a non-nil pointer), so it is
        written even when every field in it is empty (``"details":{}``)."""
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.kind = kind
        self.name = name
        self.group = group
        self.causes = causes or []
        self.with_details = with_details or bool(kind or name or group or causes)
        self.retry_after = retry_after

    def status(self) -> dict:
        details: dict = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [
                {k: c[k] for k in ("reason", "message", "field") if c.get(k)}
                for c in self.causes]
        if self.retry_after:
            details["retryAfterSeconds"] = self.retry_after
        body: dict = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:  # StatusReasonUnknown is "" and omitted
            body["reason"] = self.reason
        if details or self.with_details:
            body["details"] = details
        body["code"] = self.code
        return body


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    """``NewNotFound(groupResource, name)``."""
    qual = f"{resource}.{group}" if group else resource
    return ApiError(404, "NotFound", f"{qual} {go_quote(name)} not found", kind=resource,
                    name=name, group=group, with_details=True)


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    """``NewAlreadyExists(groupResource, name)``."""
    qual = f"{resource}.{group}" if group else resource
    return ApiError(409, "AlreadyExists", f"{qual} {go_quote(name)} already exists",
                    kind=resource, name=name, group=group, with_details=True)


def conflict(resource: str, name: str, group: str = "",
             err: str = "the object has been modified; please apply your changes to the "
             "latest version and try again") -> ApiError:
    """``NewConflict(groupResource, name, err)`` (``err`` is the storage's
    ``OptimisticLockErrorMsg`` unless given)."""
    qual = f"{resource}.{group}" if group else resource
    return ApiError(
        409, "Conflict", f"Operation cannot be fulfilled on {qual} {go_quote(name)}: {err}",
        kind=resource, name=name, group=group, with_details=True,
    )


def aggregate(messages: list[str]) -> str:
    """``utilerrors.NewAggregate(...).Error()`` over ``field.ErrorList.ToAggregate``:
    duplicates dropped, one message as is, several as ``[a, b]``."""
    seen: list[str] = []
    for m in messages:
        if m not in seen:
            seen.append(m)
    if len(seen) == 1:
        return seen[0]
    return "[" + ", ".join(seen) + "]"


def go_quote(text: str) -> str:
    """Go's ``%q`` for the printable text of names and fields: a double-quoted string with
    backslashes and quotes escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def go_value(value: object) -> str:
    """How ``field.Invalid``'s ``ErrorBody`` prints a value (k8s.io/apimachinery
    pkg/util/validation/field/errors.go): numbers and booleans with ``%v``, strings with
    ``%q``, anything else with ``%#v`` — a ``map[string]string`` as
    ``map[string]string{"a":"b"}`` (keys sorted, as fmt sorts them); ``null`` for nil."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        pairs = ", ".join(f"{go_quote(k)}:{go_quote(v)}" for k, v in sorted(value.items()))
        return "map[string]string{" + pairs + "}"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(go_quote(v) for v in value) + "}"
    return repr(value)


def invalid(kind: str, name: str, causes: list[tuple[str, str, str]], group: str = "") -> ApiError:
    """422 Invalid (``NewInvalid``); causes are (field, reason type, message) as in
    field.ErrorList, where the message is the error's body (``ErrorBody``) and the
    aggregate message joins ``field: body``."""
    qual = f"{kind}.{group}" if group else kind
    msgs = aggregate([f"{f}: {m}" if f else m for f, _, m in causes])
    message = f"{qual} {go_quote(name)} is invalid" + (f": {msgs}" if causes else "")
    return ApiError(
        422, "Invalid", message, kind=kind, name=name, group=group,
        causes=[{"reason": t, "message": m, "field": f} for f, t, m in causes],
        with_details=True,
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


# NewGenericServerResponse's messages: what go-restful's errors (no route, wrong method) and
# a failed JSON patch answer, with an empty ``details`` (k8s.io/apiserver
# pkg/server/handler.go serviceErrorHandler; handlers/patch.go applyJSPatch).
GENERIC_MESSAGES = {
    404: ("NotFound", "the server could not find the requested resource"),
    405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    409: ("Conflict", "the server reported a conflict"),
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
}


def generic(code: int) -> ApiError:
    """``NewGenericServerResponse(code, "", GroupResource{}, "", …)``."""
    reason, message = GENERIC_MESSAGES[code]
    return ApiError(code, reason, message, with_details=True)


def method_not_allowed(message: str = "") -> ApiError:
    """405: go-restful found no route for the method (``details`` empty), or the REST
    handler refused the action (``NewMethodNotSupported`` sets the message)."""
    if not message:
        return generic(405)
    return ApiError(405, "MethodNotAllowed", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


class Forbidden(ApiError):
    """403 with ``details`` always present, as ``apierrors.NewForbidden`` renders it."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, with_details=True, **kw)  # type: ignore[arg-type]


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

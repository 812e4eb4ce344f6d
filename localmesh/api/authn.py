"""Authentication: who a request comes from, the way kube-apiserver decides it.

Two kinds of bearer token are accepted (``Authorization: Bearer <token>``), like the
token authenticators of k8s.io/apiserver ``pkg/authentication``:

- the instance's **admin token** (the one in the kubeconfig ``localmesh`` writes): user
  ``localmesh-admin`` in the group ``system:masters``, which kube-apiserver lets do
  anything (``authorizerfactory.NewPrivilegedGroups(user.SystemPrivilegedGroup)``);
- **ServiceAccount tokens** from the TokenRequest API
  (``POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token``, what ``kubectl create
  token`` calls; https://kubernetes.io/docs/reference/kubernetes-api/authentication-resources/token-request-v1/).
  They authenticate as ``system:serviceaccount:{ns}:{name}`` with the groups
  ``system:serviceaccounts``, ``system:serviceaccounts:{ns}`` and ``system:authenticated``
  (k8s.io/apiserver ``pkg/authentication/serviceaccount/util.go``, ``MakeUsername`` and
  ``MakeGroupNames``), for as long as the token has not expired and the ServiceAccount
  (and the object the token is bound to, if any) still exists with the same uid — the
  checks ``pkg/serviceaccount/claims.go`` makes of a bound token.

Where localmesh differs: the tokens are opaque random strings kept in memory, not JWTs
signed with the service-account key, so they do not survive a restart and cannot be
verified offline; the legacy token Secrets (``kubernetes.io/service-account-token``) are
not populated. Tokens are never logged.

Impersonation (``Impersonate-User``/``-Group``/``-Uid``/``-Extra-*``, ``kubectl --as``) is
honoured as k8s.io/apiserver ``pkg/endpoints/filters/impersonation.go`` does: the
requester needs the ``impersonate`` verb on ``users``, ``groups``, ``serviceaccounts``,
``uids`` or ``userextras/<key>``.

``SelfSubjectReview`` (``authentication.k8s.io/v1``, ``kubectl auth whoami``) answers who
the caller is.
"""

from __future__ import annotations

import hmac
import secrets
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from localmesh.api import status
from localmesh.api.negotiation import read_body
from localmesh.api.status import ApiError

if TYPE_CHECKING:
    from localmesh.store import Store

ADMIN_USER = "localmesh-admin"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
SA_PREFIX = "system:serviceaccount:"
SA_GROUP = "system:serviceaccounts"
# kube-apiserver's --api-audiences default to its --service-account-issuer; kind and
# kubeadm use this one. A token requested for other audiences is not valid here.
API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
DEFAULT_EXPIRATION = 3600  # TokenRequestSpec.expirationSeconds default
MIN_EXPIRATION = 600  # "may not specify a duration less than 10 minutes"
MAX_EXPIRATION = 1 << 32  # "may not specify a duration larger than 2^32 seconds"
CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"


@dataclass(frozen=True)
class UserInfo:
    """k8s.io/apiserver ``user.Info``: the identity a request was authenticated as."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def privileged(self) -> bool:
        """A member of ``system:masters``: authorised for everything, escalation included."""
        return MASTERS in self.groups

    def as_dict(self) -> dict:
        """The ``authentication.k8s.io/v1`` UserInfo shape."""
        out: dict[str, Any] = {"username": self.name}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra}
        return out


ADMIN = UserInfo(ADMIN_USER, groups=(MASTERS, AUTHENTICATED))

# The user of the request being served. Set by the API server's middleware for the
# request's task; in-process callers (controllers, istiod) have none and are trusted like
# kube-apiserver's loopback client.
current_user: ContextVar[UserInfo | None] = ContextVar("localmesh_user", default=None)


def service_account_username(namespace: str, name: str) -> str:
    return f"{SA_PREFIX}{namespace}:{name}"


def split_service_account(username: str) -> tuple[str, str] | None:
    """``system:serviceaccount:ns:name`` → (ns, name), else None."""
    if not username.startswith(SA_PREFIX):
        return None
    ns, sep, name = username[len(SA_PREFIX):].partition(":")
    if not sep or not ns or not name or ":" in name:
        return None
    return ns, name


def service_account_groups(namespace: str) -> tuple[str, ...]:
    return (SA_GROUP, f"{SA_GROUP}:{namespace}", AUTHENTICATED)


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Issued:
    user: UserInfo
    expires: float
    audiences: tuple[str, ...]
    sa_uid: str
    bound: tuple[str, str, str] | None  # (kind, name, uid) of the object it is bound to


@dataclass
class Authenticator:
    """Bearer tokens → :class:`UserInfo`; issues ServiceAccount tokens."""

    admin_token: str
    store: Store | None = None
    clock: Any = time.time
    _tokens: dict[str, _Issued] = field(default_factory=dict, repr=False)

    # -- authentication ------------------------------------------------------------------
    def authenticate(self, authorization: str) -> UserInfo | None:
        """The user of an ``Authorization`` header value, or None (401)."""
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        if hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return ADMIN
        return self.review(token, (API_AUDIENCE,))

    def review(self, token: str, audiences: tuple[str, ...]) -> UserInfo | None:
        """A TokenReview: the user of a ServiceAccount token that is still valid and was
        issued for one of ``audiences``, else None. istiod's CA asks this of the
        ``istio-ca`` tokens the kubelet projects into a proxy (as Istio's CA sends a
        TokenReview to kube-apiserver; localmesh does not serve that API)."""
        issued = self._tokens.get(token)
        if issued is None:
            return None
        if self.clock() >= issued.expires:
            self._tokens.pop(token, None)
            return None
        if not set(audiences) & set(issued.audiences):
            return None
        if not self._still_valid(issued):
            return None
        return issued.user

    def _peek(self, key: tuple[str, str], namespace: str, name: str) -> dict | None:
        if self.store is None:
            return None
        return self.store.objects.get(key, {}).get((namespace, name))

    def _still_valid(self, issued: _Issued) -> bool:
        """The ServiceAccount, and the bound object, still exist with the same uid."""
        if self.store is None:
            return True
        sa = split_service_account(issued.user.name)
        if sa is None:
            return False
        obj = self._peek(("", "serviceaccounts"), sa[0], sa[1])
        if obj is None or obj["metadata"].get("uid") != issued.sa_uid \
                or obj["metadata"].get("deletionTimestamp"):
            return False
        if issued.bound is not None:
            kind, name, uid = issued.bound
            key = ("", "pods") if kind == "Pod" else ("", "secrets")
            bound = self._peek(key, sa[0], name)
            if bound is None or (uid and bound["metadata"].get("uid") != uid) \
                    or bound["metadata"].get("deletionTimestamp"):
                return False
        return True

    # -- TokenRequest --------------------------------------------------------------------
    def issue(self, namespace: str, name: str, body: dict) -> dict:
        """Create a token for the ServiceAccount ``namespace/name`` (TokenRequest create,
        k8s.io/kubernetes ``pkg/registry/core/serviceaccount/storage/token.go``)."""
        if not isinstance(body, dict):
            raise status.bad_request("the body of the request was not a JSON object")
        meta = body.get("metadata") or {}
        spec = dict(body.get("spec") or {})
        if meta.get("name") and meta["name"] != name:
            raise status.invalid("TokenRequest", name, [
                ("metadata.name", "FieldValueInvalid",
                 f'Invalid value: "{meta["name"]}": must match the service account name if '
                 "specified")], "authentication.k8s.io")
        sa = self._peek(("", "serviceaccounts"), namespace, name)
        if sa is None:
            raise status.not_found("serviceaccounts", name)
        expiration = spec.get("expirationSeconds")
        if expiration is None:
            expiration = DEFAULT_EXPIRATION
        causes = []
        if not isinstance(expiration, int) or isinstance(expiration, bool):
            causes.append(("spec.expirationSeconds", "FieldValueInvalid",
                           f"Invalid value: {expiration!r}: must be an integer"))
        elif expiration < MIN_EXPIRATION:
            causes.append(("spec.expirationSeconds", "FieldValueInvalid",
                           f"Invalid value: {expiration}: may not specify a duration less "
                           "than 10 minutes"))
        elif expiration > MAX_EXPIRATION:
            causes.append(("spec.expirationSeconds", "FieldValueInvalid",
                           f"Invalid value: {expiration}: may not specify a duration larger "
                           "than 2^32 seconds"))
        audiences = spec.get("audiences") or [API_AUDIENCE]
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            causes.append(("spec.audiences", "FieldValueInvalid",
                           "Invalid value: must be a list of strings"))
        bound = None
        ref = spec.get("boundObjectRef")
        if ref:
            kind = ref.get("kind")
            if kind not in ("Pod", "Secret"):
                causes.append(("spec.boundObjectRef.kind", "FieldValueNotSupported",
                               f'Unsupported value: "{kind}": supported values: "Pod", '
                               '"Secret"'))
            else:
                key = ("", "pods") if kind == "Pod" else ("", "secrets")
                obj = self._peek(key, namespace, ref.get("name", ""))
                if obj is None:
                    raise status.not_found(key[1], ref.get("name", ""))
                uid = obj["metadata"].get("uid", "")
                if ref.get("uid") and ref["uid"] != uid:
                    raise ApiError(409, "Conflict",
                                   f'the UID in the bound object reference ({ref["uid"]}) '
                                   f"does not match the UID in record. The object might have "
                                   "been deleted and then recreated")
                bound = (kind, ref.get("name", ""), uid)
        if causes:
            raise status.invalid("TokenRequest", name, causes, "authentication.k8s.io")
        now = self.clock()
        self._prune(now)
        token = secrets.token_urlsafe(32)
        credential = f"JTI={uuid.uuid4()}"
        user = UserInfo(service_account_username(namespace, name), sa["metadata"].get("uid", ""),
                        service_account_groups(namespace), ((CREDENTIAL_ID, (credential,)),))
        self._tokens[token] = _Issued(user, now + expiration, tuple(audiences),
                                      sa["metadata"].get("uid", ""), bound)
        spec["audiences"] = list(audiences)
        spec["expirationSeconds"] = expiration
        spec.setdefault("boundObjectRef", None)
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": namespace,
                             "creationTimestamp": rfc3339(now)},
                "spec": spec,
                "status": {"token": token, "expirationTimestamp": rfc3339(now + expiration)}}

    def _prune(self, now: float) -> None:
        for tok in [t for t, i in self._tokens.items() if i.expires <= now]:
            del self._tokens[tok]

    # -- HTTP ----------------------------------------------------------------------------
    async def token_request(self, request: web.Request, rt: object, namespace: str,
                            name: str) -> web.Response:
        """The ``serviceaccounts/token`` subresource (create only)."""
        if request.method != "POST":
            raise status.method_not_allowed()
        body = await read_body(request)
        if "All" in request.query.getall("dryRun", []):
            raise status.bad_request("dry run is not supported for TokenRequest")
        out = self.issue(namespace, name, body)
        return web.json_response(out, status=201)

    def routes(self) -> list[tuple[str, str, Any]]:
        """(method, path, handler) of the authentication APIs, for the API server's router."""
        return [("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                 self.self_subject_review)]

    async def self_subject_review(self, request: web.Request) -> web.Response:
        """``POST /apis/authentication.k8s.io/v1/selfsubjectreviews``."""
        user = current_user.get()
        if user is None:  # pragma: no cover - the middleware always sets one
            raise status.unauthorized()
        return web.json_response({
            "kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "status": {"userInfo": user.as_dict()}}, status=201)


def impersonation(headers: Any) -> tuple[str | None, list[str], str | None,
                                          dict[str, list[str]]]:
    """The ``Impersonate-*`` headers: (user, groups, uid, extra)."""
    user = headers.get("Impersonate-User")
    groups = headers.getall("Impersonate-Group", []) if hasattr(headers, "getall") else []
    uid = headers.get("Impersonate-Uid")
    extra: dict[str, list[str]] = {}
    for key in headers:
        if key.lower().startswith("impersonate-extra-"):
            from urllib.parse import unquote

            name = unquote(key[len("impersonate-extra-"):]).lower()
            values = headers.getall(key, []) if hasattr(headers, "getall") else [headers[key]]
            extra.setdefault(name, [])
            for v in values:
                if v not in extra[name]:
                    extra[name].append(v)
    return user, list(groups), uid, extra


def impersonated(user: str, groups: list[str], uid: str | None,
                 extra: dict[str, list[str]]) -> UserInfo:
    """The identity an allowed impersonation yields (impersonation.go): a ServiceAccount
    without explicit groups gets its groups, and everyone but ``system:anonymous`` is in
    ``system:authenticated``."""
    sa = split_service_account(user)
    gs = list(groups)
    if sa is not None and not groups:
        gs = list(service_account_groups(sa[0]))
    if user != "system:anonymous" and AUTHENTICATED not in gs:
        gs.append(AUTHENTICATED)
    return UserInfo(user, uid or "", tuple(gs),
                    tuple((k, tuple(v)) for k, v in sorted(extra.items())))

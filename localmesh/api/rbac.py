"""Authorization: RBAC, evaluated the way kube-apiserver's RBAC authorizer does it.

Four steps, each after its upstream counterpart:

1. **Request attributes** (:func:`request_info`) — k8s.io/apiserver
   ``pkg/endpoints/request/requestinfo.go`` ``NewRequestInfo``; documented at
   https://kubernetes.io/docs/reference/access-authn-authz/authorization/#determine-the-request-verb.
   A path with fewer than three segments, or outside ``/api`` and ``/apis``, is a
   *non-resource* request whose verb is the lower-cased HTTP method (``/version``,
   ``/api``, ``/apis/apps/v1``, ``/openapi/v3``). Otherwise: POST → ``create``; GET/HEAD →
   ``get`` for one object, ``list`` for a collection, ``watch`` with ``watch=1`` (or the
   legacy ``/watch/`` segment); PUT → ``update``; PATCH → ``patch``; DELETE → ``delete``,
   or ``deletecollection`` without a name. ``/namespaces/{ns}/status|finalize`` are the
   namespace's own subresources, and a request for the namespace object itself carries
   its name as the namespace (so a RoleBinding in ``ns`` can grant ``get`` on namespace
   ``ns``). A list with the field selector ``metadata.name=x`` is authorised for the name
   ``x``. Subresources are ``resource/subresource`` (``pods/exec``,
   ``services/proxy`` whose name is ``<service>:<port>``).

2. **Extra checks made by the handlers**, beyond the filter's one verb:
   - a server-side apply (PATCH) or a PUT that *creates* the object also needs ``create``
     (``handlers/patch.go`` and ``handlers/update.go``, ``withAuthorization``);
   - a WebSocket upgrade (GET) of ``pods/exec``, ``pods/attach`` or ``pods/portforward``
     also needs ``create`` — the ``AuthorizePodWebsocketUpgradeCreatePermission`` check
     (beta and on by default from Kubernetes 1.35,
     https://kubernetes.io/docs/reference/command-line-tools-reference/feature-gates/).
     Clusters before 1.35 only check ``get`` for it; localmesh checks both, so RBAC proven
     here works on every version.

3. **RBAC evaluation** (k8s.io/kubernetes ``plugin/pkg/auth/authorizer/rbac/rbac.go`` and
   ``pkg/registry/rbac/validation/rule.go``): the rules of every ClusterRole bound by a
   ClusterRoleBinding, and — for a namespaced request — of every Role or ClusterRole bound
   by a RoleBinding in that namespace, whose subjects include the user (by name, a group,
   or a ServiceAccount). A rule allows a request when its verbs, apiGroups, resources
   (``*``, exact, or ``*/subresource``) and resourceNames (empty = all) match, or for a
   non-resource request its nonResourceURLs (exact or ``prefix*``). Members of
   ``system:masters`` are allowed everything. Denials answer 403 with the upstream
   message (``handlers/responsewriters/errors.go`` ``forbiddenMessage``):
   ``pods "x" is forbidden: User "…" cannot get resource "pods/exec" in API group "" in
   the namespace "ns"``, with ``: RBAC: …`` when a binding names a role that is missing.

4. **Escalation prevention** on writes of RBAC objects (an admission step,
   ``pkg/registry/rbac/{rolebinding,clusterrolebinding,role,clusterrole}/policybased``
   and ``pkg/registry/rbac/escalation_check.go``; documented at
   https://kubernetes.io/docs/reference/access-authn-authz/rbac/#privilege-escalation-prevention-and-bootstrapping):
   creating or updating a RoleBinding/ClusterRoleBinding is allowed to ``system:masters``,
   to a user with the ``bind`` verb on the referenced role (``roles`` or ``clusterroles``,
   by name, in the binding's namespace), or to a user who already holds every permission
   the role grants (``ConfirmNoEscalation`` with ``Covers``); a Role/ClusterRole likewise
   needs ``escalate`` on it or every permission it lists. Otherwise 403: ``user "…"
   (groups=[…]) is attempting to grant RBAC permissions not currently held: …``.

Defaults present on a fresh cluster are bootstrapped as stored objects, as kube-apiserver
does (``plugin/pkg/auth/authorizer/rbac/bootstrappolicy``): ``cluster-admin`` bound to
``system:masters``, ``system:discovery`` and ``system:basic-user`` bound to
``system:authenticated``, ``system:public-info-viewer`` to everyone. Aggregated
ClusterRoles (``aggregationRule``) are stored but not aggregated.

``SelfSubjectAccessReview``, ``SelfSubjectRulesReview``, ``SubjectAccessReview`` and
``LocalSubjectAccessReview`` (``authorization.k8s.io/v1``) answer from the same
evaluation, so ``kubectl auth can-i [--list]`` works.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from localmesh.api import authn, protobuf, status
from localmesh.api.authn import UserInfo
from localmesh.api.status import ApiError

if TYPE_CHECKING:
    from localmesh.api.objects import ObjectAPI
    from localmesh.resources import ResourceType

GROUP = "rbac.authorization.k8s.io"
ROLES = (GROUP, "roles")
CLUSTER_ROLES = (GROUP, "clusterroles")
ROLE_BINDINGS = (GROUP, "rolebindings")
CLUSTER_ROLE_BINDINGS = (GROUP, "clusterrolebindings")
RBAC_KEYS = (ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS)

_TRUE = ("1", "t", "T", "true", "TRUE", "True")  # strconv.ParseBool
_SPECIAL_VERBS = ("proxy", "watch")
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_STREAMING = ("exec", "attach", "portforward")


# --------------------------------------------------------------------------- attributes


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


# --------------------------------------------------------------------------- rules


def verb_matches(rule: dict, verb: str) -> bool:
    verbs = rule.get("verbs") or []
    return "*" in verbs or verb in verbs


def rule_allows(attrs: Attributes, rule: dict) -> bool:
    """``rbac.RuleAllows``."""
    if not verb_matches(rule, attrs.verb):
        return False
    if attrs.resource_request:
        groups = rule.get("apiGroups") or []
        if "*" not in groups and attrs.api_group not in groups:
            return False
        combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource \
            else attrs.resource
        resources = rule.get("resources") or []
        if not ("*" in resources or combined in resources
                or (attrs.subresource and f"*/{attrs.subresource}" in resources)):
            return False
        names = rule.get("resourceNames") or []
        return not names or attrs.name in names
    for url in rule.get("nonResourceURLs") or []:
        if url == "*" or url == attrs.path or (url.endswith("*")
                                              and attrs.path.startswith(url[:-1])):
            return True
    return False


def breakdown(rule: dict) -> list[dict]:
    """``BreakdownRule``: one verb, group, resource and name per rule."""
    out = []
    names = rule.get("resourceNames") or []
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            for verb in rule.get("verbs") or []:
                if names:
                    out += [{"apiGroups": [group], "resources": [resource], "verbs": [verb],
                             "resourceNames": [n]} for n in names]
                else:
                    out.append({"apiGroups": [group], "resources": [resource], "verbs": [verb]})
    for url in rule.get("nonResourceURLs") or []:
        for verb in rule.get("verbs") or []:
            out.append({"nonResourceURLs": [url], "verbs": [verb]})
    return out


def _resource_covers(owner: list[str], wanted: list[str]) -> bool:
    if "*" in owner or all(w in owner for w in wanted):
        return True
    for w in wanted:
        if w in owner:
            continue
        if "/" not in w or f"*/{w.split('/', 1)[1]}" not in owner:
            return False
    return True


def _url_covers(owner: list[str], wanted: list[str]) -> bool:
    for w in wanted:
        if not any(o == w or (o.endswith("*") and w.startswith(o[:-1])) for o in owner):
            return False
    return True


def rule_covers(owner: dict, sub: dict) -> bool:
    """``ruleCovers`` of pkg/registry/rbac/validation/policy_comparator.go."""
    verbs, groups = owner.get("verbs") or [], owner.get("apiGroups") or []
    if not ("*" in verbs or all(v in verbs for v in sub.get("verbs") or [])):
        return False
    if not ("*" in groups or all(g in groups for g in sub.get("apiGroups") or [])):
        return False
    if not _resource_covers(owner.get("resources") or [], sub.get("resources") or []):
        return False
    if not _url_covers(owner.get("nonResourceURLs") or [], sub.get("nonResourceURLs") or []):
        return False
    owner_names, sub_names = owner.get("resourceNames") or [], sub.get("resourceNames") or []
    if not sub_names:
        return not owner_names
    return not owner_names or all(n in owner_names for n in sub_names)


def covers(owner_rules: list[dict], servant_rules: list[dict]) -> tuple[bool, list[dict]]:
    """``Covers``: every broken-down servant rule is covered by some owner rule."""
    missing = [sub for rule in servant_rules for sub in breakdown(rule)
               if not any(rule_covers(o, sub) for o in owner_rules)]
    return not missing, missing


def _go_q(values: list[str]) -> str:
    """Go's ``%q`` of a []string: ``["a" "b"]``."""
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


def compact_string(rule: dict) -> str:
    """``rbacv1helpers.CompactString``."""
    parts = []
    for key, label in (("apiGroups", "APIGroups"), ("resources", "Resources"),
                       ("nonResourceURLs", "NonResourceURLs"),
                       ("resourceNames", "ResourceNames"), ("verbs", "Verbs")):
        if rule.get(key):
            parts.append(f"{label}:{_go_q(rule[key])}")
    return "{" + ", ".join(parts) + "}"


def compact_rules(rules: list[dict]) -> list[dict]:
    """``CompactRules``: merge simple rules that differ only by verb."""
    out: list[dict] = []
    simple: dict[tuple[str, str], dict] = {}
    for r in rules:
        if len(r.get("apiGroups") or []) == 1 and len(r.get("resources") or []) == 1 \
                and not r.get("resourceNames") and not r.get("nonResourceURLs"):
            key = (r["apiGroups"][0], r["resources"][0])
            if key in simple:
                for v in r.get("verbs") or []:
                    if v not in simple[key]["verbs"]:
                        simple[key]["verbs"].append(v)
                continue
            simple[key] = {"apiGroups": [key[0]], "resources": [key[1]],
                           "verbs": list(r.get("verbs") or [])}
            out.append(simple[key])
        else:
            out.append(r)
    return out


# --------------------------------------------------------------------------- errors


class Forbidden(ApiError):
    """403 with ``details`` always present, as ``apierrors.NewForbidden`` renders it."""

    def status(self) -> dict:
        body = super().status()
        body.setdefault("details", {})
        return body


def _sanitize(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def new_forbidden(resource: str, group: str, name: str, err: str) -> Forbidden:
    """``apierrors.NewForbidden(groupResource, name, err)``."""
    if not resource and not group:
        message = f"forbidden: {err}"
    elif not name:
        message = f"{_qualified(resource, group)} is forbidden: {err}"
    else:
        message = f'{_qualified(resource, group)} "{name}" is forbidden: {err}'
    return Forbidden(403, "Forbidden", message, kind=resource or None, name=name or None,
                     group=group)


def forbidden_message(attrs: Attributes) -> str:
    """``forbiddenMessage`` of handlers/responsewriters/errors.go."""
    user = attrs.user.name
    if not attrs.resource_request:
        return f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return (f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group '
            f'"{attrs.api_group}" {where}')


def forbidden(attrs: Attributes, reason: str = "") -> Forbidden:
    """The 403 of the authorization filter (``responsewriters.Forbidden``)."""
    msg = _sanitize(forbidden_message(attrs))
    if reason:
        msg = f"{msg}: {reason}"
    if not attrs.resource_request:
        return new_forbidden("", "", "", msg)
    return new_forbidden(attrs.resource, attrs.api_group, attrs.name, msg)


# --------------------------------------------------------------------------- authorizer


@dataclass
class Decision:
    allowed: bool
    reason: str = ""


def _subject_applies(subject: dict, user: UserInfo, binding_namespace: str) -> bool:
    """``appliesToUser`` of pkg/registry/rbac/validation/rule.go."""
    kind = subject.get("kind")
    if kind == "User":
        return user.name == subject.get("name")
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        if not ns:
            return False
        return user.name == authn.service_account_username(ns, subject.get("name", ""))
    return False


def _describe_subject(subject: dict, binding_namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return f'{subject["kind"]} "{subject.get("name", "")}/{ns}"'
    return f'{subject.get("kind")} "{subject.get("name", "")}"'


@dataclass
class Authorizer:
    """RBAC over the objects in the store, plus the handlers' extra checks."""

    api: ObjectAPI

    # -- store access (no copies: the authorizer only reads) -----------------------------
    def _peek(self, key: tuple[str, str], namespace: str, name: str) -> dict | None:
        return self.api.store.objects.get(key, {}).get((namespace, name))

    def role_rules(self, ref: dict, namespace: str) -> tuple[list[dict], str | None]:
        """``GetRoleReferenceRules``: the rules of a roleRef, or the error resolving it."""
        kind, name = ref.get("kind"), ref.get("name", "")
        if kind == "ClusterRole":
            role = self._peek(CLUSTER_ROLES, "", name)
            if role is None:
                return [], f'clusterrole.{GROUP} "{name}" not found'
        elif kind == "Role":
            role = self._peek(ROLES, namespace, name)
            if role is None:
                return [], f'role.{GROUP} "{name}" not found'
        else:
            return [], f'unsupported role reference kind: "{kind}"'
        return list(role.get("rules") or []), None

    def visit(self, user: UserInfo, namespace: str) -> Iterator[tuple[str, dict | None,
                                                                       str | None]]:
        """``VisitRulesFor``: (source description, rule, resolution error) for every rule
        bound to the user, cluster-wide first, then in ``namespace``."""
        for crb in self.api.store.scan(CLUSTER_ROLE_BINDINGS):
            ref = crb.get("roleRef") or {}
            for subject in crb.get("subjects") or []:
                if not _subject_applies(subject, user, ""):
                    continue
                rules, err = self.role_rules(ref, "")
                if err:
                    yield "", None, err
                    break
                source = (f'ClusterRoleBinding "{crb["metadata"]["name"]}" of '
                          f'{ref.get("kind")} "{ref.get("name")}" to '
                          f"{_describe_subject(subject, '')}")
                for rule in rules:
                    yield source, rule, None
                break
        if not namespace:
            return
        for rb in self.api.store.scan(ROLE_BINDINGS, namespace):
            ref = rb.get("roleRef") or {}
            for subject in rb.get("subjects") or []:
                if not _subject_applies(subject, user, namespace):
                    continue
                rules, err = self.role_rules(ref, namespace)
                if err:
                    yield "", None, err
                    break
                source = (f'RoleBinding "{rb["metadata"]["name"]}/{namespace}" of '
                          f'{ref.get("kind")} "{ref.get("name")}" to '
                          f"{_describe_subject(subject, namespace)}")
                for rule in rules:
                    yield source, rule, None
                break

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict], list[str]]:
        rules, errors = [], []
        for _, rule, err in self.visit(user, namespace):
            if err:
                errors.append(err)
            elif rule is not None:
                rules.append(rule)
        return rules, errors

    def authorize(self, attrs: Attributes) -> Decision:
        """The union of the privileged-group authorizer and RBAC."""
        if attrs.user.privileged:
            return Decision(True)
        errors: list[str] = []
        for source, rule, err in self.visit(attrs.user, attrs.namespace):
            if err:
                errors.append(err)
                continue
            if rule is not None and rule_allows(attrs, rule):
                return Decision(True, f"RBAC: allowed by {source}")
        reason = ""
        if errors:
            reason = "RBAC: " + (errors[0] if len(errors) == 1 else
                                 "[" + ", ".join(errors) + "]")
        return Decision(False, reason)

    # -- the request filter --------------------------------------------------------------
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
            decision = self.authorize(attrs)
            if not decision.allowed:
                raise forbidden(attrs, decision.reason)
        return authn.impersonated(name, groups, uid, extra)

    def authorize_request(self, request: web.Request, user: UserInfo) -> Attributes:
        """The authorization filter and the handlers' extra checks; raises 403."""
        attrs = request_info(user, request.method, request.path, request.query)
        if user.privileged:
            return attrs
        decision = self.authorize(attrs)
        if not decision.allowed:
            raise forbidden(attrs, decision.reason)
        if not attrs.resource_request:
            return attrs
        if attrs.verb == "get" and attrs.resource == "pods" and attrs.subresource in \
                _STREAMING and request.headers.get("Upgrade", "").lower() == "websocket":
            # AuthorizePodWebsocketUpgradeCreatePermission (Kubernetes 1.35+).
            create = attrs.with_verb("create")
            decision = self.authorize(create)
            if not decision.allowed:
                raise forbidden(create, decision.reason)
        elif self._creates(request, attrs):
            create = attrs.with_verb("create")
            decision = self.authorize(create)
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
        rt = self.api.registry.find(attrs.api_group, attrs.api_version, attrs.resource)
        if rt is None or (attrs.verb == "update" and not rt.custom):
            return False
        ns = attrs.namespace if rt.namespaced else ""
        return self._peek(rt.key, ns, attrs.name) is None

    # -- escalation prevention (admission) -----------------------------------------------
    def _escalation_allowed(self, user: UserInfo, rt: ResourceType, name: str,
                            namespace: str, ref: dict | None) -> bool:
        """``EscalationAllowed`` or, for a role, ``RoleEscalationAuthorized``; for a
        binding (``ref`` given), ``BindingAuthorized``."""
        if user.privileged:  # EscalationAllowed
            return True
        if ref is None:  # RoleEscalationAuthorized: "escalate" on the role itself
            attrs = Attributes(user, "escalate", True, "", GROUP, "*", namespace, rt.plural,
                               "", name)
            return self.authorize(attrs).allowed
        kind = ref.get("kind")
        if kind not in ("Role", "ClusterRole"):
            return False
        attrs = Attributes(user, "bind", True, "", ref.get("apiGroup") or GROUP, "*",
                           namespace, "clusterroles" if kind == "ClusterRole" else "roles",
                           "", ref.get("name", ""))
        return self.authorize(attrs).allowed  # BindingAuthorized

    def confirm_no_escalation(self, api: ObjectAPI, rt: ResourceType, obj: dict,
                              old: dict | None) -> list[tuple[str, str, str]]:
        """Admission: RBAC objects may only grant what the requester holds (or may bind /
        escalate). In-process writers (controllers) are trusted."""
        user = authn.current_user.get()
        if user is None or user.privileged:
            return []
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        namespace = meta.get("namespace", "") if rt.namespaced else ""
        if old is not None and _only_gc_fields_changed(obj, old):
            return []
        if rt.key in (ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS):
            ref = obj.get("roleRef") or {}
            if self._escalation_allowed(user, rt, name, namespace, ref):
                return []
            rules, err = self.role_rules(ref, namespace)
            if err:
                raise new_forbidden(rt.plural, GROUP, name, err)
        else:
            if self._escalation_allowed(user, rt, name, namespace, None):
                return []
            rules = list(obj.get("rules") or [])
        owner, errors = self.rules_for(user, namespace)
        ok, missing = covers(owner, rules)
        if ok:
            return []
        lines = sorted({compact_string(r) for r in compact_rules(missing)})
        msg = (f'user "{user.name}" (groups={_go_q(list(user.groups))}) is attempting to '
               "grant RBAC permissions not currently held:\n" + "\n".join(lines))
        if errors:
            msg += f"; resolution errors: [{', '.join(errors)}]"
        raise new_forbidden(rt.plural, GROUP, name, msg)


def _only_gc_fields_changed(obj: dict, old: dict) -> bool:
    """``IsOnlyMutatingGCFields``: only ownerReferences/finalizers differ."""
    def strip(o: dict) -> dict:
        out = {k: v for k, v in o.items() if k != "metadata"}
        meta = {k: v for k, v in (o.get("metadata") or {}).items()
                if k not in ("ownerReferences", "finalizers", "resourceVersion",
                             "managedFields", "generation")}
        return {**out, "metadata": meta}
    return strip(obj) == strip(old)


# --------------------------------------------------------------------------- admission


def default_rbac(api: ObjectAPI, rt: ResourceType, obj: dict, old: dict | None) -> None:
    """``SetDefaults_Subject`` and the roleRef apiGroup default of rbac/v1."""
    if rt.key in (ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS):
        ref = obj.get("roleRef")
        if isinstance(ref, dict) and not ref.get("apiGroup"):
            ref["apiGroup"] = GROUP
        for subject in obj.get("subjects") or []:
            if isinstance(subject, dict) and not subject.get("apiGroup") and \
                    subject.get("kind") in ("User", "Group"):
                subject["apiGroup"] = GROUP


def _not_supported(path: str, value: object, supported: list[str]) -> tuple[str, str, str]:
    return (path, "FieldValueNotSupported",
            f'Unsupported value: "{value}": supported values: '
            + ", ".join(f'"{s}"' for s in supported))


def validate_rbac(api: ObjectAPI, rt: ResourceType, obj: dict,
                  old: dict | None) -> list[tuple[str, str, str]]:
    """pkg/apis/rbac/validation/validation.go: rules, roleRef and subjects."""
    causes: list[tuple[str, str, str]] = []
    if rt.key in (ROLES, CLUSTER_ROLES):
        rules = obj.get("rules") or []
        if not isinstance(rules, list):
            return [("rules", "FieldValueInvalid", "Invalid value: must be a list")]
        for i, rule in enumerate(rules):
            path = f"rules[{i}]"
            if not isinstance(rule, dict):
                causes.append((path, "FieldValueInvalid", "Invalid value: must be an object"))
                continue
            if not rule.get("verbs"):
                causes.append((f"{path}.verbs", "FieldValueRequired",
                               "Required value: verbs must contain at least one value"))
            if rule.get("nonResourceURLs"):
                if rt.key == ROLES:
                    causes.append((f"{path}.nonResourceURLs", "FieldValueInvalid",
                                   f"Invalid value: {rule['nonResourceURLs']}: namespaced rules "
                                   "cannot apply to non-resource URLs"))
                if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                    causes.append((f"{path}.nonResourceURLs", "FieldValueInvalid",
                                   f"Invalid value: {rule['nonResourceURLs']}: rules cannot "
                                   "apply to both regular resources and non-resource URLs"))
                continue
            if not rule.get("apiGroups"):
                causes.append((f"{path}.apiGroups", "FieldValueRequired",
                               "Required value: resource rules must supply at least one api "
                               "group"))
            if not rule.get("resources"):
                causes.append((f"{path}.resources", "FieldValueRequired",
                               "Required value: resource rules must supply at least one "
                               "resource"))
        return causes
    if rt.key not in (ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS):
        return causes
    namespaced = rt.key == ROLE_BINDINGS
    ref = obj.get("roleRef")
    if not isinstance(ref, dict):
        ref = {}
    if ref.get("apiGroup") != GROUP:
        causes.append(_not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), [GROUP]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if ref.get("kind") not in kinds:
        causes.append(_not_supported("roleRef.kind", ref.get("kind", ""), kinds))
    if not ref.get("name"):
        causes.append(("roleRef.name", "FieldValueRequired", "Required value"))
    for i, subject in enumerate(obj.get("subjects") or []):
        path = f"subjects[{i}]"
        if not isinstance(subject, dict):
            causes.append((path, "FieldValueInvalid", "Invalid value: must be an object"))
            continue
        if not subject.get("name"):
            causes.append((f"{path}.name", "FieldValueRequired", "Required value"))
        kind = subject.get("kind")
        if kind == "ServiceAccount":
            if subject.get("apiGroup"):
                causes.append(_not_supported(f"{path}.apiGroup", subject["apiGroup"], [""]))
            if not namespaced and not subject.get("namespace"):
                causes.append((f"{path}.namespace", "FieldValueRequired", "Required value"))
        elif kind in ("User", "Group"):
            if subject.get("apiGroup") != GROUP:
                causes.append(_not_supported(f"{path}.apiGroup", subject.get("apiGroup", ""),
                                             [GROUP]))
        else:
            causes.append(_not_supported(f"{path}.kind", kind or "",
                                         ["ServiceAccount", "User", "Group"]))
    if old is not None and (old.get("roleRef") or {}) != (obj.get("roleRef") or {}):
        causes.append(("roleRef", "FieldValueInvalid",
                       f"Invalid value: {json.dumps(obj.get('roleRef'))}: cannot change "
                       "roleRef"))
    return causes


def rbac_name_causes(name: str) -> list[tuple[str, str, str]]:
    """``ValidateRBACName`` (``path.IsValidPathSegmentName``): RBAC objects may be named
    ``system:discovery``; only ``.``, ``..``, ``/`` and ``%`` are refused."""
    msgs = []
    if name in (".", ".."):
        msgs.append(f"may not be '{name}'")
    for bad in ("/", "%"):
        if bad in name:
            msgs.append(f"may not contain '{bad}'")
    return [("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {m}')
            for m in msgs]


def _rbac_names(validate: Callable) -> Callable:
    """Wrap a generic validator so RBAC kinds get RBAC's name rule instead of DNS-1123."""
    def wrapped(api: ObjectAPI, rt: ResourceType, obj: dict,
                old: dict | None) -> list[tuple[str, str, str]]:
        causes = validate(api, rt, obj, old)
        if rt.key not in RBAC_KEYS:
            return causes
        name = (obj.get("metadata") or {}).get("name", "")
        return [c for c in causes if c[0] != "metadata.name"] + rbac_name_causes(name)
    wrapped.__wrapped__ = validate  # type: ignore[attr-defined]
    return wrapped


# --------------------------------------------------------------------------- bootstrap

_BOOTSTRAP_META = {"labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                   "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}
DISCOVERY_URLS = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                  "/openapi/*", "/readyz", "/version", "/version/"]
PUBLIC_INFO_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]

BOOTSTRAP_ROLES: dict[str, list[dict]] = {
    "cluster-admin": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                      {"nonResourceURLs": ["*"], "verbs": ["*"]}],
    "system:discovery": [{"nonResourceURLs": DISCOVERY_URLS, "verbs": ["get"]}],
    "system:basic-user": [
        {"apiGroups": ["authorization.k8s.io"],
         "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
         "verbs": ["create"]},
        {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"],
         "verbs": ["create"]}],
    "system:public-info-viewer": [{"nonResourceURLs": PUBLIC_INFO_URLS, "verbs": ["get"]}],
}
BOOTSTRAP_BINDINGS: dict[str, list[str]] = {
    "cluster-admin": [authn.MASTERS],
    "system:discovery": [authn.AUTHENTICATED],
    "system:basic-user": [authn.AUTHENTICATED],
    "system:public-info-viewer": [authn.AUTHENTICATED, authn.UNAUTHENTICATED],
}


def bootstrap_policy(api: ObjectAPI) -> None:
    """The default ClusterRoles and ClusterRoleBindings of a new cluster."""
    role_rt = api.rt(f"{GROUP}/v1", "ClusterRole")
    binding_rt = api.rt(f"{GROUP}/v1", "ClusterRoleBinding")
    for name, rules in BOOTSTRAP_ROLES.items():
        if api.store.get(CLUSTER_ROLES, "", name) is None:
            api.create(role_rt, "", {"metadata": {"name": name, **_BOOTSTRAP_META},
                                     "rules": rules})
    for name, groups in BOOTSTRAP_BINDINGS.items():
        if api.store.get(CLUSTER_ROLE_BINDINGS, "", name) is None:
            api.create(binding_rt, "", {
                "metadata": {"name": name, **_BOOTSTRAP_META},
                "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name},
                "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": g} for g in groups]})


# --------------------------------------------------------------------------- reviews

# protobuf field numbers of k8s.io/api authorization/v1 generated.proto (kubectl >= 1.32
# posts these as protobuf for `kubectl auth can-i`).
PROTOBUF_SCHEMA: dict[str, dict[int, protobuf.Field]] = {
    "SelfSubjectAccessReview": {1: ("metadata", "ObjectMeta", ""),
                                2: ("spec", "SelfSubjectAccessReviewSpec", ""),
                                3: ("status", "SubjectAccessReviewStatus", "")},
    "SelfSubjectAccessReviewSpec": {1: ("resourceAttributes", "ResourceAttributes", ""),
                                    2: ("nonResourceAttributes", "NonResourceAttributes", "")},
    "SubjectAccessReview": {1: ("metadata", "ObjectMeta", ""),
                            2: ("spec", "SubjectAccessReviewSpec", ""),
                            3: ("status", "SubjectAccessReviewStatus", "")},
    "SubjectAccessReviewSpec": {1: ("resourceAttributes", "ResourceAttributes", ""),
                                2: ("nonResourceAttributes", "NonResourceAttributes", ""),
                                3: ("user", "string", ""), 4: ("groups", "string", "r"),
                                6: ("uid", "string", "")},
    "ResourceAttributes": {1: ("namespace", "string", ""), 2: ("verb", "string", ""),
                           3: ("group", "string", ""), 4: ("version", "string", ""),
                           5: ("resource", "string", ""), 6: ("subresource", "string", ""),
                           7: ("name", "string", "")},
    "NonResourceAttributes": {1: ("path", "string", ""), 2: ("verb", "string", "")},
    "SubjectAccessReviewStatus": {1: ("allowed", "bool", ""), 2: ("reason", "string", ""),
                                  3: ("evaluationError", "string", ""),
                                  4: ("denied", "bool", "")},
    "SelfSubjectRulesReview": {1: ("metadata", "ObjectMeta", ""),
                               2: ("spec", "SelfSubjectRulesReviewSpec", ""),
                               3: ("status", "SubjectRulesReviewStatus", "")},
    "SelfSubjectRulesReviewSpec": {1: ("namespace", "string", "")},
    "SubjectRulesReviewStatus": {},
}
PROTOBUF_KINDS = {
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SubjectAccessReview"): "SubjectAccessReview",
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): "SubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "SelfSubjectRulesReview",
}

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

    def __init__(self, authz: Authorizer, decode: Callable) -> None:
        self.authz = authz
        self.decode = decode

    async def _body(self, request: web.Request, kind: str) -> dict:
        body = await self.decode(request)
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


# --------------------------------------------------------------------------- wiring


def install(api: ObjectAPI, server: Any, authenticator: authn.Authenticator,
            authz: Authorizer) -> None:
    """Wire authentication and RBAC into one API server: admission (defaults, validation,
    escalation prevention), the review and TokenRequest endpoints, the protobuf kinds, and
    the bootstrap policy."""
    # The generic name rule (DNS-1123, localmesh/admission.py) does not apply to RBAC
    # objects, whose names are path segments ("system:discovery").
    api.admission.validators["*"] = [
        fn if getattr(fn, "__wrapped__", None) else _rbac_names(fn)
        for fn in api.admission.validators.get("*", [])]
    for key in RBAC_KEYS:
        api.admission.add_mutator(key, default_rbac)
        api.admission.add_validator(key, validate_rbac)
        api.admission.add_validator(key, authz.confirm_no_escalation)
    authn.register_protobuf()
    protobuf.SCHEMA.update(PROTOBUF_SCHEMA)
    protobuf.KINDS.update(PROTOBUF_KINDS)
    decode = server._body
    reviews = Reviews(authz, decode)
    routes = [
        ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
         authenticator.self_subject_review),
        ("POST", f"/apis/{AUTHZ}/v1/selfsubjectaccessreviews",
         reviews.self_subject_access_review),
        ("POST", f"/apis/{AUTHZ}/v1/selfsubjectrulesreviews", reviews.self_subject_rules_review),
        ("POST", f"/apis/{AUTHZ}/v1/subjectaccessreviews", reviews.subject_access_review),
        ("POST", f"/apis/{AUTHZ}/v1/namespaces/{{namespace}}/localsubjectaccessreviews",
         reviews.subject_access_review),
    ]
    server.extra_routes.extend(routes)

    async def token(request: web.Request, rt: object, namespace: str,
                    name: str) -> web.StreamResponse:
        return await authenticator.token_request(request, rt, namespace, name, decode)

    server.subresources[(("", "serviceaccounts"), "token")] = token
    server.authn = authenticator
    server.authz = authz
    bootstrap_policy(api)

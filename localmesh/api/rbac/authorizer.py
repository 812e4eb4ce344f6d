"""The RBAC authorizer: which rules are bound to a user, and whether they allow a request.

k8s.io/kubernetes ``plugin/pkg/auth/authorizer/rbac/rbac.go`` (``Authorize``,
``RulesFor``) over ``pkg/registry/rbac/validation/rule.go`` (``VisitRulesFor``,
``GetRoleReferenceRules``, ``appliesTo``), in union with the privileged-group authorizer
that lets ``system:masters`` do everything (``authorizerfactory.NewPrivilegedGroups``).
It reads Roles and bindings straight from the store, as upstream reads its informers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from localmesh.api import authn
from localmesh.api.authn import UserInfo
from localmesh.api.rbac import CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES, GROUP, ROLE_BINDINGS, ROLES
from localmesh.api.rbac.request_info import Attributes
from localmesh.api.rbac.rules import rule_allows
from localmesh.api.status import Forbidden, new_forbidden
from localmesh.store import Store


def _sanitize(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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


@dataclass
class Decision:
    """An authorizer's answer and its reason (the binding that allowed, or why none did)."""

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
    """RBAC over the Roles and bindings in the store."""

    store: Store

    # -- store access (no copies: the authorizer only reads) -----------------------------
    def peek(self, key: tuple[str, str], namespace: str, name: str) -> dict | None:
        """The stored object itself (not a copy): for reading only."""
        return self.store.objects.get(key, {}).get((namespace, name))

    def role_rules(self, ref: dict, namespace: str) -> tuple[list[dict], str | None]:
        """``GetRoleReferenceRules``: the rules of a roleRef, or the error resolving it."""
        kind, name = ref.get("kind"), ref.get("name", "")
        if kind == "ClusterRole":
            role = self.peek(CLUSTER_ROLES, "", name)
            if role is None:
                return [], f'clusterrole.{GROUP} "{name}" not found'
        elif kind == "Role":
            role = self.peek(ROLES, namespace, name)
            if role is None:
                return [], f'role.{GROUP} "{name}" not found'
        else:
            return [], f'unsupported role reference kind: "{kind}"'
        return list(role.get("rules") or []), None

    def visit(self, user: UserInfo, namespace: str) -> Iterator[tuple[str, dict | None,
                                                                       str | None]]:
        """``VisitRulesFor``: (source description, rule, resolution error) for every rule
        bound to the user, cluster-wide first, then in ``namespace``."""
        for crb in self.store.scan(CLUSTER_ROLE_BINDINGS):
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
        for rb in self.store.scan(ROLE_BINDINGS, namespace):
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

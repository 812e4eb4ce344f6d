"""Escalation prevention: an RBAC object may only grant what its writer already holds.

k8s.io/kubernetes ``pkg/registry/rbac/escalation_check.go`` (``EscalationAllowed``,
``RoleEscalationAuthorized``, ``BindingAuthorized``) and the ``policybased`` storages of
Roles, ClusterRoles, RoleBindings and ClusterRoleBindings (``ConfirmNoEscalation``), run
here as a validating admission step (localmesh/api/rbac/__init__.py, step 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from localmesh.api import authn
from localmesh.api.authn import UserInfo
from localmesh.api.rbac import CLUSTER_ROLE_BINDINGS, GROUP, ROLE_BINDINGS
from localmesh.api.rbac.authorizer import Authorizer
from localmesh.api.rbac.request_info import Attributes
from localmesh.api.rbac.rules import compact_rules, compact_string, covers, go_q
from localmesh.api.status import new_forbidden
from localmesh.resources import ResourceType

if TYPE_CHECKING:
    from localmesh.api.objects import ObjectAPI


@dataclass
class EscalationCheck:
    """The validating admission step for RBAC objects. In-process writers (controllers,
    the bootstrap policy) have no request user and are trusted, like kube-apiserver's
    loopback client."""

    authorizer: Authorizer

    def _escalation_allowed(self, user: UserInfo, rt: ResourceType, name: str,
                            namespace: str, ref: dict | None) -> bool:
        """``EscalationAllowed`` or, for a role, ``RoleEscalationAuthorized``; for a
        binding (``ref`` given), ``BindingAuthorized``."""
        if user.privileged:  # EscalationAllowed
            return True
        if ref is None:  # RoleEscalationAuthorized: "escalate" on the role itself
            attrs = Attributes(user, "escalate", True, "", GROUP, "*", namespace, rt.plural,
                               "", name)
            return self.authorizer.authorize(attrs).allowed
        kind = ref.get("kind")
        if kind not in ("Role", "ClusterRole"):
            return False
        attrs = Attributes(user, "bind", True, "", ref.get("apiGroup") or GROUP, "*",
                           namespace, "clusterroles" if kind == "ClusterRole" else "roles",
                           "", ref.get("name", ""))
        return self.authorizer.authorize(attrs).allowed  # BindingAuthorized

    def __call__(self, api: ObjectAPI, rt: ResourceType, obj: dict,
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
            rules, err = self.authorizer.role_rules(ref, namespace)
            if err:
                raise new_forbidden(rt.plural, GROUP, name, err)
        else:
            if self._escalation_allowed(user, rt, name, namespace, None):
                return []
            rules = list(obj.get("rules") or [])
        owner, errors = self.authorizer.rules_for(user, namespace)
        ok, missing = covers(owner, rules)
        if ok:
            return []
        lines = sorted({compact_string(r) for r in compact_rules(missing)})
        msg = (f'user "{user.name}" (groups={go_q(list(user.groups))}) is attempting to '
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

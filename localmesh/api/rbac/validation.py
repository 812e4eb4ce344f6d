"""The RBAC kinds' defaults and validation (admission steps for the four RBAC kinds).

k8s.io/kubernetes ``pkg/apis/rbac/v1/defaults.go`` and
``pkg/apis/rbac/validation/validation.go``: rules need verbs and either resources with API
groups or non-resource URLs (never both, and none in a namespaced Role); a binding's
roleRef is immutable and names a (Cluster)Role of ``rbac.authorization.k8s.io``; subjects
are Users, Groups or ServiceAccounts. The names of RBAC objects follow a different rule
from other kinds; localmesh/admission.py applies it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from localmesh.api.rbac import CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES, GROUP, ROLE_BINDINGS, ROLES
from localmesh.resources import ResourceType

if TYPE_CHECKING:
    from localmesh.api.objects import ObjectAPI


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

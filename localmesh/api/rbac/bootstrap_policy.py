"""The bootstrap policy: the ClusterRoles and ClusterRoleBindings of a new cluster.

k8s.io/kubernetes ``plugin/pkg/auth/authorizer/rbac/bootstrappolicy`` (``policy.go``
``ClusterRoles`` and ``ClusterRoleBindings``), the subset a suite meets: ``cluster-admin``
bound to ``system:masters``; ``system:discovery``, ``system:basic-user`` and
``system:public-info-viewer`` bound to ``system:authenticated`` (and the last one to
``system:unauthenticated``). kube-apiserver stores them at start (``EnsureRBACPolicy``)
with the ``rbac-defaults`` label and the autoupdate annotation; so does localmesh.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from localmesh.api import authn
from localmesh.api.rbac import CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES, GROUP

if TYPE_CHECKING:
    from localmesh.api.objects import ObjectAPI

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


def ensure(api: ObjectAPI) -> None:
    """Store the default ClusterRoles and ClusterRoleBindings that are missing."""
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

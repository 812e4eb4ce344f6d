"""Authorization: RBAC, evaluated the way kube-apiserver's RBAC authorizer does it.

Each step is a module after its upstream counterpart:

1. **Request attributes** (``request_info.py``) — k8s.io/apiserver
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

2. **RBAC evaluation** (``rules.py``: k8s.io/kubernetes
   ``pkg/registry/rbac/validation/rule.go`` and ``policy_comparator.go``; ``authorizer.py``:
   ``plugin/pkg/auth/authorizer/rbac/rbac.go``): the rules of every ClusterRole bound by a
   ClusterRoleBinding, and — for a namespaced request — of every Role or ClusterRole bound
   by a RoleBinding in that namespace, whose subjects include the user (by name, a group,
   or a ServiceAccount). A rule allows a request when its verbs, apiGroups, resources
   (``*``, exact, or ``*/subresource``) and resourceNames (empty = all) match, or for a
   non-resource request its nonResourceURLs (exact or ``prefix*``). Members of
   ``system:masters`` are allowed everything. Denials answer 403 with the upstream
   message (``handlers/responsewriters/errors.go`` ``forbiddenMessage``):
   ``pods "x" is forbidden: User "…" cannot get resource "pods/exec" in API group "" in
   the namespace "ns"``, with ``: RBAC: …`` when a binding names a role that is missing.

3. **The request filters** (``filters.py``: k8s.io/apiserver ``pkg/endpoints/filters``
   ``WithImpersonation`` and ``WithAuthorization``) and the **extra checks made by the
   handlers**, beyond the filter's one verb:
   - a server-side apply (PATCH) or a PUT that *creates* the object also needs ``create``
     (``handlers/patch.go`` and ``handlers/update.go``, ``withAuthorization``);
   - a WebSocket upgrade (GET) of ``pods/exec``, ``pods/attach`` or ``pods/portforward``
     also needs ``create`` — the ``AuthorizePodWebsocketUpgradeCreatePermission`` check
     (beta and on by default from Kubernetes 1.35,
     https://kubernetes.io/docs/reference/command-line-tools-reference/feature-gates/).
     Clusters before 1.35 only check ``get`` for it; localmesh checks both, so RBAC proven
     here works on every version.

4. **Escalation prevention** on writes of RBAC objects (``escalation.py``, an admission
   step; ``pkg/registry/rbac/{rolebinding,clusterrolebinding,role,clusterrole}/policybased``
   and ``pkg/registry/rbac/escalation_check.go``; documented at
   https://kubernetes.io/docs/reference/access-authn-authz/rbac/#privilege-escalation-prevention-and-bootstrapping):
   creating or updating a RoleBinding/ClusterRoleBinding is allowed to ``system:masters``,
   to a user with the ``bind`` verb on the referenced role (``roles`` or ``clusterroles``,
   by name, in the binding's namespace), or to a user who already holds every permission
   the role grants (``ConfirmNoEscalation`` with ``Covers``); a Role/ClusterRole likewise
   needs ``escalate`` on it or every permission it lists. Otherwise 403: ``user "…"
   (groups=[…]) is attempting to grant RBAC permissions not currently held: …``.

The RBAC kinds' own defaults and validation are in ``validation.py`` (their names follow
RBAC's path-segment rule, applied by localmesh/admission.py). Defaults present on a fresh
cluster are bootstrapped as stored objects, as kube-apiserver does (``bootstrap_policy.py``;
``plugin/pkg/auth/authorizer/rbac/bootstrappolicy``): ``cluster-admin`` bound to
``system:masters``, ``system:discovery`` and ``system:basic-user`` bound to
``system:authenticated``, ``system:public-info-viewer`` to everyone. Aggregated
ClusterRoles (``aggregationRule``) are stored but not aggregated.

``SelfSubjectAccessReview``, ``SelfSubjectRulesReview``, ``SubjectAccessReview`` and
``LocalSubjectAccessReview`` (``authorization.k8s.io/v1``, ``reviews.py``) answer from the
same evaluation, so ``kubectl auth can-i [--list]`` works.

This package module holds only the RBAC API's names, so that importing one of its
modules never imports the others.
"""

from __future__ import annotations

GROUP = "rbac.authorization.k8s.io"
ROLES = (GROUP, "roles")
CLUSTER_ROLES = (GROUP, "clusterroles")
ROLE_BINDINGS = (GROUP, "rolebindings")
CLUSTER_ROLE_BINDINGS = (GROUP, "clusterrolebindings")
RBAC_KEYS = (ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS)

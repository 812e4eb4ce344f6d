"""Projects: OpenShift's view of namespaces, and the ranges each namespace is given.

- ``project.openshift.io/v1`` ``projects`` are namespaces seen through openshift-apiserver
  (openshift/openshift-apiserver ``pkg/project/apiserver/registry/project``): a Project has
  its namespace's name, uid, resourceVersion, labels and annotations, ``spec.finalizers``
  and ``status.phase``; creating one creates the namespace, deleting one deletes it.
  ``projectrequests`` is create-only (``oc new-project``): a namespace annotated with the
  requester, display name and description, with a RoleBinding ``admin`` for the requester,
  answered with the Project; a GET of the collection answers a ``Success`` Status, as
  openshift-apiserver does for ``oc``'s permission probe.
- Every namespace gets the annotations OpenShift's namespace-security-allocation
  controller writes (cluster-policy-controller ``pkg/security/controller``):
  ``openshift.io/sa.scc.uid-range`` and ``openshift.io/sa.scc.supplemental-groups``
  (``<first>/10000``, consecutive blocks from 1000000000) and ``openshift.io/sa.scc.mcs``
  (``s0:cN,cM``), which SCC admission reads (scc.py). OpenShift writes them a moment after
  the namespace is created; localmesh writes them when it is admitted, so a pod created
  right after its namespace never finds them missing.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web

from localmesh.api import authn, status
from localmesh.api.negotiation import json_response, read_body, render, render_list
from localmesh.api.objects import ObjectAPI
from localmesh.api.selectors import label_matcher
from localmesh.api.server import Route
from localmesh.api.status import ApiError
from localmesh.openshift.scc import MCS, SUPPLEMENTAL_GROUPS, UID_RANGE
from localmesh.resources import ResourceType

GROUP = "project.openshift.io"
NAMESPACES = ("", "namespaces")
ROLE_BINDINGS = ("rbac.authorization.k8s.io", "rolebindings")
FIRST_UID = 1000000000
BLOCK = 10000
REQUESTER = "openshift.io/requester"
DISPLAY_NAME = "openshift.io/display-name"
DESCRIPTION = "openshift.io/description"

PROJECTS = ResourceType(GROUP, "v1", "projects", "Project", False,
                        verbs=("create", "delete", "get", "list"))
PROJECT_REQUESTS = ResourceType(GROUP, "v1", "projectrequests", "ProjectRequest", False,
                                verbs=("create", "list"))
TYPES = (PROJECTS, PROJECT_REQUESTS)


def _mcs_pairs() -> Iterator[str]:
    """``s0:c1,c0``, ``s0:c2,c0``, ``s0:c2,c1``, … (two categories, the higher first)."""
    high = 1
    while True:
        for low in range(high):
            yield f"s0:c{high},c{low}"
        high += 1


def mcs_label(block: int) -> str:
    for i, label in enumerate(_mcs_pairs()):
        if i == block:
            return label
    raise AssertionError("unreachable")  # pragma: no cover - the generator never ends


def allocate(api: ObjectAPI, rt: ResourceType, ns: dict, old: dict | None) -> None:
    """Mutating admission for Namespaces: the next free UID block and its MCS label."""
    ann = ns.setdefault("metadata", {}).setdefault("annotations", {})
    if old is not None:
        for key in (UID_RANGE, SUPPLEMENTAL_GROUPS, MCS):
            if key in ((old.get("metadata") or {}).get("annotations") or {}) and key not in ann:
                ann[key] = old["metadata"]["annotations"][key]
        return
    if UID_RANGE in ann:
        return
    used = set()
    for other in api.store.scan(NAMESPACES):
        value = ((other.get("metadata") or {}).get("annotations") or {}).get(UID_RANGE, "")
        first = value.partition("/")[0]
        if first.isdigit():
            used.add((int(first) - FIRST_UID) // BLOCK)
    block = next(i for i in range(len(used) + 1) if i not in used)
    first = FIRST_UID + block * BLOCK
    ann[UID_RANGE] = f"{first}/{BLOCK}"
    ann[SUPPLEMENTAL_GROUPS] = f"{first}/{BLOCK}"
    ann[MCS] = mcs_label(block)


def project_of(ns: dict) -> dict:
    """A namespace as openshift-apiserver presents it (``projectutil.ConvertNamespace``)."""
    meta = {k: v for k, v in (ns.get("metadata") or {}).items() if k != "managedFields"}
    return {"kind": "Project", "apiVersion": f"{GROUP}/v1", "metadata": meta,
            "spec": {"finalizers": list((ns.get("spec") or {}).get("finalizers") or [])},
            "status": {"phase": (ns.get("status") or {}).get("phase", "Active")}}


class ProjectAPI:
    """The Project and ProjectRequest handlers, over the namespaces of one object API."""

    def __init__(self, api: ObjectAPI) -> None:
        self.api = api

    def routes(self) -> list[Route]:
        base = f"/apis/{GROUP}/v1"
        return [("GET", f"{base}/projects", self.list),
                ("POST", f"{base}/projects", self.create),
                ("GET", f"{base}/projects/{{name}}", self.get),
                ("DELETE", f"{base}/projects/{{name}}", self.delete),
                ("POST", f"{base}/projectrequests", self.request),
                ("GET", f"{base}/projectrequests", self.probe)]

    def _ns_rt(self) -> ResourceType:
        return self.api.rt("v1", "Namespace")

    async def list(self, request: web.Request) -> web.Response:
        if request.query.get("watch") in ("1", "true", "True"):
            raise status.method_not_allowed()
        labels = label_matcher(request.query.get("labelSelector"))
        items = [project_of(ns) for ns in self.api.store.scan(NAMESPACES)
                 if labels(ns["metadata"].get("labels") or {})]
        listing = {"kind": "ProjectList", "apiVersion": f"{GROUP}/v1",
                   "metadata": {"resourceVersion": str(self.api.store.revision)},
                   "items": items}
        return render_list(request, self.api.store, PROJECTS, listing)

    async def get(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        ns = self.api.store.get(NAMESPACES, "", name)
        if ns is None:
            raise status.not_found("projects", name, GROUP)
        return render(request, self.api.store, PROJECTS, project_of(ns))

    async def create(self, request: web.Request) -> web.Response:
        body = await read_body(request)
        if not isinstance(body, dict):
            raise status.bad_request("the body of the request was not a JSON object")
        meta = dict(body.get("metadata") or {})
        ns = self._create_namespace(meta.get("name", ""), meta.get("labels") or {},
                                    meta.get("annotations") or {})
        return render(request, self.api.store, PROJECTS, project_of(ns), 201)

    async def delete(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            self.api.delete(self._ns_rt(), "", name)
        except ApiError as exc:
            if exc.code == 404:
                raise status.not_found("projects", name, GROUP) from exc
            raise
        return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Success"})

    async def request(self, request: web.Request) -> web.Response:
        body = await read_body(request)
        if not isinstance(body, dict):
            raise status.bad_request("the body of the request was not a JSON object")
        name = (body.get("metadata") or {}).get("name", "")
        user = authn.current_user.get()
        annotations = {DESCRIPTION: str(body.get("description") or ""),
                       DISPLAY_NAME: str(body.get("displayName") or ""),
                       REQUESTER: user.name if user else ""}
        ns = self._create_namespace(name, {}, annotations)
        if user is not None:
            self._bind_admin(name, user)
        return render(request, self.api.store, PROJECTS, project_of(ns), 201)

    async def probe(self, request: web.Request) -> web.Response:
        return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Success"})

    def _create_namespace(self, name: str, labels: dict, annotations: dict) -> dict:
        try:
            return self.api.create(self._ns_rt(), "", {
                "metadata": {"name": name, "labels": dict(labels),
                             "annotations": dict(annotations)}})
        except ApiError as exc:
            if exc.code == 409:
                raise status.already_exists("projects", name, GROUP) from exc
            raise

    def _bind_admin(self, namespace: str, user: authn.UserInfo) -> None:
        """``admin`` in the new project for its requester (openshift-apiserver's project
        request template)."""
        rt = self.api.rt("rbac.authorization.k8s.io/v1", "RoleBinding")
        subject = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user.name}
        sa = authn.split_service_account(user.name)
        if sa is not None:
            subject = {"kind": "ServiceAccount", "namespace": sa[0], "name": sa[1]}
        # Written by openshift-apiserver itself, not as the requester (who does not hold
        # ``admin`` yet, so RBAC's escalation check would refuse them).
        token = authn.current_user.set(None)
        try:
            self.api.create(rt, namespace, {
                "metadata": {"name": "admin"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": "admin"},
                "subjects": [subject]})
        finally:
            authn.current_user.reset(token)


def admin_role() -> dict:
    """A namespace-wide ``admin`` ClusterRole for the requester's RoleBinding, where the
    cluster has none (Kubernetes' aggregated ``admin`` is richer; here it is everything,
    bound in one namespace)."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "admin"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}

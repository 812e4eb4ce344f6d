"""OpenShift Service Mesh 2 (Maistra): the control plane's resources and its member roll.

What a client sees, after maistra/api (``maistra.io/v2`` ServiceMeshControlPlane,
``maistra.io/v1`` ServiceMeshMemberRoll and ServiceMeshMember) and Maistra/istio-operator's
member roll controller (``pkg/controller/servicemesh/memberroll``):

- ServiceMeshControlPlane ``basic`` in ``istio-system``, reconciled and ready;
- ServiceMeshMemberRoll ``default`` beside it: the namespaces named in ``spec.members``,
  and those holding a ServiceMeshMember ``default`` whose ``controlPlaneRef`` is this
  control plane, are the mesh's members. Each existing member namespace is labelled
  ``maistra.io/member-of: istio-system``; a namespace that leaves loses the label. The
  roll's status lists ``members``, ``configuredMembers``, ``pendingMembers`` (named but not
  existing), ``terminatingMembers``, ``memberStatuses``, the annotation
  ``configuredMemberCount`` (``N/M``) and a ``Ready`` condition ("Configured");
- only members are in the mesh: the injector injects only there (and only pods that opt
  in, injection.py), and istiod watches only them — the mesh config's
  ``discoverySelectors`` select the member label and the control plane's namespace, so a
  sidecar gets no routes for a non-member's Services (OSSM 2 scopes istiod to its members
  the same way).

Not emulated: the NetworkPolicies, RoleBindings and NetworkAttachmentDefinition OSSM writes
into members, IOR, and the SMCP's own reconciliation of ``spec`` (it only reports).
"""

from __future__ import annotations

import yaml

from localmesh.api.status import ApiError
from localmesh.controllers.base import Reconciler
from localmesh.istio import meshconfig
from localmesh.openshift.injection import MEMBER_OF
from localmesh.store import now_rfc3339

CONTROL_PLANE = "istio-system"
SMCP_NAME = "basic"
VERSION = "v2.6"
CHART_VERSION = "2.6.12"
ROLLS = ("maistra.io", "servicemeshmemberrolls")
MEMBERS = ("maistra.io", "servicemeshmembers")
CONTROL_PLANES = ("maistra.io", "servicemeshcontrolplanes")
NAMESPACES = ("", "namespaces")
CONFIGMAPS = ("", "configmaps")


def control_plane() -> dict:
    """SMCP ``basic`` as ``oc apply`` of maistra-test-tool's smcp.yaml leaves it."""
    return {"apiVersion": "maistra.io/v2", "kind": "ServiceMeshControlPlane",
            "metadata": {"name": SMCP_NAME, "namespace": CONTROL_PLANE},
            "spec": {"version": VERSION, "tracing": {"type": "None"},
                     "addons": {"prometheus": {"enabled": True}, "kiali": {"enabled": True},
                                "grafana": {"enabled": False}},
                     "gateways": {"openshiftRoute": {"enabled": False}},
                     "security": {"dataPlane": {"mtls": False}}}}


def control_plane_status(smcp: dict) -> dict:
    now = now_rfc3339()
    components = ["istiod", "istio-ingressgateway", "prometheus", "kiali"]
    return {"observedGeneration": smcp["metadata"].get("generation", 1),
            "operatorVersion": CHART_VERSION, "chartVersion": CHART_VERSION,
            "annotations": {"readyComponentCount": f"{len(components)}/{len(components)}"},
            "readiness": {"components": {"ready": components, "pending": [],
                                         "unready": []}},
            "conditions": [{"type": t, "status": "True", "reason": r, "message": m,
                            "lastTransitionTime": now} for t, r, m in (
                ("Installed", "InstallSuccessful", "Successfully installed all mesh "
                                                   "components"),
                ("Reconciled", "InstallSuccessful", "Successfully installed version "
                                                    f"{CHART_VERSION}"),
                ("Ready", "ComponentsReady", "All component deployments are Available"))],
            "appliedSpec": smcp.get("spec") or {}}


def member_roll() -> dict:
    return {"apiVersion": "maistra.io/v1", "kind": "ServiceMeshMemberRoll",
            "metadata": {"name": "default", "namespace": CONTROL_PLANE},
            "spec": {"members": []}}


def discovery_selectors() -> list[dict]:
    """istiod's namespaces: the members, and the control plane's own."""
    return [{"matchLabels": {MEMBER_OF: CONTROL_PLANE}},
            {"matchLabels": {"kubernetes.io/metadata.name": CONTROL_PLANE}}]


class MemberRoll(Reconciler):
    """The member roll controller: labels, status, and istiod's scope."""

    name = "ossm-member-roll"
    keys = (ROLLS, MEMBERS, NAMESPACES, CONTROL_PLANES)

    def install(self) -> None:
        """The control plane's resources and istiod's member scope (after the mesh)."""
        api = self.api
        for body in (control_plane(), member_roll()):
            try:
                api.create(api.rt(body["apiVersion"], body["kind"]), CONTROL_PLANE, body)
            except ApiError as exc:
                if exc.code != 409:
                    raise
        cm = api.store.get(CONFIGMAPS, CONTROL_PLANE, meshconfig.NAME)
        if cm is not None:
            mesh = yaml.safe_load((cm.get("data") or {}).get(meshconfig.KEY) or "") or {}
            mesh["discoverySelectors"] = discovery_selectors()
            body = {**cm, "data": {**(cm.get("data") or {}),
                                   meshconfig.KEY: yaml.safe_dump(mesh, sort_keys=True)}}
            body["metadata"] = {**cm["metadata"], "resourceVersion": None}
            api.update(api.rt("v1", "ConfigMap"), CONTROL_PLANE, meshconfig.NAME, body,
                       check_version=False)

    def reconcile(self) -> None:
        api = self.api
        smcp = api.store.get(CONTROL_PLANES, CONTROL_PLANE, SMCP_NAME)
        if smcp is not None:
            status = control_plane_status(smcp)
            old = smcp.get("status") or {}
            if old.get("observedGeneration") != status["observedGeneration"]:
                api.set_status(api.rt("maistra.io/v2", "ServiceMeshControlPlane"), smcp,
                               status)
        roll = api.store.get(ROLLS, CONTROL_PLANE, "default")
        namespaces = {n["metadata"]["name"]: n for n in api.store.scan(NAMESPACES)}
        wanted = set()
        if roll is not None and not roll["metadata"].get("deletionTimestamp"):
            wanted = set((roll.get("spec") or {}).get("members") or [])
            for smm in api.store.scan(MEMBERS):
                ref = (smm.get("spec") or {}).get("controlPlaneRef") or {}
                if smm["metadata"]["name"] == "default" and \
                        ref.get("namespace", CONTROL_PLANE) == CONTROL_PLANE:
                    wanted.add(smm["metadata"]["namespace"])
        wanted.discard(CONTROL_PLANE)
        configured, terminating = [], []
        for name, ns in sorted(namespaces.items()):
            labels = (ns["metadata"].get("labels") or {})
            gone = bool(ns["metadata"].get("deletionTimestamp"))
            if name in wanted and not gone:
                if labels.get(MEMBER_OF) != CONTROL_PLANE:
                    self._label(ns, CONTROL_PLANE)
                configured.append(name)
            elif name in wanted:
                terminating.append(name)
            elif labels.get(MEMBER_OF) == CONTROL_PLANE and name != CONTROL_PLANE:
                self._label(ns, None)
        if roll is not None:
            self._roll_status(roll, sorted(wanted), configured, terminating)

    def _label(self, ns: dict, value: str | None) -> None:
        body = {**ns, "metadata": {**ns["metadata"], "resourceVersion": None,
                                   "labels": dict(ns["metadata"].get("labels") or {})}}
        if value is None:
            body["metadata"]["labels"].pop(MEMBER_OF, None)
        else:
            body["metadata"]["labels"][MEMBER_OF] = value
        try:
            self.api.update(self.api.rt("v1", "Namespace"), "", ns["metadata"]["name"], body,
                            check_version=False)
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    def _roll_status(self, roll: dict, members: list[str], configured: list[str],
                     terminating: list[str]) -> None:
        pending = [m for m in members if m not in configured and m not in terminating]
        old = roll.get("status") or {}
        ready = not pending
        prev: dict = next((c for c in old.get("conditions") or []
                           if c.get("type") == "Ready"), {})
        status_word = "True" if ready else "False"
        condition = {
            "type": "Ready", "status": status_word,
            "reason": "Configured" if ready else "ReconcileError",
            "message": "All namespaces have been configured successfully" if ready else
            f"Could not configure namespaces: {', '.join(pending)} (not found)",
            "lastTransitionTime": prev.get("lastTransitionTime") if prev.get("status") ==
            status_word else now_rfc3339()}
        status = {
            "observedGeneration": roll["metadata"].get("generation", 1),
            "meshGeneration": 1, "meshReconciledVersion": CHART_VERSION,
            "annotations": {"configuredMemberCount": f"{len(configured)}/{len(members)}"},
            "members": members, "configuredMembers": configured,
            "pendingMembers": pending, "terminatingMembers": terminating,
            "memberStatuses": [{"namespace": m, "conditions": [
                {"type": "Reconciled", "status": "True" if m in configured else "False"}]}
                for m in members],
            "conditions": [condition]}
        if {k: v for k, v in old.items()} != status:
            self.api.set_status(self.api.rt("maistra.io/v1", "ServiceMeshMemberRoll"), roll,
                                status)

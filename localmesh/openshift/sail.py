"""OpenShift Service Mesh 3 (the Sail operator): ``Istio``, ``IstioRevision`` and
``IstioCNI``, and their status.

What a client sees, after istio-ecosystem/sail-operator ``api/v1`` (``istio_types.go``,
``istiorevision_types.go``, ``istiocni_types.go``): the cluster-scoped ``Istio`` named
``default`` (``spec.namespace: istio-system``, ``updateStrategy.type: InPlace``), its
``IstioRevision`` of the same name (InPlace: the revision is the Istio's name; istiod is
``istiod`` in ``istio-system``), and ``IstioCNI`` ``default`` in ``istio-cni``, which
OpenShift requires. Their status follows the control plane: ``Reconciled`` and ``Ready``
(``Healthy`` once istiod's Deployment is available, ``IstiodNotReady`` before),
``DependenciesHealthy``, the revision's ``InUse`` (a pod runs a proxy of it), and the
Istio's ``revisions`` summary and ``activeRevisionName``.

Injection is Istio's: a namespace labelled ``istio-injection=enabled`` or
``istio.io/rev=default`` (the revision) gets sidecars (OpenShift's template,
injection.py). Not emulated: the operator's Helm reconciliation of ``spec.values`` (it
only reports), RevisionBased updates, IstioRevisionTags, the CNI DaemonSet's pods.
"""

from __future__ import annotations

from localmesh.api.status import ApiError
from localmesh.controllers.base import Reconciler
from localmesh.store import now_rfc3339

VERSION = "v1.28.0"
NAME = "default"
ISTIOS = ("sailoperator.io", "istios")
REVISIONS = ("sailoperator.io", "istiorevisions")
CNIS = ("sailoperator.io", "istiocnis")
DEPLOYMENTS = ("apps", "deployments")
PODS = ("", "pods")


def resources() -> list[dict]:
    spec = {"version": VERSION, "namespace": "istio-system"}
    return [
        {"apiVersion": "sailoperator.io/v1", "kind": "Istio", "metadata": {"name": NAME},
         "spec": {**spec, "updateStrategy": {"type": "InPlace",
                                             "inactiveRevisionDeletionGracePeriodSeconds": 30},
                  "values": {}}},
        {"apiVersion": "sailoperator.io/v1", "kind": "IstioRevision",
         "metadata": {"name": NAME, "ownerReferences": []},
         "spec": {**spec, "values": {"revision": "", "global": {"istioNamespace":
                                                                "istio-system"}}}},
        {"apiVersion": "sailoperator.io/v1", "kind": "IstioCNI", "metadata": {"name": NAME},
         "spec": {"version": VERSION, "namespace": "istio-cni"}},
    ]


def _conditions(old: list[dict], wanted: list[tuple[str, str, str, str]]) -> list[dict]:
    out: list[dict] = []
    for type_, status, reason, message in wanted:
        prev = next((c for c in old if c.get("type") == type_), {})
        cond: dict[str, str | None] = {"type": type_, "status": status}
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        cond["lastTransitionTime"] = prev.get("lastTransitionTime") \
            if prev.get("status") == status else now_rfc3339()
        out.append(cond)
    return out


class SailStatus(Reconciler):
    """The Sail operator's status writer for the one InPlace control plane."""

    name = "sail-operator"
    keys = (ISTIOS, REVISIONS, CNIS, DEPLOYMENTS, PODS)

    def install(self) -> None:
        api = self.api
        if api.store.get(("", "namespaces"), "", "istio-cni") is None:
            api.create(api.rt("v1", "Namespace"), "", {"metadata": {"name": "istio-cni"}})
        for body in resources():
            try:
                api.create(api.rt(body["apiVersion"], body["kind"]), "", body)
            except ApiError as exc:
                if exc.code != 409:
                    raise

    def reconcile(self) -> None:
        api = self.api
        istiod = api.store.get(DEPLOYMENTS, "istio-system", "istiod")
        st = (istiod or {}).get("status") or {}
        ready = bool(istiod) and st.get("availableReplicas", 0) >= 1
        in_use = any((p["metadata"].get("annotations") or {}).get("istio.io/rev") == NAME
                     for p in api.store.scan(PODS))
        health = ("True", "Healthy", "") if ready else \
            ("False", "IstiodNotReady", "not all istiod pods are ready")
        rev = api.store.get(REVISIONS, "", NAME)
        if rev is not None:
            old = rev.get("status") or {}
            self._set(rev, "IstioRevision", {
                "observedGeneration": rev["metadata"].get("generation", 1),
                "conditions": _conditions(old.get("conditions") or [], [
                    ("Reconciled", "True", "", ""), ("Ready", *health),
                    ("InUse", "True" if in_use else "False",
                     "ReferencedByWorkloads" if in_use else "NotReferencedByAnything",
                     "Referenced by at least one pod or namespace" if in_use else
                     "Not referenced by any pod or namespace"),
                    ("DependenciesHealthy", "True", "", "")]),
                "state": health[1]})
        istio = api.store.get(ISTIOS, "", NAME)
        if istio is not None:
            old = istio.get("status") or {}
            self._set(istio, "Istio", {
                "observedGeneration": istio["metadata"].get("generation", 1),
                "conditions": _conditions(old.get("conditions") or [], [
                    ("Reconciled", "True", "", ""), ("Ready", *health),
                    ("DependenciesHealthy", "True", "", "")]),
                "state": health[1], "activeRevisionName": NAME,
                "revisions": {"total": 1, "ready": 1 if ready else 0,
                              "inUse": 1 if in_use else 0}})
        cni = api.store.get(CNIS, "", NAME)
        if cni is not None:
            old = cni.get("status") or {}
            self._set(cni, "IstioCNI", {
                "observedGeneration": cni["metadata"].get("generation", 1),
                "conditions": _conditions(old.get("conditions") or [], [
                    ("Reconciled", "True", "", ""), ("Ready", "True", "", "")]),
                "state": "Healthy"})

    def _set(self, obj: dict, kind: str, status: dict) -> None:
        old = obj.get("status") or {}
        if old == status:
            return
        self.api.set_status(self.api.rt("sailoperator.io/v1", kind), obj, status)

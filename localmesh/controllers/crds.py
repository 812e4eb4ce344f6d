"""CustomResourceDefinitions: a stored CRD becomes served API, as apiextensions-apiserver
does it — its versions join discovery, its objects are stored generically, and its status
reports ``NamesAccepted`` and ``Established`` (what ``kubectl wait --for
condition=established`` reads)."""

from __future__ import annotations

from localmesh.controllers.base import Reconciler
from localmesh.store import now_rfc3339

CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")


class CRDController(Reconciler):
    name = "crd-controller"
    keys = (CRDS,)

    def __init__(self, api) -> None:
        super().__init__(api)
        api.on_delete_hooks.append(self._on_delete)
        api.admission.add_mutator(CRDS, self._register)

    def _register(self, api, rt, obj: dict, old: dict | None) -> None:
        """Serve a CRD as soon as it is admitted, so clients can use it right away."""
        spec = obj.get("spec") or {}
        if not spec.get("group") or not (spec.get("names") or {}).get("plural"):
            return
        if any(r.group == spec["group"] and r.plural == spec["names"]["plural"] and not r.custom
               for r in self.api.registry.types):
            return
        self.api.registry.add_crd(obj)

    def _on_delete(self, rt, obj: dict) -> None:
        if rt.key != CRDS:
            return
        spec = obj.get("spec") or {}
        for key_rt in list(self.api.registry.types):
            if key_rt.custom and key_rt.group == spec.get("group") and \
                    key_rt.plural == (spec.get("names") or {}).get("plural"):
                for o in self.api.store.list(key_rt.key):
                    try:
                        self.api.store.delete(key_rt.key, o["metadata"].get("namespace", ""),
                                              o["metadata"]["name"])
                    except Exception:  # noqa: BLE001 - already gone
                        pass
                break
        self.api.registry.remove_crd(obj)

    def reconcile(self) -> None:
        rt = self.api.rt("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        for crd in self.api.store.list(CRDS):
            if crd["metadata"].get("deletionTimestamp"):
                continue
            names = (crd.get("spec") or {}).get("names") or {}
            conds = [{"type": t, "status": "True", "reason": r, "message": m,
                      "lastTransitionTime": now_rfc3339()} for t, r, m in (
                ("NamesAccepted", "NoConflicts", "no conflicts found"),
                ("Established", "InitialNamesAccepted", "the initial names have been accepted"))]
            prev = (crd.get("status") or {}).get("conditions") or []
            if [c["type"] for c in prev] == [c["type"] for c in conds]:
                continue
            self.api.set_status(rt, crd, {
                "conditions": conds, "acceptedNames": names,
                "storedVersions": [v["name"] for v in crd["spec"].get("versions", [])
                                   if v.get("storage")]})

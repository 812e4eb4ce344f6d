"""PersistentVolumes and claims: binding (kube-controller-manager's persistentvolume
controller, pkg/controller/volume/persistentvolume) and a local provisioner.

- A claim without ``storageClassName`` gets the default StorageClass at admission
  (``standard``, created at boot, annotated ``storageclass.kubernetes.io/is-default-class``;
  localmesh/admission_kinds.py).
- A Pending claim binds to an Available volume of its class with enough capacity and the
  access modes it asks for (or to the volume it names in ``spec.volumeName``); otherwise,
  when its class's provisioner is ``localmesh.io/hostpath``, a volume ``pvc-<claim uid>``
  is provisioned: a directory ``<state dir>/volumes/pvc-<claim uid>`` (``spec.hostPath``),
  with the claim's capacity and access modes and the class's reclaim policy. Both sides
  then carry the binding (``claimRef``/``volumeName``, phase Bound, the
  ``pv.kubernetes.io/bind-completed`` annotations).
- When the claim goes, its volume is Released (``Retain``) or deleted with its directory
  (``Delete``).

The kubelet mounts a claim as that directory (localmesh/kubelet/environment.py), so what a
pod writes survives the pod, as a StatefulSet's data must. Differences (docs/localmesh.md):
binding is immediate (``WaitForFirstConsumer`` binds as ``Immediate`` does), capacity is
recorded but not enforced, and there is no ``pvc-protection`` finalizer.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

from localmesh.api.objects import ObjectAPI
from localmesh.api.status import ApiError
from localmesh.controllers.base import Reconciler
from localmesh.quantity import QuantityError, parse

CLAIMS = ("", "persistentvolumeclaims")
VOLUMES = ("", "persistentvolumes")
CLASSES = ("storage.k8s.io", "storageclasses")
PROVISIONER = "localmesh.io/hostpath"


def quantity_bytes(value: object) -> int:
    try:
        return int(parse(value))
    except QuantityError:
        return 0


def claim_directory(volumes_dir: Path, claim_uid: str) -> Path:
    """Where the provisioner keeps a claim's data (the kubelet computes the same path)."""
    return volumes_dir / f"pvc-{claim_uid}"


def default_class() -> dict:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "standard", "annotations": {
                "storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": PROVISIONER, "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate", "allowVolumeExpansion": True}


class VolumeController(Reconciler):
    name = "persistentvolume-controller"
    keys = (CLAIMS, VOLUMES)

    def __init__(self, api: ObjectAPI, volumes_dir: Path) -> None:
        super().__init__(api)
        self.volumes_dir = volumes_dir

    def reconcile(self) -> None:
        api = self.api
        classes = {c["metadata"]["name"]: c for c in api.store.scan(CLASSES)}
        claims = {c["metadata"]["uid"]: c for c in api.store.scan(CLAIMS)}
        for pv in api.store.scan(VOLUMES):
            ref = (pv.get("spec") or {}).get("claimRef") or {}
            if ref.get("uid") and ref["uid"] not in claims:
                self._release(pv)
        for claim in claims.values():
            if (claim.get("status") or {}).get("phase") != "Bound" and \
                    not claim["metadata"].get("deletionTimestamp"):
                self._bind(claim, classes)

    def _bind(self, claim: dict, classes: dict[str, dict]) -> None:
        api = self.api
        spec = claim.get("spec") or {}
        cls = spec.get("storageClassName") or ""
        want = quantity_bytes(((spec.get("resources") or {}).get("requests") or {}).get(
            "storage", "0"))
        modes = set(spec.get("accessModes") or [])
        pv = None
        for candidate in api.store.scan(VOLUMES):
            cspec = candidate.get("spec") or {}
            if spec.get("volumeName") and candidate["metadata"]["name"] != spec["volumeName"]:
                continue
            if (candidate.get("status") or {}).get("phase") not in (None, "Available"):
                continue
            if (cspec.get("claimRef") or {}).get("uid"):
                continue
            if (cspec.get("storageClassName") or "") != cls:
                continue
            if quantity_bytes((cspec.get("capacity") or {}).get("storage", "0")) < want:
                continue
            if not modes <= set(cspec.get("accessModes") or []):
                continue
            pv = copy.deepcopy(candidate)
            break
        provisioned = False
        if pv is None:
            sc = classes.get(cls)
            if sc is None or sc.get("provisioner") != PROVISIONER or spec.get("volumeName"):
                return
            pv = self._provision(claim, dict(sc))
            provisioned = True
            if pv is None:
                return
        pv_rt, pvc_rt = api.rt("v1", "PersistentVolume"), api.rt("v1", "PersistentVolumeClaim")
        meta = claim["metadata"]
        if not provisioned:
            pv["spec"]["claimRef"] = {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                                      "namespace": meta["namespace"], "name": meta["name"],
                                      "uid": meta["uid"],
                                      "resourceVersion": meta.get("resourceVersion", "")}
            pv["metadata"].setdefault("annotations", {})[
                "pv.kubernetes.io/bound-by-controller"] = "yes"
            pv["metadata"]["resourceVersion"] = None
            try:
                pv = api.update(pv_rt, "", pv["metadata"]["name"], pv, check_version=False)
            except ApiError as exc:
                if exc.code != 404:
                    raise
                return
        api.set_status(pv_rt, pv, {"phase": "Bound"})
        body = copy.deepcopy(claim)
        body["spec"]["volumeName"] = pv["metadata"]["name"]
        annotations = body["metadata"].setdefault("annotations", {})
        annotations["pv.kubernetes.io/bind-completed"] = "yes"
        annotations["pv.kubernetes.io/bound-by-controller"] = "yes"
        if provisioned:
            annotations["volume.kubernetes.io/storage-provisioner"] = PROVISIONER
            annotations["volume.beta.kubernetes.io/storage-provisioner"] = PROVISIONER
        body["metadata"]["resourceVersion"] = None
        try:
            updated = api.update(pvc_rt, meta["namespace"], meta["name"], body,
                                 check_version=False)
        except ApiError as exc:
            if exc.code != 404:
                raise
            return
        api.set_status(pvc_rt, updated, {
            "phase": "Bound", "accessModes": list((pv.get("spec") or {}).get("accessModes")
                                                  or []),
            "capacity": dict((pv.get("spec") or {}).get("capacity") or {})})

    def _provision(self, claim: dict, sc: dict) -> dict | None:
        meta, spec = claim["metadata"], claim.get("spec") or {}
        directory = claim_directory(self.volumes_dir, meta["uid"])
        directory.mkdir(parents=True, exist_ok=True)
        name = f"pvc-{meta['uid']}"
        body: dict = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": f"pvc-{meta['uid']}",
                         "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
            "spec": {
                "capacity": {"storage": ((spec.get("resources") or {}).get("requests") or {})
                             .get("storage", "1Gi")},
                "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
                "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy", "Delete"),
                "storageClassName": sc["metadata"]["name"],
                "volumeMode": spec.get("volumeMode", "Filesystem"),
                "hostPath": {"path": str(directory), "type": "DirectoryOrCreate"},
                "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                             "namespace": meta["namespace"], "name": meta["name"],
                             "uid": meta["uid"],
                             "resourceVersion": meta.get("resourceVersion", "")},
            },
        }
        try:
            return self.api.create(self.api.rt("v1", "PersistentVolume"), "", body)
        except ApiError as exc:
            if exc.code == 409:
                return self.api.store.get(VOLUMES, "", name)
            if exc.code in (403, 404):
                return None
            raise

    def _release(self, pv: dict) -> None:
        api = self.api
        pv_rt = api.rt("v1", "PersistentVolume")
        spec = pv.get("spec") or {}
        if spec.get("persistentVolumeReclaimPolicy", "Retain") == "Delete":
            path = Path((spec.get("hostPath") or {}).get("path") or "/nonexistent")
            try:
                api.delete(pv_rt, "", pv["metadata"]["name"])
            except ApiError as exc:
                if exc.code != 404:
                    raise
            # Only directories the provisioner made are ever removed.
            if path.parent == self.volumes_dir and path.name.startswith("pvc-"):
                shutil.rmtree(path, ignore_errors=True)
            return
        if (pv.get("status") or {}).get("phase") != "Released":
            api.set_status(pv_rt, pv, {"phase": "Released"})

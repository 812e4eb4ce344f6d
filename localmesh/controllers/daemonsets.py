"""DaemonSets: one pod on each node, after kube-controller-manager's daemon controller
(pkg/controller/daemon), as far as a one-node cluster needs it.

localmesh has one node, ``localmesh``, so a DaemonSet owns one pod, named
``<daemonset>-<5 characters>``, bound to the node (``spec.nodeName``) and owned by the
DaemonSet (``ownerReferences`` with ``controller: true``). A template change replaces the
pod (``updateStrategy`` RollingUpdate with ``maxUnavailable: 1``, the default, on one
node: delete, then create). The status carries the fields ``kubectl get ds`` and
``kubectl rollout status ds`` read.

Ambient mode needs this (istio-cni-node and ztunnel are DaemonSets); the k8s-api branch
brings a fuller controller (node selectors, tolerations, ControllerRevisions), which
replaces this one when both land.
"""

from __future__ import annotations

import copy
import secrets

from localmesh.api.objects import ObjectAPI
from localmesh.api.status import ApiError
from localmesh.controllers.base import Reconciler
from localmesh.controllers.workloads import (
    alive,
    owned_by,
    owner_ref,
    pod_ready,
    template_hash,
)

DAEMONSETS = ("apps", "daemonsets")
PODS = ("", "pods")
NODE = "localmesh"
HASH_LABEL = "controller-revision-hash"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class DaemonSetController(Reconciler):
    """Keeps one pod of every DaemonSet on the node, of its current template."""

    name = "daemonset-controller"
    keys = (DAEMONSETS, PODS)

    def reconcile(self) -> None:
        api: ObjectAPI = self.api
        pods = api.store.scan(PODS)
        for ds in api.store.scan(DAEMONSETS):
            if alive(ds):
                self._sync(api, ds, pods)

    def _sync(self, api: ObjectAPI, ds: dict, pods: list[dict]) -> None:
        meta = ds["metadata"]
        ns, uid = meta["namespace"], meta["uid"]
        want = template_hash(ds["spec"]["template"])
        mine = [p for p in pods if p["metadata"].get("namespace") == ns and owned_by(p, uid)
                and alive(p)]
        pod_rt = api.rt("v1", "Pod")
        current = [p for p in mine if (p["metadata"].get("labels") or {}).get(HASH_LABEL)
                   == want]
        for stale in (p for p in mine if p not in current):
            try:
                api.delete(pod_rt, ns, stale["metadata"]["name"])
            except ApiError as exc:
                if exc.code != 404:
                    raise
        if not current and len(mine) == len(current):
            self._create_pod(api, ds, want)
        ready = sum(1 for p in current if pod_ready(p))
        status = {"currentNumberScheduled": 1, "desiredNumberScheduled": 1,
                  "numberMisscheduled": 0, "numberReady": ready,
                  "numberAvailable": ready, "updatedNumberScheduled": len(current),
                  "observedGeneration": meta.get("generation", 1)}
        if not ready:
            status["numberUnavailable"] = 1
        if status != {k: (ds.get("status") or {}).get(k) for k in status}:
            api.set_status(api.rt("apps/v1", "DaemonSet"), ds, status)

    @staticmethod
    def _create_pod(api: ObjectAPI, ds: dict, revision: str) -> None:
        tmpl = copy.deepcopy(ds["spec"]["template"])
        meta = tmpl.get("metadata") or {}
        labels = {**(meta.get("labels") or {}), HASH_LABEL: revision,
                  "pod-template-generation": str(ds["metadata"].get("generation", 1))}
        suffix = "".join(secrets.choice(_ALPHABET) for _ in range(5))
        spec = tmpl.get("spec") or {}
        spec["nodeName"] = NODE
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {**meta, "labels": labels,
                            "name": f"{ds['metadata']['name']}-{suffix}",
                            "namespace": ds["metadata"]["namespace"],
                            "ownerReferences": [owner_ref({**ds, "apiVersion": "apps/v1",
                                                           "kind": "DaemonSet"})]},
               "spec": spec}
        try:
            api.create(api.rt("v1", "Pod"), ds["metadata"]["namespace"], pod)
        except ApiError as exc:
            if exc.code not in (403, 404, 409):
                raise

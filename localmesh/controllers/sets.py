"""DaemonSets and StatefulSets, after kube-controller-manager's daemon and statefulset
controllers (pkg/controller/daemon, pkg/controller/statefulset).

DaemonSet: one pod on each node — localmesh has one, ``localmesh`` — pinned to it with the
node affinity upstream adds; a template change replaces the pod (RollingUpdate, or when
it is deleted with OnDelete); pods carry ``controller-revision-hash`` and
``pod-template-generation``; the status ``kubectl rollout status`` reads.

StatefulSet: pods ``<name>-0`` … ``<name>-N-1`` with ``hostname`` = the pod's name and
``subdomain`` = ``serviceName`` (stable DNS names through the headless Service), the
``statefulset.kubernetes.io/pod-name`` and ``apps.kubernetes.io/pod-index`` labels;
``OrderedReady`` creates ordinal i only once 0…i-1 are Running and Ready and removes the
highest ordinal first, one at a time (``Parallel`` does all at once); each
``volumeClaimTemplates`` entry becomes a PersistentVolumeClaim ``<template>-<name>-<i>``
that outlives the pod (the local provisioner binds it to a directory of its own); a
template change replaces pods from the highest ordinal down, above ``partition``.
Both keep ControllerRevisions for their templates (``kubectl rollout history``).
"""

from __future__ import annotations

import copy
import json

from localmesh.api.status import ApiError
from localmesh.controllers.base import Reconciler
from localmesh.controllers.workloads import alive, owned_by, owner_ref, pod_ready, template_hash
from localmesh.kubelet.node import NODE_NAME

DAEMONSETS = ("apps", "daemonsets")
STATEFULSETS = ("apps", "statefulsets")
REVISIONS = ("apps", "controllerrevisions")
PODS = ("", "pods")
CLAIMS = ("", "persistentvolumeclaims")


def _finished(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _running_ready(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and pod_ready(pod)


class _Sets(Reconciler):
    """What both controllers share: pods from the template, revisions, deletes."""

    owner_kind = ""

    def _pods(self, owner: dict) -> list[dict]:
        ns, uid = owner["metadata"]["namespace"], owner["metadata"]["uid"]
        return [p for p in self.api.store.scan(PODS, ns) if owned_by(p, uid)]

    def _delete(self, rt: object, obj: dict) -> None:
        try:
            self.api.delete(rt, obj["metadata"]["namespace"],  # type: ignore[arg-type]
                            obj["metadata"]["name"])
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _create(self, rt: object, ns: str, body: dict) -> dict | None:
        try:
            return self.api.create(rt, ns, body)  # type: ignore[arg-type]
        except ApiError as exc:
            # 403: admission (quota, a webhook's refusal); 5xx: a webhook that could not
            # be called (failurePolicy Fail). Tried again shortly, as upstream requeues.
            if exc.code not in (403, 404, 409) and exc.code < 500:
                raise
            if exc.code not in (404, 409):
                self.retry_later()
            return None

    def _revision(self, owner: dict, revision_hash: str) -> int:
        """The ControllerRevision ``<owner>-<hash>`` for the current template (created
        once, numbered after the newest); its revision number."""
        api = self.api
        ns, name = owner["metadata"]["namespace"], owner["metadata"]["name"]
        rev_rt = api.rt("apps/v1", "ControllerRevision")
        mine = [r for r in api.store.scan(REVISIONS, ns)
                if owned_by(r, owner["metadata"]["uid"])]
        found = next((r for r in mine if r["metadata"]["name"] == f"{name}-{revision_hash}"),
                     None)
        if found is not None:
            return int(found.get("revision", 1))
        number = max((int(r.get("revision", 0)) for r in mine), default=0) + 1
        tmpl = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
        tmpl["$patch"] = "replace"
        self._create(rev_rt, ns, {
            "apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": f"{name}-{revision_hash}", "namespace": ns,
                         "labels": dict(((owner.get("spec") or {}).get("selector") or {})
                                        .get("matchLabels") or {}),
                         "ownerReferences": [owner_ref({**owner, "apiVersion": "apps/v1",
                                                        "kind": self.owner_kind})]},
            "data": {"spec": {"template": tmpl}}, "revision": number})
        return number

    def _pod_body(self, owner: dict, name: str | None, labels: dict) -> dict:
        meta = owner["metadata"]
        tmpl = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
        pmeta = tmpl.setdefault("metadata", {})
        if name:
            pmeta["name"] = name
        else:
            pmeta["generateName"] = meta["name"] + "-"
        pmeta["namespace"] = meta["namespace"]
        pmeta.setdefault("labels", {}).update(labels)
        pmeta["ownerReferences"] = [owner_ref({**owner, "apiVersion": "apps/v1",
                                               "kind": self.owner_kind})]
        return {"apiVersion": "v1", "kind": "Pod", **tmpl}


class DaemonSetController(_Sets):
    name = "daemonset-controller"
    keys = (DAEMONSETS, PODS)
    owner_kind = "DaemonSet"

    def reconcile(self) -> None:
        for ds in self.api.store.scan(DAEMONSETS):
            if alive(ds):
                self.sync(ds)

    def sync(self, ds: dict) -> None:
        api = self.api
        pod_rt, ds_rt = api.rt("v1", "Pod"), api.rt("apps/v1", "DaemonSet")
        spec, meta = ds.get("spec") or {}, ds["metadata"]
        h = template_hash(spec.get("template") or {})
        self._revision(ds, h)
        generation = str(meta.get("generation", 1))
        pods = [p for p in self._pods(ds) if alive(p)]
        strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
        for p in pods:
            if _finished(p):
                self._delete(pod_rt, p)
        pods = [p for p in pods if not _finished(p)]
        old = [p for p in pods if (p["metadata"].get("labels") or {}).get(
            "controller-revision-hash") != h]
        if strategy == "RollingUpdate" and old:
            # maxUnavailable 1 on one node: the old pod goes, then the new one comes.
            for p in old:
                self._delete(pod_rt, p)
        elif not pods and not any(not alive(p) for p in self._pods(ds)):
            body = self._pod_body(ds, None, {"controller-revision-hash": h,
                                             "pod-template-generation": generation})
            pspec = body.setdefault("spec", {})
            pspec["affinity"] = {**(pspec.get("affinity") or {}), "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
                    "matchFields": [{"key": "metadata.name", "operator": "In",
                                     "values": [NODE_NAME]}]}]}}}
            created = self._create(pod_rt, meta["namespace"], body)
            if created is not None:
                pods.append(created)
        current = [p for p in self._pods(ds) if alive(p) and not _finished(p)]
        updated = [p for p in current if (p["metadata"].get("labels") or {}).get(
            "controller-revision-hash") == h]
        ready = sum(1 for p in current if pod_ready(p))
        status = {"currentNumberScheduled": len(current), "numberMisscheduled": 0,
                  "desiredNumberScheduled": 1, "numberReady": ready,
                  "observedGeneration": meta.get("generation", 1),
                  "updatedNumberScheduled": len(updated), "numberAvailable": ready}
        if ready < 1:
            status["numberUnavailable"] = 1 - ready
        api.set_status(ds_rt, ds, status)


def _ordinal(pod: dict, name: str) -> int | None:
    suffix = pod["metadata"]["name"][len(name) + 1:]
    return int(suffix) if suffix.isdigit() else None


class StatefulSetController(_Sets):
    name = "statefulset-controller"
    keys = (STATEFULSETS, PODS)
    owner_kind = "StatefulSet"

    def reconcile(self) -> None:
        for sts in self.api.store.scan(STATEFULSETS):
            if alive(sts):
                self.sync(sts)

    def sync(self, sts: dict) -> None:
        api = self.api
        pod_rt, sts_rt = api.rt("v1", "Pod"), api.rt("apps/v1", "StatefulSet")
        spec, meta = sts.get("spec") or {}, sts["metadata"]
        name, ns = meta["name"], meta["namespace"]
        replicas = spec.get("replicas", 1)
        revision = f"{name}-{template_hash(spec.get('template') or {})}"
        self._revision(sts, revision.rsplit("-", 1)[1])
        parallel = spec.get("podManagementPolicy") == "Parallel"
        all_pods = self._pods(sts)
        by_ordinal = {o: p for p in all_pods if (o := _ordinal(p, name)) is not None}
        for _, p in sorted(by_ordinal.items()):
            if alive(p) and _finished(p):
                self._delete(pod_rt, p)  # a StatefulSet pod that ended is recreated
        # Scale up (and replace what is missing), in ordinal order.
        for i in range(replicas):
            pod = by_ordinal.get(i)
            if pod is None:
                self._ensure_claims(sts, i)
                self._create(pod_rt, ns, self._pod(sts, i, revision))
                if not parallel:
                    break
                continue
            if not parallel and not (alive(pod) and _running_ready(pod)):
                break
        else:
            self._scale_down_or_update(sts, by_ordinal, replicas, revision, parallel, pod_rt)
        pods = [p for p in self._pods(sts) if alive(p)]
        ready = sum(1 for p in pods if pod_ready(p))
        updated = sum(1 for p in pods if (p["metadata"].get("labels") or {}).get(
            "controller-revision-hash") == revision)
        status = {"observedGeneration": meta.get("generation", 1), "replicas": len(pods),
                  "readyReplicas": ready, "currentReplicas": updated,
                  "updatedReplicas": updated, "availableReplicas": ready,
                  "currentRevision": revision, "updateRevision": revision,
                  "collisionCount": 0}
        for k in ("readyReplicas", "currentReplicas", "updatedReplicas", "availableReplicas"):
            if not status[k]:
                status.pop(k)
        api.set_status(sts_rt, sts, status)

    def _scale_down_or_update(self, sts: dict, by_ordinal: dict[int, dict], replicas: int,
                              revision: str, parallel: bool, pod_rt: object) -> None:
        extra = sorted((o for o in by_ordinal if o >= replicas), reverse=True)
        if extra:
            for o in extra if parallel else extra[:1]:
                if alive(by_ordinal[o]):
                    self._delete(pod_rt, by_ordinal[o])
            return
        strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return
        partition = (strategy.get("rollingUpdate") or {}).get("partition", 0)
        for o in sorted(by_ordinal, reverse=True):
            p = by_ordinal[o]
            if o < partition:
                break
            if (p["metadata"].get("labels") or {}).get("controller-revision-hash") != revision:
                if alive(p):
                    self._delete(pod_rt, p)
                return  # one at a time, highest ordinal first
            if not _running_ready(p):
                return

    def _pod(self, sts: dict, i: int, revision: str) -> dict:
        spec, name = sts.get("spec") or {}, sts["metadata"]["name"]
        body = self._pod_body(sts, f"{name}-{i}", {
            "controller-revision-hash": revision,
            "statefulset.kubernetes.io/pod-name": f"{name}-{i}",
            "apps.kubernetes.io/pod-index": str(i)})
        pspec = body.setdefault("spec", {})
        pspec["hostname"] = f"{name}-{i}"
        if spec.get("serviceName"):
            pspec["subdomain"] = spec["serviceName"]
        volumes = [v for v in pspec.get("volumes") or []
                   if v.get("name") not in {t["metadata"]["name"] for t in
                                            spec.get("volumeClaimTemplates") or []}]
        for t in spec.get("volumeClaimTemplates") or []:
            volumes.append({"name": t["metadata"]["name"], "persistentVolumeClaim": {
                "claimName": f"{t['metadata']['name']}-{name}-{i}"}})
        if volumes:
            pspec["volumes"] = volumes
        return body

    def _ensure_claims(self, sts: dict, i: int) -> None:
        """Each volumeClaimTemplate's claim for ordinal ``i``; kept when the pod goes."""
        api = self.api
        spec, meta = sts.get("spec") or {}, sts["metadata"]
        pvc_rt = api.rt("v1", "PersistentVolumeClaim")
        for t in spec.get("volumeClaimTemplates") or []:
            claim = f"{t['metadata']['name']}-{meta['name']}-{i}"
            if api.store.get(CLAIMS, meta["namespace"], claim) is not None:
                continue
            body = json.loads(json.dumps(t))
            body.pop("status", None)
            cmeta = body.setdefault("metadata", {})
            cmeta["name"], cmeta["namespace"] = claim, meta["namespace"]
            cmeta.setdefault("labels", {}).update(
                (spec.get("selector") or {}).get("matchLabels") or {})
            self._create(pvc_rt, meta["namespace"], {"apiVersion": "v1",
                                                     "kind": "PersistentVolumeClaim", **body})

"""Deployment → ReplicaSet → Pod, as kube-controller-manager's deployment and replicaset
controllers do it, with the status fields ``kubectl rollout status`` and ``kubectl wait``
read (observedGeneration, updated/ready/available replicas, Available and Progressing
conditions, the ``deployment.kubernetes.io/revision`` annotation)."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from localmesh.api.objects import ObjectAPI
from localmesh.api.status import ApiError
from localmesh.controllers.base import Reconciler
from localmesh.store import now_rfc3339

DEPLOY = ("apps", "deployments")
RS = ("apps", "replicasets")
PODS = ("", "pods")
REVISION = "deployment.kubernetes.io/revision"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _normalised(value: object) -> object:
    """The template as the Go struct sees it: null, {} and [] are all "unset"."""
    if isinstance(value, dict):
        out = {k: _normalised(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value


def template_hash(template: dict) -> str:
    """A short, stable hash of a pod template (the ``pod-template-hash`` label).

    Upstream hashes the Go struct (pkg/controller/controller_utils.go ComputeHash), so a
    template that comes back through a client with ``creationTimestamp: null`` (``kubectl
    rollout undo`` does that) must hash like the original: the JSON is normalised first.
    """
    digest = hashlib.sha256(json.dumps(_normalised(template), sort_keys=True).encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:10])


def owner_ref(obj: dict) -> dict:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
            "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def owned_by(obj: dict, owner_uid: str) -> bool:
    return any(r.get("uid") == owner_uid and r.get("controller")
               for r in obj["metadata"].get("ownerReferences") or [])


def pod_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions") or [])


def alive(obj: dict) -> bool:
    return not obj["metadata"].get("deletionTimestamp")


def _condition(type_: str, status: str, reason: str, message: str, prev: list[dict]) -> dict:
    old = next((c for c in prev if c.get("type") == type_), None)
    now = now_rfc3339()
    transition = old.get("lastTransitionTime", now) if old and old.get("status") == status \
        else now
    return {"type": type_, "status": status, "lastUpdateTime": now,
            "lastTransitionTime": transition, "reason": reason, "message": message}


RC = ("", "replicationcontrollers")


class ReplicaSetController(Reconciler):
    """ReplicaSets, and ReplicationControllers (the same controller upstream in effect:
    pkg/controller/replication wraps the ReplicaSet one)."""

    name = "replicaset-controller"
    keys = (RS, RC, PODS)
    _events = 0
    # Seconds before a refused pod is tried again (upstream requeues with a backoff).
    retry_seconds = 1.0

    def reconcile(self) -> None:
        api: ObjectAPI = self.api
        pods = api.store.scan(PODS)
        for key, api_version, kind in ((RS, "apps/v1", "ReplicaSet"),
                                       (RC, "v1", "ReplicationController")):
            if api.registry.by_key(key) is not None:
                self._sync_kind(api, pods, key, api_version, kind)

    def _sync_kind(self, api: ObjectAPI, pods: list[dict], key: tuple[str, str],
                   api_version: str, kind: str) -> None:
        rs_rt = api.rt(api_version, kind)
        pod_rt = api.rt("v1", "Pod")
        for rs in api.store.scan(key):
            if not alive(rs):
                continue
            uid = rs["metadata"]["uid"]
            ns = rs["metadata"]["namespace"]
            mine = [p for p in pods if p["metadata"].get("namespace") == ns and owned_by(p, uid)]
            live = [p for p in mine if alive(p) and p.get("status", {}).get("phase") not in
                    ("Succeeded", "Failed")]
            want = rs["spec"].get("replicas", 1)
            failure: str | None = None
            if len(live) < want:
                for _ in range(want - len(live)):
                    tmpl = copy.deepcopy(rs["spec"]["template"])
                    pod = {
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {
                            **(tmpl.get("metadata") or {}),
                            "generateName": rs["metadata"]["name"] + "-",
                            "namespace": ns,
                            "ownerReferences": [owner_ref({**rs, "apiVersion": api_version,
                                                           "kind": kind})],
                        },
                        "spec": tmpl.get("spec", {}),
                    }
                    try:
                        api.create(pod_rt, ns, pod)
                    except ApiError as exc:
                        # 403/404: an admission plugin, a terminating namespace; 5xx: a
                        # webhook that cannot be called. The others are bugs.
                        if exc.code not in (403, 404) and exc.code < 500:
                            raise
                        failure = exc.message
                        break
            elif len(live) > want:
                surplus = sorted(live, key=lambda p: (pod_ready(p),
                                                      p["metadata"]["creationTimestamp"]))
                for p in surplus[: len(live) - want]:
                    try:
                        api.delete(pod_rt, ns, p["metadata"]["name"])
                    except ApiError as exc:
                        if exc.code != 404:
                            raise
            ready = sum(1 for p in live if pod_ready(p))
            status = {
                "replicas": len(live),
                "fullyLabeledReplicas": len(live),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "observedGeneration": rs["metadata"].get("generation", 1),
            }
            if not ready:
                status.pop("readyReplicas")
                status.pop("availableReplicas")
            if failure is not None:
                status["conditions"] = self._failed_create(rs, api_version, kind, failure)
                self.retry_later(self.retry_seconds)
            api.set_status(rs_rt, rs, status)

    @staticmethod
    def _component(kind: str) -> str:
        """The controller's name as its events give it (replication-controller for RCs)."""
        return "replication-controller" if kind == "ReplicationController" \
            else "replicaset-controller"

    def _failed_create(self, rs: dict, api_version: str, kind: str,
                       message: str) -> list[dict]:
        """A pod the API refused (an admission plugin's or webhook's 403, a terminating
        namespace, a webhook that could not be called under failurePolicy Fail): the
        ``ReplicaFailure`` condition, and a ``FailedCreate`` event when its message is new
        (pkg/controller/replicaset ``manageReplicas``: "Error creating: …"). A
        ReplicationController gets the same (pkg/controller/replication wraps it)."""
        text = f"Error creating: {message}"
        prev = [c for c in (rs.get("status") or {}).get("conditions") or []
                if c.get("type") == "ReplicaFailure"]
        if not prev or prev[0].get("message") != text:
            meta = rs["metadata"]
            self._events += 1
            now = now_rfc3339()
            try:
                self.api.create(self.api.rt("v1", "Event"), meta["namespace"], {
                    "metadata": {"name": f"{meta['name']}.{self._events:x}"},
                    "involvedObject": {"kind": kind, "namespace": meta["namespace"],
                                       "name": meta["name"], "uid": meta["uid"],
                                       "apiVersion": api_version},
                    "reason": "FailedCreate", "message": text, "type": "Warning",
                    "source": {"component": self._component(kind)},
                    "firstTimestamp": now, "lastTimestamp": now, "count": 1,
                    "reportingComponent": self._component(kind)})
            except ApiError:
                pass  # events are best effort, as upstream
        return [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                 "message": text,
                 "lastTransitionTime": prev[0].get("lastTransitionTime") if prev
                 else now_rfc3339()}]


class DeploymentController(Reconciler):
    name = "deployment-controller"
    keys = (DEPLOY, RS)

    def reconcile(self) -> None:
        api: ObjectAPI = self.api
        rs_rt = api.rt("apps/v1", "ReplicaSet")
        d_rt = api.rt("apps/v1", "Deployment")
        all_rs = api.store.scan(RS)
        for d in api.store.scan(DEPLOY):
            if not alive(d):
                continue
            self._sync(api, d, d_rt, rs_rt, all_rs)

    def _sync(self, api: ObjectAPI, d: dict, d_rt, rs_rt, all_rs: list[dict]) -> None:
        meta, spec = d["metadata"], d["spec"]
        ns, uid = meta["namespace"], meta["uid"]
        owned = [r for r in all_rs if r["metadata"].get("namespace") == ns and owned_by(r, uid)
                 and alive(r)]
        h = template_hash(spec["template"])
        new = next((r for r in owned if r["metadata"].get("labels", {}).get(
            "pod-template-hash") == h), None)
        old = [r for r in owned if r is not new]
        desired = spec.get("replicas", 1)
        revisions = [int(r["metadata"].get("annotations", {}).get(REVISION, "0")) for r in owned]
        strategy = spec.get("strategy", {}).get("type", "RollingUpdate")
        if new is None:
            revision = max(revisions, default=0) + 1
            tmpl = copy.deepcopy(spec["template"])
            tmpl.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
            selector = copy.deepcopy(spec["selector"])
            selector.setdefault("matchLabels", {})["pod-template-hash"] = h
            start = 0 if (strategy == "Recreate" and any(
                r["spec"].get("replicas", 0) or r.get("status", {}).get("replicas", 0)
                for r in old)) else desired
            body: dict[str, Any] = {
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{meta['name']}-{h}", "namespace": ns,
                    "labels": {**tmpl["metadata"]["labels"]},
                    "annotations": {REVISION: str(revision),
                                    "deployment.kubernetes.io/desired-replicas": str(desired)},
                    "ownerReferences": [owner_ref({**d, "apiVersion": "apps/v1",
                                                   "kind": "Deployment"})],
                },
                "spec": {"replicas": start, "selector": selector, "template": tmpl,
                         "minReadySeconds": spec.get("minReadySeconds", 0)},
            }
            try:
                new = api.create(rs_rt, ns, body)
            except ApiError as exc:
                if exc.code != 409:
                    raise
                new = api.store.get(RS, ns, body["metadata"]["name"])
                if new is None:
                    return
        new_revision = int(new["metadata"].get("annotations", {}).get(REVISION, "0"))
        old_max = max((int(r["metadata"].get("annotations", {}).get(REVISION, "0"))
                       for r in old), default=0)
        if new_revision <= old_max:
            # An older template came back (rollout undo): its ReplicaSet becomes the newest
            # revision (deployment_util.go SetNewReplicaSetAnnotations).
            body = copy.deepcopy(new)
            body["metadata"].setdefault("annotations", {})[REVISION] = str(old_max + 1)
            body["metadata"]["resourceVersion"] = None
            try:
                new = api.update(rs_rt, ns, new["metadata"]["name"], body, check_version=False)
            except ApiError as exc:
                if exc.code == 404:
                    return
                raise
        new_ready = new.get("status", {}).get("readyReplicas", 0)
        if strategy == "Recreate":
            old_running = sum(r.get("status", {}).get("replicas", 0) for r in old)
            for r in old:
                self._scale(api, rs_rt, r, 0)
            if old_running == 0:
                self._scale(api, rs_rt, new, desired)
        else:
            self._scale(api, rs_rt, new, desired)
            budget = max(0, desired - new_ready)
            for r in sorted(old, key=lambda r: r["metadata"]["creationTimestamp"], reverse=True):
                keep = min(r["spec"].get("replicas", 0), budget)
                budget -= keep
                self._scale(api, rs_rt, r, keep)
        if meta.get("annotations", {}).get(REVISION) != new["metadata"]["annotations"].get(
                REVISION):
            body = copy.deepcopy(d)
            body["metadata"].setdefault("annotations", {})[REVISION] = \
                new["metadata"]["annotations"][REVISION]
            body["metadata"]["resourceVersion"] = None
            try:
                d = api.update(d_rt, ns, meta["name"], body, check_version=False)
            except ApiError as exc:
                if exc.code == 404:
                    return
                raise
        all_now = [new, *old]
        replicas = sum(r.get("status", {}).get("replicas", 0) for r in all_now)
        ready = sum(r.get("status", {}).get("readyReplicas", 0) for r in all_now)
        updated = new.get("status", {}).get("replicas", 0)
        prev = d.get("status", {}).get("conditions") or []
        available = ready >= desired - _max_unavailable(spec, desired)
        complete = updated == desired and replicas == desired and new_ready >= desired
        conds = [
            _condition("Available", "True" if available else "False",
                       "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                       "Deployment has minimum availability." if available else
                       "Deployment does not have minimum availability.", prev),
            _condition("Progressing", "True",
                       "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                       f'ReplicaSet "{new["metadata"]["name"]}" has successfully progressed.'
                       if complete else
                       f'ReplicaSet "{new["metadata"]["name"]}" is progressing.', prev),
        ]
        for c, p in zip(conds, [next((x for x in prev if x["type"] == c["type"]), None)
                                for c in conds], strict=True):
            if p and p.get("status") == c["status"] and p.get("reason") == c["reason"]:
                c["lastUpdateTime"] = p.get("lastUpdateTime", c["lastUpdateTime"])
        status = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, desired - ready),
            "conditions": conds,
        }
        for k in ("readyReplicas", "availableReplicas", "unavailableReplicas", "updatedReplicas",
                  "replicas"):
            if not status[k]:
                status.pop(k)
        api.set_status(d_rt, d, status)

    @staticmethod
    def _scale(api: ObjectAPI, rs_rt, rs: dict, replicas: int) -> None:
        if rs["spec"].get("replicas") == replicas:
            return
        body = copy.deepcopy(rs)
        body["spec"]["replicas"] = replicas
        body["metadata"]["resourceVersion"] = None
        body["metadata"].setdefault("annotations", {})[
            "deployment.kubernetes.io/desired-replicas"] = str(replicas)
        try:
            api.update(rs_rt, rs["metadata"]["namespace"], rs["metadata"]["name"], body,
                       check_version=False)
        except ApiError as exc:
            if exc.code != 404:
                raise


def _max_unavailable(spec: dict, desired: int) -> int:
    ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    v = ru.get("maxUnavailable", "25%")
    if isinstance(v, str) and v.endswith("%"):
        return int(desired * int(v[:-1]) / 100)
    return int(v)

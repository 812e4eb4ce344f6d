"""Status for the kinds that observe others: PodDisruptionBudgets (kube-controller-manager's
disruption controller), HorizontalPodAutoscalers (the HPA controller, without metrics) and
APIServices (kube-aggregator's availability controller).

- PodDisruptionBudget: ``expectedPods`` (the pods its selector picks), ``currentHealthy``
  (those Ready), ``desiredHealthy`` (``minAvailable``, or expected minus
  ``maxUnavailable``; percentages of the expected pods, rounded up as upstream),
  ``disruptionsAllowed`` and the ``DisruptionAllowed`` condition
  (SufficientPods/InsufficientPods).
- HorizontalPodAutoscaler: localmesh runs no metrics server, so — as on a cluster without
  one — the HPA reads its target's scale (``currentReplicas``) and says it cannot compute a
  replica count: ``AbleToScale`` True (SucceededGetScale), ``ScalingActive`` False
  (FailedGetResourceMetric); it never scales.
- APIService: the built-in group-versions are served locally (``Local``, Available);
  one that names a Service is not proxied (localmesh has no aggregation layer): Available
  False, ``ServiceNotFound`` or ``FailedDiscoveryCheck``.
"""

from __future__ import annotations

import math

from localmesh.api.objects import ObjectAPI
from localmesh.api.selectors import selector_matches
from localmesh.controllers.base import Reconciler
from localmesh.controllers.workloads import pod_ready
from localmesh.resources import Registry
from localmesh.store import now_rfc3339

PDBS = ("policy", "poddisruptionbudgets")
HPAS = ("autoscaling", "horizontalpodautoscalers")
APISERVICES = ("apiregistration.k8s.io", "apiservices")
PODS = ("", "pods")


def _count(value: object, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = total * int(value[:-1]) / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value or 0)  # type: ignore[call-overload]


def _condition(prev: list[dict], type_: str, ok: bool, reason: str, message: str) -> dict:
    status = "True" if ok else "False"
    old = next((c for c in prev if c.get("type") == type_), None)
    when = old.get("lastTransitionTime") if old and old.get("status") == status else None
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": when or now_rfc3339()}


class DisruptionController(Reconciler):
    name = "disruption-controller"
    keys = (PDBS, PODS)

    def reconcile(self) -> None:
        rt = self.api.rt("policy/v1", "PodDisruptionBudget")
        for pdb in self.api.store.scan(PDBS):
            spec, meta = pdb.get("spec") or {}, pdb["metadata"]
            pods = [p for p in self.api.store.scan(PODS, meta["namespace"])
                    if spec.get("selector") is not None
                    and selector_matches(spec["selector"], p["metadata"].get("labels"))
                    and not p["metadata"].get("deletionTimestamp")]
            expected = len(pods)
            healthy = sum(1 for p in pods if pod_ready(p))
            if "minAvailable" in spec:
                desired = _count(spec["minAvailable"], expected, round_up=True)
            else:
                desired = max(0, expected - _count(spec.get("maxUnavailable", 0), expected,
                                                   round_up=True))
            allowed = max(0, healthy - desired)
            prev = (pdb.get("status") or {}).get("conditions") or []
            self.api.set_status(rt, pdb, {
                "observedGeneration": meta.get("generation", 1),
                "disruptionsAllowed": allowed, "currentHealthy": healthy,
                "desiredHealthy": desired, "expectedPods": expected,
                "conditions": [_condition(prev, "DisruptionAllowed", allowed > 0,
                                          "SufficientPods" if allowed > 0 else
                                          "InsufficientPods", "")]})


class AutoscalerController(Reconciler):
    name = "horizontal-pod-autoscaler"
    keys = (HPAS, ("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets"))

    def reconcile(self) -> None:
        api = self.api
        rt = api.rt("autoscaling/v2", "HorizontalPodAutoscaler")
        for hpa in api.store.scan(HPAS):
            spec, meta = hpa.get("spec") or {}, hpa["metadata"]
            ref = spec.get("scaleTargetRef") or {}
            target_rt = api.registry.by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
            target = api.store.get(target_rt.key, meta["namespace"], ref.get("name", "")) \
                if target_rt is not None else None
            prev = (hpa.get("status") or {}).get("conditions") or []
            if target is None:
                conditions = [_condition(prev, "AbleToScale", False, "FailedGetScale",
                                         f"the HPA controller was unable to get the target's "
                                         f"current scale: {(ref.get('kind') or '').lower()}s"
                                         f" \"{ref.get('name', '')}\" not found")]
                current = 0
            else:
                current = (target.get("status") or {}).get("replicas", 0)
                conditions = [
                    _condition(prev, "AbleToScale", True, "SucceededGetScale",
                               "the HPA controller was able to get the target's current "
                               "scale"),
                    _condition(prev, "ScalingActive", False, "FailedGetResourceMetric",
                               "the HPA was unable to compute the replica count: failed to "
                               "get cpu utilization: unable to get metrics for resource cpu:"
                               " no metrics returned from resource metrics API")]
            api.set_status(rt, hpa, {"currentReplicas": current, "desiredReplicas": current,
                                     "conditions": conditions})


def local_apiservices(registry: Registry) -> list[dict]:
    """The APIService objects of the group-versions localmesh serves itself."""
    out = []
    for group, versions in registry.group_versions().items():
        for v in versions:
            out.append({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                        "metadata": {"name": f"{v}.{group}" if group else v,
                                     "labels": {"kube-aggregator.kubernetes.io/automanaged":
                                                "onstart"}},
                        "spec": {"group": group, "version": v, "groupPriorityMinimum": 1000,
                                 "versionPriority": 15}})
    return out


class APIServiceController(Reconciler):
    name = "apiservice-availability"
    keys = (APISERVICES, ("", "services"))

    def reconcile(self) -> None:
        api = self.api
        rt = api.rt("apiregistration.k8s.io/v1", "APIService")
        for svc in api.store.scan(APISERVICES):
            ref = (svc.get("spec") or {}).get("service")
            prev = (svc.get("status") or {}).get("conditions") or []
            if not ref:
                cond = _condition(prev, "Available", True, "Local",
                                  "Local APIServices are always available")
            elif api.store.get(("", "services"), ref.get("namespace", ""),
                               ref.get("name", "")) is None:
                cond = _condition(prev, "Available", False, "ServiceNotFound",
                                  f'service/{ref.get("name")} in "{ref.get("namespace")}" is '
                                  "not present")
            else:
                cond = _condition(prev, "Available", False, "FailedDiscoveryCheck",
                                  "localmesh does not proxy aggregated APIs")
            api.set_status(rt, svc, {"conditions": [cond]})


def ensure_local_apiservices(api: ObjectAPI) -> None:
    rt = api.rt("apiregistration.k8s.io/v1", "APIService")
    for body in local_apiservices(api.registry):
        if api.store.get(APISERVICES, "", body["metadata"]["name"]) is None:
            api.create(rt, "", body)

"""ResourceQuota and LimitRange, enforced at admission as kube-apiserver's ResourceQuota and
LimitRanger plugins enforce them (plugin/pkg/admission/resourcequota, limitranger), and the
quota's status as the resourcequota controller keeps it.

LimitRanger (on pod creation, type ``Container``): ``default`` becomes a container's missing
limits and ``defaultRequest`` (else ``default``) its missing requests, noted in the
``kubernetes.io/limit-ranger`` annotation; ``min``/``max`` are checked: 403
``pods "x" is forbidden: maximum cpu usage per Container is 1, but limit is 2``.

ResourceQuota (on creation): object counts — ``pods``, ``services``, ``configmaps``,
``secrets``, ``persistentvolumeclaims``, ``replicationcontrollers``, ``resourcequotas``,
``services.loadbalancers``, ``services.nodeports`` and ``count/<resource>[.<group>]`` — and
the pods' ``requests.cpu``/``memory``/``limits.cpu``/``memory`` (``cpu``/``memory`` mean
requests) and the claims' ``requests.storage``. Going over is 403 ``exceeded quota: q,
requested: pods=1, used: pods=2, limited: pods=2``; a pod without a request or limit the
quota tracks is 403 ``failed quota: q: must specify limits.cpu for: c``. Pods that have
finished do not count, as upstream. Scopes and scope selectors are not evaluated.
"""

from __future__ import annotations

from fractions import Fraction

from localmesh.api import status
from localmesh.api.objects import ObjectAPI
from localmesh.controllers.base import Reconciler
from localmesh.quantity import QuantityError, format_quantity, parse
from localmesh.resources import ResourceType

QUOTAS = ("", "resourcequotas")
LIMITS = ("", "limitranges")
COUNTED = {"pods": ("", "pods"), "services": ("", "services"),
           "configmaps": ("", "configmaps"), "secrets": ("", "secrets"),
           "persistentvolumeclaims": ("", "persistentvolumeclaims"),
           "replicationcontrollers": ("", "replicationcontrollers"),
           "resourcequotas": ("", "resourcequotas")}
COMPUTE = ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "cpu", "memory")


def _q(value: object) -> Fraction:
    try:
        return parse(value)
    except QuantityError:
        return Fraction(0)


def _fmt(resource: str, value: Fraction) -> str:
    return format_quantity(value, binary=resource.endswith(("memory", "storage")))


def _pod_total(pod: dict, resource: str) -> Fraction:
    kind, _, name = resource.partition(".")
    if not name:
        kind, name = "requests", resource
    total = Fraction(0)
    for c in (pod.get("spec") or {}).get("containers") or []:
        total += _q(((c.get("resources") or {}).get(kind) or {}).get(name, 0))
    return total


def _active(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and \
        not pod["metadata"].get("deletionTimestamp")


def usage(api: ObjectAPI, namespace: str, resource: str) -> Fraction:
    """What the namespace uses of one quota'd resource now."""
    if resource in COUNTED:
        objs = api.store.scan(COUNTED[resource], namespace)
        if resource == "pods":
            objs = [p for p in objs if _active(p)]
        return Fraction(len(objs))
    if resource in ("services.loadbalancers", "services.nodeports"):
        want = "LoadBalancer" if resource.endswith("loadbalancers") else "NodePort"
        return Fraction(sum(1 for s in api.store.scan(("", "services"), namespace)
                            if (s.get("spec") or {}).get("type") == want))
    if resource.startswith("count/"):
        plural, _, group = resource[len("count/"):].partition(".")
        return Fraction(len(api.store.scan((group, plural), namespace)))
    if resource in COMPUTE:
        return sum((_pod_total(p, resource) for p in api.store.scan(("", "pods"), namespace)
                    if _active(p)), Fraction(0))
    if resource == "requests.storage":
        return sum((_q(((c.get("spec") or {}).get("resources") or {}).get("requests", {})
                       .get("storage", 0))
                    for c in api.store.scan(("", "persistentvolumeclaims"), namespace)),
                   Fraction(0))
    return Fraction(0)


def _requested(rt: ResourceType, obj: dict, resource: str) -> Fraction | None:
    """What creating ``obj`` adds to ``resource`` (None: nothing)."""
    if resource in COUNTED:
        return Fraction(1) if COUNTED[resource] == rt.key else None
    if resource.startswith("count/"):
        plural, _, group = resource[len("count/"):].partition(".")
        return Fraction(1) if (group, plural) == rt.key else None
    if resource in ("services.loadbalancers", "services.nodeports") and \
            rt.key == ("", "services"):
        want = "LoadBalancer" if resource.endswith("loadbalancers") else "NodePort"
        return Fraction(1) if (obj.get("spec") or {}).get("type") == want else None
    if resource in COMPUTE and rt.key == ("", "pods"):
        return _pod_total(obj, resource)
    if resource == "requests.storage" and rt.key == ("", "persistentvolumeclaims"):
        return _q(((obj.get("spec") or {}).get("resources") or {}).get("requests", {})
                  .get("storage", 0))
    return None


def enforce_quota(api: ObjectAPI, rt: ResourceType, obj: dict, old: dict | None) -> list:
    """Validating step (creates only): every quota of the namespace must still hold."""
    if old is not None or not rt.namespaced:
        return []
    meta = obj.get("metadata") or {}
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    for quota in api.store.scan(QUOTAS, ns):
        hard = (quota.get("spec") or {}).get("hard") or {}
        if rt.key == ("", "pods"):
            missing = []
            for resource in hard:
                if resource not in COMPUTE:
                    continue
                kind, _, res = resource.partition(".")
                if not res:
                    kind, res = "requests", resource
                lacking = [c.get("name", "") for c in (obj.get("spec") or {}).get(
                    "containers") or [] if res not in ((c.get("resources") or {}).get(kind)
                                                       or {})]
                if lacking:
                    missing.append(f"{resource if '.' in resource else 'requests.' + resource}"
                                   f" for: {','.join(lacking)}")
            if missing:
                raise status.new_forbidden(rt.plural, rt.group, name, (
                    f"failed quota: {quota['metadata']['name']}: must specify "
                    + "; ".join(sorted(missing))))
        over = []
        for resource, limit in sorted(hard.items()):
            asked = _requested(rt, obj, resource)
            if asked is None:
                continue
            used = usage(api, ns, resource)
            if used + asked > _q(limit):
                over.append((resource, asked, used, _q(limit)))
        if over:
            raise status.new_forbidden(rt.plural, rt.group, name, (
                f"exceeded quota: {quota['metadata']['name']}, requested: "
                + ",".join(f"{r}={_fmt(r, a)}" for r, a, _, _ in over) + ", used: "
                + ",".join(f"{r}={_fmt(r, u)}" for r, _, u, _ in over) + ", limited: "
                + ",".join(f"{r}={_fmt(r, h)}" for r, _, _, h in over)))
    return []


def apply_limits(api: ObjectAPI, rt: ResourceType, obj: dict, old: dict | None) -> None:
    """Mutating step (pods created): LimitRanger's defaults and its min/max checks."""
    if rt.key != ("", "pods") or old is not None:
        return
    meta = obj.setdefault("metadata", {})
    ns = meta.get("namespace", "")
    notes: list[str] = []
    for lr in api.store.scan(LIMITS, ns):
        for item in (lr.get("spec") or {}).get("limits") or []:
            if item.get("type", "Container") != "Container":
                continue
            default = item.get("default") or {}
            default_request = item.get("defaultRequest") or default
            for c in (obj.get("spec") or {}).get("containers") or []:
                res = c.setdefault("resources", {})
                set_requests = [r for r in default_request
                                if r not in (res.get("requests") or {})]
                set_limits = [r for r in default if r not in (res.get("limits") or {})]
                for r in set_requests:
                    res.setdefault("requests", {})[r] = default_request[r]
                for r in set_limits:
                    res.setdefault("limits", {})[r] = default[r]
                if set_requests:
                    notes.append(f"{', '.join(set_requests)} request for container "
                                 f"{c.get('name', '')}")
                if set_limits:
                    notes.append(f"{', '.join(set_limits)} limit for container "
                                 f"{c.get('name', '')}")
                _check_bounds(rt, meta.get("name", ""), item, res)
    if notes:
        meta.setdefault("annotations", {})["kubernetes.io/limit-ranger"] = \
            "LimitRanger plugin set: " + "; ".join(notes)


def _check_bounds(rt: ResourceType, name: str, item: dict, res: dict) -> None:
    for r, bound in (item.get("max") or {}).items():
        limit = (res.get("limits") or {}).get(r)
        if limit is None:
            raise status.new_forbidden(rt.plural, rt.group, name,
                                       f"maximum {r} usage per Container is {bound}. No limit "
                                       "is specified")
        if _q(limit) > _q(bound):
            raise status.new_forbidden(rt.plural, rt.group, name,
                                       f"maximum {r} usage per Container is {bound}, but limit "
                                       f"is {limit}")
    for r, bound in (item.get("min") or {}).items():
        request = (res.get("requests") or {}).get(r)
        if request is None:
            raise status.new_forbidden(rt.plural, rt.group, name,
                                       f"minimum {r} usage per Container is {bound}. No "
                                       "request is specified")
        if _q(request) < _q(bound):
            raise status.new_forbidden(rt.plural, rt.group, name,
                                       f"minimum {r} usage per Container is {bound}, but "
                                       f"request is {request}")


class QuotaController(Reconciler):
    """The resourcequota controller: ``status.hard`` and ``status.used``."""

    name = "resourcequota-controller"
    keys = (QUOTAS, ("", "pods"), ("", "services"), ("", "configmaps"), ("", "secrets"),
            ("", "persistentvolumeclaims"))

    def reconcile(self) -> None:
        rt = self.api.rt("v1", "ResourceQuota")
        for quota in self.api.store.scan(QUOTAS):
            hard = (quota.get("spec") or {}).get("hard") or {}
            ns = quota["metadata"]["namespace"]
            used = {r: _fmt(r, usage(self.api, ns, r)) for r in hard}
            self.api.set_status(rt, quota, {"hard": dict(hard), "used": used})


def install(api: ObjectAPI) -> None:
    api.admission.add_mutator(("", "pods"), apply_limits)
    api.admission.add_validator("*", enforce_quota)

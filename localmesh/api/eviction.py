"""The ``pods/eviction`` subresource: a delete that honours PodDisruptionBudgets, as
k8s.io/kubernetes ``pkg/registry/core/pod/storage/eviction.go`` does (``kubectl drain``
evicts through it).

A pod that has finished, or is already being deleted, goes at once. Otherwise the one
PodDisruptionBudget selecting it must allow a disruption: then the budget's
``disruptionsAllowed`` is decremented (with the pod in ``disruptedPods``) and the pod is
deleted with the eviction's ``deleteOptions``; if not, 429 TooManyRequests ``Cannot evict
pod as it would violate the pod's disruption budget.`` with a ``DisruptionBudget`` cause.
Two budgets selecting one pod are a 500, as upstream. The answer is a ``Success`` Status
with code 201.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from localmesh.api import status
from localmesh.api.negotiation import json_response
from localmesh.api.objects import ObjectAPI
from localmesh.api.selectors import selector_matches
from localmesh.api.status import ApiError
from localmesh.resources import ResourceType
from localmesh.store import now_rfc3339

PDBS = ("policy", "poddisruptionbudgets")


def handler(objects: ObjectAPI) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The subresource's handler (the API server routes ``pods/{name}/eviction`` here)."""
    async def evict(request: web.Request, rt: ResourceType, namespace: str,
                    name: str) -> web.StreamResponse:
        if request.method != "POST":
            raise status.method_not_allowed()
        raw = await request.read()
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            raise status.bad_request(f"invalid Eviction: {exc}") from exc
        options = (body or {}).get("deleteOptions") or {}
        pod = objects.store.get(("", "pods"), namespace, name)
        if pod is None:
            raise status.not_found("pods", name)
        done = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if not done and not pod["metadata"].get("deletionTimestamp"):
            _take_disruption(objects, pod)
        kwargs: dict = {}
        if options.get("gracePeriodSeconds") is not None:
            kwargs["grace"] = int(options["gracePeriodSeconds"])
        if options.get("propagationPolicy"):
            kwargs["propagation"] = options["propagationPolicy"]
        objects.delete(rt, namespace, name, **kwargs)
        return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Success", "code": 201}, 201)

    return evict


def _take_disruption(objects: ObjectAPI, pod: dict) -> None:
    labels = pod["metadata"].get("labels") or {}
    budgets = [b for b in objects.store.scan(PDBS, pod["metadata"]["namespace"])
               if (b.get("spec") or {}).get("selector") is not None
               and selector_matches(b["spec"]["selector"], labels)]
    if not budgets:
        return
    if len(budgets) > 1:
        raise ApiError(500, "InternalError", "This pod has more than one PodDisruptionBudget, "
                                             "which the eviction subresource does not "
                                             "support.")
    pdb = budgets[0]
    st = pdb.get("status") or {}
    if st.get("disruptionsAllowed", 0) <= 0:
        raise ApiError(429, "TooManyRequests",
                       "Cannot evict pod as it would violate the pod's disruption budget.",
                       causes=[{"reason": "DisruptionBudget",
                                "message": f"The disruption budget {pdb['metadata']['name']} "
                                           f"needs {st.get('desiredHealthy', 0)} healthy pods "
                                           f"and has {st.get('currentHealthy', 0)} currently"}],
                       with_details=True)
    new = copy.deepcopy(st)
    new["disruptionsAllowed"] = st["disruptionsAllowed"] - 1
    new.setdefault("disruptedPods", {})[pod["metadata"]["name"]] = now_rfc3339()
    objects.set_status(objects.rt("policy/v1", "PodDisruptionBudget"), pdb, new)

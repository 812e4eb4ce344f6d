"""istio-cni's node agent: pods in and out of the ambient mesh.

As Istio's (istio/istio ``cni/pkg/plugin`` and ``cni/pkg/nodeagent``): the CNI plugin,
chained after the primary one, asks the node agent to add a pod when its sandbox is made;
the agent redirects the pod's traffic to the node's ztunnel and annotates the pod
``ambient.istio.io/redirection: enabled``. Its informers also follow label changes: a pod
whose namespace (or itself) loses ``istio.io/dataplane-mode=ambient`` is taken out (the
annotation removed, ztunnel lets go of it), and one that gains it is added.

localmesh's stand-in for the redirection itself (docs/localmesh.md, "Ambient mode"): the
pod's programs listen on its pod-local address and send through an explicit proxy there
(the kubelet does this for a plugin that answers True, localmesh/kubelet/cni.py), and
istiod hands the node's ztunnel listeners on the pod's IP and local address for every
redirected pod. ``add`` returns once ztunnel answers on the pod's HBONE port 15008, as
Istio's plugin returns once ztunnel acknowledged the pod. A pod that was not redirected
when its network was set up cannot be moved while it runs (its programs hold the pod IP):
it joins the mesh at its next start, and says so in an Event.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time

from localmesh.api.objects import ObjectAPI
from localmesh.api.status import ApiError
from localmesh.controllers.base import Reconciler
from localmesh.istio.ambient import enrolment

log = logging.getLogger("localmesh.istio-cni")

PODS = ("", "pods")
NAMESPACES = ("", "namespaces")
HBONE_PORT = 15008
ZTUNNEL_WAIT = 30.0


async def listening(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    return True


class IstioCNI(Reconciler):
    """The CNI plugin (``add``) and the node agent's reconciler over pods and namespaces."""

    name = "istio-cni-node"
    keys = (PODS, NAMESPACES)

    def __init__(self, api: ObjectAPI) -> None:
        super().__init__(api)
        self.ztunnel_wait = ZTUNNEL_WAIT

    # -- the plugin: a pod's network is being set up ---------------------------------------
    async def add(self, pod: dict, pod_ip: str, local_ip: str) -> bool:
        meta = pod["metadata"]
        ns = self.api.store.get(NAMESPACES, "", meta["namespace"])
        if not enrolment.wants_ambient(ns, pod):
            return False
        self._annotate(meta["namespace"], meta["name"], meta["uid"], {
            enrolment.REDIRECTION: enrolment.ENABLED,
            enrolment.POD_NETWORK: enrolment.REDIRECTED})
        # istiod now gives ztunnel the pod's listeners; answer when ztunnel holds them.
        deadline = time.monotonic() + self.ztunnel_wait
        while time.monotonic() < deadline:
            if await listening(pod_ip, HBONE_PORT):
                return True
            await asyncio.sleep(0.02)
        log.warning("istio-cni: ztunnel did not take %s/%s within %.0fs; its programs are "
                    "redirected and wait for it", meta["namespace"], meta["name"],
                    self.ztunnel_wait)
        return True

    # -- the agent: labels change ------------------------------------------------------------
    def reconcile(self) -> None:
        store = self.api.store
        namespaces = {n["metadata"]["name"]: n for n in store.scan(NAMESPACES)}
        for pod in store.scan(PODS):
            meta = pod["metadata"]
            if meta.get("deletionTimestamp") or not enrolment.behind_local_address(pod):
                continue
            want = enrolment.wants_ambient(namespaces.get(meta["namespace"]), pod)
            if want != enrolment.redirected(pod):
                value = enrolment.ENABLED if want else None
                log.info("istio-cni: %s %s/%s %s the ambient mesh", "adding" if want else
                         "removing", meta["namespace"], meta["name"], "to" if want else "from")
                self._annotate(meta["namespace"], meta["name"], meta["uid"],
                               {enrolment.REDIRECTION: value})

    def _annotate(self, namespace: str, name: str, uid: str,
                  values: dict[str, str | None]) -> None:
        rt = self.api.rt("v1", "Pod")
        for _ in range(5):
            pod = self.api.store.get(PODS, namespace, name)
            if pod is None or pod["metadata"]["uid"] != uid:
                return
            body = copy.deepcopy(pod)
            annotations = body["metadata"].setdefault("annotations", {})
            for k, v in values.items():
                if v is None:
                    annotations.pop(k, None)
                else:
                    annotations[k] = v
            if body == pod:
                return
            try:
                self.api.update(rt, namespace, name, body)
                return
            except ApiError as exc:
                if exc.code == 404:
                    return
                if exc.code != 409:
                    raise

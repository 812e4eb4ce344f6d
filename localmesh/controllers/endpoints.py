"""Endpoints and EndpointSlices from Services and Pods, as the endpoints and
endpointslice controllers build them: ready pods under ``addresses``, unready ones under
``notReadyAddresses``; a named targetPort resolves to the pod's container port of that
name."""

from __future__ import annotations

import hashlib

from localmesh.api.objects import ObjectAPI
from localmesh.api.status import ApiError
from localmesh.controllers.base import Reconciler
from localmesh.controllers.workloads import alive, pod_ready

SERVICES = ("", "services")
PODS = ("", "pods")
ENDPOINTS = ("", "endpoints")
SLICES = ("discovery.k8s.io", "endpointslices")
CONTROLLER = "endpointslice-controller.k8s.io"


def _target_port(pod: dict, target: object) -> int | None:
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in pod.get("spec", {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return p.get("containerPort")
    return None


def _labels_match(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


class EndpointsController(Reconciler):
    name = "endpoints-controller"
    keys = (SERVICES, PODS)

    def reconcile(self) -> None:
        api: ObjectAPI = self.api
        ep_rt = api.rt("v1", "Endpoints")
        slice_rt = api.rt("discovery.k8s.io/v1", "EndpointSlice")
        pods = [p for p in api.store.scan(PODS) if p.get("status", {}).get("podIP")
                and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
        services = api.store.scan(SERVICES)
        wanted: set[tuple[str, str]] = set()
        for svc in services:
            sel = svc.get("spec", {}).get("selector")
            if not sel or not alive(svc):
                continue
            ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            wanted.add((ns, name))
            members = [p for p in pods if p["metadata"].get("namespace") == ns
                       and _labels_match(sel, p["metadata"].get("labels") or {})]
            subsets = self._subsets(svc, members)
            body = {"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": ns,
                                 "labels": dict(svc["metadata"].get("labels") or {})},
                    "subsets": subsets}
            if not subsets:
                body.pop("subsets")
            self._put(api, ep_rt, ENDPOINTS, body)
            self._put(api, slice_rt, SLICES, self._slice(svc, members))
        # A set, not a scan per object: a mesh of thousands of Services reconciles in
        # milliseconds (localmesh/synthetic.py).
        existing = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in services}
        for ep in api.store.scan(ENDPOINTS):
            key = (ep["metadata"]["namespace"], ep["metadata"]["name"])
            if key in wanted or key in existing:
                continue  # ours, or a selector-less Service's own (kept, as upstream)
            if ep["metadata"].get("labels", {}).get("endpoints.localmesh.io/managed") != "false":
                self._delete(api, ep_rt, key)
        for sl in api.store.scan(SLICES):
            labels = sl["metadata"].get("labels", {})
            svc_name = labels.get("kubernetes.io/service-name")
            # Only the controller's own slices: a user's (a Service without a selector)
            # carry another managed-by and are left alone, as the endpointslice controller
            # does.
            if labels.get("endpointslice.kubernetes.io/managed-by") != CONTROLLER:
                continue
            if svc_name and (sl["metadata"]["namespace"], svc_name) not in wanted:
                self._delete(api, slice_rt, (sl["metadata"]["namespace"], sl["metadata"]["name"]))

    @staticmethod
    def _subsets(svc: dict, members: list[dict]) -> list[dict]:
        groups: dict[tuple, dict] = {}
        for pod in members:
            ports = []
            for sp in svc["spec"].get("ports") or []:
                tp = _target_port(pod, sp.get("targetPort", sp.get("port")))
                if tp is None:
                    continue
                port = {"port": tp, "protocol": sp.get("protocol", "TCP")}
                if sp.get("name"):
                    port["name"] = sp["name"]
                if sp.get("appProtocol"):
                    port["appProtocol"] = sp["appProtocol"]
                ports.append(port)
            if not ports:
                continue
            key = tuple(sorted((p.get("name", ""), p["port"]) for p in ports))
            group = groups.setdefault(key, {"ports": ports})
            addr = {"ip": pod["status"]["podIP"], "nodeName": pod["spec"].get("nodeName",
                                                                                 "localmesh"),
                    "targetRef": {"kind": "Pod", "namespace": pod["metadata"]["namespace"],
                                  "name": pod["metadata"]["name"],
                                  "uid": pod["metadata"]["uid"]}}
            pspec = pod.get("spec") or {}
            if pspec.get("hostname") and pspec.get("subdomain") == svc["metadata"]["name"]:
                # A StatefulSet pod's stable name under its governing Service (upstream's
                # endpoints controller sets the address's hostname the same way).
                addr["hostname"] = pspec["hostname"]
            ready = pod_ready(pod) and alive(pod)
            group.setdefault("addresses" if ready else "notReadyAddresses", []).append(addr)
        out = []
        for g in groups.values():
            for k in ("addresses", "notReadyAddresses"):
                if k in g:
                    g[k].sort(key=lambda a: a["ip"])
            out.append({k: g[k] for k in ("addresses", "notReadyAddresses", "ports") if k in g})
        return out

    @staticmethod
    def _slice(svc: dict, members: list[dict]) -> dict:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        suffix = hashlib.sha1(f"{ns}/{name}".encode()).hexdigest()[:5]
        ports = []
        for sp in svc["spec"].get("ports") or []:
            tp = None
            for pod in members:
                tp = _target_port(pod, sp.get("targetPort", sp.get("port")))
                if tp:
                    break
            port = {"name": sp.get("name", ""), "port": tp or sp.get("port"),
                    "protocol": sp.get("protocol", "TCP")}
            if sp.get("appProtocol"):
                port["appProtocol"] = sp["appProtocol"]
            ports.append(port)
        endpoints = []
        for pod in sorted(members, key=lambda p: p["status"]["podIP"]):
            ready = pod_ready(pod) and alive(pod)
            endpoints.append({
                "addresses": [pod["status"]["podIP"]],
                "conditions": {"ready": ready, "serving": pod_ready(pod),
                               "terminating": not alive(pod)},
                "nodeName": pod["spec"].get("nodeName", "localmesh"),
                "targetRef": {"kind": "Pod", "namespace": ns, "name": pod["metadata"]["name"],
                              "uid": pod["metadata"]["uid"]},
            })
        return {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-{suffix}", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": name,
                                    "endpointslice.kubernetes.io/managed-by": CONTROLLER},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Service",
                                              "name": name, "uid": svc["metadata"]["uid"],
                                              "controller": True,
                                              "blockOwnerDeletion": True}]},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": ports,
        }

    @staticmethod
    def _put(api: ObjectAPI, rt, key, body: dict) -> None:
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        cur = api.store.get(key, ns, name)
        try:
            if cur is None:
                api.create(rt, ns, body)
                return
            merged = dict(cur)
            for k, v in body.items():
                if k != "metadata":
                    merged[k] = v
            if "subsets" not in body:
                merged.pop("subsets", None)
            merged["metadata"] = {**cur["metadata"], "labels": body["metadata"].get("labels")}
            if merged != cur:
                api.update(rt, ns, name, merged, check_version=False)
        except ApiError as exc:
            if exc.code not in (403, 404, 409):
                raise

    @staticmethod
    def _delete(api: ObjectAPI, rt, key: tuple[str, str]) -> None:
        try:
            api.delete(rt, key[0], key[1])
        except ApiError as exc:
            if exc.code != 404:
                raise

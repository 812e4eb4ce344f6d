"""Waypoints: the ``istio-waypoint`` GatewayClass and Istio's automated deployment of its
Gateways (what ``istioctl waypoint apply`` asks for).

After istio/istio ``pilot/pkg/config/kube/gateway`` (``deploymentcontroller.go``, the
``waypoint.yaml`` template of the istio-discovery chart) and ``gatewayclass.go``:

- the GatewayClass ``istio-waypoint`` (``controllerName: istio.io/mesh-controller``, "The
  default Istio waypoint GatewayClass"), created with istiod in the ambient profile;
- for each Gateway of that class: a ServiceAccount, a Service (ClusterIP; ``status-port``
  15021 and ``mesh`` 15008, appProtocol ``all``) and a Deployment named after the Gateway
  (no ``-istio`` suffix for waypoints), owned by it, labelled
  ``gateway.networking.k8s.io/gateway-name`` and ``istio.io/dataplane-mode: none`` (a
  waypoint is never itself redirected), its pod pilot-agent in ``waypoint`` mode with the
  proxy container's environment and security volumes;
- the Gateway's status: ``Accepted``, and ``Programmed`` with the Service's address once the
  waypoint's pod is Ready.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

from localmesh.api.objects import ObjectAPI
from localmesh.controllers.base import Reconciler
from localmesh.istio.ambient import enrolment
from localmesh.istio.ambient.model import WAYPOINT_CLASS
from localmesh.istio.gatewayapi.crds import GATEWAY_CLASSES, GATEWAYS, GROUP
from localmesh.istio.gatewayapi.deployment import (
    CLASS_NAME,
    DEPLOYMENTS,
    GATEWAY_NAME,
    SERVICE_ACCOUNTS,
    GatewayDeployments,
    _keep_allocations,
    _pod_metadata,
    _service_fields,
)
from localmesh.istio.gatewayapi.model import SERVICES
from localmesh.store import now_rfc3339

MESH_CONTROLLER = "istio.io/mesh-controller"
CLASS_DESCRIPTION = "The default Istio waypoint GatewayClass"
PODS = ("", "pods")


def waypoint_class() -> dict:
    return {"apiVersion": f"{GROUP}/v1", "kind": "GatewayClass",
            "metadata": {"name": WAYPOINT_CLASS},
            "spec": {"controllerName": MESH_CONTROLLER, "description": CLASS_DESCRIPTION}}


@dataclass
class _Waypoint:
    """A Gateway of class istio-waypoint, as the deployment helpers read a Gateway."""

    obj: dict

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def deployment_name(self) -> str:
        return self.name


class WaypointDeployments(Reconciler):
    """Deploys every Gateway of class ``istio-waypoint`` and writes its status, with the
    Gateway API controller's way of rendering and applying the three objects (``rendering``,
    never started itself)."""

    name = "waypoint-deployment-controller"
    keys = (GATEWAYS, GATEWAY_CLASSES, SERVICES, DEPLOYMENTS, SERVICE_ACCOUNTS, PODS)

    def __init__(self, api: ObjectAPI, template: dict | Callable[[], dict]) -> None:
        super().__init__(api)
        self.rendering = GatewayDeployments(api, template)
        self.template = self.rendering.template
        self._apply = self.rendering._apply
        self._meta = self.rendering._meta
        self.service_account = self.rendering.service_account

    def reconcile(self) -> None:
        for gw in self.api.store.scan(GATEWAYS):
            if (gw.get("spec") or {}).get("gatewayClassName") != WAYPOINT_CLASS or \
                    gw["metadata"].get("deletionTimestamp"):
                continue
            wp = _Waypoint(gw)
            self._apply(self.service_account(wp))  # type: ignore[arg-type]
            self._apply(self.waypoint_service(wp), _service_fields, _keep_allocations)
            self._apply(self.waypoint_deployment(wp), _pod_metadata)
            self._status(wp)

    def waypoint_service(self, wp: _Waypoint) -> dict:
        meta = self._meta(wp)  # type: ignore[arg-type]
        return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
                "spec": {"type": "ClusterIP", "selector": {GATEWAY_NAME: wp.name},
                         "ports": [{"name": "status-port", "port": 15021, "protocol": "TCP",
                                    "appProtocol": "tcp"},
                                   {"name": "mesh", "port": 15008, "protocol": "TCP",
                                    "appProtocol": "all"}]}}

    def waypoint_deployment(self, wp: _Waypoint) -> dict:
        meta = self._meta(wp, (enrolment.DATAPLANE_MODE, enrolment.NONE))  # type: ignore[arg-type]
        # The gateway's pod as the revision that controls Gateways renders it now (mesh.py's
        # ``gateway_pod_template``), or a fixed template (tests).
        pod = copy.deepcopy(self.template() if callable(self.template) else self.template)
        revision = ((pod.get("metadata") or {}).get("annotations") or {}).get(
            "istio.io/rev") or "default"
        labels = {"sidecar.istio.io/inject": "false",
                  "service.istio.io/canonical-name": wp.name,
                  "service.istio.io/canonical-revision": "latest", **meta["labels"]}
        pod["metadata"] = {"labels": labels, "annotations": {
            "istio.io/rev": revision, "prometheus.io/path": "/stats/prometheus",
            "prometheus.io/port": "15020", "prometheus.io/scrape": "true"}}
        spec = pod["spec"]
        spec["serviceAccountName"] = wp.name
        container = spec["containers"][0]
        container["args"] = ["proxy", "waypoint", "--domain",
                             "$(POD_NAMESPACE).svc.cluster.local", "--proxyLogLevel=warning",
                             "--proxyComponentLogLevel=misc:error",
                             "--log_output_level=default:info"]
        container["ports"] = [{"containerPort": 15020, "name": "metrics", "protocol": "TCP"},
                              {"containerPort": 15021, "name": "status-port", "protocol": "TCP"},
                              {"containerPort": 15008, "name": "hbone", "protocol": "TCP"},
                              {"containerPort": 15090, "name": "http-envoy-prom",
                               "protocol": "TCP"}]
        owner = f"kubernetes://apis/apps/v1/namespaces/{wp.namespace}/deployments/{wp.name}"
        values = {"ISTIO_META_WORKLOAD_NAME": wp.name, "ISTIO_META_OWNER": owner,
                  "ISTIO_META_CANONICAL_SERVICE": wp.name,
                  "ISTIO_META_CANONICAL_REVISION": "latest"}
        container["env"] = [{**e, "value": values[e["name"]]} if e["name"] in values else e
                            for e in container.get("env") or []
                            if e["name"] not in ("ISTIO_META_APP", "ISTIO_META_ROUTER_MODE")]
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                "spec": {"replicas": 1, "selector": {"matchLabels": {GATEWAY_NAME: wp.name}},
                         "template": pod}}

    def _status(self, wp: _Waypoint) -> None:
        api = self.api
        svc = api.store.get(SERVICES, wp.namespace, wp.name) or {}
        ip = (svc.get("spec") or {}).get("clusterIP")
        ready = any(any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (p.get("status") or {}).get("conditions") or [])
                    for p in api.store.scan(PODS, wp.namespace)
                    if (p["metadata"].get("labels") or {}).get(GATEWAY_NAME) == wp.name)
        gen = wp.obj["metadata"].get("generation", 1)
        old = {c["type"]: c for c in (wp.obj.get("status") or {}).get("conditions") or []}

        def cond(kind: str, ok: bool, reason: str, message: str) -> dict:
            status = "True" if ok else "False"
            prev = old.get(kind)
            when = prev["lastTransitionTime"] if prev and prev.get("status") == status \
                else now_rfc3339()
            return {"type": kind, "status": status, "reason": reason, "message": message,
                    "observedGeneration": gen, "lastTransitionTime": when}

        host = f"{wp.name}.{wp.namespace}.svc.cluster.local"
        status = {"conditions": [
            cond("Accepted", True, "Accepted", "Resource accepted"),
            cond("Programmed", bool(ready and ip), "Programmed" if ready and ip else
                 "AddressNotUsable", f"Resource programmed, assigned to service(s) "
                 f"{host}:15008" if ready and ip else "Waypoint is not ready")],
            "addresses": [{"type": "IPAddress", "value": ip},
                          {"type": "Hostname", "value": host}] if ip else [],
            "listeners": [{"name": ls.get("name", "mesh"), "attachedRoutes": 0,
                           "supportedKinds": [],
                           "conditions": [cond("Accepted", True, "Accepted", "No errors found"),
                                          cond("Programmed", True, "Programmed",
                                               "No errors found")]}
                          for ls in (wp.obj.get("spec") or {}).get("listeners") or []]}
        if status != (wp.obj.get("status") or {}):
            api.set_status(api.rt(f"{GROUP}/v1", "Gateway"), wp.obj, status)


__all__ = ["CLASS_NAME", "WaypointDeployments", "waypoint_class"]

"""Istio's automated deployment of a Gateway: a ServiceAccount, a Deployment and a Service
named ``<gateway>-istio`` in the Gateway's namespace, owned by the Gateway.

After istio/istio ``pilot/pkg/config/kube/gateway/deploymentcontroller.go`` and the
template it renders, ``manifests/charts/istio-control/istio-discovery/files/
kube-gateway.yaml`` (compared with ``pilot/pkg/config/kube/gateway/testdata/deployment/
simple.yaml``):

- labels ``gateway.networking.k8s.io/gateway-name``, ``gateway.networking.k8s.io/
  gateway-class-name``, ``gateway.istio.io/managed: istio.io-gateway-controller`` and the
  Gateway's ``spec.infrastructure`` labels and annotations on all three; the Deployment
  selects its pods by ``gateway.networking.k8s.io/gateway-name`` (Istio dropped
  ``istio.io/gateway-name`` for deployments created since 1.24), which also carry
  ``sidecar.istio.io/inject: "false"`` and the canonical service labels;
- ``ownerReferences`` to the Gateway (``gateway.networking.k8s.io/v1``), so deleting the
  Gateway deletes them (the garbage collector, localmesh/controllers/lifecycle.py);
- the pod runs the proxy image's pilot-agent in router mode with the installer's gateway
  container (localmesh/istio/mesh.py), with the container ports Istio's template declares
  (15020 metrics, 15021 status-port, 15090 http-envoy-prom): the listeners' ports are
  the Service's, not the container's, so a new listener re-programs Envoy over xDS
  without restarting the pod;
- the Service: ``status-port`` 15021 then one port per distinct listener port, named
  after the listener, ``appProtocol`` its protocol in lower case; type LoadBalancer unless
  the Gateway's ``networking.istio.io/service-type`` annotation says otherwise.

Istio's pod binds the listener ports itself (its template lowers
``net.ipv4.ip_unprivileged_port_start``). A localmesh that cannot bind ports below 1024
gives such a Service port a ``targetPort`` of 8000 more (as Istio's own ingress gateway
chart maps 80 to 8080), and the gateway's listener binds that: the one difference, in
docs/localmesh.md.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

from localmesh.api.objects import ObjectAPI
from localmesh.api.status import ApiError
from localmesh.controllers.base import Reconciler
from localmesh.istio.gatewayapi.binding import Gateway, bind
from localmesh.istio.gatewayapi.crds import GATEWAY_CLASSES, GATEWAYS, GROUP
from localmesh.istio.gatewayapi.model import SERVICES, snapshot

DEPLOYMENTS = ("apps", "deployments")
SERVICE_ACCOUNTS = ("", "serviceaccounts")
GATEWAY_NAME = f"{GROUP}/gateway-name"
CLASS_NAME = f"{GROUP}/gateway-class-name"
MANAGED = ("gateway.istio.io/managed", "istio.io-gateway-controller")
SERVICE_TYPE = "networking.istio.io/service-type"
# Annotations Istio's template leaves off the objects it renders from the Gateway's.
OMITTED = ("kubectl.kubernetes.io/last-applied-configuration", "gateway.istio.io/name-override",
           "gateway.istio.io/service-account", "gateway.istio.io/controller-version")
CONTAINER_PORTS = [{"containerPort": 15020, "name": "metrics", "protocol": "TCP"},
                   {"containerPort": 15021, "name": "status-port", "protocol": "TCP"},
                   {"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}]


def _unprivileged_port_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        return 1024


def _can_bind_service_ports() -> bool:
    """CAP_NET_BIND_SERVICE (capability 10) in this process's effective set (root has it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << 10))
    except (OSError, ValueError):
        pass
    return False


def low_port_bindable(port: int) -> bool:
    """Can the pods localmesh starts (its own children, with its privileges) bind ``port``?"""
    return port >= _unprivileged_port_start() or _can_bind_service_ports()


class GatewayDeployments(Reconciler):
    """Keeps every Gateway of an istiod-managed class deployed.

    ``template`` is the installer's ingress gateway pod template, whose container (the
    proxy image, pilot-agent in router mode, its environment and volumes) each Gateway's
    pod reuses — or a function returning it as the revision that controls Gateways renders
    it now (mesh.py), whose ``istio.io/rev`` annotation the pods carry;
    ``bindable`` says whether a pod may bind a port (tests pass their own).
    """

    name = "gateway-deployment-controller"
    keys = (GATEWAYS, GATEWAY_CLASSES, SERVICES, DEPLOYMENTS, SERVICE_ACCOUNTS)

    def __init__(self, api: ObjectAPI, template: dict | Callable[[], dict],
                 bindable: Callable[[int], bool] = low_port_bindable) -> None:
        super().__init__(api)
        self.template = template if callable(template) else copy.deepcopy(template)
        self.bindable = bindable

    def reconcile(self) -> None:
        for gw in bind(snapshot(self.api.store)).gateways.values():
            self._apply(self.service_account(gw))
            self._apply(self.service(gw), _service_fields, _keep_allocations)
            self._apply(self.deployment(gw), _pod_metadata)

    # -- the three objects ---------------------------------------------------------------
    def _meta(self, gw: Gateway, *extra: tuple[str, str]) -> dict:
        infra = (gw.obj.get("spec") or {}).get("infrastructure") or {}
        labels = {**(infra.get("labels") or {}), GATEWAY_NAME: gw.name,
                  CLASS_NAME: gw.obj["spec"]["gatewayClassName"], MANAGED[0]: MANAGED[1],
                  **dict(extra)}
        annotations = {k: v for k, v in (infra.get("annotations") or {}).items()
                       if k not in OMITTED}
        meta = {"name": gw.deployment_name, "namespace": gw.namespace, "labels": labels,
                "ownerReferences": [{"apiVersion": f"{GROUP}/v1", "kind": "Gateway",
                                     "name": gw.name, "uid": gw.obj["metadata"]["uid"]}]}
        if annotations:
            meta["annotations"] = annotations
        return meta

    def service_account(self, gw: Gateway) -> dict:
        return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": self._meta(gw)}

    def service(self, gw: Gateway) -> dict:
        listener_ports = sorted({ls.port for ls in gw.listeners})
        ports: list[dict] = [{"name": "status-port", "port": 15021, "protocol": "TCP",
                              "appProtocol": "tcp"}]
        seen: set[int] = set()
        for i, ls in enumerate(gw.listeners):
            if ls.port in seen:
                continue
            seen.add(ls.port)
            port = {"name": ls.name or f"{ls.protocol.lower()}-{i}", "port": ls.port,
                    "protocol": "TCP", "appProtocol": ls.protocol.lower()}
            if not self.bindable(ls.port):
                target = ls.port + 8000
                while target in listener_ports:
                    target += 1
                port["targetPort"] = target
            ports.append(port)
        annotations = gw.obj["metadata"].get("annotations") or {}
        return {"apiVersion": "v1", "kind": "Service", "metadata": self._meta(gw),
                "spec": {"ipFamilyPolicy": "PreferDualStack", "ports": ports,
                         "selector": {GATEWAY_NAME: gw.name},
                         "type": annotations.get(SERVICE_TYPE, "LoadBalancer")}}

    def deployment(self, gw: Gateway) -> dict:
        meta = self._meta(gw, ("istio.io/dataplane-mode", "none"))
        pod_labels = {"sidecar.istio.io/inject": "false",
                      "service.istio.io/canonical-name": gw.deployment_name,
                      "service.istio.io/canonical-revision": "latest", **meta["labels"]}
        pod = copy.deepcopy(self.template() if callable(self.template) else self.template)
        revision = ((pod.get("metadata") or {}).get("annotations") or {}).get(
            "istio.io/rev") or "default"
        pod["metadata"] = {"labels": pod_labels, "annotations": {
            **meta.get("annotations", {}), "istio.io/rev": revision,
            "prometheus.io/path": "/stats/prometheus", "prometheus.io/port": "15020",
            "prometheus.io/scrape": "true"}}
        spec = pod["spec"]
        spec["serviceAccountName"] = gw.deployment_name
        spec["securityContext"] = {"sysctls": [
            {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]}
        container = spec["containers"][0]
        container["ports"] = copy.deepcopy(CONTAINER_PORTS)
        owner = f"kubernetes://apis/apps/v1/namespaces/{gw.namespace}/deployments/" \
                f"{gw.deployment_name}"
        values = {"ISTIO_META_WORKLOAD_NAME": gw.deployment_name, "ISTIO_META_OWNER": owner,
                  "ISTIO_META_CANONICAL_SERVICE": gw.deployment_name,
                  "ISTIO_META_CANONICAL_REVISION": "latest"}
        container["env"] = [{**e, "value": values[e["name"]]} if e["name"] in values else e
                            for e in container.get("env") or []
                            if e["name"] != "ISTIO_META_APP"]  # the pods have no app label
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                "spec": {"replicas": 1, "selector": {"matchLabels": {GATEWAY_NAME: gw.name}},
                         "template": pod}}

    # -- applying ------------------------------------------------------------------------
    def _apply(self, want: dict, owned: Callable[[dict], object] | None = None,
               merge: Callable[[dict, dict], None] | None = None) -> None:
        """Create ``want``, or bring back what Istio renders: labels, annotations, owners,
        and the spec when the fields ``owned`` picks from it differ (compared that way, not
        whole, since the API server adds its defaults to what it stores)."""
        api = self.api
        rt = api.rt(want["apiVersion"], want["kind"])
        meta = want["metadata"]
        have = api.store.get(rt.key, meta["namespace"], meta["name"])
        try:
            if have is None:
                api.create(rt, meta["namespace"], want)
                return
            body = copy.deepcopy(have)
            for k in ("labels", "annotations"):
                if k in meta:
                    body["metadata"][k] = {**(have["metadata"].get(k) or {}), **meta[k]}
            body["metadata"]["ownerReferences"] = meta["ownerReferences"]
            if owned is not None and owned(want["spec"]) != owned(have.get("spec") or {}):
                spec = copy.deepcopy(want["spec"])
                if merge is not None:
                    merge(have, spec)
                body["spec"] = {**(have.get("spec") or {}), **spec}
            if body == have:
                return
            body["metadata"]["resourceVersion"] = None
            api.update(rt, meta["namespace"], meta["name"], body, check_version=False)
        except ApiError as exc:
            if exc.code not in (403, 404, 409):  # the namespace or the object is going
                raise


def _service_fields(spec: dict) -> tuple:
    """What of a Service the controller owns: type, selector, and each port's name,
    number, target and appProtocol (targetPort defaults to the port)."""
    return (spec.get("type", "ClusterIP"), spec.get("selector"),
            [(p.get("name"), p["port"], str(p.get("targetPort", p["port"])),
              p.get("appProtocol")) for p in spec.get("ports") or []])


def _pod_metadata(spec: dict) -> object:
    """What of a Deployment's spec the controller reconciles after creating it: its pods'
    labels and annotations (a change rolls the pods, as re-applying Istio's template does)."""
    return (spec.get("template") or {}).get("metadata")


def _keep_allocations(have: dict, spec: dict) -> None:
    """A Service keeps its clusterIP and, where its type still has them, its nodePorts."""
    old = have.get("spec") or {}
    if old.get("clusterIP"):
        spec["clusterIP"] = old["clusterIP"]
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        node_ports = {p["port"]: p.get("nodePort") for p in old.get("ports") or []}
        for p in spec["ports"]:
            if node_ports.get(p["port"]):
                p["nodePort"] = node_ports[p["port"]]

"""``istioctl install --set profile=ambient``: the sidecar mesh's control plane and addons,
plus the ambient data plane's DaemonSets.

What the ambient profile adds (istio/istio ``manifests/profiles/ambient.yaml`` and the
``ztunnel`` and ``cni`` charts): DaemonSet ``istio-cni-node`` (ServiceAccount
``istio-cni``, container ``install-cni``, readiness ``/readyz`` on 8000) and DaemonSet
``ztunnel`` (ServiceAccount ``ztunnel``, container ``istio-proxy`` running ``proxy
ztunnel``, readiness ``/healthz/ready`` on 15021, metrics on 15020 with the
``prometheus.io`` annotations, the ``istio-token`` and ``istiod-ca-cert`` volumes), both
labelled ``istio.io/dataplane-mode: none`` so they are never redirected themselves; and
istiod with ``PILOT_ENABLE_AMBIENT``. Sidecar injection stays available, as in Istio's
ambient profile, for namespaces labelled ``istio-injection=enabled``. The GatewayClass
``istio-waypoint`` comes with istiod.
"""

from __future__ import annotations

import asyncio
import time

from localmesh.api.objects import ObjectAPI
from localmesh.istio.ambient import enrolment
from localmesh.istio.ambient.cni import IstioCNI
from localmesh.istio.ambient.waypoints import WaypointDeployments, waypoint_class
from localmesh.istio.injector import ISTIO_VERSION
from localmesh.istio.mesh import NS, Mesh
from localmesh.istio.names import ISTIOD_HOST
from localmesh.istio.security.ca_server import TokenReview

ZTUNNEL_IMAGE = f"docker.io/istio/ztunnel:{ISTIO_VERSION}"
CNI_IMAGE = f"docker.io/istio/install-cni:{ISTIO_VERSION}"
ZTUNNEL_SA, CNI_SA = "ztunnel", "istio-cni"
DAEMONSETS = ("apps", "daemonsets")


def _field(name: str, path: str) -> dict:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _daemonset(name: str, labels: dict, container: dict, *, annotations: dict,
               volumes: list[dict], service_account: str) -> dict:
    labels = {**labels, enrolment.DATAPLANE_MODE: enrolment.NONE,
              "sidecar.istio.io/inject": "false"}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": NS, "labels": dict(labels)},
            "spec": {"selector": {"matchLabels": {"app": labels["app"]}},
                     "updateStrategy": {"type": "RollingUpdate",
                                        "rollingUpdate": {"maxUnavailable": 1}},
                     "template": {"metadata": {"labels": labels, "annotations": annotations},
                                  "spec": {"containers": [container],
                                           "serviceAccountName": service_account,
                                           "volumes": volumes,
                                           "terminationGracePeriodSeconds": 2}}}}


def ztunnel_daemonset() -> dict:
    """The ztunnel chart's DaemonSet (manifests/charts/ztunnel/templates/daemonset.yaml)."""
    container = {
        "name": "istio-proxy", "image": ZTUNNEL_IMAGE, "args": ["proxy", "ztunnel"],
        "env": [{"name": "CA_ADDRESS", "value": f"{ISTIOD_HOST}:15012"},
                # localmesh's proxies take plaintext xDS on 15010 (controlPlaneAuthPolicy
                # NONE; docs/localmesh.md); ztunnel's chart points at 15012.
                {"name": "XDS_ADDRESS", "value": f"{ISTIOD_HOST}:15010"},
                {"name": "RUST_LOG", "value": "info"},
                {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
                {"name": "INPOD_ENABLED", "value": "true"},
                {"name": "TRUST_DOMAIN", "value": "cluster.local"},
                _field("POD_NAME", "metadata.name"), _field("POD_NAMESPACE", "metadata.namespace"),
                _field("NODE_NAME", "spec.nodeName"), _field("INSTANCE_IP", "status.podIP"),
                _field("SERVICE_ACCOUNT", "spec.serviceAccountName")],
        "ports": [{"containerPort": 15020, "name": "ztunnel-stats", "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021},
                           "periodSeconds": 2, "timeoutSeconds": 3},
        "volumeMounts": [{"name": "istiod-ca-cert", "mountPath": "/var/run/secrets/istio"},
                         {"name": "istio-token", "mountPath": "/var/run/secrets/tokens"},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    volumes = [{"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
                   "audience": "istio-ca", "expirationSeconds": 43200,
                   "path": "istio-token"}}]}},
               {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}},
               {"name": "tmp", "emptyDir": {}}]
    return _daemonset("ztunnel", {"app": "ztunnel"}, container, annotations={
        "prometheus.io/scrape": "true", "prometheus.io/port": "15020",
        "sidecar.istio.io/inject": "false"}, volumes=volumes, service_account=ZTUNNEL_SA)


def cni_daemonset() -> dict:
    """The cni chart's DaemonSet (manifests/charts/istio-cni/templates/daemonset.yaml)."""
    container = {
        "name": "install-cni", "image": CNI_IMAGE, "command": ["install-cni"],
        "args": ["--log_output_level=info"],
        "env": [{"name": "AMBIENT_ENABLED", "value": "true"},
                _field("NODE_NAME", "spec.nodeName"), _field("POD_NAME", "metadata.name"),
                _field("POD_NAMESPACE", "metadata.namespace")],
        "ports": [{"containerPort": 15014, "name": "metrics", "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8000},
                           "periodSeconds": 2, "timeoutSeconds": 3},
    }
    return _daemonset("istio-cni-node", {"app": "istio-cni-node", "k8s-app": "istio-cni-node"},
                      container, annotations={"sidecar.istio.io/inject": "false"},
                      volumes=[], service_account=CNI_SA)


class AmbientMesh(Mesh):
    """The mesh of ``localmesh --mesh ambient``: the sidecar mesh's installation, then the
    ambient profile's DaemonSets and istio-cni's node agent. ``cni`` is the node agent
    the kubelet was given as its chained network plugin (localmesh/instance.py)."""

    def __init__(self, api: ObjectAPI, istiod_address: str, prometheus_sd_url: str,
                 token_review: TokenReview, cni: IstioCNI) -> None:
        super().__init__(api, istiod_address, prometheus_sd_url, token_review)
        self.cni = cni
        self.waypoints: WaypointDeployments | None = None

    def proxy_config(self) -> dict:
        """The ambient profile's ``meshConfig.defaultConfig``: every proxy (gateways,
        sidecars) speaks HBONE to pods in the ambient mesh (``ISTIO_META_ENABLE_HBONE``)."""
        config = super().proxy_config()
        config["proxyMetadata"] = {**config.get("proxyMetadata", {}),
                                   "ISTIO_META_ENABLE_HBONE": "true"}
        return config

    async def install(self) -> None:
        await super().install()
        for sa in (ZTUNNEL_SA, CNI_SA):
            self._create({"apiVersion": "v1", "kind": "ServiceAccount",
                          "metadata": {"name": sa, "namespace": NS}})
        self._create(cni_daemonset())
        self._create(ztunnel_daemonset())
        self.cni.start()
        # Waypoints: their class, and their deployments from the gateway's pod template.
        self._create(waypoint_class())
        self.waypoints = WaypointDeployments(self.api, self.gateway_pod_template)
        self.waypoints.start()

    async def wait_ready(self, timeout: float = 30.0) -> list[str]:
        """The Deployments, then the DaemonSets, Ready; the names of those that are not."""
        start = time.monotonic()
        pending = await super().wait_ready(timeout)
        deadline = start + timeout
        while True:
            waiting = [d["metadata"]["name"] for d in self.api.store.list(DAEMONSETS, NS)
                       if (d.get("status") or {}).get("numberReady", 0) < 1]
            if not waiting or time.monotonic() >= deadline:
                return pending + waiting
            await asyncio.sleep(0.02)

    async def uninstall(self) -> None:
        if self.waypoints is not None:
            await self.waypoints.stop()
        await self.cni.stop()
        await super().uninstall()

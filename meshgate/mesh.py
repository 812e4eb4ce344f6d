"""What the cluster's mesh offers, discovered from the cluster (capabilities, not branches).

The one module that answers "what does this cluster have"; checks ask it, never a flag.

- The control plane's namespace: ``istio-system`` where istiod runs there (every install
  method's default), else the namespace of a Deployment labelled ``app=istiod`` (Istio's
  chart labels, manifests/charts/istio-control/istio-discovery) found cluster-wide, where
  the suite may list Deployments cluster-wide.
- Istio's version from istiod's (or 1.x's ``istio-pilot``'s) image tag. A Mixer-era mesh
  (Istio < 1.8 with an ``istio-telemetry``/``istio-mixer`` Deployment) is checked through
  its mixer: Mixer's Prometheus adapter reports ``istio_requests_total`` with the 1.x
  label set (scraped as job ``istio-mesh``) and its stdio adapter logs each request
  (meshgate/mixer.py). What the suite cannot check is reported as unsupported: Istio 0.x
  (its metrics were ``istio_request_count`` with other labels), and a Mixer-era mesh
  whose telemetry mixer is not installed (no istio_requests_total anywhere).
- The ingress gateway: the Service labelled ``istio=ingressgateway`` in the control
  plane's namespace (``istio-ingressgateway`` in every profile that has one).
- Addons: Prometheus, Kiali and the servicegraph addon, by their Services; on OpenShift
  without the Prometheus addon, the monitoring stack's ``thanos-querier`` Route.
- OpenShift and OpenShift Service Mesh 2.x/3.x by discovery (meshgate/platform.py).
- The mesh config (the ``mesh`` key of the ``istio`` ConfigMap every install writes in the
  control plane's namespace): auto mTLS (``enableAutoMtls``, on by default since Istio
  1.5), the trust domain of the SPIFFE identities, the root namespace.
- The Gateway API: its ``gateway.networking.k8s.io/v1`` kinds and the ``istio``
  GatewayClass.
- Ambient mode: a ``ztunnel`` DaemonSet in the control plane's namespace (``istioctl
  install --set profile=ambient``); and per namespace, its data plane (:func:`data_plane`):
  ``istio.io/dataplane-mode=ambient`` (ztunnel, and the waypoint its
  ``istio.io/use-waypoint`` label names) or sidecar injection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from meshgate import platform as platforms
from meshgate.cluster import Cluster, ClusterError
from meshgate.platform import Platform


class NotOnThisCluster(Exception):
    """A check needs a capability this cluster does not have (the Gateway API, auto mTLS):
    the scenario is skipped with this reason instead of failing (fixtures.plugins.
    capabilities), because the mesh is not broken — it is another shape."""


DEFAULT_CONTROL_PLANE = "istio-system"
GATEWAY_SELECTOR = "istio=ingressgateway"
GATEWAY_SERVICE = "istio-ingressgateway"
MIXER_DEPLOYMENTS = ("istio-telemetry", "istio-mixer", "istio-policy")
# The Deployments whose mixer receives the proxies' reports (1.x: istio-telemetry; 0.x:
# istio-mixer, which served both).
TELEMETRY_MIXERS = ("istio-telemetry", "istio-mixer")


@dataclass(frozen=True)
class Addon:
    namespace: str
    service: str
    port: int


GATEWAY_API = "gateway.networking.k8s.io/v1"


@dataclass(frozen=True)
class Gateway:
    """An ingress gateway: its Service, the label selector of its pods, and the service
    account they run as (their identity in the mesh)."""

    namespace: str
    service: str = GATEWAY_SERVICE
    selector: str = GATEWAY_SELECTOR
    service_account: str | None = None


@dataclass
class MeshInfo:
    istio_version: str | None
    namespace: str = DEFAULT_CONTROL_PLANE
    prometheus: Addon | None = None
    kiali: Addon | None = None
    servicegraph: Addon | None = None
    openshift: bool = False
    member_roll: bool = False
    mixer: bool = False
    telemetry_mixer: str | None = None
    platform: Platform = field(default_factory=Platform)
    thanos: str | None = None
    gateway: Gateway | None = None
    mesh_config: dict[str, Any] = field(default_factory=dict)
    gateway_api: bool = False
    gateway_class: bool = False
    ambient: bool = False

    @property
    def auto_mtls(self) -> bool:
        """Whether sidecars send mutual TLS to mesh endpoints by themselves (MeshConfig
        ``enableAutoMtls``, true unless an install turned it off)."""
        return bool(self.mesh_config.get("enableAutoMtls", True))

    @property
    def trust_domain(self) -> str:
        return str(self.mesh_config.get("trustDomain") or "cluster.local")

    @property
    def root_namespace(self) -> str:
        """Where mesh-wide policies live (MeshConfig ``rootNamespace``)."""
        return str(self.mesh_config.get("rootNamespace") or self.namespace)

    @property
    def version_tuple(self) -> tuple[int, ...] | None:
        if not self.istio_version:
            return None
        m = re.match(r"(\d+)\.(\d+)", self.istio_version)
        return (int(m.group(1)), int(m.group(2))) if m else None

    @property
    def ingress_gateway(self) -> Gateway:
        """The gateway found, else where Istio's default profile puts it."""
        return self.gateway or Gateway(self.namespace)

    @property
    def mixer_era(self) -> bool:
        """Istio before 1.8, whose telemetry went through Mixer rather than the proxies."""
        v = self.version_tuple
        return self.mixer or (v is not None and v < (1, 8))

    def unsupported_reason(self) -> str | None:
        """Why the suite cannot check this mesh's telemetry at all, or None."""
        v = self.version_tuple
        if v is not None and v < (1, 0):
            return (f"this mesh is Istio {self.istio_version}: before 1.0 Mixer's metrics were "
                    "istio_request_count with other labels, which meshgate does not read; it "
                    "checks Istio 1.0 and newer (Mixer-era 1.x through its mixer)")
        if self.mixer_era and self.telemetry_mixer is None:
            return (f"this mesh is Mixer-era Istio ({self.istio_version or 'with Mixer'}) "
                    f"without its telemetry mixer (no {' or '.join(TELEMETRY_MIXERS)} "
                    f"Deployment in {self.namespace}): its proxies report to nothing, so no "
                    "request is counted anywhere; install Mixer's telemetry (Istio 1.x "
                    "mixer.telemetry.enabled=true) or upgrade to Istio 1.8 or newer")
        return None

    @property
    def host_domain(self) -> str | None:
        """The domain of the suite's hosts: OpenShift's apps domain, else the default."""
        return self.platform.apps_domain if self.openshift else None

    @property
    def opt_in_injection(self) -> bool:
        """Whether pods must ask for their sidecar (OpenShift Service Mesh 2.x)."""
        mesh = self.platform.service_mesh
        return mesh is not None and mesh.opt_in

    def describe(self) -> str:
        """One line for the run's header and report."""
        if self.istio_version is None:
            return f"no Istio control plane found (looked in {self.namespace})"
        addons = [name for name, a in (("Prometheus", self.prometheus), ("Kiali", self.kiali),
                                       ("servicegraph", self.servicegraph)) if a]
        if self.thanos:
            addons.append("thanos-querier")
        era = f" with Mixer ({self.telemetry_mixer})" if self.mixer_era else ""
        profile = " (ambient: ztunnel)" if self.ambient else ""
        return (f"platform: {self.platform.describe()}; Istio {self.istio_version}{era}"
                f"{profile} in {self.namespace}; addons: {', '.join(addons) or 'none'}")


DATAPLANE_MODE = "istio.io/dataplane-mode"
USE_WAYPOINT = "istio.io/use-waypoint"
INJECTION = "istio-injection"
MEMBER_OF = "maistra.io/member-of"  # OpenShift Service Mesh 2.x's membership label
ZTUNNEL = "ztunnel"


@dataclass(frozen=True)
class DataPlane:
    """How a namespace's pods are in the mesh: ``sidecar`` (injection), ``ambient``
    (ztunnel, through the waypoint ``waypoint`` where one is named), or ``none``."""

    mode: str
    waypoint: str | None = None

    @property
    def ambient(self) -> bool:
        return self.mode == "ambient"

    def describe(self) -> str:
        if self.mode == "ambient":
            return f"ambient (ztunnel, waypoint {self.waypoint})" if self.waypoint \
                else "ambient (ztunnel, no waypoint)"
        return {"sidecar": "sidecar (injected istio-proxy)"}.get(self.mode, self.mode)


def data_plane_of(labels: dict[str, str]) -> DataPlane:
    """A namespace's data plane from its labels, as istiod and istio-cni read them: the
    ambient label wins over injection only where injection is not asked for (Istio
    never redirects a pod with a sidecar). An OpenShift Service Mesh 2 member
    (``maistra.io/member-of``, its pods opting in) has sidecars."""
    if labels.get(INJECTION) == "enabled" or (labels.get("istio.io/rev")
                                              and INJECTION not in labels) \
            or labels.get(MEMBER_OF):
        return DataPlane("sidecar")
    if labels.get(DATAPLANE_MODE) == "ambient":
        waypoint = labels.get(USE_WAYPOINT)
        return DataPlane("ambient", waypoint if waypoint and waypoint != "none" else None)
    return DataPlane("none")


def data_plane(cluster: Cluster, namespace: str) -> DataPlane:
    """The data plane of ``namespace``, read from its labels."""
    ns = cluster.get("v1", "Namespace", namespace, None) or {}
    return data_plane_of((ns.get("metadata") or {}).get("labels") or {})


def _version_from_image(image: str) -> str | None:
    tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
    m = re.match(r"v?(\d+\.\d+(\.\d+)?)", tag)
    return m.group(1) if m else None


def _service_port(svc: dict, preferred: int) -> int:
    ports = (svc.get("spec") or {}).get("ports") or []
    for p in ports:
        if p.get("port") == preferred:
            return preferred
    return ports[0]["port"] if ports else preferred


def _is_control_plane(name: str) -> bool:
    return name in ("istiod", "istio-pilot") or name.startswith("istiod-")


def control_plane_namespace(cluster: Cluster, preferred: str = DEFAULT_CONTROL_PLANE) -> str:
    """``preferred`` when istiod runs there; else where an ``app=istiod`` Deployment runs.

    Listing Deployments cluster-wide needs a permission the least-privilege role may not
    have; then the preferred namespace is the answer, and discovery reports what it lacks.
    """
    if any(_is_control_plane(d["metadata"]["name"])
           for d in cluster.list("apps/v1", "Deployment", preferred)):
        return preferred
    try:
        found = cluster.list("apps/v1", "Deployment", None, label_selector="app=istiod")
    except ClusterError:
        return preferred
    namespaces = sorted({d["metadata"]["namespace"] for d in found})
    return namespaces[0] if namespaces else preferred


def thanos_url(cluster: Cluster) -> str | None:
    """The thanos-querier Route's URL on OpenShift, if there is one."""
    if not cluster.has_api("route.openshift.io/v1"):
        return None
    route = cluster.get("route.openshift.io/v1", "Route", "thanos-querier",
                        "openshift-monitoring")
    host = ((route or {}).get("spec") or {}).get("host")
    return f"https://{host}" if host else None


def mesh_config(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """The mesh config Istio reads (ConfigMap ``istio``, key ``mesh``); {} where it cannot
    be read, which means Istio's defaults."""
    try:
        cm = cluster.get("v1", "ConfigMap", "istio", namespace)
    except ClusterError:
        return {}
    text = ((cm or {}).get("data") or {}).get("mesh") or ""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _service_account(cluster: Cluster, namespace: str) -> str | None:
    """The service account the ingress gateway's pods run as."""
    try:
        pods = cluster.list("v1", "Pod", namespace, label_selector=GATEWAY_SELECTOR)
    except ClusterError:
        return None
    accounts = sorted({(p.get("spec") or {}).get("serviceAccountName") or "default"
                       for p in pods})
    return accounts[0] if accounts else None


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    """Istio's workload identity (istio.io, "Security": SPIFFE IDs)."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def discover(cluster: Cluster, namespace: str | None = None) -> MeshInfo:
    """The mesh as this cluster has it; ``namespace`` pins the control plane's namespace."""
    namespace = namespace or control_plane_namespace(cluster)
    version = None
    mixer = False
    telemetry_mixer = None
    for d in cluster.list("apps/v1", "Deployment", namespace):
        name = d["metadata"]["name"]
        if name in MIXER_DEPLOYMENTS:
            mixer = True
        if name in TELEMETRY_MIXERS and telemetry_mixer is None:
            telemetry_mixer = name
        if _is_control_plane(name):
            for c in d["spec"]["template"]["spec"].get("containers") or []:
                version = version or _version_from_image(c.get("image", ""))
    info = MeshInfo(version, namespace, mixer=mixer, telemetry_mixer=telemetry_mixer)
    services = {s["metadata"]["name"]: s for s in cluster.list("v1", "Service", namespace)}
    if "prometheus" in services:
        info.prometheus = Addon(namespace, "prometheus", _service_port(services["prometheus"],
                                                                       9090))
    if "kiali" in services:
        info.kiali = Addon(namespace, "kiali", _service_port(services["kiali"], 20001))
    if "servicegraph" in services:
        info.servicegraph = Addon(namespace, "servicegraph",
                                  _service_port(services["servicegraph"], 8088))
    gateways = sorted(name for name, s in services.items()
                      if ((s.get("metadata") or {}).get("labels") or {}).get("istio")
                      == "ingressgateway")
    if gateways:
        service = GATEWAY_SERVICE if GATEWAY_SERVICE in gateways else gateways[0]
        info.gateway = Gateway(namespace, service)
    info.gateway_api = cluster.has_api(GATEWAY_API, "Gateway")
    if info.gateway_api:
        try:
            info.gateway_class = cluster.get(GATEWAY_API, "GatewayClass", "istio",
                                             None) is not None
        except ClusterError:
            info.gateway_class = False
    info.mesh_config = mesh_config(cluster, namespace)
    if info.gateway is not None:
        info.gateway = Gateway(namespace, info.gateway.service,
                               service_account=_service_account(cluster, namespace))
    info.platform = platforms.discover(cluster, namespace)
    info.openshift = info.platform.openshift
    if info.prometheus is None and info.openshift:
        info.thanos = thanos_url(cluster)
    info.member_roll = cluster.has_api("maistra.io/v1")
    try:
        info.ambient = cluster.get("apps/v1", "DaemonSet", ZTUNNEL, namespace) is not None
    except ClusterError:
        info.ambient = False
    return info

"""What the cluster's mesh offers, discovered from the cluster (capabilities, not branches).

- Istio's version from istiod's image tag; a Mixer-era mesh (Istio < 1.8, or a
  ``istio-telemetry``/``istio-mixer`` Deployment) is reported as unsupported: its telemetry
  is not ``istio_requests_total`` from the proxies (istio-mapping.md §2.1).
- Addons: Prometheus, Kiali and the servicegraph addon, by their Services.
- OpenShift by the ``route.openshift.io`` API; OpenShift Service Mesh 2.x by the
  ``maistra.io`` ServiceMeshMemberRoll API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from meshgate.cluster import Cluster

ISTIO_NAMESPACES = ("istio-system",)


@dataclass(frozen=True)
class Addon:
    namespace: str
    service: str
    port: int


@dataclass
class MeshInfo:
    istio_version: str | None
    namespace: str = "istio-system"
    prometheus: Addon | None = None
    kiali: Addon | None = None
    servicegraph: Addon | None = None
    openshift: bool = False
    member_roll: bool = False
    mixer: bool = False
    thanos: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def version_tuple(self) -> tuple[int, ...] | None:
        if not self.istio_version:
            return None
        m = re.match(r"(\d+)\.(\d+)", self.istio_version)
        return (int(m.group(1)), int(m.group(2))) if m else None

    def unsupported_reason(self) -> str | None:
        v = self.version_tuple
        if self.mixer or (v is not None and v < (1, 8)):
            return (f"this mesh is Mixer-era Istio ({self.istio_version or 'with Mixer'}): its "
                    "telemetry is not the proxies' istio_requests_total; meshgate supports "
                    "Istio 1.8 and newer")
        return None


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


def discover(cluster: Cluster, namespace: str = "istio-system") -> MeshInfo:
    deployments = cluster.list("apps/v1", "Deployment", namespace)
    version = None
    mixer = False
    for d in deployments:
        name = d["metadata"]["name"]
        if name in ("istio-telemetry", "istio-mixer", "istio-policy"):
            mixer = True
        if name in ("istiod", "istio-pilot") or name.startswith("istiod-"):
            for c in d["spec"]["template"]["spec"].get("containers") or []:
                version = version or _version_from_image(c.get("image", ""))
    info = MeshInfo(version, namespace, mixer=mixer)
    services = {s["metadata"]["name"]: s for s in cluster.list("v1", "Service", namespace)}
    if "prometheus" in services:
        info.prometheus = Addon(namespace, "prometheus", _service_port(services["prometheus"],
                                                                       9090))
    if "kiali" in services:
        info.kiali = Addon(namespace, "kiali", _service_port(services["kiali"], 20001))
    if "servicegraph" in services:
        info.servicegraph = Addon(namespace, "servicegraph",
                                  _service_port(services["servicegraph"], 8088))
    info.openshift = cluster.has_api("route.openshift.io/v1")
    if info.prometheus is None and info.openshift:
        from meshgate.telemetry import thanos_url

        info.thanos = thanos_url(cluster)
    info.member_roll = cluster.has_api("maistra.io/v1")
    return info

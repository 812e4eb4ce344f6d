"""The platform under the mesh, found by discovery: OpenShift and OpenShift Service Mesh.

OpenShift is recognised by its API groups, as ``oc`` and the console do: the
``route.openshift.io`` group (Routes, served by openshift-apiserver) or the
``config.openshift.io`` group (the cluster-wide configuration the operators read). Its
version is the ClusterVersion ``version``'s ``status.desired.version`` (what
``oc get clusterversion`` prints), else the latest completed entry of its history.

OpenShift Service Mesh is recognised by the resource that installs the control plane:

- OSSM 2.x: a ``maistra.io/v2`` ServiceMeshControlPlane in the control plane's namespace
  (``spec.version`` ``v2.6``); its istiod is ``istiod-<SMCP name>``; members are namespaces
  holding a ServiceMeshMember ``default`` or listed in the ServiceMeshMemberRoll, and only
  pods that opt in with ``sidecar.istio.io/inject: "true"`` are injected (openshift-docs,
  "Service Mesh and Istio differences").
- OSSM 3.x (the Sail operator): a cluster-scoped ``sailoperator.io/v1`` ``Istio`` whose
  ``spec.namespace`` is the control plane's namespace; injection is Istio's own, by the
  namespace label ``istio-injection=enabled`` for the revision ``default`` or
  ``istio.io/rev=<revision>`` for another (``status.activeRevisionName``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from meshgate.cluster import Cluster, ClusterError

ROUTE_API = "route.openshift.io/v1"
CONFIG_API = "config.openshift.io/v1"
SMCP_API = "maistra.io/v2"
SMCP_KIND = "ServiceMeshControlPlane"
SAIL_API = "sailoperator.io/v1"
DEFAULT_REVISION = "default"


@dataclass(frozen=True)
class ServiceMesh:
    """OpenShift Service Mesh as installed: ``major`` 2 (an SMCP) or 3 (a Sail ``Istio``),
    the version it reports, the installing resource's name, and (OSSM 3) the revision
    namespaces are labelled for."""

    major: int
    version: str | None
    kind: str
    name: str
    revision: str = DEFAULT_REVISION

    def describe(self) -> str:
        version = self.version or str(self.major)
        return f"OpenShift Service Mesh {version} ({self.kind} {self.name})"

    @property
    def opt_in(self) -> bool:
        """Whether pods must ask for their sidecar (OSSM 2's injection)."""
        return self.major == 2


@dataclass(frozen=True)
class Platform:
    openshift: bool = False
    openshift_version: str | None = None
    service_mesh: ServiceMesh | None = None
    apps_domain: str | None = None  # the Ingress config's domain: Routes' hosts go there

    def describe(self) -> str:
        """``platform: …`` for the run's header."""
        if not self.openshift:
            return "Kubernetes"
        out = f"OpenShift {self.openshift_version or '4.x'}"
        return out + (f", {self.service_mesh.describe()}" if self.service_mesh else "")


def _version(text: object) -> str | None:
    m = re.match(r"v?(\d+\.\d+(\.\d+)?)", str(text or ""))
    return m.group(1) if m else None


def openshift_version(cluster: Cluster) -> str | None:
    """The ClusterVersion's desired version, else the last completed one; None where it
    cannot be read (the suite may not read cluster-scoped config)."""
    try:
        cv = cluster.get(CONFIG_API, "ClusterVersion", "version", None)
    except ClusterError:
        return None
    status = (cv or {}).get("status") or {}
    found = _version((status.get("desired") or {}).get("version"))
    if found:
        return found
    done = [h for h in status.get("history") or [] if h.get("state") == "Completed"]
    return _version(done[0].get("version")) if done else None


def apps_domain(cluster: Cluster) -> str | None:
    """The cluster's apps domain (``config.openshift.io`` Ingress ``cluster``,
    ``spec.domain``): where Routes' hosts live, covered by the router's wildcard
    certificate and the domain's wildcard DNS record."""
    try:
        ing = cluster.get(CONFIG_API, "Ingress", "cluster", None)
    except ClusterError:
        return None
    return ((ing or {}).get("spec") or {}).get("domain") or None


def ossm2(cluster: Cluster, namespace: str) -> ServiceMesh | None:
    """The SMCP of ``namespace`` (the first by name where there are several)."""
    if not cluster.has_api(SMCP_API, SMCP_KIND):
        return None
    try:
        found = sorted(cluster.list(SMCP_API, SMCP_KIND, namespace),
                       key=lambda o: o["metadata"]["name"])
    except ClusterError:
        return None
    if not found:
        return None
    smcp = found[0]
    status = smcp.get("status") or {}
    version = _version((smcp.get("spec") or {}).get("version")) \
        or _version(status.get("chartVersion"))
    return ServiceMesh(2, version, SMCP_KIND, smcp["metadata"]["name"])


def ossm3(cluster: Cluster, namespace: str) -> ServiceMesh | None:
    """The Sail ``Istio`` that installs the control plane into ``namespace``."""
    if not cluster.has_api(SAIL_API, "Istio"):
        return None
    try:
        found = [i for i in cluster.list(SAIL_API, "Istio", None)
                 if ((i.get("spec") or {}).get("namespace") or "istio-system") == namespace]
    except ClusterError:
        return None
    if not found:
        return None
    istio = sorted(found, key=lambda o: o["metadata"]["name"])[0]
    revision = ((istio.get("status") or {}).get("activeRevisionName")
                or istio["metadata"]["name"])
    # OSSM 3's own version is not in the resource: it names the Istio version it runs.
    return ServiceMesh(3, None, "Istio", istio["metadata"]["name"], revision)


def discover(cluster: Cluster, namespace: str) -> Platform:
    """The platform of the cluster whose control plane runs in ``namespace``."""
    openshift = cluster.has_api(ROUTE_API) or cluster.has_api(CONFIG_API)
    if not openshift:
        return Platform()
    return Platform(True, openshift_version(cluster),
                    ossm2(cluster, namespace) or ossm3(cluster, namespace),
                    apps_domain(cluster) if cluster.has_api(CONFIG_API, "Ingress") else None)


def injection_labels(platform: Platform) -> dict[str, str]:
    """The labels a namespace of the suite needs for sidecars on this platform.

    OSSM 2 selects members by its own ``maistra.io/member-of`` label (written by the
    operator when the namespace joins), and the label ``istio-injection`` only opts out,
    so none; an OSSM 3 revision other than ``default`` is named by ``istio.io/rev``;
    everywhere else Istio's ``istio-injection=enabled``.
    """
    mesh = platform.service_mesh
    if mesh is not None and mesh.major == 2:
        return {}
    if mesh is not None and mesh.revision != DEFAULT_REVISION:
        return {"istio.io/rev": mesh.revision}
    return {"istio-injection": "enabled"}

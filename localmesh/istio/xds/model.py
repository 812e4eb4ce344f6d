"""What the xDS generator reads: a snapshot of the mesh's state, and the proxy it serves.

istiod builds the snapshot from the object store (localmesh/istio/istiod.py) and each
generation reads only this, so the generators are pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from localmesh.istio import names
from localmesh.istio.meshconfig import MeshConfig

if TYPE_CHECKING:
    from localmesh.istio.gatewayapi.binding import Binding

T_LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
T_ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
T_SCOPED = "type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration"
T_CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
T_ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
TYPES = (T_CLUSTER, T_ENDPOINT, T_LISTENER, T_ROUTE, T_SCOPED)


@dataclass
class ServicePort:
    """A Service port: its name, number, target (number or container port name) and
    Istio protocol (localmesh/istio/names.py port_protocol)."""

    name: str
    port: int
    target: object
    protocol: str


@dataclass
class Service:
    """A Kubernetes Service, as the generator needs it."""

    name: str
    namespace: str
    cluster_ip: str
    ports: list[ServicePort]
    selector: dict
    labels: dict

    @cached_property
    def host(self) -> str:
        return names.fqdn(self.name, self.namespace)


@dataclass
class Proxy:
    """The identity a proxy announces in its node id and metadata."""

    kind: str  # sidecar | router
    ip: str
    local_ip: str
    pod: str
    namespace: str
    labels: dict
    workload: str
    container_ports: list[dict]
    metadata: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.pod}.{self.namespace}"


@dataclass
class MeshState:
    """Everything istiod's generator reads, snapshotted from the object store."""

    services: list[Service]
    # (ns, name) -> Endpoints subsets; each address also carries its pod's labels
    # (``_labels``) and ServiceAccount (``_sa``), as Istio's endpoints know them.
    endpoints: dict[tuple[str, str], list[dict]]
    ingresses: list[dict]
    ingress_classes: dict[str, dict]
    gateways: list[dict]
    virtual_services: list[dict]
    destination_rules: list[dict]
    # The Gateway API's Gateways and routes, bound (localmesh/istio/gatewayapi/binding.py).
    gateway_api: Binding | None = None
    # Security (security.istio.io/v1) and the mesh config (ConfigMap istio).
    peer_authentications: list[dict] = field(default_factory=list)
    authorization_policies: list[dict] = field(default_factory=list)
    mesh_config: MeshConfig = field(default_factory=MeshConfig)

    @cached_property
    def _by_host(self) -> dict[str, Service]:
        return {s.host: s for s in self.services}

    def service(self, host: str) -> Service | None:
        """The Service of a host name; an index, since every cluster of every proxy asks
        (a mesh of thousands of Services: localmesh/synthetic.py)."""
        return self._by_host.get(host)

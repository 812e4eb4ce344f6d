"""What the xDS generator reads: a snapshot of the mesh's state, and the proxy it serves.

istiod builds the snapshot from the object store (localmesh/istio/istiod.py) and each
generation reads only this, so the generators are pure functions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from localmesh.istio import names
from localmesh.istio.meshconfig import MeshConfig
from localmesh.istio.xds.memo import Memo, freeze

if TYPE_CHECKING:
    from localmesh.istio.ambient.model import AmbientState
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

    @cached_property
    def key(self) -> tuple:
        """Everything of the Service a generated resource can read (memo.py's keys)."""
        return (self.name, self.namespace, self.cluster_ip,
                tuple((p.name, p.port, str(p.target), p.protocol) for p in self.ports),
                freeze(self.selector), freeze(self.labels))


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
    # Ambient mode: pods as workloads, waypoints (localmesh/istio/ambient/model.py).
    ambient: AmbientState | None = None
    # What generation remembers across states (memo.py), and a key that changes whenever
    # any Istio configuration in the state does (the resource versions of the routing,
    # security and mesh configuration; istiod.py). A state built without one (a test's)
    # has its own memo and so shares nothing.
    memo: Memo = field(default_factory=Memo, compare=False, repr=False)
    config_key: Hashable = ()
    # A version of each Service and its endpoints (by namespace and name) that changes
    # whenever they, or their pods, do (istiod's: resource versions); without it the
    # content is digested.
    versions: dict[tuple[str, str], str] = field(default_factory=dict, compare=False,
                                                 repr=False)

    @cached_property
    def _by_host(self) -> dict[str, Service]:
        return {s.host: s for s in self.services}

    @cached_property
    def _service_digests(self) -> dict[tuple[str, str], str]:
        return {}

    def service_digest(self, service: Service) -> str:
        """The Service and its endpoints (addresses, ports, their pods' labels and
        ServiceAccounts) as one short key, once per state: memo keys stay cheap to hash
        and compare however large the mesh."""
        at = (service.namespace, service.name)
        digest = self._service_digests.get(at)
        if digest is None:
            version = self.versions.get(at)
            body = f"{at}|{version}" if version is not None else \
                repr((service.key, freeze(self.endpoints.get(at) or [])))
            digest = self._service_digests[at] = hashlib.sha1(body.encode()).hexdigest()
        return digest

    @cached_property
    def local(self) -> dict[Hashable, Any]:
        """Values shared by this state's generations only (a namespace's route
        configurations: they list every Service, so they are per state)."""
        return {}

    def service(self, host: str) -> Service | None:
        """The Service of a host name; an index, since every cluster of every proxy asks
        (a mesh of thousands of Services: localmesh/synthetic.py)."""
        return self._by_host.get(host)

"""What the Gateway API controllers read: one snapshot of the cluster.

istiod (for xDS), the status writer and the deployment controller each take a snapshot
from the object store and hand it to pure functions (binding.py), so the rules of
attachment are testable without a cluster and the same in all three.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from localmesh.istio import names
from localmesh.istio.gatewayapi.crds import (
    GATEWAY_CLASSES,
    GATEWAYS,
    GRPC_ROUTES,
    HTTP_ROUTES,
    REFERENCE_GRANTS,
)
from localmesh.store import Store

SERVICES = ("", "services")
ENDPOINTS = ("", "endpoints")
NAMESPACES = ("", "namespaces")


@dataclass(frozen=True)
class Port:
    """A Service port: number, name, target (number or container port name), Istio's
    protocol for it (localmesh/istio/names.py port_protocol)."""

    port: int
    name: str
    target: int | str
    protocol: str


@dataclass(frozen=True)
class ServiceInfo:
    """A Service, as far as routes (backends) and Gateways (their addresses) need it."""

    name: str
    namespace: str
    type: str
    ports: tuple[Port, ...]
    load_balancer_ips: tuple[str, ...] = ()
    ready_ports: frozenset[int] = frozenset()  # ports with a ready endpoint


    @property
    def host(self) -> str:
        return names.fqdn(self.name, self.namespace)

    def port(self, number: int) -> Port | None:
        return next((p for p in self.ports if p.port == number), None)


@dataclass
class Snapshot:
    """The Gateway API objects and what they refer to, as stored."""

    classes: dict[str, dict] = field(default_factory=dict)
    gateways: list[dict] = field(default_factory=list)
    http_routes: list[dict] = field(default_factory=list)
    grpc_routes: list[dict] = field(default_factory=list)
    grants: list[dict] = field(default_factory=list)
    namespace_labels: dict[str, dict] = field(default_factory=dict)
    services: Mapping[tuple[str, str], ServiceInfo] = field(default_factory=dict)


def service_info(svc: dict, endpoints: dict | None = None) -> ServiceInfo:
    """A Service with its LoadBalancer addresses and the ports its Endpoints serve."""
    spec = svc.get("spec") or {}
    ports = tuple(Port(p["port"], p.get("name", ""), p.get("targetPort", p["port"]),
                       names.port_protocol(p)) for p in spec.get("ports") or [])
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    served = {ep_port.get("name", "") for sub in (endpoints or {}).get("subsets") or []
              if sub.get("addresses") for ep_port in sub.get("ports") or []}
    return ServiceInfo(svc["metadata"]["name"], svc["metadata"]["namespace"],
                       spec.get("type", "ClusterIP"), ports,
                       tuple(i["ip"] for i in ingress if i.get("ip")),
                       frozenset(p.port for p in ports if p.name in served))


def snapshot(store: Store) -> Snapshot:
    """The snapshot of ``store`` now; objects not being deleted only.

    The objects are the store's own (see Store.scan): readers must not mutate them.
    """

    def live(kind: tuple[str, str]) -> list[dict]:
        return [o for o in store.scan(kind) if not o["metadata"].get("deletionTimestamp")]

    def key(obj: dict) -> tuple[str, str]:
        return obj["metadata"]["namespace"], obj["metadata"]["name"]

    return Snapshot(
        classes={c["metadata"]["name"]: c for c in live(GATEWAY_CLASSES)},
        gateways=live(GATEWAYS), http_routes=live(HTTP_ROUTES), grpc_routes=live(GRPC_ROUTES),
        grants=live(REFERENCE_GRANTS),
        namespace_labels={n["metadata"]["name"]: n["metadata"].get("labels") or {}
                          for n in store.scan(NAMESPACES)},
        services=_Services(store),
    )


class _Services(Mapping[tuple[str, str], ServiceInfo]):
    """The live Services of a snapshot, each read when asked for: binding looks up only
    the Services routes and Gateways name, and reading all of a mesh of thousands on every
    change (three controllers and istiod do) was most of a push's cost there. Binding runs
    right after the snapshot is taken, in one step of the event loop, so what is read is
    the store as it was then."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._read: dict[tuple[str, str], ServiceInfo | None] = {}

    def _info(self, at: tuple[str, str]) -> ServiceInfo | None:
        if at not in self._read:
            svc = self._store.get(SERVICES, *at)
            live = svc is not None and not svc["metadata"].get("deletionTimestamp")
            self._read[at] = service_info(svc, self._store.get(ENDPOINTS, *at)) \
                if live and svc is not None else None
        return self._read[at]

    def __getitem__(self, at: tuple[str, str]) -> ServiceInfo:
        info = self._info(at)
        if info is None:
            raise KeyError(at)
        return info

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for s in self._store.scan(SERVICES):
            at = (s["metadata"]["namespace"], s["metadata"]["name"])
            if self._info(at) is not None:
                yield at

    def __len__(self) -> int:
        return sum(1 for _ in self)


def changes_routing(key: tuple[str, str], old: dict | None, new: dict) -> bool:
    """Can this change of a Gateway API object or a Namespace change what routes where?

    Status writes (the controllers' own, many per change) cannot, nor can anything but a
    new spec (a new ``generation``), a deletion starting, or a Namespace's labels (which
    ``allowedRoutes`` selectors read).
    """
    if old is None:
        return True
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    if key == NAMESPACES:
        return om.get("labels") != nm.get("labels") or \
            om.get("deletionTimestamp") != nm.get("deletionTimestamp")
    return om.get("generation") != nm.get("generation") or \
        om.get("deletionTimestamp") != nm.get("deletionTimestamp")

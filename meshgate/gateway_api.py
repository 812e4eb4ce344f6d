"""The Kubernetes Gateway API as Istio implements it: a Gateway of class ``istio`` and the
HTTPRoutes attached to it.

Istio deploys a proxy for each Gateway of its class ("automated deployment": a Deployment
and a Service named ``<gateway>-istio`` in the Gateway's namespace, its pods labelled
``gateway.networking.k8s.io/gateway-name: <gateway>``; istio.io, "Kubernetes Gateway
API" task), and reports in the objects' status whether it took them: the Gateway's
``Accepted`` and ``Programmed`` conditions and its ``addresses``, each route's
``status.parents[].conditions`` ``Accepted`` and ``ResolvedRefs`` (gateway-api.sigs.k8s.io,
API reference: GatewayConditionType, RouteConditionType). The checks read exactly those;
a miss quotes the conditions found, whose reasons (``BackendNotFound``,
``NotAllowedByListeners``, ``NoMatchingParent`` …) say what is wrong.
"""

from __future__ import annotations

from typing import Any

from meshgate.cluster import Cluster
from meshgate.mesh import GATEWAY_API, Gateway
from meshgate.waiting import Waits, WaitTimeout

GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"


def conditions(status: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Conditions by type."""
    return {c.get("type", ""): c for c in (status or {}).get("conditions") or []}


def _true(found: dict[str, dict[str, Any]], *types: str) -> bool:
    return all(found.get(t, {}).get("status") == "True" for t in types)


def describe(found: dict[str, dict[str, Any]]) -> str:
    if not found:
        return "no conditions yet (no controller has taken it)"
    return "; ".join(f"{t}={c.get('status')} ({c.get('reason', '')}: "
                     f"{str(c.get('message', ''))[:120]})" for t, c in sorted(found.items()))


def deployment_of(namespace: str, gateway: str) -> Gateway:
    """Where Istio's automated deployment of ``gateway`` receives traffic."""
    return Gateway(namespace, f"{gateway}-istio", f"{GATEWAY_NAME_LABEL}={gateway}")


def expect_programmed(cluster: Cluster, namespace: str, name: str,
                      waits: Waits) -> dict[str, Any]:
    """The Gateway is ``Accepted`` and ``Programmed`` with an address; returns it."""
    seen: list[str] = ["not read yet"]

    def probe() -> dict[str, Any] | None:
        gateway = cluster.get(GATEWAY_API, "Gateway", name, namespace)
        if gateway is None:
            seen[0] = "no such Gateway"
            return None
        status = gateway.get("status") or {}
        found = conditions(status)
        addresses = [a.get("value") for a in status.get("addresses") or []]
        seen[0] = f"{describe(found)}; addresses {addresses}"
        return gateway if _true(found, "Accepted", "Programmed") and addresses else None

    try:
        return waits.until(probe, area="policy", what=f"Gateway {namespace}/{name} Programmed",
                           describe=lambda _: seen[0])
    except WaitTimeout:
        raise AssertionError(
            f"expected Gateway {namespace}/{name} to be Accepted and Programmed with an "
            f"address; found: {seen[0]}. Look at `kubectl get gateway -n {namespace} {name} "
            f"-o yaml` and the {name}-istio Deployment") from None


def expect_route_accepted(cluster: Cluster, namespace: str, kind: str, name: str,
                          waits: Waits) -> dict[str, Any]:
    """Every parent of the route has it ``Accepted`` with ``ResolvedRefs``; returns it."""
    seen: list[str] = ["not read yet"]

    def probe() -> dict[str, Any] | None:
        route = cluster.get(GATEWAY_API, kind, name, namespace)
        if route is None:
            seen[0] = f"no such {kind}"
            return None
        parents = (route.get("status") or {}).get("parents") or []
        seen[0] = "; ".join(
            f"parent {(p.get('parentRef') or {}).get('name')}: {describe(conditions(p))}"
            for p in parents) or "no parent has reported on it"
        ok = parents and all(_true(conditions(p), "Accepted", "ResolvedRefs") for p in parents)
        return route if ok else None

    try:
        return waits.until(probe, area="policy", what=f"{kind} {namespace}/{name} Accepted",
                           describe=lambda _: seen[0])
    except WaitTimeout:
        raise AssertionError(
            f"expected {kind} {namespace}/{name} to be Accepted with its references resolved "
            f"by every parent; found: {seen[0]}. Look at `kubectl get {kind.lower()} -n "
            f"{namespace} {name} -o yaml`") from None

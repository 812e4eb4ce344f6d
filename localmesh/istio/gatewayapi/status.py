"""The status istiod writes on GatewayClasses, Gateways, HTTPRoutes and GRPCRoutes.

After istio/istio ``pilot/pkg/config/kube/gateway``: ``conditions.go`` (setConditions,
createRouteStatus, the listener conditions), ``conversion.go`` (reportGatewayStatus,
setProgrammedCondition) and ``gatewayclass.go``; the reasons and messages are Istio's,
compared with its golden status files (``testdata/route-binding.status.yaml.golden``,
``testdata/invalid.status.yaml.golden``):

- GatewayClass: ``Accepted`` "Handled by Istio controller";
- Gateway: ``Accepted`` "Resource accepted"; ``Programmed`` "Resource programmed,
  assigned to service(s) <svc fqdn>:<port>" once the deployment's Service has a ready
  endpoint, else ``AddressNotUsable``/``AddressNotAssigned`` with Istio's words;
  ``addresses`` the LoadBalancer IPs (``IPAddress``), or the Service's hostname
  (``Hostname``) for a Service without one, never removed once reported; per listener
  ``supportedKinds``, ``attachedRoutes`` and ``Accepted``, ``Conflicted`` (False,
  ``NoConflicts``), ``Programmed``, ``ResolvedRefs``;
- routes: one ``parents[]`` entry per parentRef that names a Gateway of ours, with
  ``controllerName: istio.io/gateway-controller``, ``Accepted`` ("Route was valid", or
  the best reason among the listeners it met) and ``ResolvedRefs`` ("All references
  resolved", or the backend problem); entries of other controllers are kept.

Every condition carries ``observedGeneration``; ``lastTransitionTime`` moves only when a
condition's status does (Istio's kstatus.UpdateConditionIfChanged).
"""

from __future__ import annotations

import copy

from localmesh.api.status import ApiError
from localmesh.controllers.base import Reconciler
from localmesh.istio.gatewayapi.binding import (
    RANKING,
    Binding,
    Gateway,
    Listener,
    Problem,
    Route,
    bind,
)
from localmesh.istio.gatewayapi.crds import (
    CLASS_NAME,
    CONTROLLER,
    GATEWAY_CLASSES,
    GROUP,
    KEYS,
    istio_class,
)
from localmesh.istio.gatewayapi.model import ENDPOINTS, NAMESPACES, SERVICES, snapshot
from localmesh.store import now_rfc3339

# A condition to write: (status, reason, message).
Wanted = tuple[str, str, str]
OK = "No errors found"


def set_conditions(generation: int, existing: list[dict],
                   wanted: dict[str, Wanted]) -> list[dict]:
    """``existing`` with ``wanted`` set (in type order); a condition whose status, message
    and generation are unchanged is kept as it is, one whose status is unchanged keeps
    its lastTransitionTime."""
    out = [dict(c) for c in existing]
    for type_ in sorted(wanted):
        status, reason, message = wanted[type_]
        new = {"lastTransitionTime": now_rfc3339(), "message": message,
               "observedGeneration": generation, "reason": reason, "status": status,
               "type": type_}
        cur = next((c for c in out if c.get("type") == type_), None)
        if cur is None:
            out.append(new)
            continue
        if cur.get("status") == status:
            if cur.get("message") == message and cur.get("reason") == reason and \
                    cur.get("observedGeneration") == generation:
                continue
            new["lastTransitionTime"] = cur.get("lastTransitionTime", new["lastTransitionTime"])
        cur.clear()
        cur.update(new)
    return out


def human_join(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b, and c`` (Istio's humanReadableJoin)."""
    if len(items) < 3:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def _result(problem: Problem | None, ok: Wanted) -> Wanted:
    return ("False", problem.reason, problem.message) if problem else ok


def gateway_status(gw: Gateway, old: dict) -> dict:
    """A Gateway's status: its conditions, addresses and listeners."""
    gen = gw.obj["metadata"].get("generation", 1)
    svc = gw.service
    host = f"{gw.deployment_name}.{gw.namespace}.svc.cluster.local"
    internal = sorted({f"{host}:{ls.port}" for ls in gw.listeners
                       if svc is not None and ls.port in svc.ready_ports})
    warnings = []  # Istio's ResolveGatewayInstances, port by port
    if svc is None:
        warnings.append(f'hostname "{host}" not found')
    else:
        for port in sorted({ls.port for ls in gw.listeners}):
            if svc.port(port) is None:
                warnings.append(f'port {port} not found for hostname "{host}"')
            elif port not in svc.ready_ports and \
                    f'no instances found for hostname "{host}"' not in warnings:
                warnings.append(f'no instances found for hostname "{host}"')
    usable = not warnings  # every port served: only the address may still be missing
    pending = svc is not None and bool(internal) and svc.type == "LoadBalancer" and \
        not svc.load_balancer_ips
    if pending:
        warnings.append(f'address pending for hostname "{host}"')
    programmed: Wanted = ("True", "Programmed", "Resource programmed, assigned to service(s) "
                          + human_join(internal) if internal else "Resource programmed")
    if warnings and internal:
        programmed = ("False", "AddressNotAssigned" if usable else "AddressNotUsable",
                      f"Assigned to service(s) {human_join(internal)}, but failed to assign "
                      f"to all requested addresses: {'; '.join(warnings)}")
    elif warnings:
        programmed = ("False", "AddressNotUsable", "Failed to assign to any requested "
                      f"addresses: {'; '.join(warnings)}")
    status = copy.deepcopy(old)
    status["conditions"] = set_conditions(gen, old.get("conditions") or [], {
        "Accepted": ("True", "Accepted", "Resource accepted"), "Programmed": programmed})
    addresses = [{"type": "IPAddress", "value": ip} for ip in svc.load_balancer_ips] \
        if svc else []
    if not addresses and internal and not pending:
        addresses = [{"type": "Hostname", "value": host}]
    if addresses:  # Istio never removes an address it once reported
        status["addresses"] = addresses
    before = {ls.get("name"): ls for ls in old.get("listeners") or []}
    status["listeners"] = [_listener_status(gen, ls, before.get(ls.name) or {})
                           for ls in gw.listeners]
    return status


def _listener_status(gen: int, listener: Listener, old: dict) -> dict:
    conditions = set_conditions(gen, old.get("conditions") or [], {
        "Accepted": _result(listener.problem, ("True", "Accepted", OK)),
        "Conflicted": ("False", "NoConflicts", OK),
        "Programmed": ("True", "Programmed", OK),
        "ResolvedRefs": _result(listener.kinds_problem, ("True", "ResolvedRefs", OK))})
    return {"attachedRoutes": listener.attached, "conditions": conditions,
            "name": listener.name,
            "supportedKinds": [{"group": GROUP, "kind": k} for k in listener.kinds]}


def route_parents(route: Route, old: list[dict]) -> list[dict]:
    """A route's ``status.parents``: other controllers' entries, then one per parentRef
    of ours, its listeners' results collapsed to the best reason (conditions.go
    createRouteStatus), in Istio's order (by the reference, descending)."""
    parents = [p for p in old if p.get("controllerName") != CONTROLLER]
    by_ref: dict[str, list] = {}
    refs: dict[str, dict] = {}
    for result in route.parents:
        key = _ref_key(result.ref)
        by_ref.setdefault(key, []).append(result)
        refs[key] = result.ref
    gen = route.obj["metadata"].get("generation", 1)
    ours: list[dict] = []
    for key, results in by_ref.items():
        accepted = [r for r in results if r.denied is None]
        best = next(reason for reason in RANKING
                    if any((r.denied.reason if r.denied else "") == reason for r in results))
        accepted_cond: Wanted = ("True", "Accepted", "Route was valid" if len(accepted) < 2
                                 else f"Route was valid, bound to {len(accepted)} parents")
        if best:
            messages = [r.denied.message for r in results
                        if r.denied is not None and r.denied.reason == best]
            accepted_cond = ("False", best, "; ".join(messages))
        resolved = _result(route.problem, ("True", "ResolvedRefs", "All references resolved"))
        previous = next((p for p in old if p.get("controllerName") == CONTROLLER and
                         _ref_key(p.get("parentRef") or {}) == key), {})
        ours.append({"conditions": set_conditions(gen, previous.get("conditions") or [], {
            "Accepted": accepted_cond, "ResolvedRefs": resolved}),
            "controllerName": CONTROLLER, "parentRef": copy.deepcopy(refs[key])})
    ours.sort(key=lambda p: _ref_key(p["parentRef"]), reverse=True)
    return parents + ours


def _ref_key(ref: dict) -> str:
    """A parentRef as one string, defaults spelt out (conditions.go parentRefString)."""
    return "/".join(str(ref.get(k, d) or "") for k, d in (
        ("group", GROUP), ("kind", "Gateway"), ("name", ""), ("namespace", ""),
        ("sectionName", ""), ("port", "")))


class GatewayStatus(Reconciler):
    """Writes the status of every Gateway API object istiod manages, on every change of
    what it depends on (the objects, Services and their Endpoints, Namespaces' labels)."""

    name = "gateway-status"
    keys = (*KEYS, SERVICES, ENDPOINTS, NAMESPACES)

    def reconcile(self) -> None:
        self.ensure_class()
        self.write(bind(snapshot(self.api.store)))

    def ensure_class(self) -> None:
        """The ``istio`` GatewayClass, created again whenever it is missing (istiod's
        gatewayclass.go ClassController only creates; users may change it)."""
        if self.api.store.get(GATEWAY_CLASSES, "", CLASS_NAME) is not None:
            return
        try:
            self.api.create(self.api.rt(f"{GROUP}/v1", "GatewayClass"), "", istio_class())
        except KeyError:
            return  # the CRDs were deleted: there is no GatewayClass to create
        except ApiError as exc:
            if exc.code != 409:
                raise

    def write(self, binding: Binding) -> None:
        api = self.api
        for name in binding.classes:
            cls = api.store.get(GATEWAY_CLASSES, "", name)
            if cls is None:
                continue
            gen = cls["metadata"].get("generation", 1)
            old = cls.get("status") or {}
            api.set_status(api.rt(f"{GROUP}/v1", "GatewayClass"), cls, {
                **old, "conditions": set_conditions(gen, old.get("conditions") or [], {
                    "Accepted": ("True", "Accepted", "Handled by Istio controller")})})
        for gw in binding.gateways.values():
            api.set_status(api.rt(f"{GROUP}/v1", "Gateway"), gw.obj,
                           gateway_status(gw, gw.obj.get("status") or {}))
        for route in binding.routes:
            old = (route.obj.get("status") or {}).get("parents") or []
            if not route.parents and not any(p.get("controllerName") == CONTROLLER
                                             for p in old):
                continue
            parents = route_parents(route, old)
            api.set_status(api.rt(f"{GROUP}/v1", route.kind), route.obj,
                           {**(route.obj.get("status") or {}), "parents": parents})

"""Which routes attach to which Gateway listeners, why not, and where their backends go.

A pure function of a snapshot (model.py), after istio/istio
``pilot/pkg/config/kube/gateway``: ``conversion.go`` (``referenceAllowed``,
``extractParentReferenceInfo``, ``buildDestination``) and ``conditions.go`` (the reasons
and messages), within the rules of the Gateway API spec (gateway-api.sigs.k8s.io, API
reference v1). istiod turns the result into Envoy configuration
(localmesh/istio/xds/gatewayapi.py), the status writer into conditions (status.py).

Where Istio writes nothing, so does localmesh: a route whose parentRef names a Gateway
that does not exist, or a parent of another kind (a Service: GAMMA, not implemented here),
gets no parent status from istiod (istio/istio#54946 shows the empty status).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from localmesh.istio import names
from localmesh.istio.gatewayapi.crds import CONTROLLER, GROUP
from localmesh.istio.gatewayapi.model import ServiceInfo, Snapshot

HTTP_ROUTE, GRPC_ROUTE = "HTTPRoute", "GRPCRoute"
# Route parent reasons, preferred first when one parentRef meets several listeners
# (conditions.go reasonRanking): a route bound anywhere is Accepted.
NOT_ALLOWED = "NotAllowedByListeners"
NO_HOSTNAME = "NoMatchingListenerHostname"
NO_MATCHING_PARENT = "NoMatchingParent"
RANKING = ("", NOT_ALLOWED, NO_HOSTNAME, NO_MATCHING_PARENT)
# Filters Istio converts; CORS too, which localmesh leaves out (docs/localmesh.md).
FILTERS = ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite",
           "RequestMirror", "CORS")
# Backend errors after which the route still answers (500), as Istio's isInvalidBackend.
INVALID_BACKEND = ("BackendNotFound", "RefNotPermitted", "InvalidKind")


@dataclass(frozen=True)
class Problem:
    """A condition's failure: its reason and message."""

    reason: str
    message: str


@dataclass
class Listener:
    """One listener of a Gateway, with what it accepts and how many routes it holds."""

    name: str
    port: int
    protocol: str
    hostname: str | None
    namespaces: frozenset[str] | None  # the namespaces routes may come from; None: all
    kinds: tuple[str, ...]  # route kinds it supports and allows
    problem: Problem | None = None  # Accepted=False
    kinds_problem: Problem | None = None  # ResolvedRefs=False
    attached: int = 0

    @property
    def host(self) -> str:
        return self.hostname or "*"


@dataclass
class Gateway:
    """A Gateway of a class istiod manages, and the Service of its deployment."""

    obj: dict
    listeners: list[Listener]
    service: ServiceInfo | None

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def deployment_name(self) -> str:
        """``<gateway>-istio``: Istio's automated deployment's name (deploymentcontroller.go
        ``getDefaultName``: the Gateway's name and its class)."""
        return f"{self.name}-istio"

    def target_port(self, port: int) -> int:
        """The pod port behind a listener port: the Service's targetPort (as Istio resolves
        a gateway server's port to the workload's), else the port itself."""
        sp = self.service.port(port) if self.service else None
        if sp is not None and isinstance(sp.target, int):
            return sp.target
        if sp is not None and str(sp.target).isdigit():
            return int(sp.target)
        return port


@dataclass
class Backend:
    """One backendRef of a rule: the cluster it sends to (None: one that cannot exist, so
    Envoy answers 500) and its weight."""

    cluster: str | None
    weight: int
    service: ServiceInfo | None = None
    port: int = 0
    filters: list[dict] = field(default_factory=list)


@dataclass
class Rule:
    """A route rule with its backends; ``dropped`` when Istio would not convert it."""

    index: int
    spec: dict
    backends: list[Backend]
    problem: Problem | None = None
    dropped: bool = False


@dataclass
class ParentResult:
    """A parentRef meeting one listener: accepted, or why not."""

    ref: dict
    gateway: Gateway
    listener: Listener
    denied: Problem | None


@dataclass
class Route:
    """An HTTPRoute or GRPCRoute with its rules and parent results."""

    kind: str
    obj: dict
    rules: list[Rule]
    parents: list[ParentResult]

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def hostnames(self) -> list[str]:
        return list((self.obj.get("spec") or {}).get("hostnames") or [])

    @property
    def problem(self) -> Problem | None:
        """The route's ResolvedRefs failure (the first rule's that has one)."""
        return next((r.problem for r in self.rules if r.problem), None)

    def hosts_on(self, listener: Listener) -> list[str]:
        """The hostnames this route serves on ``listener``: each route hostname that
        intersects the listener's, the more specific of the two (the spec's hostname
        intersection; Istio's pickMatchingGatewayHosts)."""
        out: list[str] = []
        for h in self.hostnames or ["*"]:
            if not host_matches(listener.host, h):
                continue
            chosen = h if covers(listener.host, h) else listener.host
            if chosen not in out:
                out.append(chosen)
        return out


@dataclass
class Binding:
    """The whole picture: istiod's Gateways and every route's attachment."""

    classes: list[str]
    gateways: dict[tuple[str, str], Gateway]
    routes: list[Route]

    def attached(self, gateway: Gateway) -> list[tuple[Listener, Route]]:
        """The (listener, route) pairs accepted on ``gateway``, routes oldest first."""
        return [(p.listener, r) for r in self.routes for p in r.parents
                if p.gateway is gateway and p.denied is None]


def covers(a: str, b: str) -> bool:
    """Every host name ``b`` matches, ``a`` matches too (``*`` covers all; ``*.x.com``
    covers ``y.x.com`` and ``*.y.x.com``, not ``x.com``)."""
    return a == "*" or a == b or (a.startswith("*.") and b.endswith(a[1:]))


def host_matches(a: str, b: str) -> bool:
    """The bidirectional wildcard match Istio uses (host.Name.Matches)."""
    return covers(a, b) or covers(b, a)


def selector_matches(selector: dict, labels: dict) -> bool:
    """A metav1.LabelSelector (matchLabels and matchExpressions) against labels."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key", ""), e.get("operator", ""), e.get("values") or []
        ok = {"In": key in labels and labels[key] in values,
              "NotIn": key not in labels or labels[key] not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}.get(op, False)
        if not ok:
            return False
    return True


def _listener(snap: Snapshot, gw_ns: str, spec: dict) -> Listener:
    protocol = spec.get("protocol", "")
    allowed = spec.get("allowedRoutes") or {}
    from_ = (allowed.get("namespaces") or {}).get("from", "Same")
    namespaces: frozenset[str] | None = frozenset({gw_ns})
    if from_ == "All":
        namespaces = None
    elif from_ == "Selector":
        sel = (allowed.get("namespaces") or {}).get("selector") or {}
        namespaces = frozenset(n for n, labels in snap.namespace_labels.items()
                               if selector_matches(sel, labels))
    listener = Listener(spec.get("name", ""), int(spec.get("port", 0)), protocol,
                        spec.get("hostname"), namespaces, ())
    if protocol != "HTTP":
        message = f'protocol "{protocol}" is unsupported'  # Istio's words (UDP, typos)
        if protocol.upper() == "HTTP":
            message += '. hint: "HTTP" (uppercase) may be supported'
        elif protocol in ("HTTPS", "TLS", "TCP"):
            message += " by localmesh"  # Istio serves these; localmesh does not (yet)
        listener.problem = Problem("UnsupportedProtocol", message)
        return listener
    supported = (HTTP_ROUTE, GRPC_ROUTE)
    wanted = list(allowed.get("kinds") or [])
    if wanted:
        kinds = tuple(s for s in supported if any(
            k.get("kind") == s and k.get("group", GROUP) == GROUP for k in wanted))
        listener.kinds = kinds
        if len(kinds) != len(wanted):
            listener.kinds_problem = Problem("InvalidRouteKinds", "Invalid route kinds")
    else:
        listener.kinds = supported
    return listener


def _gateways(snap: Snapshot) -> tuple[list[str], dict[tuple[str, str], Gateway]]:
    classes = sorted(n for n, c in snap.classes.items()
                     if (c.get("spec") or {}).get("controllerName") == CONTROLLER)
    out: dict[tuple[str, str], Gateway] = {}
    for gw in snap.gateways:
        spec = gw.get("spec") or {}
        if spec.get("gatewayClassName") not in classes:
            continue
        ns, name = gw["metadata"]["namespace"], gw["metadata"]["name"]
        listeners = [_listener(snap, ns, ls) for ls in spec.get("listeners") or []]
        out[(ns, name)] = Gateway(gw, listeners, snap.services.get((ns, f"{name}-istio")))
    return classes, out


def _granted(snap: Snapshot, kind: str, from_ns: str, to_ns: str, to_name: str) -> bool:
    """Does a ReferenceGrant in ``to_ns`` let ``kind`` routes of ``from_ns`` use the
    Service ``to_name``?"""
    for grant in snap.grants:
        if grant["metadata"]["namespace"] != to_ns:
            continue
        spec = grant.get("spec") or {}
        if not any(f.get("group") == GROUP and f.get("kind") == kind and
                   f.get("namespace") == from_ns for f in spec.get("from") or []):
            continue
        if any((t.get("group") or "") == "" and t.get("kind") == "Service" and
               t.get("name") in (None, "", to_name) for t in spec.get("to") or []):
            return True
    return False


def _rule(snap: Snapshot, kind: str, ns: str, index: int, spec: dict) -> Rule:
    """A rule's backends as Istio's buildDestination resolves them; zero weights are
    dropped (a rule left without weight answers 500, see xds/gatewayapi.py)."""
    rule = Rule(index, spec, [])
    for f in spec.get("filters") or []:
        if f.get("type") not in FILTERS:  # Istio's convertHTTPRoute: the rule is dropped
            rule.problem = Problem("InvalidFilter", f'unsupported filter type "{f.get("type")}"')
            rule.dropped = True
    for ref in spec.get("backendRefs") or []:
        weight = int(ref.get("weight", 1))
        if weight == 0:
            continue
        group, ref_kind = ref.get("group", ""), ref.get("kind", "Service")
        name, to_ns = ref.get("name", ""), ref.get("namespace") or ns
        problem = None
        if (group, ref_kind) != ("", "Service"):
            problem = Problem("InvalidKind", f'referencing unsupported backendRef: group '
                                             f'"{group}" kind "{ref_kind}"')
        elif to_ns != ns and not _granted(snap, kind, ns, to_ns, name):
            problem = Problem("RefNotPermitted", f"backendRef {name}/{to_ns} not accessible "
                                                 f'to a {kind} in namespace "{ns}" (missing '
                                                 "a ReferenceGrant?)")
        elif "." in name:
            problem = Problem("InvalidDestination", "service name invalid; the name of the "
                                                    "Service must be used, not the hostname.")
        elif ref.get("port") is None:
            problem = Problem("InvalidDestination", "port is required in backendRef")
        if problem is not None:
            rule.problem = rule.problem or problem
            rule.dropped = rule.dropped or problem.reason not in INVALID_BACKEND
            rule.backends.append(Backend(None, weight))
            continue
        host = names.fqdn(name, to_ns)
        svc = snap.services.get((to_ns, name))
        if svc is None:
            rule.problem = rule.problem or Problem("BackendNotFound",
                                                   f"backend({host}) not found")
        rule.backends.append(Backend(names.outbound_cluster(int(ref["port"]), host), weight,
                                     svc, int(ref["port"]), list(ref.get("filters") or [])))
    return rule


def _denied(listener: Listener, kind: str, ref: dict, ns: str,
            hostnames: list[str]) -> Problem | None:
    """Why a parentRef does not attach to this listener (conversion.go referenceAllowed):
    port and sectionName first, then hostnames and namespace, then the route's kind."""
    port, section = ref.get("port"), ref.get("sectionName")
    if port is not None and int(port) != listener.port:
        return Problem(NO_MATCHING_PARENT, f"port {port} not found")
    if section and section != listener.name:
        return Problem(NO_MATCHING_PARENT, f'sectionName "{section}" not found')
    host_ok = any(host_matches(listener.host, h) for h in hostnames or ["*"])
    ns_ok = listener.namespaces is None or ns in listener.namespaces
    if not (host_ok and ns_ok):
        if host_ok:
            return Problem(NOT_ALLOWED, f'hostnames matched parent hostname "{listener.host}",'
                                        f' but namespace "{ns}" is not allowed by the parent')
        return Problem(NO_HOSTNAME, f'no hostnames matched parent hostname "{listener.host}"')
    if kind not in listener.kinds:
        return Problem(NOT_ALLOWED, f"kind {GROUP}/v1/{kind} is not allowed")
    return None


def _route(snap: Snapshot, gateways: dict[tuple[str, str], Gateway], kind: str,
           obj: dict) -> Route:
    ns = obj["metadata"]["namespace"]
    spec = obj.get("spec") or {}
    rules = [_rule(snap, kind, ns, i, r) for i, r in enumerate(spec.get("rules") or [])]
    route = Route(kind, obj, rules, [])
    for ref in spec.get("parentRefs") or []:
        if (ref.get("group", GROUP), ref.get("kind", "Gateway")) != (GROUP, "Gateway"):
            continue
        gw = gateways.get((ref.get("namespace") or ns, ref.get("name", "")))
        if gw is None:
            continue
        for listener in gw.listeners:
            if listener.problem is None:
                route.parents.append(ParentResult(
                    ref, gw, listener, _denied(listener, kind, ref, ns, route.hostnames)))
    return route


def _creation_order(obj: dict) -> tuple[str, str, str]:
    """Oldest first, then namespace and name (conversion.go sortRoutesByCreationTime)."""
    meta = obj["metadata"]
    return meta.get("creationTimestamp", ""), meta["namespace"], meta["name"]


def bind(snap: Snapshot) -> Binding:
    """Every route against every Gateway istiod manages, and the listeners' route counts."""
    classes, gateways = _gateways(snap)
    objs = [(HTTP_ROUTE, o) for o in snap.http_routes] + \
        [(GRPC_ROUTE, o) for o in snap.grpc_routes]
    objs.sort(key=lambda ko: _creation_order(ko[1]))
    routes = [_route(snap, gateways, kind, obj) for kind, obj in objs]
    for route in routes:
        for listener in {id(p.listener): p.listener for p in route.parents
                         if p.denied is None}.values():
            listener.attached += 1
    return Binding(classes, gateways, routes)

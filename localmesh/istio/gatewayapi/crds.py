"""The Gateway API's standard-channel CRDs, and the ``istio`` GatewayClass.

Names, scopes, served versions, short names, categories, printer columns and status
subresources are those of kubernetes-sigs/gateway-api ``config/crd/standard`` at bundle
v1.4.1 (the Gateway API release Istio 1.28 supports), so ``kubectl get gateways`` prints CLASS,
ADDRESS, PROGRAMMED and AGE as on a real cluster. The schemas are open
(``x-kubernetes-preserve-unknown-fields``): localmesh does not validate the fields
(docs/localmesh.md), but it applies the schema defaults clients read back
(:func:`apply_defaults`).
"""

from __future__ import annotations

import copy

from localmesh.api.objects import ObjectAPI
from localmesh.resources import ResourceType

GROUP = "gateway.networking.k8s.io"
BUNDLE_VERSION = "v1.4.1"
# As the v1.4.1 bundle's CRDs carry it (a *.k8s.io group needs an approval annotation).
APPROVAL = "https://github.com/kubernetes-sigs/gateway-api/pull/4530"
CONTROLLER = "istio.io/gateway-controller"  # Istio's constants.ManagedGatewayController
CLASS_NAME = "istio"
CLASS_DESCRIPTION = "The default Istio GatewayClass"  # pilot/.../gateway/gatewayclass.go

_AGE = {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"}
_HOSTNAMES = {"jsonPath": ".spec.hostnames", "name": "Hostnames", "type": "string"}
# (kind, plural, scope, short names, versions (storage first), printer columns, status)
KINDS: list[tuple[str, str, str, list[str], tuple[str, ...], list[dict], bool]] = [
    ("GatewayClass", "gatewayclasses", "Cluster", ["gc"], ("v1", "v1beta1"), [
        {"jsonPath": ".spec.controllerName", "name": "Controller", "type": "string"},
        {"jsonPath": '.status.conditions[?(@.type=="Accepted")].status', "name": "Accepted",
         "type": "string"},
        _AGE,
        {"jsonPath": ".spec.description", "name": "Description", "priority": 1,
         "type": "string"}], True),
    ("Gateway", "gateways", "Namespaced", ["gtw"], ("v1", "v1beta1"), [
        {"jsonPath": ".spec.gatewayClassName", "name": "Class", "type": "string"},
        {"jsonPath": ".status.addresses[*].value", "name": "Address", "type": "string"},
        {"jsonPath": '.status.conditions[?(@.type=="Programmed")].status',
         "name": "Programmed", "type": "string"},
        _AGE], True),
    ("HTTPRoute", "httproutes", "Namespaced", [], ("v1", "v1beta1"), [_HOSTNAMES, _AGE], True),
    ("GRPCRoute", "grpcroutes", "Namespaced", [], ("v1",), [_HOSTNAMES, _AGE], True),
    ("ReferenceGrant", "referencegrants", "Namespaced", ["refgrant"], ("v1beta1",), [_AGE],
     False),
]

GATEWAY_CLASSES = (GROUP, "gatewayclasses")
GATEWAYS = (GROUP, "gateways")
HTTP_ROUTES = (GROUP, "httproutes")
GRPC_ROUTES = (GROUP, "grpcroutes")
REFERENCE_GRANTS = (GROUP, "referencegrants")
KEYS = (GATEWAY_CLASSES, GATEWAYS, HTTP_ROUTES, GRPC_ROUTES, REFERENCE_GRANTS)


def definitions() -> list[dict]:
    """The CustomResourceDefinitions of the standard channel."""
    schema = {"openAPIV3Schema": {"type": "object",
                                  "x-kubernetes-preserve-unknown-fields": True}}
    out: list[dict] = []
    for kind, plural, scope, short, versions, columns, status in KINDS:
        names = {"categories": ["gateway-api"], "kind": kind, "listKind": f"{kind}List",
                 "plural": plural, "singular": kind.lower()}
        if short:
            names["shortNames"] = short
        out.append({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{GROUP}", "annotations": {
                "api-approved.kubernetes.io": APPROVAL,
                f"{GROUP}/bundle-version": BUNDLE_VERSION,
                f"{GROUP}/channel": "standard"}},
            "spec": {"group": GROUP, "names": names, "scope": scope, "versions": [
                {"name": v, "served": True, "storage": i == 0, "schema": schema,
                 "additionalPrinterColumns": columns,
                 "subresources": {"status": {}} if status else {}}
                for i, v in enumerate(versions)]},
        })
    return out


def istio_class() -> dict:
    """The GatewayClass istiod creates when it is missing (gatewayclass.go ClassController)."""
    return {"apiVersion": f"{GROUP}/v1", "kind": "GatewayClass",
            "metadata": {"name": CLASS_NAME},
            "spec": {"controllerName": CONTROLLER, "description": CLASS_DESCRIPTION}}


def _pending(types: tuple[str, ...]) -> dict:
    return {"conditions": [{"lastTransitionTime": "1970-01-01T00:00:00Z",
                            "message": "Waiting for controller", "reason": "Pending",
                            "status": "Unknown", "type": t} for t in types]}


def _route_defaults(spec: dict, grpc: bool) -> None:
    """The HTTPRoute and GRPCRoute schema defaults clients read back: parentRefs'
    group and kind, a rule's match-everything ``PathPrefix /``, match types ``Exact``,
    backendRefs' group, kind and weight, a redirect's 302."""
    every = {"path": {"type": "PathPrefix", "value": "/"}}
    for ref in spec.get("parentRefs") or []:
        ref.setdefault("group", GROUP)
        ref.setdefault("kind", "Gateway")
    if not grpc:
        spec.setdefault("rules", [{"matches": [copy.deepcopy(every)]}])
    for rule in spec.get("rules") or []:
        if not grpc:
            rule.setdefault("matches", [copy.deepcopy(every)])
        for m in rule.get("matches") or []:
            if not grpc:
                path = m.setdefault("path", copy.deepcopy(every["path"]))
                path.setdefault("type", "PathPrefix")
                path.setdefault("value", "/")
            elif isinstance(m.get("method"), dict):
                m["method"].setdefault("type", "Exact")
            for h in [*(m.get("headers") or []), *(m.get("queryParams") or [])]:
                h.setdefault("type", "Exact")
        for b in rule.get("backendRefs") or []:
            b.setdefault("group", "")
            b.setdefault("kind", "Service")
            b.setdefault("weight", 1)
        for f in rule.get("filters") or []:
            if f.get("type") == "RequestRedirect" and isinstance(f.get("requestRedirect"),
                                                                 dict):
                f["requestRedirect"].setdefault("statusCode", 302)


def apply_defaults(api: ObjectAPI, rt: ResourceType, obj: dict, old: dict | None) -> None:
    """The defaults of the upstream schemas, as apiextensions-apiserver applies them on
    every write: the spec fields above and a Gateway's ``allowedRoutes`` (routes from its
    own namespace), and, on create, the ``Pending`` status of GatewayClasses and
    Gateways ("Waiting for controller") that istiod then replaces."""
    spec = obj.get("spec")
    if isinstance(spec, dict):
        if rt.key in (HTTP_ROUTES, GRPC_ROUTES):
            _route_defaults(spec, rt.key == GRPC_ROUTES)
        elif rt.key == GATEWAYS:
            for listener in spec.get("listeners") or []:
                allowed = listener.setdefault("allowedRoutes", {})
                allowed.setdefault("namespaces", {}).setdefault("from", "Same")
    if old is None and not obj.get("status"):
        if rt.key == GATEWAY_CLASSES:
            obj["status"] = _pending(("Accepted",))
        elif rt.key == GATEWAYS:
            obj["status"] = _pending(("Accepted", "Programmed"))

"""Routes as openshift-apiserver admits them (``route.openshift.io/v1``).

Served like openshift-apiserver serves them (not as a CRD): with the status subresource,
the defaults of openshift/api ``route/v1`` (``spec.to.kind: Service``, ``weight: 100`` for
``to`` and each alternate backend, ``wildcardPolicy: None``), a generated host
``<name>-<namespace>.<apps domain>`` (or ``<subdomain>.<apps domain>``) when ``spec.host``
is empty, marked with the annotation ``openshift.io/host.generated: "true"``
(openshift-apiserver ``pkg/route/apiserver/registry/route`` with library-go's
``route/hostassignment``), and the validation of ``pkg/route/apis/route/validation`` that a
client meets first: the target, weights, at most three alternate backends, paths, TLS
termination and its insecure policy. Which router serves a Route, and whether it admits
the host, is the router's business (router.py).
"""

from __future__ import annotations

from localmesh.admission import DNS1123_SUBDOMAIN
from localmesh.api.objects import ObjectAPI
from localmesh.resources import ResourceType

GROUP = "route.openshift.io"
ROUTES_KEY = (GROUP, "routes")
ROUTES = ResourceType(GROUP, "v1", "routes", "Route", True, (), ("status",),
                      categories=("all",), custom=True)
HOST_GENERATED = "openshift.io/host.generated"
TERMINATIONS = ("edge", "passthrough", "reencrypt")
INSECURE_POLICIES = ("", "Allow", "None", "Redirect")

Causes = list[tuple[str, str, str]]


class RouteAdmission:
    """Mutating and validating admission for Routes, with the cluster's apps domain."""

    def __init__(self, domain: str) -> None:
        self.domain = domain

    def default(self, api: ObjectAPI, rt: ResourceType, route: dict, old: dict | None) -> None:
        spec = route.setdefault("spec", {})
        to = spec.setdefault("to", {})
        to.setdefault("kind", "Service")
        to.setdefault("weight", 100)
        for backend in spec.get("alternateBackends") or []:
            backend.setdefault("kind", "Service")
            backend.setdefault("weight", 100)
        spec.setdefault("wildcardPolicy", "None")
        meta = route.setdefault("metadata", {})
        if old is not None and not spec.get("host"):
            spec["host"] = (old.get("spec") or {}).get("host", "")
            if HOST_GENERATED in ((old.get("metadata") or {}).get("annotations") or {}):
                meta.setdefault("annotations", {})[HOST_GENERATED] = "true"
        if not spec.get("host"):
            if spec.get("subdomain"):
                spec["host"] = f"{spec['subdomain']}.{self.domain}"
            else:
                spec["host"] = f"{meta.get('name', '')}-{meta.get('namespace', '')}." \
                               f"{self.domain}"
            meta.setdefault("annotations", {})[HOST_GENERATED] = "true"
        if old is None:
            route["status"] = {}

    def validate(self, api: ObjectAPI, rt: ResourceType, route: dict,
                 old: dict | None) -> Causes:
        return validate(route)


def _weight(value: object, field: str) -> Causes:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 256:
        return [(field, "FieldValueInvalid",
                 f"Invalid value: {value}: weight must be an integer between 0 and 256")]
    return []


def validate(route: dict) -> Causes:
    """The causes of an invalid Route, as openshift-apiserver words them."""
    spec = route.get("spec") or {}
    causes: Causes = []
    host = spec.get("host") or ""
    if host and (len(host) > 253 or not DNS1123_SUBDOMAIN.match(host)):
        causes.append(("spec.host", "FieldValueInvalid",
                       f'Invalid value: "{host}": a lowercase RFC 1123 subdomain must consist '
                       "of lower case alphanumeric characters, '-' or '.', and must start "
                       "and end with an alphanumeric character"))
    to = spec.get("to") or {}
    if not to.get("name"):
        causes.append(("spec.to.name", "FieldValueRequired", "Required value"))
    if to.get("kind") != "Service":
        causes.append(("spec.to.kind", "FieldValueInvalid",
                       f'Invalid value: "{to.get("kind")}": must reference a Service'))
    causes += _weight(to.get("weight"), "spec.to.weight")
    backends = spec.get("alternateBackends") or []
    if len(backends) > 3:
        causes.append(("spec.alternateBackends", "FieldValueInvalid",
                       "Invalid value: \"\": cannot specify more than 3 additional backends"))
    for i, backend in enumerate(backends):
        if not backend.get("name"):
            causes.append((f"spec.alternateBackends[{i}].name", "FieldValueRequired",
                           "Required value"))
        if backend.get("kind") != "Service":
            causes.append((f"spec.alternateBackends[{i}].kind", "FieldValueInvalid",
                           f'Invalid value: "{backend.get("kind")}": must reference a '
                           "Service"))
        causes += _weight(backend.get("weight"), f"spec.alternateBackends[{i}].weight")
    path = spec.get("path") or ""
    if path and not path.startswith("/"):
        causes.append(("spec.path", "FieldValueInvalid",
                       f'Invalid value: "{path}": path must begin with /'))
    tls = spec.get("tls")
    if tls:
        termination = tls.get("termination", "")
        if termination not in TERMINATIONS:
            causes.append(("spec.tls.termination", "FieldValueNotSupported",
                           f'Unsupported value: "{termination}": supported values: '
                           '"edge", "passthrough", "reencrypt"'))
        policy = tls.get("insecureEdgeTerminationPolicy") or ""
        if policy not in INSECURE_POLICIES:
            causes.append(("spec.tls.insecureEdgeTerminationPolicy", "FieldValueNotSupported",
                           f'Unsupported value: "{policy}": supported values: "", "Allow", '
                           '"None", "Redirect"'))
        if termination == "passthrough":
            if path:
                causes.append(("spec.path", "FieldValueInvalid",
                               f'Invalid value: "{path}": passthrough termination does not '
                               "support paths"))
            if policy == "Allow":
                causes.append(("spec.tls.insecureEdgeTerminationPolicy", "FieldValueInvalid",
                               'Invalid value: "Allow": InsecureEdgeTerminationPolicy is only '
                               "allowed for edge and reencrypt routes"))
            for field in ("certificate", "key", "caCertificate", "destinationCACertificate"):
                if tls.get(field):
                    causes.append((f"spec.tls.{field}", "FieldValueInvalid",
                                   f'Invalid value: "redacted {field} data": passthrough '
                                   f"termination does not support {field}s"))
        if termination == "edge" and tls.get("destinationCACertificate"):
            causes.append(("spec.tls.destinationCACertificate", "FieldValueInvalid",
                           'Invalid value: "redacted destination ca certificate data": edge '
                           "termination does not support destination certificates"))
    return causes

"""Istio's injection webhooks: the MutatingWebhookConfiguration objects an install writes,
and which of them the API server would call for a new pod.

On a real cluster the sidecar injector is chosen by kube-apiserver, not by Istio: every
``MutatingWebhookConfiguration`` is evaluated (configurations in name order, webhooks in
their order; k8s.io/apiserver ``pkg/admission/plugin/webhook/mutating``), a webhook is
called when its ``rules`` cover the request, its ``namespaceSelector`` matches the
namespace's labels (with ``kubernetes.io/metadata.name``) and its ``objectSelector`` the
pod's; Istio's injector then skips a pod already injected. Revisions and revision tags are
nothing more than such configurations, rendered by Istio's chart
(``manifests/charts/istio-control/istio-discovery/templates/mutatingwebhook.yaml`` and
``revision-tags-mwc.yaml``) with different selectors and a different istiod Service:

- revision ``R`` (``istio-sidecar-injector-R``): ``rev.namespace`` for namespaces
  labelled ``istio.io/rev=R`` without ``istio-injection``, ``rev.object`` for pods labelled
  ``istio.io/rev=R`` in namespaces with neither label;
- the default revision (``istio-sidecar-injector``) adds ``namespace`` for
  ``istio-injection=enabled`` and ``object`` for pods labelled
  ``sidecar.istio.io/inject=true`` with no revision label anywhere — hence "istio-injection
  takes precedence over istio.io/rev" in Istio's docs;
- a tag ``T`` (``istio-revision-tag-T``, labelled ``istio.io/tag``) selects ``istio.io/rev=T``
  and calls its revision's Service; the ``default`` tag also takes the default revision's
  two webhooks (and ``istioctl tag set default`` deactivates the default revision's own
  with the never-matching selector ``istio.io/deactivated: never-match``).

localmesh's API server calls admission webhooks over HTTPS (localmesh/webhooks.py), but
not these: the in-process injector stands for them. It asks :func:`injector_call` which
configuration the API server would call, and injects as the revision behind its Service;
:func:`answered_by_injector` tells the API server's webhook plugin which webhooks that
covers, so none is answered twice (the mesh registers it beside the injector). A selected
webhook whose Service is gone or has no ready endpoint fails the pod's creation under
``failurePolicy: Fail``, with kube-apiserver's message, as on a real cluster (a deleted
istiod with its configuration left behind). istiod still serves ``/inject`` over HTTPS
(inject_server.py) for any other client.
"""

from __future__ import annotations

from dataclasses import dataclass

from localmesh.api.selectors import selector_matches
from localmesh.api.status import ApiError
from localmesh.istio.names import ISTIO_NAMESPACE
from localmesh.resources import Registry, ResourceType
from localmesh.store import Store

GROUP = "admissionregistration.k8s.io"
MWC = (GROUP, "mutatingwebhookconfigurations")
# Served by the API (localmesh's own API registers it where its build does; the mesh's
# installer makes sure of it, as istioctl needs it to install).
MWC_TYPE = ResourceType(GROUP, "v1", "mutatingwebhookconfigurations",
                        "MutatingWebhookConfiguration", False)
SERVICES = ("", "services")
ENDPOINTS = ("", "endpoints")
NAMESPACES = ("", "namespaces")
PODS = ("", "pods")
NEVER_MATCH = {"matchLabels": {"istio.io/deactivated": "never-match"}}
DEFAULT = "default"


def serve_kind(registry: Registry) -> None:
    """Make the API serve MutatingWebhookConfigurations, unless it already does."""
    if registry.by_key(MWC) is None:
        registry.types.append(MWC_TYPE)


def _covers_pod_create(webhook: dict) -> bool:
    for rule in webhook.get("rules") or []:
        ops = rule.get("operations") or []
        resources = rule.get("resources") or []
        groups = rule.get("apiGroups") or []
        if ("CREATE" in ops or "*" in ops) and ("pods" in resources or "*" in resources) \
                and ("" in groups or "*" in groups):
            return True
    return False


@dataclass(frozen=True)
class Call:
    """A webhook the API server would call: which configuration and webhook, and the
    istiod Service behind it."""

    configuration: str
    webhook: str
    service: str
    namespace: str
    path: str
    failure_policy: str


def calls(store: Store, namespace: dict, pod: dict) -> list[Call]:
    """Every webhook the API server would call for creating ``pod``, in its order."""
    ns_labels = {**((namespace.get("metadata") or {}).get("labels") or {}),
                 "kubernetes.io/metadata.name": (namespace.get("metadata") or {}).get(
                     "name", "")}
    pod_labels = (pod.get("metadata") or {}).get("labels") or {}
    out = []
    configs = sorted(store.scan(MWC), key=lambda c: c["metadata"]["name"])
    for config in configs:
        if (config.get("metadata") or {}).get("deletionTimestamp"):
            continue
        for hook in config.get("webhooks") or []:
            if not _covers_pod_create(hook):
                continue
            if not selector_matches(hook.get("namespaceSelector"), ns_labels):
                continue
            if not selector_matches(hook.get("objectSelector"), pod_labels):
                continue
            service = (hook.get("clientConfig") or {}).get("service") or {}
            out.append(Call(config["metadata"]["name"], hook.get("name", ""),
                            service.get("name", ""), service.get("namespace", ""),
                            service.get("path", ""), hook.get("failurePolicy", "Fail")))
    return out


def is_istio_injector(call: Call) -> bool:
    """Istio's injection endpoint (``/inject``, also ``/inject/cluster/<c>/net/<n>``)."""
    return call.namespace == ISTIO_NAMESPACE and call.path.startswith("/inject")


def answered_by_injector(hook: dict, rt: ResourceType, operation: str) -> bool:
    """Whether the in-process injector answers this webhook for this request: one of
    Istio's injection webhooks (as :func:`is_istio_injector` tells them) on a pod's
    creation — exactly the calls :func:`calls` considers."""
    service = (hook.get("clientConfig") or {}).get("service") or {}
    return rt.key == PODS and operation == "CREATE" and _covers_pod_create(hook) and \
        is_istio_injector(Call("", hook.get("name", ""), service.get("name", ""),
                               service.get("namespace", ""), service.get("path", ""),
                               hook.get("failurePolicy", "Fail")))


def _unreachable(store: Store, call: Call) -> str | None:
    """Why the API server could not reach the webhook's Service, as it says it."""
    svc = store.get(SERVICES, call.namespace, call.service)
    if svc is None:
        return f'service "{call.service}" not found'
    ep = store.get(ENDPOINTS, call.namespace, call.service) or {}
    if not any(s.get("addresses") for s in ep.get("subsets") or []):
        return f'no endpoints available for service "{call.service}"'
    return None


def injector_call(store: Store, namespace: dict, pod: dict) -> Call | None:
    """The first of Istio's injection webhooks the API server would call for ``pod``,
    or None. A call that cannot reach its Service raises the API server's 500 under
    ``failurePolicy: Fail`` and is skipped under ``Ignore``."""
    for call in calls(store, namespace, pod):
        if not is_istio_injector(call):
            continue
        why = _unreachable(store, call)
        if why is None:
            return call
        if call.failure_policy == "Ignore":
            continue
        raise ApiError(500, "InternalError",
                       f'Internal error occurred: failed calling webhook "{call.webhook}": '
                       f'failed to call webhook: Post "https://{call.service}.'
                       f'{call.namespace}.svc:443{call.path}?timeout=10s": {why}')
    return None


def revision_of_service(store: Store, call: Call) -> str:
    """The revision whose istiod answers a call: its Service's ``istio.io/rev`` label."""
    svc = store.get(SERVICES, call.namespace, call.service) or {}
    return ((svc.get("metadata") or {}).get("labels") or {}).get("istio.io/rev") or DEFAULT


# -- Istio's chart, rendered ---------------------------------------------------------
def _webhook(prefix: str, service: str, namespace_selector: dict,
             object_selector: dict) -> dict:
    return {"name": f"{prefix}sidecar-injector.istio.io",
            "clientConfig": {"service": {"name": service, "namespace": ISTIO_NAMESPACE,
                                         "path": "/inject", "port": 443}},
            "sideEffects": "None",
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods"]}],
            "failurePolicy": "Fail", "reinvocationPolicy": "Never",
            "admissionReviewVersions": ["v1"],
            "namespaceSelector": namespace_selector, "objectSelector": object_selector}


def _expr(key: str, op: str, *values: str) -> dict:
    return {"key": key, "operator": op, **({"values": list(values)} if values else {})}


def webhooks(selected: str, service: str, *, default: bool) -> list[dict]:
    """The webhooks selecting ``istio.io/rev=<selected>`` (a revision or a tag) for the
    istiod Service ``service``; ``default`` adds the default revision's
    ``istio-injection=enabled`` and ``sidecar.istio.io/inject=true`` webhooks."""
    out = [
        _webhook("rev.namespace.", service,
                 {"matchExpressions": [_expr("istio.io/rev", "In", selected),
                                       _expr("istio-injection", "DoesNotExist")]},
                 {"matchExpressions": [_expr("sidecar.istio.io/inject", "NotIn", "false")]}),
        _webhook("rev.object.", service,
                 {"matchExpressions": [_expr("istio.io/rev", "DoesNotExist"),
                                       _expr("istio-injection", "DoesNotExist")]},
                 {"matchExpressions": [_expr("sidecar.istio.io/inject", "NotIn", "false"),
                                       _expr("istio.io/rev", "In", selected)]}),
    ]
    if default:
        out += [
            _webhook("namespace.", service,
                     {"matchExpressions": [_expr("istio-injection", "In", "enabled")]},
                     {"matchExpressions": [_expr("sidecar.istio.io/inject", "NotIn",
                                                 "false")]}),
            _webhook("object.", service,
                     {"matchExpressions": [_expr("istio-injection", "DoesNotExist"),
                                           _expr("istio.io/rev", "DoesNotExist")]},
                     {"matchExpressions": [_expr("sidecar.istio.io/inject", "In", "true"),
                                           _expr("istio.io/rev", "DoesNotExist")]}),
        ]
    return out


def service_name(revision: str) -> str:
    """istiod's Service for a revision: ``istiod`` for the default, else ``istiod-<rev>``."""
    return "istiod" if revision == DEFAULT else f"istiod-{revision}"


def revision_configuration(revision: str) -> dict:
    """``istio-sidecar-injector[-<rev>]``, as the istiod chart renders it for ``revision``."""
    name = "istio-sidecar-injector" + ("" if revision == DEFAULT else f"-{revision}")
    return {"apiVersion": f"{GROUP}/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name, "labels": {
                "app": "sidecar-injector", "istio.io/rev": revision,
                "install.operator.istio.io/owning-resource": "unknown",
                "operator.istio.io/component": "Pilot", "release": "istio"}},
            "webhooks": webhooks(revision, service_name(revision),
                                 default=revision == DEFAULT)}


def tag_configuration(tag: str, revision: str) -> dict:
    """``istio-revision-tag-<tag>``, as ``istioctl tag set <tag> --revision <rev>`` (or the
    chart's ``revisionTags``) writes it."""
    return {"apiVersion": f"{GROUP}/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": f"istio-revision-tag-{tag}", "labels": {
                "app": "sidecar-injector", "istio.io/rev": revision, "istio.io/tag": tag,
                "app.kubernetes.io/name": "istiod", "release": "istio"}},
            "webhooks": webhooks(tag, service_name(revision), default=tag == DEFAULT)}


def default_revision(store: Store) -> str:
    """The revision acting as the default (istiod's default-revision watch,
    ``pkg/revisions``): the one the ``default`` tag points to, else ``default``. It
    controls what carries no revision: the Gateway API's automated deployments here."""
    tag = store.get(MWC, "", f"istio-revision-tag-{DEFAULT}")
    if tag is None or (tag.get("metadata") or {}).get("deletionTimestamp"):
        return DEFAULT
    return ((tag.get("metadata") or {}).get("labels") or {}).get("istio.io/rev") or DEFAULT

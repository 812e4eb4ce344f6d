"""Admission webhooks: MutatingWebhookConfiguration and ValidatingWebhookConfiguration,
called over HTTPS with an ``admission.k8s.io/v1`` AdmissionReview as kube-apiserver calls
them (k8s.io/apiserver ``pkg/admission/plugin/webhook``).

A webhook is called for a request its ``rules`` match (API groups, versions, resources,
operations, scope) and its ``namespaceSelector`` and ``objectSelector`` select. It is
reached at ``clientConfig.url`` or through ``clientConfig.service`` (the Service's ready
endpoint, with TLS verified against ``caBundle`` for the name ``<service>.<namespace>.svc``,
as the API server verifies it), on ``path`` and ``port`` (443 by default). A mutating
webhook's JSONPatch is applied to the object before validation; a validating webhook sees
the final object (and, on DELETE, the old one). A refusal is the answer's status with
upstream's message (``admission webhook "<name>" denied the request: <message>``, at least
400); a webhook that cannot be called is 500 ``failed calling webhook`` under
``failurePolicy: Fail`` and skipped under ``Ignore``; ``warnings`` become Warning headers.

Configurations are called in name order, webhooks in their order, each seeing the object
as the ones before left it (``sort.SliceStable`` by name in the generic webhook source).

Istio's injection webhooks (``istio-sidecar-injector[-<rev>]``, ``istio-revision-tag-<tag>``:
an istiod Service's ``/inject``) are not called over the network while a mesh is
installed: the in-process injector (localmesh/istio/injector.py) answers for them, having
chosen the revision by the very same configurations, selectors and ``failurePolicy``
(localmesh/istio/webhooks.py), so a pod is injected once, by the right revision, and
nobody calls istiod's own ``/inject`` server (localmesh/istio/inject_server.py) a second
time. The mesh registers that in ``Admission.answered_in_process``. Why not call istiod
over HTTPS: this call is synchronous on the event loop that also serves istiod, and an
HTTPS round trip on every pod's creation would cost boot and rollout time for nothing a
test could tell apart.

The mutating webhooks run after every built-in mutating step (defaults, LimitRanger,
OpenShift's SCCs), the validating ones after validation, as upstream orders its plugins.

Differences (docs/localmesh.md): the call is made synchronously, so a slow webhook holds
localmesh's API for its duration (bounded by ``timeoutSeconds``); ``reinvocationPolicy``
is not honoured (each mutating webhook is called once); Istio's injection, answered among
the built-in steps, comes before the other mutating webhooks whatever the configurations'
names (upstream: in name order with them).
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import socket
import ssl
import uuid
from urllib.parse import urlsplit

from localmesh import pki
from localmesh.admissionpolicy import rule_matches
from localmesh.api import status
from localmesh.api.authn import current_user
from localmesh.api.json_patch import PatchError, apply_ops
from localmesh.api.objects import ObjectAPI, admission_warnings
from localmesh.api.selectors import selector_matches
from localmesh.api.status import ApiError
from localmesh.resources import ResourceType

log = logging.getLogger("localmesh.webhooks")

MUTATING = ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
VALIDATING = ("admissionregistration.k8s.io", "validatingwebhookconfigurations")


class CallError(Exception):
    """The webhook could not be called or did not answer an AdmissionReview."""


def _selected(api: ObjectAPI, hook: dict, rt: ResourceType, obj: dict | None,
              old: dict | None) -> bool:
    subject = obj if obj is not None else old or {}
    meta = subject.get("metadata") or {}
    if not selector_matches(hook.get("objectSelector"), meta.get("labels")):
        return False
    if hook.get("namespaceSelector") and rt.key == ("", "namespaces"):
        # A Namespace is matched by its own labels (the webhook namespace matcher).
        return selector_matches(hook["namespaceSelector"], meta.get("labels"))
    if hook.get("namespaceSelector") and rt.namespaced:
        ns = api.store.get(("", "namespaces"), "", meta.get("namespace", ""))
        if not selector_matches(hook["namespaceSelector"],
                                ((ns or {}).get("metadata") or {}).get("labels")):
            return False
    return True


def _endpoint(api: ObjectAPI, config: dict) -> tuple[str, int, str, str]:
    """(host to dial, port, TLS name, path) of a webhook's clientConfig."""
    if config.get("url"):
        u = urlsplit(config["url"])
        return (u.hostname or "", u.port or 443, u.hostname or "",
                u.path + (f"?{u.query}" if u.query else ""))
    ref = config.get("service") or {}
    ns, name = ref.get("namespace", ""), ref.get("name", "")
    port = int(ref.get("port") or 443)
    svc = api.store.get(("", "services"), ns, name)
    if svc is None:
        raise CallError(f'service "{name}" not found')
    sport = next((p for p in (svc.get("spec") or {}).get("ports") or []
                  if p.get("port") == port), None)
    if sport is None:
        raise CallError(f'no service port {port} found for service "{name}"')
    ep = api.store.get(("", "endpoints"), ns, name) or {}
    for sub in ep.get("subsets") or []:
        eport = next((p["port"] for p in sub.get("ports") or []
                      if p.get("name", "") == sport.get("name", "")), None)
        for addr in sub.get("addresses") or []:
            if eport is not None:
                return addr["ip"], eport, f"{name}.{ns}.svc", ref.get("path") or "/"
    raise CallError(f'no endpoints available for service "{name}"')


class _Connection(http.client.HTTPSConnection):
    """HTTPS to an address with a TLS name of its own (the Service's DNS name)."""

    def __init__(self, host: str, port: int, server_name: str, context: ssl.SSLContext,
                 timeout: float) -> None:
        super().__init__(host, port, context=context, timeout=timeout)
        self.server_name = server_name
        self.tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.server_name)


def call(api: ObjectAPI, hook: dict, review: dict) -> dict:
    """POST the AdmissionReview; the review's ``response``."""
    config = hook.get("clientConfig") or {}
    seconds = int(hook.get("timeoutSeconds") or 10)
    # The URL as the API server's errors show it (the service resolver runs inside its
    # HTTP client's dial, so a missing endpoint is reported like a refused connection).
    ref = config.get("service") or {}
    shown = config.get("url") or (f"https://{ref.get('name', '')}."
                                  f"{ref.get('namespace', '')}.svc:"
                                  f"{int(ref.get('port') or 443)}{ref.get('path') or ''}")
    shown += f"{'&' if '?' in shown else '?'}timeout={seconds}s"
    try:
        host, port, server_name, path = _endpoint(api, config)
    except CallError as exc:
        raise CallError(f'Post "{shown}": {exc}') from exc
    ctx = pki.client_context(base64.b64decode(config["caBundle"])
                             if config.get("caBundle") else None)
    conn = _Connection(host, port, server_name, ctx, float(seconds))
    try:
        conn.request("POST", path or "/", body=json.dumps(review),
                     headers={"Content-Type": "application/json",
                              "Accept": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
    except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
        raise CallError(f'Post "{shown}": {exc}') from exc
    finally:
        conn.close()
    if resp.status != 200:
        raise CallError(f"the server responded with {resp.status}")
    try:
        answer = json.loads(body)["response"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CallError(f"the response is not an AdmissionReview: {exc}") from exc
    if not isinstance(answer, dict) or answer.get("uid") != review["request"]["uid"]:
        raise CallError("the response uid does not match the request's")
    return answer


def _review(rt: ResourceType, operation: str, obj: dict | None, old: dict | None) -> dict:
    subject = obj if obj is not None else old or {}
    meta = subject.get("metadata") or {}
    user = current_user.get()
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    gvr = {"group": rt.group, "version": rt.version, "resource": rt.plural}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()), "kind": gvk, "resource": gvr, "requestKind": gvk,
        "requestResource": gvr, "name": meta.get("name", ""),
        "namespace": meta.get("namespace", "") if rt.namespaced else "",
        "operation": operation,
        "userInfo": user.as_dict() if user is not None else {
            "username": "system:kube-controller-manager"},
        "object": obj, "oldObject": old, "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1",
                    "kind": {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions",
                             "DELETE": "DeleteOptions"}[operation]}}}


def _denied(name: str, result: dict | None) -> ApiError:
    """webhookerrors.ToStatusErr."""
    result = result or {}
    prefix = f"admission webhook {status.go_quote(name)} denied the request"
    if result.get("message"):
        message = f"{prefix}: {result['message']}"
    elif result.get("reason"):
        message = f"{prefix}: {result['reason']}"
    else:
        message = f"{prefix} without explanation"
    code = max(int(result.get("code") or 400), 400)
    return ApiError(code, result.get("reason", ""), message)


class Webhooks:
    """Both plugins: ``mutate`` is a mutating step, ``validate`` a policy step."""

    def _hooks(self, api: ObjectAPI, key: tuple[str, str], rt: ResourceType, operation: str,
               obj: dict | None, old: dict | None) -> list[dict]:
        if rt.key in (MUTATING, VALIDATING):
            return []  # webhooks are not called for webhook configurations
        local = api.admission.answered_in_process
        out = []
        for config in sorted(api.store.scan(key), key=lambda c: c["metadata"]["name"]):
            if (config.get("metadata") or {}).get("deletionTimestamp"):
                continue
            for hook in config.get("webhooks") or []:
                if any(answered(hook, rt, operation) for answered in local):
                    continue  # answered by an admission step in process (Istio's injector)
                if any(rule_matches(r, rt, operation, rt.namespaced)
                                               for r in hook.get("rules") or []) and \
                        _selected(api, hook, rt, obj, old):
                    out.append(hook)
        return out

    def _ask(self, api: ObjectAPI, hook: dict, review: dict) -> dict | None:
        try:
            answer = call(api, hook, review)
        except CallError as exc:
            if hook.get("failurePolicy", "Fail") == "Ignore":
                log.info("webhook %s skipped (failurePolicy Ignore): %s", hook.get("name"), exc)
                return None
            raise ApiError(500, "InternalError",
                           f"Internal error occurred: failed calling webhook "
                           f"{status.go_quote(hook.get('name', ''))}: failed to call webhook: "
                           f"{exc}", causes=[{"message": f"failed calling webhook: {exc}"}],
                           with_details=True) from exc
        found = admission_warnings.get()
        if found is not None:
            found.extend(str(w) for w in answer.get("warnings") or [])
        if not answer.get("allowed"):
            raise _denied(hook.get("name", ""), answer.get("status"))
        return answer

    def mutate(self, api: ObjectAPI, rt: ResourceType, obj: dict, old: dict | None) -> None:
        operation = "CREATE" if old is None else "UPDATE"
        for hook in self._hooks(api, MUTATING, rt, operation, obj, old):
            answer = self._ask(api, hook, _review(rt, operation, obj, old))
            if not answer or not answer.get("patch"):
                continue
            try:
                ops = json.loads(base64.b64decode(answer["patch"]))
                patched = apply_ops(obj, ops)
            except (ValueError, PatchError) as exc:
                raise ApiError(500, "InternalError",
                               f"Internal error occurred: JSON patch of webhook "
                               f"{status.go_quote(hook.get('name', ''))} failed: {exc}") from exc
            obj.clear()
            obj.update(patched)

    def validate(self, api: ObjectAPI, rt: ResourceType, operation: str, obj: dict | None,
                 old: dict | None) -> None:
        for hook in self._hooks(api, VALIDATING, rt, operation, obj, old):
            self._ask(api, hook, _review(rt, operation, obj, old))


def install(api: ObjectAPI) -> None:
    hooks = Webhooks()
    api.admission.mutating_webhooks.append(hooks.mutate)
    api.admission.add_policy(hooks.validate)

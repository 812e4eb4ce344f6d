"""istiod's injection webhook: ``POST /inject`` on 15017 (HTTPS), as the Service port
``https-webhook`` 443 of every istiod names it in its MutatingWebhookConfiguration.

kube-apiserver sends an ``admission.k8s.io/v1`` AdmissionReview holding the pod; istiod
answers with the pod's injection as a JSONPatch (pkg/kube/inject/webhook.go ``inject``),
as its own revision injects it (injector.py), or with no patch for a pod it must not
inject or that is injected already. localmesh's own API server calls admission webhooks
over HTTPS but not this one: the in-process injector answers Istio's injection webhooks
(injector.py, webhooks.py; localmesh/webhooks.py says why), so a pod is injected once.
This endpoint answers as that injector does, for a client that asks to see a revision's
injection, or an API server of its own that calls webhooks.

istiod also keeps the ``caBundle`` of its webhook configurations (those labelled with its
revision, tags included) set to the mesh's root certificate, which signs its serving
certificate (pkg/webhooks/webhookpatch.go): :func:`patch_ca_bundles`.
"""

from __future__ import annotations

import base64
import copy
import json
import logging

from aiohttp import web

from localmesh.api.objects import ObjectAPI
from localmesh.api.status import ApiError
from localmesh.istio import webhooks
from localmesh.istio.injector import (
    GATEWAY_TEMPLATE,
    TEMPLATES_ANNOTATION,
    Injector,
    inject,
    inject_gateway,
    inject_required,
    revision_of,
)

log = logging.getLogger("localmesh.istiod")


def injection_patch(api: ObjectAPI, injector: Injector, revision: str, pod: dict,
                    namespace: str) -> list[dict]:
    """The JSONPatch that injects ``revision``'s proxy into ``pod``; [] when none."""
    meta = pod.get("metadata") or {}
    if "sidecar.istio.io/status" in (meta.get("annotations") or {}):
        return []
    rev = revision_of(api.store, revision)
    if not inject_required(pod, rev.policy):
        return []
    out = copy.deepcopy(pod)
    out.setdefault("metadata", {}).setdefault("namespace", namespace)
    config = injector.proxy_config_of(api.store, rev)
    if (meta.get("annotations") or {}).get(TEMPLATES_ANNOTATION) == GATEWAY_TEMPLATE:
        inject_gateway(out, config, rev)
    else:
        inject(api, out, config, rev)
    # "add" replaces a member that exists (RFC 6902 4.1): the three parts injection edits.
    return [{"op": "add", "path": "/metadata/labels", "value": out["metadata"].get("labels")
             or {}},
            {"op": "add", "path": "/metadata/annotations",
             "value": out["metadata"].get("annotations") or {}},
            {"op": "add", "path": "/spec", "value": out.get("spec") or {}}]


class InjectionWebhook:
    """The ``/inject`` handler of one revision's istiod."""

    def __init__(self, api: ObjectAPI, injector: Injector, revision: str) -> None:
        self.api = api
        self.injector = injector
        self.revision = revision
        self.calls = 0

    async def handle(self, request: web.Request) -> web.Response:
        try:
            review = await request.json()
            req = review["request"]
        except (ValueError, KeyError, TypeError):
            return web.Response(status=400, text="not an AdmissionReview\n")
        self.calls += 1
        response: dict = {"uid": req.get("uid", ""), "allowed": True}
        try:
            patch = injection_patch(self.api, self.injector, self.revision,
                                    req.get("object") or {}, req.get("namespace") or "")
        except ApiError as exc:
            patch = []
            response["warnings"] = [f"injection failed: {exc.message}"]
        if patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
        return web.json_response({"apiVersion": review.get("apiVersion",
                                                           "admission.k8s.io/v1"),
                                  "kind": "AdmissionReview", "response": response})

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/inject", self.handle), web.post("/inject/{tail:.*}", self.handle)]


def patch_ca_bundles(api: ObjectAPI, revisions: set[str], root_pem: str) -> None:
    """Set ``caBundle`` on the injection webhooks of the running revisions' configurations
    (their ``istio.io/rev`` label) that call an istiod Service, where it differs."""
    bundle = base64.b64encode(root_pem.encode()).decode()
    rt = api.rt(f"{webhooks.GROUP}/v1", "MutatingWebhookConfiguration")
    for config in api.store.scan(webhooks.MWC):
        meta = config.get("metadata") or {}
        if meta.get("deletionTimestamp") or \
                (meta.get("labels") or {}).get("istio.io/rev") not in revisions:
            continue
        body = copy.deepcopy(config)
        for hook in body.get("webhooks") or []:
            service = (hook.get("clientConfig") or {}).get("service") or {}
            if service.get("namespace") == webhooks.ISTIO_NAMESPACE and \
                    (service.get("name") or "").startswith("istiod"):
                hook["clientConfig"]["caBundle"] = bundle
        if body == config:
            continue
        body["metadata"]["resourceVersion"] = None
        try:
            api.update(rt, "", meta["name"], body, check_version=False)
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

"""Publishes the mesh root as the ConfigMap ``istio-ca-root-cert`` in every namespace.

istiod's namespace controller (istio/istio ``security/pkg/k8s/namespace.go``) writes the
ConfigMap, key ``root-cert.pem``, labelled ``istio.io/config: "true"``, into every
namespace, namespaces created later included, and puts it back when someone deletes or
edits it. Proxies mount it at ``/var/run/secrets/istio`` (the injector's
``istiod-ca-cert`` volume) to verify istiod and to know the mesh's root; Istio's own
tooling reads it too. Namespaces being deleted are left alone.
"""

from __future__ import annotations

from localmesh.api.objects import ObjectAPI
from localmesh.api.status import ApiError
from localmesh.controllers.base import Reconciler
from localmesh.istio.security.ca import ROOT_CERT_CONFIGMAP, ROOT_CERT_KEY

NAMESPACES = ("", "namespaces")
CONFIGMAPS = ("", "configmaps")
LABELS = {"istio.io/config": "true"}


class RootCertPublisher(Reconciler):
    """Keeps ``istio-ca-root-cert`` in every live namespace equal to the mesh root."""

    name = "istio-root-cert-publisher"
    keys = (NAMESPACES, CONFIGMAPS)

    def __init__(self, api: ObjectAPI, root_pem: str) -> None:
        super().__init__(api)
        self.root_pem = root_pem

    def reconcile(self) -> None:
        api = self.api
        rt = api.rt("v1", "ConfigMap")
        for ns in api.store.scan(NAMESPACES):
            meta = ns["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            name = meta["name"]
            current = api.store.get(CONFIGMAPS, name, ROOT_CERT_CONFIGMAP)
            if current is not None and current["metadata"].get("deletionTimestamp"):
                continue
            want = {ROOT_CERT_KEY: self.root_pem}
            try:
                if current is None:
                    api.create(rt, name, {"metadata": {"name": ROOT_CERT_CONFIGMAP,
                                                       "labels": dict(LABELS)},
                                          "data": want})
                elif current.get("data") != want or any(
                        (current["metadata"].get("labels") or {}).get(k) != v
                        for k, v in LABELS.items()):
                    body = dict(current)
                    body["metadata"] = {**current["metadata"], "labels": {
                        **(current["metadata"].get("labels") or {}), **LABELS}}
                    body["data"] = want
                    api.update(rt, name, ROOT_CERT_CONFIGMAP, body)
            except ApiError as exc:
                # 409: written meanwhile (the next event brings it back here); 403/404:
                # the namespace started terminating since the scan.
                if exc.code not in (403, 404, 409):
                    raise

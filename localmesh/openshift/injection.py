"""Sidecar injection as OpenShift Service Mesh does it.

Both versions inject the way Istio's chart does with ``global.platform: openshift`` and
the CNI (istio/istio ``manifests/charts/istio-control/istio-discovery/files/
injection-template.yaml``; ``pkg/kube/inject/inject.go`` ``GetProxyIDs``): the traffic
redirection comes from the CNI plugin, so the privileged ``istio-init`` becomes the
unprivileged ``istio-validation`` check, and the proxy and that check run as the *last*
UID of the namespace's ``openshift.io/sa.scc.uid-range`` (and the last group of its
supplemental groups), inside the range ``restricted-v2`` enforces — no ``anyuid`` needed
(Istio ≥ 1.20, commit ef9d57e5916). The pod is attached to the CNI plugin's network with
``k8s.v1.cni.cncf.io/networks``: ``default/istio-cni`` (the global
NetworkAttachmentDefinition of Istio ≥ 1.19, OSSM 3) or ``v2-6-istio-cni`` (OSSM 2.6's,
in each member namespace).

Which pods: OSSM 3 uses Istio's own rules (``istio-injection=enabled``,
``istio.io/rev=<revision>``, the pod label). OSSM 2 injects only in namespaces of its member
roll (labelled ``maistra.io/member-of=<control plane namespace>``) and only pods that
opt in with ``sidecar.istio.io/inject: "true"`` (annotation or label; the label wins);
the namespace label ``istio-injection`` only opts out (``disabled``) — OSSM's difference
from Istio (openshift-docs ``modules/ossm-vs-istio.adoc``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from localmesh.openshift.scc import Allocation

MEMBER_OF = "maistra.io/member-of"
INJECT = "sidecar.istio.io/inject"
NETWORKS = "k8s.v1.cni.cncf.io/networks"


def proxy_ids(namespace: dict) -> tuple[int, int] | None:
    """(uid, gid) of the proxy: the last of the namespace's ranges (``GetProxyIDs``)."""
    alloc = Allocation.of(namespace)
    return None if alloc is None else (alloc.uid_max, alloc.group_max)


@dataclass(frozen=True)
class OpenShiftInjection:
    """The injector's platform for OSSM; ``member_of`` is OSSM 2's control plane namespace
    (None: OSSM 3, Istio's selection)."""

    member_of: str | None = None
    network: str = "default/istio-cni"

    def selected(self, namespace: dict, pod: dict) -> bool | None:
        if self.member_of is None:
            return None
        ns_meta = namespace.get("metadata") or {}
        ns_labels = ns_meta.get("labels") or {}
        # The control plane's own namespace is part of its mesh (its gateways are):
        # OSSM 2's operator deploys istio-ingressgateway there with the opt-in label.
        member = ns_labels.get(MEMBER_OF) == self.member_of or \
            ns_meta.get("name") == self.member_of
        if not member or \
                ns_labels.get("istio-injection") == "disabled":
            return False
        meta = pod.get("metadata") or {}
        label = (meta.get("labels") or {}).get(INJECT)
        if label is not None:
            return label == "true"
        return (meta.get("annotations") or {}).get(INJECT) == "true"

    def tailor(self, namespace: dict, pod: dict) -> None:
        ids = proxy_ids(namespace)
        uid, gid = ids if ids is not None else (1337, 1337)
        spec = pod["spec"]
        inits = spec.get("initContainers") or []
        for i, c in enumerate(inits):
            if c.get("name") == "istio-init":
                args = [a if a != "1337" else str(uid) for a in c.get("args") or []]
                inits[i] = {
                    **c, "name": "istio-validation",
                    "args": [*args, "--run-validation", "--skip-rule-apply"],
                    "securityContext": {
                        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                        "privileged": False, "readOnlyRootFilesystem": True,
                        "runAsGroup": gid, "runAsNonRoot": True, "runAsUser": uid}}
            elif c.get("name") == "istio-proxy":
                sc = c.setdefault("securityContext", {})
                sc["runAsUser"], sc["runAsGroup"] = uid, gid
        meta = pod["metadata"]
        annotations = meta.setdefault("annotations", {})
        annotations[NETWORKS] = self.network
        status = json.loads(annotations.get("sidecar.istio.io/status") or "{}")
        status["initContainers"] = ["istio-validation" if n == "istio-init" else n
                                    for n in status.get("initContainers") or []]
        annotations["sidecar.istio.io/status"] = json.dumps(status, separators=(",", ":"))

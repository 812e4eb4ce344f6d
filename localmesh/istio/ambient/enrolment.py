"""Which pods are in the ambient mesh: Istio's selection rules, and the names they use.

After istio/istio ``pkg/kube/util`` (``PodRedirectionEnabled``) and
``cni/pkg/nodeagent`` (the informers that add and remove pods): a pod is redirected to
ztunnel when its namespace, or the pod itself, carries ``istio.io/dataplane-mode=ambient``;
the pod label ``istio.io/dataplane-mode=none`` opts a pod out (Istio's waypoints and
gateways carry it); a pod with an injected sidecar, or on the host network, is never
redirected. The node agent marks a redirected pod with the annotation
``ambient.istio.io/redirection: enabled`` once ztunnel has it, and removes it when the pod
leaves the mesh; istiod reads that annotation to tell ztunnel the pod speaks HBONE.
"""

from __future__ import annotations

DATAPLANE_MODE = "istio.io/dataplane-mode"
AMBIENT = "ambient"
NONE = "none"
REDIRECTION = "ambient.istio.io/redirection"
ENABLED = "enabled"
USE_WAYPOINT = "istio.io/use-waypoint"
WAYPOINT_FOR = "istio.io/waypoint-for"
# localmesh's own mark (docs/localmesh.md, "Ambient mode"): the pod's programs were put
# behind its pod-local address when its network was set up. Without network namespaces
# that cannot be undone while the pod runs, so a pod leaving the mesh keeps a plain
# forwarder in front of it instead.
POD_NETWORK = "localmesh.io/pod-network"
REDIRECTED = "redirected"


def wants_ambient(namespace: dict | None, pod: dict) -> bool:
    """Istio's rule: should this pod's traffic go through ztunnel?"""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    if spec.get("hostNetwork"):
        return False
    names = [c.get("name") for c in (spec.get("containers") or []) +
             (spec.get("initContainers") or [])]
    if "sidecar.istio.io/status" in annotations or "istio-proxy" in names:
        return False
    mode = labels.get(DATAPLANE_MODE)
    if mode == NONE:
        return False
    if mode == AMBIENT:
        return True
    ns_labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    return ns_labels.get(DATAPLANE_MODE) == AMBIENT


def redirected(pod: dict) -> bool:
    """Does ztunnel carry this pod's traffic now (istio-cni's annotation)?"""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return annotations.get(REDIRECTION) == ENABLED


def behind_local_address(pod: dict) -> bool:
    """Were this pod's programs put behind its local address (localmesh's mark)?"""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return annotations.get(POD_NETWORK) == REDIRECTED

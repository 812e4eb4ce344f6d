"""The kubelet's network plugins: what a CNI chain's ADD does when a pod's sandbox is made.

A real kubelet asks the container runtime for a pod sandbox, and the runtime runs the
node's CNI chain (the primary plugin, then chained ones such as Istio's ``istio-cni``),
before any container starts. localmesh's pods have no network namespace: the "primary
plugin" is the address plan (each pod its 127.B.x.y IP and a pod-local address,
localmesh/network.py), and a chained plugin is an object the kubelet asks, at the same
moment, whether it redirects the pod's traffic. A plugin that does puts the pod's programs
behind the pod-local address with an explicit outbound proxy, as a sidecar would
(localmesh/kubelet/pods.py ``intercepted``), and it answers only once whatever holds the
pod IP is ready, as istio-cni returns from ADD only after ztunnel has the pod.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from localmesh.kubelet import catalogue


class NetworkPlugin(Protocol):
    """A chained CNI plugin."""

    async def add(self, pod: dict, pod_ip: str, local_ip: str) -> bool:
        """Set up the pod's network; True when the plugin now redirects its traffic (its
        programs must then listen on ``local_ip`` and send through the pod's outbound
        proxy there)."""
        ...


async def intercepted(plugins: Sequence[NetworkPlugin], pod: dict, ip: str,
                      local_ip: str) -> bool:
    """Whether the pod's programs sit behind a proxy: an injected sidecar that intercepts
    (its image does, and it is not the ``istio-iptables`` init), or a chained plugin that
    redirects the pod (each plugin's ADD runs, as the chain does at sandbox creation)."""
    spec = pod.get("spec") or {}
    sidecar = any(
        (img := catalogue.lookup(c.get("image", ""))) is not None and img.intercepts
        and (c.get("args") or [""])[:1] != ["istio-iptables"]
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []))
    redirected = [await plugin.add(pod, ip, local_ip) for plugin in plugins]
    return sidecar or any(redirected)

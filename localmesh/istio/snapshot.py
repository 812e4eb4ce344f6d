"""The Kubernetes objects istiod reads, converted to what its generator reads
(xds/model.py): istiod.py keeps each conversion while its object's resource version holds."""

from __future__ import annotations

from localmesh.istio.names import port_protocol
from localmesh.istio.xds import model as xds


def service(s: dict) -> xds.Service:
    """A Service as the generator reads it."""
    spec = s.get("spec") or {}
    ports = [xds.ServicePort(p.get("name", ""), p["port"], p.get("targetPort", p["port"]),
                             port_protocol(p)) for p in spec.get("ports") or []]
    return xds.Service(s["metadata"]["name"], s["metadata"]["namespace"],
                       spec.get("clusterIP", ""), ports, spec.get("selector") or {},
                       s["metadata"].get("labels") or {})


def subsets(ep: dict, pods_by_ip: dict) -> list[dict]:
    """An Endpoints' subsets, each address with its pod's labels and ServiceAccount (as
    Istio's endpoints know them)."""
    subsets = []
    for sub in ep.get("subsets") or []:
        sub = dict(sub)
        sub["addresses"] = [
            {**a, "_labels": (pods_by_ip.get(a["ip"]) or {}).get("metadata", {}).get(
                "labels") or {},
             "_sa": ((pods_by_ip.get(a["ip"]) or {}).get("spec") or {}).get(
                "serviceAccountName") or "default"}
            for a in sub.get("addresses") or []]
        subsets.append(sub)
    return subsets

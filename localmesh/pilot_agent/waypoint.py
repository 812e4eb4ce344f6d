"""What a waypoint's pilot-agent knows of its peers: the workloads istiod sends over xDS.

Istio's waypoint identifies the caller and the destination of each request with its
``peer_metadata`` filter's ``workload_discovery`` (the workloads of Istio's workload API,
looked up by address: the caller's address the HBONE terminator restored, the upstream
endpoint's). localmesh's waypoint computes Istio's metrics in pilot-agent from Envoy's
access log (telemetry.py), so pilot-agent subscribes to the same ``Address`` resources as
ztunnel does (localmesh/ztunnel/state.py) and hands the metrics the peers it finds, in
the peer-metadata form the metrics read for sidecars.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import wrappers_pb2

from localmesh.istio.ambient.waypoint_xds import UPSTREAM_PEER_TAG
from localmesh.istio.ambient.ztunnel_xds import ORIGINAL_DST, PEER_PRINCIPAL
from localmesh.ztunnel.state import ProxyState

REMOTE_IP = f"{ORIGINAL_DST}.remote_ip"


def peer_header(w: dict | None) -> str | None:
    """A workload as the metadata-exchange header the metrics read (telemetry.Identity)."""
    if not w:
        return None
    data = {"NAME": w.get("name", ""), "NAMESPACE": w.get("namespace", ""),
            "WORKLOAD_NAME": w.get("workloadName", ""), "APP": w.get("canonicalName", ""),
            "VERSION": w.get("canonicalRevision", ""),
            "CANONICAL_SERVICE": w.get("canonicalName", ""),
            "CANONICAL_REVISION": w.get("canonicalRevision", ""),
            "CLUSTER_ID": w.get("clusterId", "Kubernetes")}
    return base64.b64encode(json.dumps(data, sort_keys=True).encode()).decode()


def _string(objects: Any, key: str) -> str:
    value = objects.get(key) if hasattr(objects, "get") else None
    if value is None:
        return ""
    text = wrappers_pb2.StringValue()
    if value.Unpack(text):
        return text.value
    return bytes(value.value).decode(errors="replace")


class WaypointPeers:
    """(caller header, destination header, caller principal) of one access-log entry."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state

    def __call__(self, common_properties: Any) -> tuple[str | None, str | None, dict[str, str]]:
        """The caller's and the destination's peer headers, and the principals: the
        caller's from the HBONE connection's certificate, the destination's its identity."""
        # The HBONE connection's peer, as the terminator put it in the filter state (the
        # request's remote address is X-Forwarded-For's where a gateway set one).
        remote = _string(common_properties.filter_state_objects, REMOTE_IP) or \
            common_properties.downstream_remote_address.socket_address.address
        caller = self.state.workload_by_ip(remote.rsplit(":", 1)[0] if remote.count(":") == 1
                                           else remote)
        upstream = str(dict(common_properties.custom_tags).get(UPSTREAM_PEER_TAG, ""))
        dest = self.state.workload_by_ip(upstream.rsplit(":", 1)[0]) if upstream else None
        dest_principal = (f"spiffe://{dest.get('trustDomain', 'cluster.local')}/ns/"
                          f"{dest.get('namespace')}/sa/{dest.get('serviceAccount', 'default')}"
                          if dest else "")
        return (peer_header(caller), peer_header(dest),
                {"peer_principal": _string(common_properties.filter_state_objects,
                                           PEER_PRINCIPAL),
                 "local_principal": dest_principal})

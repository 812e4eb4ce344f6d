"""Which generator builds a proxy's resources: pilot's ConfigGenerator picks one by the
node type the proxy announces (istio/istio ``pilot/pkg/xds`` ``findGenerator``; the node
types of ``pilot/pkg/model`` ``NodeType``: sidecar, router, ztunnel, waypoint).
"""

from __future__ import annotations

from localmesh.istio.ambient.ingress import through_hbone, through_waypoints
from localmesh.istio.ambient.waypoint_xds import waypoint_resources
from localmesh.istio.ambient.wds import wds_resources
from localmesh.istio.ambient.ztunnel_xds import ztunnel_resources
from localmesh.istio.xds import model as xds
from localmesh.istio.xds.gateway import gateway_resources
from localmesh.istio.xds.sidecar import sidecar_resources
from localmesh.mixer.xds import report_to_mixer


def generate(state: xds.MeshState, proxy: xds.Proxy) -> dict[str, dict[str, dict]]:
    """A proxy's resources by type URL and name: the generator for its type (a gateway in
    router mode, ztunnel, a waypoint, else a sidecar), as pilot's ConfigGenerator picks by
    node type; with a ``mixerReportServer`` (an Istio 1.4 mesh) its requests are reported
    to Mixer."""
    if proxy.kind == "ztunnel":
        return {**ztunnel_resources(state, proxy), **wds_resources(state)}
    if proxy.kind == "waypoint":
        return {**waypoint_resources(state, proxy), **wds_resources(state)}
    if proxy.kind == "router":
        # Services opted in with istio.io/ingress-use-waypoint go through their waypoint;
        # ambient pods are reached over HBONE (the ambient profile's ENABLE_HBONE).
        out = through_hbone(state, proxy, through_waypoints(state, proxy,
                                                            gateway_resources(state, proxy)))
    else:
        out = through_hbone(state, proxy, sidecar_resources(state, proxy))
    if state.mesh_config.mixer_report_server:
        report_to_mixer(out, state, proxy)
    return out

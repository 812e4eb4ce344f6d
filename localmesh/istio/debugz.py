"""istiod's debug answers that are pure functions of what it generated (its
``/debug/config_dump?proxyID=`` shape: Envoy's admin ConfigDump, one entry per xDS type, as
``pilot/pkg/xds/debug.go`` builds it from a proxy's pushed resources)."""

from __future__ import annotations

from collections.abc import Callable

from localmesh.istio.xds import model as xds
from localmesh.store import now_rfc3339


def config_dump(resources: dict[str, dict[str, dict]], version: Callable[[str], str], *,
                include_eds: bool = False) -> dict:
    """A proxy's config dump from its resources by type URL; ``version(type_url)`` is the
    version last sent on its stream (what Envoy would report as ``version_info``)."""
    now = now_rfc3339()
    dump = {"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
         "version_info": version(xds.T_CLUSTER),
         "dynamic_active_clusters": [
             {"version_info": version(xds.T_CLUSTER),
              "cluster": {"@type": xds.T_CLUSTER, **c}, "last_updated": now}
             for c in resources.get(xds.T_CLUSTER, {}).values()]},
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
         "version_info": version(xds.T_LISTENER),
         "dynamic_listeners": [
             {"name": n, "active_state": {"version_info": version(xds.T_LISTENER),
                                          "listener": {"@type": xds.T_LISTENER, **lst},
                                          "last_updated": now}}
             for n, lst in resources.get(xds.T_LISTENER, {}).items()]},
        {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
         "dynamic_route_configs": [
             {"version_info": version(xds.T_ROUTE),
              "route_config": {"@type": xds.T_ROUTE, **r}, "last_updated": now}
             for r in resources.get(xds.T_ROUTE, {}).values()]},
    ]}
    if include_eds:
        dump["configs"].append({
            "@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
            "dynamic_endpoint_configs": [
                {"version_info": version(xds.T_ENDPOINT),
                 "endpoint_config": {"@type": xds.T_ENDPOINT, **e}}
                for e in resources.get(xds.T_ENDPOINT, {}).values()]})
    return dump

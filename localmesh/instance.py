"""One running localmesh: the API server, controllers, kubelet and istiod, wired together.

``Instance.run()`` is what ``localmesh serve`` executes (in its own process, started by
``localmesh up`` or the pytest fixture): it claims a loopback block, listens on
127.0.0.1 with a fresh bearer token, writes a kubeconfig, starts the reconcilers and, on
SIGTERM or SIGINT, stops every pod process it started before it exits.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
import signal
import socket
import time
from pathlib import Path

import yaml
from aiohttp import web

from localmesh import admission, pki
from localmesh.api import rbac
from localmesh.api.authn import Authenticator
from localmesh.api.objects import ObjectAPI
from localmesh.api.rbac import Authorizer
from localmesh.api.server import APIServer
from localmesh.controllers.endpoints import EndpointsController
from localmesh.controllers.lifecycle import GarbageCollector, NamespaceController
from localmesh.controllers.workloads import DeploymentController, ReplicaSetController
from localmesh.kubelet import Kubelet, streams
from localmesh.network import AddressPlan
from localmesh.resources import Registry
from localmesh.store import Store

log = logging.getLogger("localmesh")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def write_kubeconfig(path: Path, server: str, token: str, name: str, ca: Path) -> None:
    ca_data = base64.b64encode(ca.read_bytes()).decode()
    doc = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": server,
                                                "certificate-authority-data": ca_data}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name,
                                                 "namespace": "default"}}],
        "current-context": name,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class Instance:
    """Everything one localmesh runs, in one asyncio loop."""

    def __init__(self, state_dir: Path, kubeconfig: Path, port: int = 0,
                 mesh: bool = True) -> None:
        self.state_dir = state_dir
        self.kubeconfig = kubeconfig
        self.port = port
        self.with_mesh = mesh
        self.store = Store()
        self.registry = Registry()
        self.api = ObjectAPI(self.store, self.registry)
        self.addresses = AddressPlan()
        self.api.addresses = self.addresses  # type: ignore[attr-defined]
        self._node_port = 30000
        self.api.node_ports = self._alloc_node_port  # type: ignore[attr-defined]
        self.token = secrets.token_urlsafe(32)
        self.server = APIServer(self.api, self.token)
        # Authentication (the admin token, ServiceAccount tokens) and RBAC authorization.
        self.authn = Authenticator(self.token, self.store)
        self.authz = Authorizer(self.api)
        self.kubelet = Kubelet(self.api, self.addresses, state_dir)
        self.controllers = [DeploymentController(self.api), ReplicaSetController(self.api),
                            EndpointsController(self.api), NamespaceController(self.api),
                            GarbageCollector(self.api)]
        self.mesh = None
        self.mesh_timeout = 30.0
        self.sd_address = ""
        self._runner: web.AppRunner | None = None
        self._sd_runner: web.AppRunner | None = None

    def _alloc_node_port(self) -> int:
        used = {p.get("nodePort") for s in self.store.list(("", "services"))
                for p in (s.get("spec") or {}).get("ports") or []}
        while True:
            self._node_port += 1
            if self._node_port > 32767:
                self._node_port = 30001
            if self._node_port not in used:
                return self._node_port

    async def start(self) -> None:
        t0 = time.monotonic()
        admission.install(self.api)
        self._bootstrap_objects()
        rbac.install(self.api, self.server, self.authn, self.authz)
        streams.install(self.kubelet, lambda sub, h: self.server.subresources.__setitem__(
            (("", "pods"), sub), h))
        from localmesh.api.openapi import OpenAPI
        from localmesh.controllers.crds import CRDController
        from localmesh.controllers.serviceproxy import ServiceProxy

        self.server.openapi = OpenAPI(self.registry)
        crds = CRDController(self.api)
        proxy = ServiceProxy(self.api, self.addresses, self.state_dir)
        self.controllers += [crds, proxy]
        self.server.subresources[(("", "services"), "proxy")] = proxy.proxy_handler
        for c in self.controllers:
            c.start()
        self.kubelet.start()
        # localmesh's own discovery endpoint for Prometheus (plain HTTP on the instance's
        # loopback address; see serviceproxy.py).
        sd_app = web.Application()
        sd_app.router.add_get("/localmesh/v1/prometheus-targets", proxy.prometheus_targets)
        self._sd_runner = web.AppRunner(sd_app, access_log=None)
        await self._sd_runner.setup()
        await web.TCPSite(self._sd_runner, self.addresses.server_address(3), 8080).start()
        self.sd_address = f"{self.addresses.server_address(3)}:8080"
        pending: list[str] = []
        if self.with_mesh:
            from localmesh.istio.mesh import Mesh

            self.mesh = Mesh(self)
            await self.mesh.install()
            pending = await self.mesh.wait_ready(self.mesh_timeout)
        self._runner = web.AppRunner(self.server.app(), access_log=None,
                                     handler_cancellation=True)
        await self._runner.setup()
        port = self.port or free_port()
        ca, crt, key = pki.generate(self.state_dir / "pki")
        site = web.TCPSite(self._runner, "127.0.0.1", port,
                           ssl_context=pki.server_context(crt, key))
        await site.start()
        self.port = port
        write_kubeconfig(self.kubeconfig, f"https://127.0.0.1:{port}", self.token,
                         f"localmesh-{self.addresses.block}", ca)
        info = {"pid": os.getpid(), "server": f"https://127.0.0.1:{port}",
                "kubeconfig": str(self.kubeconfig), "block": self.addresses.block,
                "started": time.time(), "boot_seconds": round(time.monotonic() - t0, 3),
                "mesh": self.with_mesh, "mesh_not_ready": pending,
                "load_balancer_ports": proxy.lb_notes}
        (self.state_dir / "instance.json").write_text(json.dumps(info, indent=2))

    def _bootstrap_objects(self) -> None:
        ns_rt = self.api.rt("v1", "Namespace")
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.api.create(ns_rt, "", {"metadata": {"name": ns}})
        svc_rt = self.api.rt("v1", "Service")
        self.api.create(svc_rt, "default", {
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver",
                                                          "provider": "kubernetes"}},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 6443}]}})
        sa_rt = self.api.rt("v1", "ServiceAccount")
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.api.create(sa_rt, ns, {"metadata": {"name": "default"}})

    async def stop(self) -> None:
        self.server.stop_watches()
        # istiod's gRPC server gives open streams a grace period before it cancels them,
        # and the sidecars' ADS streams only end when their proxies do: stop both at once.
        stopping = [self.kubelet.stop()]
        if self.mesh is not None:
            stopping.append(self.mesh.uninstall())
        await asyncio.gather(*stopping)
        for c in self.controllers:
            await c.stop()
        for runner in (self._runner, self._sd_runner):
            if runner is not None:
                await runner.cleanup()
        self.addresses.close()

    async def run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            ready = self.state_dir / "ready"
            ready.write_text(str(os.getpid()))
            await stop.wait()
        finally:
            (self.state_dir / "ready").unlink(missing_ok=True)
            await self.stop()
            (self.state_dir / "instance.json").unlink(missing_ok=True)

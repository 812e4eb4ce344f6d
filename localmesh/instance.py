"""One running localmesh: the API server, controllers, kubelet and istiod, wired together.

``Instance.run()`` is what ``localmesh serve`` executes (in its own process, started by
``localmesh up`` or the pytest fixture): it claims a loopback block, listens on
127.0.0.1 with a fresh bearer token, writes a kubeconfig, starts the reconcilers and, on
SIGTERM, SIGINT or SIGHUP — also one that arrives while it is still starting — stops
every pod process it started before it exits.

Every part gets what it depends on when it is constructed, here; nothing is attached to
another part afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import yaml
from aiohttp import web

from localmesh import (
    admission,
    admission_kinds,
    admissionpolicy,
    credentials,
    pki,
    quota,
    synthetic,
    webhooks,
)
from localmesh.admission import ServiceAllocation
from localmesh.api import eviction
from localmesh.api.authn import Authenticator
from localmesh.api.faults import Faults
from localmesh.api.listener import Disruptions, Listener
from localmesh.api.objects import ObjectAPI
from localmesh.api.openapi import OpenAPI
from localmesh.api.rbac import RBAC_KEYS, bootstrap_policy
from localmesh.api.rbac.authorizer import Authorizer
from localmesh.api.rbac.escalation import EscalationCheck
from localmesh.api.rbac.filters import RequestAuthorization
from localmesh.api.rbac.reviews import Reviews
from localmesh.api.server import APIServer
from localmesh.controllers.certificates import SigningController, record_requester
from localmesh.controllers.crds import CRDController
from localmesh.controllers.endpoints import EndpointsController
from localmesh.controllers.jobs import CronJobController, JobController
from localmesh.controllers.lifecycle import GarbageCollector, NamespaceController
from localmesh.controllers.policy import (
    APIServiceController,
    AutoscalerController,
    DisruptionController,
    ensure_local_apiservices,
)
from localmesh.controllers.serviceproxy import ServiceProxy
from localmesh.controllers.sets import DaemonSetController, StatefulSetController
from localmesh.controllers.storage import VolumeController, default_class
from localmesh.controllers.workloads import DeploymentController, ReplicaSetController
from localmesh.istio.ambient.cni import IstioCNI
from localmesh.istio.ambient.install import AmbientMesh
from localmesh.istio.mesh import Mesh
from localmesh.kubelet import streams
from localmesh.kubelet.containers import ContainerRuntime
from localmesh.kubelet.node import Kubelet
from localmesh.mixer.install import SD_PATH, MixerMesh
from localmesh.network import AddressPlan, NodePorts
from localmesh.openshift.platform import OpenShift
from localmesh.resources import Registry
from localmesh.shape import Shape
from localmesh.signals import STOP_SIGNALS, SignalLatch
from localmesh.store import Store

log = logging.getLogger("localmesh")

SERVICES = ("", "services")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def write_kubeconfig(path: Path, server: str, user: dict, name: str, ca: Path) -> None:
    """``user``: ``{"token": ...}``, or an ``exec`` credential plugin."""
    ca_data = base64.b64encode(ca.read_bytes()).decode()
    doc = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": server,
                                                "certificate-authority-data": ca_data}}],
        "users": [{"name": name, "user": user}],
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
                 shape: Shape | None = None) -> None:
        self.state_dir = state_dir
        self.kubeconfig = kubeconfig
        self.port = port
        self.shape = (shape or Shape()).check()
        self.with_mesh = self.shape.with_mesh
        self.mesh_timeout = 30.0
        self.store = Store()
        self.registry = Registry()
        self.addresses = AddressPlan()
        self.api = ObjectAPI(self.store, self.registry)
        node_ports = NodePorts(lambda: (p.get("nodePort") for s in self.store.scan(SERVICES)
                                        for p in (s.get("spec") or {}).get("ports") or []))
        admission.install(self.api, ServiceAllocation(self.addresses.cluster_ips.allocate,
                                                      node_ports.allocate))
        # The rest of the built-in API's admission: defaults and validation of the newer
        # kinds, LimitRanger and ResourceQuota, ValidatingAdmissionPolicy.
        admission_kinds.install(self.api)
        quota.install(self.api)
        self.api.admission.add_mutator(("certificates.k8s.io", "certificatesigningrequests"),
                                       record_requester)
        admissionpolicy.install(self.api)
        webhooks.install(self.api)
        # Authentication (the admin token, ServiceAccount tokens) and RBAC authorization;
        # RBAC objects also pass the escalation check on their way into the store.
        self.token = secrets.token_urlsafe(32)
        self.fault_config = self.shape.faults()
        self.credential_key: Path | None = None
        signing_key = None
        if self.fault_config.profile == "token-expiry":
            # The kubeconfig gets an exec credential plugin instead of the admin token.
            self.credential_key = state_dir / "credential-key"
            signing_key = credentials.write_key(self.credential_key)
        self.authn = Authenticator(self.token, self.store, credential_key=signing_key,
                                   credential_ttl=self.fault_config.token_ttl)
        self.faults = Faults(self.fault_config,
                             expired_tokens=lambda: self.authn.expired_tokens)
        self.authz = Authorizer(self.store)
        escalation = EscalationCheck(self.authz)
        for key in RBAC_KEYS:
            self.api.admission.add_validator(key, escalation)
        # Ambient mode: istio-cni's node agent is the kubelet's chained network plugin.
        self.cni = IstioCNI(self.api) if self.shape.mesh == "ambient" else None
        containers = ContainerRuntime(state_dir, self.addresses.block) \
            if self.shape.runtime == "podman" else None
        self.kubelet = Kubelet(self.api, self.addresses, state_dir, tokens=self.authn.issue,
                               network=[self.cni] if self.cni is not None else [],
                               containers=containers)
        self.proxy = ServiceProxy(self.api, self.addresses, state_dir)
        # The OpenShift flavor's rooms (localmesh/openshift/platform.py); its router's
        # reconciler serves the router pod its config on the instance's fourth address.
        self.openshift = OpenShift(
            self.api, self.authz, self.shape.ossm if self.shape.mesh == "sidecar" else None,
            f"{self.addresses.server_address(4)}:9080") \
            if self.shape.flavor == "openshift" else None
        self.controllers = [DeploymentController(self.api), ReplicaSetController(self.api),
                            EndpointsController(self.api), NamespaceController(self.api),
                            GarbageCollector(self.api), CRDController(self.api), self.proxy,
                            JobController(self.api), CronJobController(self.api),
                            DaemonSetController(self.api), StatefulSetController(self.api),
                            VolumeController(self.api, state_dir / "volumes"),
                            quota.QuotaController(self.api), DisruptionController(self.api),
                            AutoscalerController(self.api), APIServiceController(self.api),
                            SigningController(self.api),
                            *(self.openshift.controllers if self.openshift else [])]
        subresources = {(("", "pods"), sub): handler
                        for sub, handler in streams.handlers(self.kubelet).items()}
        subresources[(("", "services"), "proxy")] = self.proxy.proxy_handler
        subresources[(("", "serviceaccounts"), "token")] = self.authn.token_request
        subresources[(("", "pods"), "eviction")] = eviction.handler(self.api)
        self.server = APIServer(
            self.api, self.authn, RequestAuthorization(self.authz, self.registry),
            subresources=subresources,
            routes=[*self.authn.routes(), *Reviews(self.authz).routes(),
                    *(self.openshift.routes() if self.openshift else [])],
            openapi=OpenAPI(self.registry, self.api.schema), faults=self.faults)
        # localmesh's own discovery endpoint for Prometheus (plain HTTP on the instance's
        # loopback address; see serviceproxy.py).
        self.sd_address = f"{self.addresses.server_address(3)}:8080"
        sd_url = f"http://{self.sd_address}/localmesh/v1/prometheus-targets"
        self.mesh: Mesh | MixerMesh | None = None
        if self.shape.mesh == "sidecar":
            self.mesh = Mesh(self.api, self.addresses.server_address(2), sd_url,
                             self.authn.review,
                             self.openshift.injection() if self.openshift else None)
        elif self.shape.mesh == "mixer":
            # Istio 1.4 with Mixer (localmesh/mixer/install.py).
            self.mesh = MixerMesh(self.api, self.addresses.server_address(2),
                                  f"http://{self.sd_address}{SD_PATH}", self.authn.review)
        elif self.cni is not None:
            # Istio's ambient profile (localmesh/istio/ambient/install.py).
            self.mesh = AmbientMesh(self.api, self.addresses.server_address(2), sd_url,
                                    self.authn.review, self.cni)
        self._runner: web.AppRunner | None = None
        self.disruptions: Disruptions | None = None
        self._sd_runner: web.AppRunner | None = None

    async def start(self) -> None:
        t0 = time.monotonic()
        self._bootstrap_objects()
        bootstrap_policy.ensure(self.api)
        if self.openshift is not None:
            self.openshift.install()
        for c in self.controllers:
            c.start()
        self.kubelet.start()
        sd_app = web.Application()
        sd_app.router.add_get("/localmesh/v1/prometheus-targets", self.proxy.prometheus_targets)
        if isinstance(self.mesh, MixerMesh):
            for method, path, handler in self.mesh.sd_routes():
                sd_app.router.add_route(method, path, handler)
        self._sd_runner = web.AppRunner(sd_app, access_log=None)
        await self._sd_runner.setup()
        sd_host, sd_port = self.sd_address.rsplit(":", 1)
        await web.TCPSite(self._sd_runner, sd_host, int(sd_port)).start()
        pending: list[str] = []
        if self.openshift is not None:
            await self.openshift.start()
        if self.mesh is not None:
            await self.mesh.install()
        if self.openshift is not None:
            # Nothing may yield between the mesh's install (which adds the injector) and
            # this: every pod is injected first, then constrained by the SCCs.
            self.openshift.admit_pods()
            self.openshift.deploy()
        if self.mesh is not None:
            pending = await self.mesh.wait_ready(self.mesh_timeout)
        if self.openshift is not None:
            pending += await self._wait_for(self.openshift.pending, self.mesh_timeout)
        self._runner = web.AppRunner(self.server.app(), access_log=None,
                                     handler_cancellation=True)
        await self._runner.setup()
        port = self.port or free_port()
        ca, crt, key = pki.generate(self.state_dir / "pki")
        listener = Listener(self._runner, "127.0.0.1", port, pki.server_context(crt, key))
        await listener.start()
        self.port = port
        user = credentials.kubeconfig_user(self.credential_key, self.fault_config.token_ttl) \
            if self.credential_key is not None else {"token": self.token}
        write_kubeconfig(self.kubeconfig, f"https://127.0.0.1:{port}", user,
                         f"localmesh-{self.addresses.block}", ca)
        info = {"pid": os.getpid(), "server": f"https://127.0.0.1:{port}",
                "kubeconfig": str(self.kubeconfig), "block": self.addresses.block,
                "started": time.time(), "boot_seconds": round(time.monotonic() - t0, 3),
                "mesh": self.with_mesh, "shape": asdict(self.shape),
                "mesh_not_ready": pending,
                "load_balancer_ports": self.proxy.lb_notes,
                "api_faults": self.fault_config.describe()}
        (self.state_dir / "instance.json").write_text(json.dumps(info, indent=2))
        # Faults that close the listening socket start once the kubeconfig is written.
        self.disruptions = Disruptions(self.fault_config, listener, self.faults)
        self.disruptions.start()

    @staticmethod
    async def _wait_for(pending: Callable[[], list[str]], timeout: float) -> list[str]:
        """Wait until ``pending()`` names nothing; return what it still names at the end."""
        deadline = time.monotonic() + timeout
        left = pending()
        while left and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            left = pending()
        return left

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
        # What every cluster starts with: a default StorageClass (kind's is "standard"),
        # the system PriorityClasses, and the APIServices of the built-in group-versions.
        self.api.create(self.api.rt("storage.k8s.io/v1", "StorageClass"), "", default_class())
        pc_rt = self.api.rt("scheduling.k8s.io/v1", "PriorityClass")
        for name, value in (("system-cluster-critical", 2000000000),
                            ("system-node-critical", 2000001000)):
            self.api.create(pc_rt, "", {"metadata": {"name": name}, "value": value,
                                        "description": "Used for system critical pods that "
                                                       "must run in the cluster, but can be "
                                                       "moved to another node if necessary."
                                        if name == "system-cluster-critical" else
                                        "Used for system critical pods that must not be "
                                        "moved from their current node.",
                                        "preemptionPolicy": "PreemptLowerPriority"})
        ensure_local_apiservices(self.api)
        synthetic.populate(self.api, self.addresses.block, self.shape.synthetic_services)

    async def stop(self) -> None:
        """Stop whatever has started, also after a start that was cancelled half-way."""
        self.server.stop_watches()
        if self.disruptions is not None:
            await self.disruptions.stop()
        if self.credential_key is not None:
            self.credential_key.unlink(missing_ok=True)
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

    async def run(self, latch: SignalLatch | None = None) -> int | None:
        """Start, serve until a stop signal, stop; return the signal (None: none came).

        ``latch`` is the caller's record of a signal that arrived before this loop could
        handle it (``localmesh serve`` holds one from its first line); it stops this run
        at once.
        """
        stop = asyncio.Event()
        signals: list[int] = []
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            signals.append(signum)
            stop.set()

        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, on_signal, sig)
        if latch is not None and latch.signum is not None:
            on_signal(latch.signum)
        ready = self.state_dir / "ready"
        try:
            starting = asyncio.ensure_future(self.start())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                # A signal while starting: what has started so far is stopped below.
                log.warning("%s while starting: stopping what has started",
                            signal.Signals(signals[0]).name)
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
            else:
                starting.result()  # a failed start raises here
                ready.write_text(str(os.getpid()))
                await stopping
            stopping.cancel()
        finally:
            ready.unlink(missing_ok=True)
            await self.stop()
            (self.state_dir / "instance.json").unlink(missing_ok=True)
        if signals:
            log.info("stopped (%s)", signal.Signals(signals[0]).name)
        return signals[0] if signals else None

"""kube-proxy and cluster DNS, on loopback; plus services/proxy and Prometheus discovery.

- Every Service port answers on its ClusterIP (a loopback address), NodePort and
  LoadBalancer ports answer on 127.0.0.1:<nodePort>, and a LoadBalancer Service gets its
  own loopback address in ``status.loadBalancer.ingress[0].ip`` and answers there on its
  ports — where a port below 1024 cannot be bound without privilege, on its nodePort
  there instead (recorded in ``instance.json`` and shown by ``localmesh status``).
  Connections go to a ready endpoint, round-robin, as kube-proxy's iptables mode spreads
  them.
- Cluster DNS: a JSON hosts table (``<svc>.<ns>.svc[.cluster.local]`` → ClusterIP) that
  localmesh's own programs consult (pilot-agent to find istiod).
- services/proxy: the API server's proxy to a Service, any method, path and query.
- Prometheus service discovery: Debian's Prometheus has no ``kubernetes_sd_configs``, so
  the pods annotated ``prometheus.io/scrape`` are served for ``http_sd_configs`` with the
  labels Istio's addon config would have given them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
from functools import partial
from pathlib import Path

from aiohttp import web

from localmesh.api import status
from localmesh.api.objects import ObjectAPI
from localmesh.api.proxy import forward_http, proxied_path, split_proxy_name
from localmesh.api.status import ApiError
from localmesh.controllers.base import Reconciler
from localmesh.controllers.workloads import pod_ready
from localmesh.network import AddressPlan, is_loopback
from localmesh.resources import ResourceType

log = logging.getLogger("localmesh.serviceproxy")
SERVICES = ("", "services")
ENDPOINTS = ("", "endpoints")
PODS = ("", "pods")


def ready_backends(endpoints: dict, service_port: dict) -> list[tuple[str, int]]:
    """The ready (address, target port) pairs of an Endpoints object for a Service port,
    matched by the port's name."""
    out: list[tuple[str, int]] = []
    for sub in endpoints.get("subsets") or []:
        port = next((x["port"] for x in sub.get("ports") or []
                     if x.get("name", "") == service_port.get("name", "")), None)
        if port is not None:
            out += [(a["ip"], port) for a in sub.get("addresses") or []]
    return sorted(out)


class ServiceProxy(Reconciler):
    name = "service-proxy"
    keys = (SERVICES, ENDPOINTS, PODS)

    def __init__(self, api: ObjectAPI, addresses: AddressPlan, state_dir: Path) -> None:
        super().__init__(api)
        self.addresses = addresses
        self.hosts_file = state_dir / "hosts"
        self.listeners: dict[tuple[str, int], tuple[asyncio.AbstractServer, tuple]] = {}
        self.backends: dict[tuple[str, str, int], list[tuple[str, int]]] = {}
        self._rr = itertools.count()
        self.lb_notes: dict[str, str] = {}
        self.targets: list[dict] = []

    async def reconcile(self) -> None:
        services = self.api.store.scan(SERVICES)
        endpoints = {(e["metadata"]["namespace"], e["metadata"]["name"]): e
                     for e in self.api.store.scan(ENDPOINTS)}
        wanted: dict[tuple[str, int], tuple] = {}
        hosts: dict[str, str] = {}
        svc_rt = self.api.rt("v1", "Service")
        for svc in services:
            ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            spec = svc.get("spec") or {}
            ip = spec.get("clusterIP")
            if ip and ip != "None":
                for h in (f"{name}.{ns}.svc.cluster.local", f"{name}.{ns}.svc",
                          f"{name}.{ns}"):
                    hosts[h] = ip
            ep = endpoints.get((ns, name)) or {}
            for sub in ep.get("subsets") or []:
                for a in [*(sub.get("addresses") or []), *(sub.get("notReadyAddresses") or [])]:
                    if a.get("hostname"):  # <pod>.<service>.<ns>.svc: a StatefulSet pod
                        for h in (f"{a['hostname']}.{name}.{ns}.svc.cluster.local",
                                  f"{a['hostname']}.{name}.{ns}.svc"):
                            hosts[h] = a["ip"]
            for p in spec.get("ports") or []:
                self.backends[(ns, name, p["port"])] = ready_backends(ep, p)
                key = (ns, name, p["port"])
                if ip and ip != "None" and is_loopback(ip):
                    wanted[(ip, p["port"])] = key
                if spec.get("type") in ("NodePort", "LoadBalancer") and p.get("nodePort"):
                    wanted[("127.0.0.1", p["nodePort"])] = key
            if spec.get("type") == "LoadBalancer":
                await self._load_balancer(svc, svc_rt, wanted)
        for addr, key in wanted.items():
            cur = self.listeners.get(addr)
            if cur is not None and cur[1] == key:
                continue
            if cur is not None:
                cur[0].close()
            try:
                server = await asyncio.start_server(
                    partial(self._forward, key=key), addr[0], addr[1])
            except OSError as exc:
                log.warning("cannot listen on %s:%s for %s/%s: %s", *addr, key[0], key[1], exc)
                continue
            self.listeners[addr] = (server, key)
        for addr in list(self.listeners):
            if addr not in wanted:
                self.listeners.pop(addr)[0].close()
        self._write_hosts(hosts)
        self.targets = self._prometheus_targets()

    async def _load_balancer(self, svc: dict, svc_rt: ResourceType, wanted: dict) -> None:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        ip = ingress[0]["ip"] if ingress else self.addresses.load_balancers.allocate()
        notes = []
        for p in svc["spec"].get("ports") or []:
            port = p["port"]
            if port < 1024 and not _can_bind_low(ip):
                port = p.get("nodePort") or port
                notes.append(f"{p['port']}→{port}")
            wanted[(ip, port)] = (ns, name, p["port"])
        key = f"{ns}/{name}"
        if notes:
            self.lb_notes[key] = f"{ip}: privileged ports served on nodePorts ({', '.join(notes)})"
        else:
            self.lb_notes.pop(key, None)
        if not ingress:
            new_status = dict(svc.get("status") or {})
            new_status["loadBalancer"] = {"ingress": [{"ip": ip, "ipMode": "VIP"}]}
            self.api.set_status(svc_rt, svc, new_status)

    def _write_hosts(self, hosts: dict[str, str]) -> None:
        text = json.dumps(hosts, sort_keys=True)
        if self.hosts_file.exists() and self.hosts_file.read_text() == text:
            return
        tmp = self.hosts_file.with_name(".hosts.tmp")
        tmp.write_text(text)
        os.replace(tmp, self.hosts_file)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       key: tuple[str, str, int]) -> None:
        backends = self.backends.get(key) or []
        if not backends:
            writer.close()
            return
        host, port = backends[next(self._rr) % len(backends)]
        try:
            up_r, up_w = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while True:
                    data = await r.read(65536)
                    if not data:
                        break
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                try:
                    w.close()
                except Exception:  # noqa: BLE001 - closing a dead socket
                    pass

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    # -- services/proxy ------------------------------------------------------------------
    async def proxy_handler(self, request: web.Request, rt: ResourceType, namespace: str,
                            name: str) -> web.StreamResponse:
        scheme, svc_name, port = split_proxy_name(name)
        svc = self.api.store.get(SERVICES, namespace, svc_name)
        if svc is None:
            raise status.not_found("services", svc_name)
        ports = svc.get("spec", {}).get("ports") or []
        sp = None
        if port is None:
            sp = ports[0] if ports else None
        else:
            sp = next((p for p in ports if p.get("name") == port or str(p["port"]) == port),
                      None)
        if sp is None:
            raise ApiError(503, "ServiceUnavailable",
                           f'no service port "{port}" found for service "{svc_name}"')
        # The Endpoints as they are now: kube-apiserver's service proxy reads them per
        # request (pkg/registry/core/service/storage ResourceLocation), not through
        # kube-proxy's view, which follows them a moment later.
        backends = ready_backends(self.api.store.get(ENDPOINTS, namespace, svc_name) or {}, sp)
        if not backends:
            raise ApiError(503, "ServiceUnavailable",
                           f'no endpoints available for service "{svc_name}"')
        host, tport = backends[next(self._rr) % len(backends)]
        return await forward_http(request, f"{scheme}://{host}:{tport}"
                                           f"{proxied_path(request.path)}")

    # -- Prometheus http_sd --------------------------------------------------------------
    def _prometheus_targets(self) -> list[dict]:
        out = []
        for pod in self.api.store.scan(PODS):
            ann = pod["metadata"].get("annotations") or {}
            ip = (pod.get("status") or {}).get("podIP")
            if ann.get("prometheus.io/scrape") != "true" or not ip:
                continue
            if (pod.get("status") or {}).get("phase") != "Running":
                continue
            port = ann.get("prometheus.io/port")
            if not port:
                continue
            labels = {"__metrics_path__": ann.get("prometheus.io/path", "/metrics"),
                      "namespace": pod["metadata"]["namespace"],
                      "pod": pod["metadata"]["name"],
                      "ready": "true" if pod_ready(pod) else "false"}
            for k, v in (pod["metadata"].get("labels") or {}).items():
                labels["__meta_kubernetes_pod_label_" + _label_name(k)] = v
            out.append({"targets": [f"{ip}:{port}"], "labels": labels})
        return out

    async def prometheus_targets(self, request: web.Request) -> web.Response:
        return web.json_response(self.targets)

    async def stop(self) -> None:
        for server, _ in self.listeners.values():
            server.close()
        self.listeners.clear()
        await super().stop()


def _label_name(k: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in k)


def _can_bind_low(ip: str) -> bool:
    import socket

    try:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((ip, 80))
        return True
    except PermissionError:
        return False
    except OSError:
        return True

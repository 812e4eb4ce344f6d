"""What ztunnel knows of the mesh: the workloads, services and policies istiod sends it over
xDS (``istio.workload.Address``, ``istio.security.Authorization``), and its config dump.

The xDS client subscribes to both types on one ADS stream with the ztunnel's node id, as
ztunnel does (istio/ztunnel ``src/xds``; ztunnel speaks delta xDS, localmesh's istiod
answers state-of-the-world: each response replaces the type's whole set). The config dump
has the shape of ztunnel's admin ``/config_dump`` (``src/admin.rs`` ``ConfigDump``: the
proxy state flattened — ``workloads``, ``services``, ``policies`` — with ``certificates``,
``config`` and ``version``), keyed and named as istioctl's ztunnel-config reads it
(istio/istio ``istioctl/pkg/writer/ztunnel/configdump/testdata/dump.json``).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import json_format, struct_pb2

from localmesh.istio.ambient.workloadapi import MESSAGES, T_ADDRESS, T_AUTHORIZATION

log = logging.getLogger("localmesh.ztunnel")


def _ip(b64: str) -> str:
    return str(ipaddress.ip_address(base64.b64decode(b64)))


@dataclass
class ProxyState:
    """The Address and Authorization resources last received, by resource name."""

    addresses: dict[str, dict] = field(default_factory=dict)
    policies: dict[str, dict] = field(default_factory=dict)
    synced: asyncio.Event = field(default_factory=asyncio.Event)

    # -- lookups ------------------------------------------------------------------------
    def workloads(self) -> list[dict]:
        return [a["workload"] for a in self.addresses.values() if "workload" in a]

    def services(self) -> list[dict]:
        return [a["service"] for a in self.addresses.values() if "service" in a]

    def workload_by_ip(self, ip: str) -> dict | None:
        for w in self.workloads():
            if ip in (_ip(a) for a in w.get("addresses") or []):
                return w
        return None

    def workload_by_name(self, namespace: str, name: str) -> dict | None:
        return next((w for w in self.workloads()
                     if w.get("namespace") == namespace and w.get("name") == name), None)

    def service_by_vip(self, ip: str) -> dict | None:
        for s in self.services():
            if ip in (_ip(a["address"]) for a in s.get("addresses") or [] if a.get("address")):
                return s
        return None

    def service_of(self, w: dict | None, port: int) -> dict | None:
        """The Service a workload serves on a target port (the first by name)."""
        for key, ports in sorted(((w or {}).get("services") or {}).items()):
            if any(p.get("targetPort") == port for p in ports.get("ports") or []):
                ns, _, host = key.partition("/")
                return next((s for s in self.services() if s.get("hostname") == host
                             and s.get("namespace") == ns), None)
        return None

    # -- the config dump ---------------------------------------------------------------
    def dump(self, certificates: list[dict], config: dict) -> dict:
        workloads = {}
        for w in self.workloads():
            ips = [_ip(a) for a in w.get("addresses") or []]
            entry: dict = {"workloadIps": ips}
            wp = w.get("waypoint")
            if wp and (wp.get("address") or {}).get("address"):
                entry["waypoint"] = {"destination": f"/{_ip(wp['address']['address'])}",
                                     "port": wp.get("hboneMtlsPort", 15008)}
            entry.update({
                "protocol": "HBONE" if w.get("tunnelProtocol") == "HBONE" else "TCP",
                "uid": w.get("uid", ""), "name": w.get("name", ""),
                "namespace": w.get("namespace", ""),
                "trustDomain": w.get("trustDomain", "cluster.local"),
                "serviceAccount": w.get("serviceAccount", "default"),
                "workloadName": w.get("workloadName", ""),
                "workloadType": str(w.get("workloadType", "DEPLOYMENT")).lower(),
                "canonicalName": w.get("canonicalName", ""),
                "canonicalRevision": w.get("canonicalRevision", ""),
                "node": w.get("node", ""),
                "status": "Unhealthy" if w.get("status") == "UNHEALTHY" else "Healthy",
                "clusterId": w.get("clusterId", "Kubernetes")})
            if w.get("authorizationPolicies"):
                entry["authorizationPolicies"] = w["authorizationPolicies"]
            for ip in ips:
                workloads[f"/{ip}"] = entry
        services = {}
        for s in self.services():
            vips = [f"/{_ip(a['address'])}" for a in s.get("addresses") or []
                    if a.get("address")]
            ports = {str(p.get("servicePort", 0)): p.get("targetPort", 0)
                     for p in s.get("ports") or []}
            key = f"{s['namespace']}/{s['hostname']}"
            endpoints = {}
            for w in self.workloads():
                mine = (w.get("services") or {}).get(key)
                if mine is None:
                    continue
                for a in w.get("addresses") or []:
                    endpoints[f"{w['uid']}:/{_ip(a)}"] = {
                        "workloadUid": w["uid"], "service": key, "address": f"/{_ip(a)}",
                        "port": {str(p.get("servicePort", 0)): p.get("targetPort", 0)
                                 for p in mine.get("ports") or []}}
            entry = {"name": s.get("name", ""), "namespace": s.get("namespace", ""),
                     "hostname": s.get("hostname", ""), "vips": vips, "ports": ports,
                     "endpoints": endpoints, "subjectAltNames": []}
            wp = s.get("waypoint")
            if wp and (wp.get("address") or {}).get("address"):
                entry["waypoint"] = {"destination": f"/{_ip(wp['address']['address'])}",
                                     "port": wp.get("hboneMtlsPort", 15008)}
            for vip in vips or [f"/{key}"]:
                services[vip] = entry
        policies = [{"action": "Deny" if p.get("action") == "DENY" else "Allow",
                     "name": p.get("name", ""), "namespace": p.get("namespace", ""),
                     "rules": [[[m for m in c.get("matches") or []]
                                for c in r.get("clauses") or []] for r in p.get("rules") or []],
                     "scope": {"GLOBAL": "Global", "WORKLOAD_SELECTOR": "WorkloadSelector"}.get(
                         p.get("scope", ""), "Namespace")}
                    for p in self.policies.values()]
        return {"workloads": workloads, "services": services, "policies": policies,
                "certificates": certificates, "config": config,
                "version": {"version": "1.28.0-localmesh", "istioVersion": "1.28.0"}}


async def subscribe(target: str, node_id: str, metadata: dict, state: ProxyState) -> None:
    """Follow istiod's Address and Authorization resources forever (reconnecting)."""
    backoff = 0.05
    while True:
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
                requests: asyncio.Queue = asyncio.Queue()
                meta = struct_pb2.Struct()
                meta.update(metadata)
                node = base_pb2.Node(id=node_id, cluster="ztunnel.istio-system", metadata=meta)
                for t in (T_ADDRESS, T_AUTHORIZATION):
                    requests.put_nowait(discovery_pb2.DiscoveryRequest(node=node, type_url=t))

                seen: set[str] = set()
                async for resp in stub.StreamAggregatedResources(_outgoing(requests)):
                    message = MESSAGES.get(resp.type_url)
                    if message is None:
                        continue
                    decoded = {}
                    for res in resp.resources:
                        obj = message()
                        res.Unpack(obj)
                        d = json_format.MessageToDict(obj)
                        decoded[_name(resp.type_url, d)] = d
                    if resp.type_url == T_ADDRESS:
                        state.addresses = decoded
                    else:
                        state.policies = decoded
                    seen.add(resp.type_url)
                    if len(seen) == 2:
                        state.synced.set()
                    backoff = 0.05
                    requests.put_nowait(discovery_pb2.DiscoveryRequest(
                        type_url=resp.type_url, version_info=resp.version_info,
                        response_nonce=resp.nonce))
        except grpc.aio.AioRpcError as exc:
            log.warning("ztunnel: xDS stream to %s ended (%s); reconnecting", target,
                        exc.code().name)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 2.0)


async def _outgoing(requests: asyncio.Queue) -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
    while True:
        yield await requests.get()


def _name(type_url: str, d: dict) -> str:
    if type_url == T_AUTHORIZATION:
        return f"{d.get('namespace', '')}/{d.get('name', '')}"
    if "workload" in d:
        return str(d["workload"].get("uid", ""))
    s = d.get("service") or {}
    return f"{s.get('namespace', '')}/{s.get('hostname', '')}"

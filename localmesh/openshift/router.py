"""The default IngressController's router: which Routes it admits, and its HAProxy config.

OpenShift's router (openshift/router ``pkg/router/template`` with the ``HostAdmitter`` of
``pkg/router/controller/host_admitter.go`` and the unique-host rules of
``unique_host.go``) watches Routes, Services and Endpoints, admits each Route's host, writes
``status.ingress[]`` for its shard (``routerName: default``) and renders its template into
HAProxy's configuration, then reloads HAProxy. This reconciler does the watching, the
admission and the status in localmesh's process, like istiod's xDS generation; the router
pod (router_pod.py, a real HAProxy) fetches the rendered files from it and reloads when
they change — so deleting the pod stops the routes until its replacement is ready.

Host ownership, as the router decides it: the oldest Route (creationTimestamp, then
namespace and name) claiming a host holds it for its namespace; another namespace's Route
for that host is rejected with ``HostAlreadyClaimed`` "a route in another namespace holds
host <host>"; in the owning namespace, Routes for the same host and path: the older wins
and the other gets ``HostAlreadyClaimed`` "route <older> already exposes <host> and is
older"; different paths coexist. Admitted Routes get ``Admitted=True`` with the host, the
``wildcardPolicy`` and ``routerCanonicalHostname: router-default.<apps domain>``.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import logging

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from localmesh.api.objects import ObjectAPI
from localmesh.api.status import ApiError
from localmesh.controllers.base import Reconciler
from localmesh.openshift import haproxy
from localmesh.openshift.routes import ROUTES, ROUTES_KEY
from localmesh.store import now_rfc3339

log = logging.getLogger("localmesh.openshift.router")

ROUTER_NAME = "default"
SERVICES = ("", "services")
ENDPOINTS = ("", "endpoints")


def ingress_certificate(domain: str) -> tuple[str, str, str]:
    """The ingress operator's default certificate: a self-signed CA (``ingress-operator@…``)
    and the wildcard ``*.<apps domain>`` it signs. Returns the PEMs of the CA, the
    certificate and its key."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                            f"ingress-operator@{int(now.timestamp())}")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=730))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                        f"*.{domain}")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=730))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"*.{domain}")]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem).decode(), cert.public_bytes(pem).decode(),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def _age(route: dict) -> tuple[str, str, str]:
    meta = route["metadata"]
    return (meta.get("creationTimestamp", ""), meta.get("namespace", ""), meta["name"])


def claims(routes: list[dict]) -> tuple[list[dict], dict[tuple[str, str], tuple[str, str]]]:
    """Which Routes the router admits: (admitted, {(ns, name): (reason, message)})."""
    admitted: list[dict] = []
    rejected: dict[tuple[str, str], tuple[str, str]] = {}
    owner: dict[str, str] = {}  # host → namespace
    paths: dict[tuple[str, str], dict] = {}  # (host, path) → route
    for r in sorted(routes, key=_age):
        spec = r.get("spec") or {}
        host, path = spec.get("host", ""), spec.get("path") or ""
        ns, name = r["metadata"]["namespace"], r["metadata"]["name"]
        if owner.setdefault(host, ns) != ns:
            rejected[(ns, name)] = ("HostAlreadyClaimed",
                                    f"a route in another namespace holds host {host}")
            continue
        older = paths.get((host, path))
        if older is not None:
            rejected[(ns, name)] = ("HostAlreadyClaimed", f"route {older['metadata']['name']} "
                                                          f"already exposes {host} and is older")
            continue
        paths[(host, path)] = r
        admitted.append(r)
    return admitted, rejected


def endpoints_by_service(api: ObjectAPI) -> dict[tuple[str, str], list[haproxy.Endpoint]]:
    out: dict[tuple[str, str], list[haproxy.Endpoint]] = {}
    for ep in api.store.scan(ENDPOINTS):
        ns, name = ep["metadata"]["namespace"], ep["metadata"]["name"]
        found = []
        for subset in ep.get("subsets") or []:
            for addr in subset.get("addresses") or []:
                pod = (addr.get("targetRef") or {}).get("name") or addr["ip"]
                for port in subset.get("ports") or []:
                    found.append(haproxy.Endpoint(pod, addr["ip"], port["port"],
                                                  port.get("name", "")))
        out[(ns, name)] = sorted(found, key=lambda e: (e.pod, e.port))
    return out


class Router(Reconciler):
    """The ``default`` router: route admission, status, and the config its pod serves."""

    name = "openshift-router"
    keys = (ROUTES_KEY, SERVICES, ENDPOINTS)

    def __init__(self, api: ObjectAPI, domain: str, listen: str, certificate: str) -> None:
        super().__init__(api)
        self.domain = domain
        self.listen = listen
        self.certificate = certificate
        self.version = ""
        self.files: dict[str, str] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    @property
    def canonical_hostname(self) -> str:
        return f"router-{ROUTER_NAME}.{self.domain}"

    async def serve(self) -> None:
        """Serve the rendered files to the router pod (``GET /config?version=<known>``
        waits up to 25 s for a newer version)."""
        app = web.Application()
        app.router.add_get("/router/default/config", self._config)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        host, port = self.listen.rsplit(":", 1)
        await web.TCPSite(self._runner, host, int(port)).start()

    async def _config(self, request: web.Request) -> web.Response:
        known = request.query.get("version", "")
        if known == self.version or not self.version:
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait_for(
                        lambda: self.version and self.version != known), 25)
                except TimeoutError:
                    pass
        return web.json_response({"version": self.version, "files": self.files})

    async def reconcile(self) -> None:
        routes = [r for r in self.api.store.scan(ROUTES_KEY)
                  if not r["metadata"].get("deletionTimestamp")]
        admitted, rejected = claims(routes)
        for r in routes:
            self._write_status(r, rejected.get((r["metadata"]["namespace"],
                                                r["metadata"]["name"])))
        files = haproxy.render(haproxy.RouterInput(admitted, endpoints_by_service(self.api),
                                                   self.certificate))
        version = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
        if version != self.version:
            async with self._changed:
                self.version, self.files = version, files
                self._changed.notify_all()

    def _write_status(self, route: dict, rejection: tuple[str, str] | None) -> None:
        spec = route.get("spec") or {}
        entries = [e for e in (route.get("status") or {}).get("ingress") or []
                   if e.get("routerName") != ROUTER_NAME]
        mine = next((e for e in (route.get("status") or {}).get("ingress") or []
                     if e.get("routerName") == ROUTER_NAME), None)
        condition = {"type": "Admitted", "status": "True"}
        if rejection is not None:
            condition = {"type": "Admitted", "status": "False", "reason": rejection[0],
                         "message": rejection[1]}
        old = next((c for c in (mine or {}).get("conditions") or []
                    if c.get("type") == "Admitted"), None)
        same = old is not None and all(old.get(k) == v for k, v in condition.items()) and \
            (mine or {}).get("host") == spec.get("host")
        if same:
            return
        condition["lastTransitionTime"] = now_rfc3339()
        entry = {"host": spec.get("host", ""), "routerName": ROUTER_NAME,
                 "conditions": [condition],
                 "wildcardPolicy": spec.get("wildcardPolicy", "None"),
                 "routerCanonicalHostname": self.canonical_hostname}
        try:
            self.api.set_status(ROUTES, route, {**(route.get("status") or {}),
                                                "ingress": [*entries, entry]})
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await super().stop()

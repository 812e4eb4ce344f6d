"""pilot-agent's SDS server: Envoy's secrets over ``envoy.service.secret.v3`` on a UDS.

As istio/istio ``security/pkg/nodeagent/sds/sdsservice.go``: Envoy's bootstrap cluster
``sds-grpc`` dials the Unix socket ``./var/run/secrets/workload-spiffe-uds/socket``
(relative to the proxy's working directory, as in Istio's bootstrap; here the pod's
directory, where ``var/run/secrets/workload-spiffe-uds`` leads to the pod's
``workload-socket`` volume); each ``StreamSecrets`` stream asks for resource names and
gets them state-of-the-world:

- ``default``: a ``tls_certificate`` (the workload certificate chain and key);
- ``ROOTCA``: a ``validation_context`` with the mesh root as ``trusted_ca``;
- ``file-root:…`` / ``file-cert:…``: the DestinationRule files (certs.py).

A request is answered once the secret exists (the first certificate is still being
issued when Envoy starts; Envoy waits, its listeners and clusters warming); a rotation
pushes the new ``default`` and ``ROOTCA`` to every stream that asked for them.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
from pathlib import Path

import grpc
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc
from google.protobuf import any_pb2

from localmesh.pilot_agent.certs import SecretManager, container_path

log = logging.getLogger("localmesh.pilot_agent.sds")

SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
SOCKET = "./var/run/secrets/workload-spiffe-uds/socket"
MOUNT = "/var/run/secrets/workload-spiffe-uds"
WORKLOAD, ROOT = "default", "ROOTCA"


def socket_path(env: dict[str, str]) -> str:
    """Make ``./var/run/secrets/workload-spiffe-uds`` (from the working directory) lead to
    the ``workload-socket`` volume; return the socket's path, relative as in Istio's
    bootstrap (also keeping it under the 107 bytes a socket path may have)."""
    volume = container_path(MOUNT, env)
    link = Path(MOUNT.lstrip("/"))
    if volume != Path(MOUNT):
        volume.mkdir(parents=True, exist_ok=True)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            if link.resolve() != volume.resolve():
                link.unlink()
        if not link.exists():
            link.symlink_to(volume)
    else:
        link.mkdir(parents=True, exist_ok=True)
    sock = Path(SOCKET)
    sock.unlink(missing_ok=True)  # left behind by a previous instance of the container
    return SOCKET


class SecretDiscovery(sds_pb2_grpc.SecretDiscoveryServiceServicer):
    """The SDS service over a :class:`SecretManager`."""

    def __init__(self, secrets: SecretManager) -> None:
        self.secrets = secrets
        # Set (and replaced) at every rotation; a stream takes it before it reads the
        # secrets, so a rotation in between is never missed.
        self._changed = asyncio.Event()
        self._nonce = itertools.count(1)
        self.pushes = 0

    def rotated(self) -> None:
        """Wake every stream: the workload certificate (and maybe the root) changed."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _secret(self, name: str) -> secret_pb2.Secret | None:
        current = self.secrets.current
        if name == WORKLOAD and current is not None:
            return secret_pb2.Secret(name=name, tls_certificate=common_pb2.TlsCertificate(
                certificate_chain={"inline_bytes": current.chain_pem},
                private_key={"inline_bytes": current.key_pem}))
        if name == ROOT and current is not None:
            return secret_pb2.Secret(name=name, validation_context=(
                common_pb2.CertificateValidationContext(
                    trusted_ca={"inline_bytes": current.root_pem})))
        found = self.secrets.file_secret(name)
        if isinstance(found, tuple):
            return secret_pb2.Secret(name=name, tls_certificate=common_pb2.TlsCertificate(
                certificate_chain={"inline_bytes": found[0]},
                private_key={"inline_bytes": found[1]}))
        if isinstance(found, bytes):
            return secret_pb2.Secret(name=name, validation_context=(
                common_pb2.CertificateValidationContext(trusted_ca={"inline_bytes": found})))
        return None

    def _response(self, names: list[str]) -> tuple[str, discovery_pb2.DiscoveryResponse] | None:
        secrets = [s for s in (self._secret(n) for n in names) if s is not None]
        if len(secrets) != len(names):
            return None
        packed = []
        digest = hashlib.sha256()
        for s in secrets:
            a = any_pb2.Any()
            a.Pack(s)
            packed.append(a)
            digest.update(a.value)
        version = digest.hexdigest()[:16]
        return version, discovery_pb2.DiscoveryResponse(
            version_info=version, type_url=SECRET_TYPE, nonce=str(next(self._nonce)),
            resources=packed)

    async def StreamSecrets(self, request_iterator, context):
        requests: asyncio.Queue = asyncio.Queue()

        async def read() -> None:
            try:
                async for req in request_iterator:
                    requests.put_nowait(req)
            except (grpc.aio.AioRpcError, asyncio.CancelledError):
                pass
            finally:
                requests.put_nowait(None)

        reader = asyncio.ensure_future(read())
        names: list[str] = []
        sent = ""
        try:
            while True:
                change = self._changed
                if names:
                    answer = self._response(names)
                    if answer is not None and answer[0] != sent:
                        sent = answer[0]
                        self.pushes += 1
                        yield answer[1]
                got = asyncio.ensure_future(requests.get())
                changed = asyncio.ensure_future(change.wait())
                done, _ = await asyncio.wait({got, changed},
                                             return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                if got not in done:
                    got.cancel()
                    continue
                req = got.result()
                if req is None:
                    return
                if req.HasField("error_detail") and req.error_detail.code:
                    log.warning("SDS: Envoy rejected %s: %s", list(req.resource_names),
                                req.error_detail.message)
                    continue
                if sorted(req.resource_names) != sorted(names):
                    names, sent = list(req.resource_names), ""
        finally:
            reader.cancel()


async def serve(secrets: SecretManager, env: dict[str, str]) -> tuple[grpc.aio.Server,
                                                                    SecretDiscovery]:
    """Start the SDS server on the workload socket."""
    service = SecretDiscovery(secrets)
    server = grpc.aio.server()
    sds_pb2_grpc.add_SecretDiscoveryServiceServicer_to_server(service, server)
    path = socket_path(env)
    if not server.add_insecure_port(f"unix:{path}"):
        raise OSError(f"pilot-agent cannot serve SDS on {path}")
    await server.start()
    return server, service

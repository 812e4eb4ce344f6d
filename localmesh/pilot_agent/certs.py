"""pilot-agent's secret manager: the workload certificate from istiod's CA, and its rotation.

After istio/istio ``security/pkg/nodeagent/cache/secretcache.go`` and
``security/pkg/nodeagent/caclient/providers/citadel``:

- a new key (RSA 2048, or ECDSA P-256 with ``ECC_SIGNATURE_ALGORITHM=ECDSA``) and a CSR
  for ``spiffe://<TRUST_DOMAIN>/ns/<POD_NAMESPACE>/sa/<SERVICE_ACCOUNT>``, sent to
  ``CA_ADDR`` (``istiod.istio-system.svc:15012``) as ``CreateCertificate`` over TLS,
  verifying istiod with the mesh root mounted from ``istio-ca-root-cert``
  (``/var/run/secrets/istio/root-cert.pem``) and authenticating with the projected
  ``istio-ca`` token (``/var/run/secrets/tokens/istio-token``);
- the certificate asks for ``SECRET_TTL`` (Istio's default 24 h) and is re-issued once
  ``SECRET_GRACE_PERIOD_RATIO`` (0.5) of its life is left (``rotateTime``), the new one
  pushed to Envoy over the SDS stream (sds.py); a failed request is retried with back-off;
- ``ROOTCA`` is the last certificate of the chain istiod returns;
- ``file-root:<path>`` and ``file-cert:<cert>~<key>`` (DestinationRule ``SIMPLE``/
  ``MUTUAL`` with files) are read from the proxy's files, ``file-root:system`` from the
  system's trust store.

Where localmesh differs: no jitter on the rotation time, no file watching of
``file-*`` secrets, and the paths of the container are found through the kubelet's
``LOCALMESH_MOUNTS`` map (there is no mount namespace).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from localmesh.istio.security import ca_api

log = logging.getLogger("localmesh.pilot_agent.certs")

TOKEN_PATH = "/var/run/secrets/tokens/istio-token"
ROOT_PATH = "/var/run/secrets/istio/root-cert.pem"
SYSTEM_ROOTS = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
DEFAULT_TTL = 24 * 3600.0
DEFAULT_GRACE_RATIO = 0.5


def parse_duration(value: str, default: float) -> float:
    """A Go duration (``24h``, ``90s``, ``1h30m``, ``500ms``) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value or "")
    if not parts or "".join(n + u for n, u in parts) != value.strip():
        return default
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def container_path(path: str, env: Mapping[str, str] | None = None) -> Path:
    """A path of the container, on the host: under the mount holding it, else as is."""
    environ = os.environ if env is None else env
    mounts = json.loads(environ.get("LOCALMESH_MOUNTS") or "{}")
    for mount in sorted(mounts, key=len, reverse=True):
        if path == mount or path.startswith(mount.rstrip("/") + "/"):
            return Path(mounts[mount]) / path[len(mount):].lstrip("/")
    return Path(path)


@dataclass(frozen=True)
class WorkloadSecret:
    """A workload certificate and its key, with the root it chains to."""

    chain_pem: bytes
    key_pem: bytes
    root_pem: bytes
    created: datetime.datetime
    expires: datetime.datetime

    def rotate_at(self, grace_ratio: float) -> datetime.datetime:
        """``rotateTime``: when ``grace_ratio`` of the lifetime is left."""
        return self.expires - (self.expires - self.created) * grace_ratio


@dataclass(frozen=True)
class AgentSettings:
    """What the secret manager reads from the proxy's environment."""

    ca_address: tuple[str, int]
    identity: str
    ttl: float = DEFAULT_TTL
    grace_ratio: float = DEFAULT_GRACE_RATIO
    ecdsa: bool = False
    cluster_id: str = "Kubernetes"
    # ztunnel asks for its pods' identities, not its own: the request's metadata names
    # the identity (Istio's ``ImpersonatedIdentity``), istiod checks the node (ca_server.py).
    impersonate: bool = False
    # The name istiod's certificate is checked against: CA_ADDR's host
    # (``istiod-<rev>.istio-system.svc`` for a revision), resolved to an address above.
    ca_host: str = "istiod.istio-system.svc"

    @classmethod
    def from_env(cls, env: dict[str, str], ca_address: tuple[str, int]) -> AgentSettings:
        trust_domain = env.get("TRUST_DOMAIN") or "cluster.local"
        identity = (f"spiffe://{trust_domain}/ns/{env.get('POD_NAMESPACE', 'default')}/sa/"
                    f"{env.get('SERVICE_ACCOUNT') or 'default'}")
        try:
            ratio = float(env.get("SECRET_GRACE_PERIOD_RATIO") or DEFAULT_GRACE_RATIO)
        except ValueError:
            ratio = DEFAULT_GRACE_RATIO
        return cls(ca_address, identity,
                   ttl=parse_duration(env.get("SECRET_TTL", ""), DEFAULT_TTL),
                   grace_ratio=min(max(ratio, 0.0), 1.0),
                   ecdsa=(env.get("ECC_SIGNATURE_ALGORITHM") or "").upper() == "ECDSA",
                   cluster_id=env.get("ISTIO_META_CLUSTER_ID") or "Kubernetes",
                   ca_host=(env.get("CA_ADDR") or "istiod.istio-system.svc:15012").rpartition(
                       ":")[0] or "istiod.istio-system.svc")


def new_csr(identity: str, ecdsa: bool) -> tuple[bytes, bytes]:
    """A private key and a CSR for ``identity`` (``util.GenCSR``): PEM CSR, PEM key."""
    key = ec.generate_private_key(ec.SECP256R1()) if ecdsa else \
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
           .add_extension(x509.SubjectAlternativeName(
               [x509.UniformResourceIdentifier(identity)]), critical=True)
           .sign(key, hashes.SHA256()))
    return (csr.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


class SecretManager:
    """Fetches the workload certificate, keeps it fresh, and reads file secrets."""

    def __init__(self, settings: AgentSettings, on_rotate: Callable[[], None],
                 env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.env = dict(os.environ if env is None else env)
        self.on_rotate = on_rotate
        self.current: WorkloadSecret | None = None
        self.ready = asyncio.Event()
        self.issued = 0

    async def _request(self) -> WorkloadSecret:
        root = container_path(ROOT_PATH, self.env).read_bytes()
        token = container_path(TOKEN_PATH, self.env).read_text().strip()
        csr_pem, key_pem = await asyncio.to_thread(new_csr, self.settings.identity,
                                                   self.settings.ecdsa)
        host, port = self.settings.ca_address
        options = [("grpc.ssl_target_name_override", self.settings.ca_host),
                   ("grpc.use_local_subchannel_pool", 1)]
        async with grpc.aio.secure_channel(f"{host}:{port}", grpc.ssl_channel_credentials(
                root_certificates=root), options=options) as channel:
            call = channel.unary_unary(
                ca_api.METHOD,
                request_serializer=ca_api.IstioCertificateRequest.SerializeToString,
                response_deserializer=ca_api.IstioCertificateResponse.FromString)
            request = ca_api.IstioCertificateRequest(
                csr=csr_pem.decode(), validity_duration=int(self.settings.ttl))
            if self.settings.impersonate:
                request.metadata.update({ca_api.IMPERSONATED_IDENTITY: self.settings.identity})
            resp = await call(request,
                metadata=(("authorization", f"Bearer {token}"),
                          ("clusterid", self.settings.cluster_id)), timeout=10)
        chain = list(resp.cert_chain)
        leaf = x509.load_pem_x509_certificate(chain[0].encode())
        return WorkloadSecret("".join(chain).encode(), key_pem, chain[-1].encode(),
                              leaf.not_valid_before_utc, leaf.not_valid_after_utc)

    async def run(self) -> None:
        """Fetch, then rotate forever; every new certificate is announced."""
        backoff = 0.05
        while True:
            started = time.monotonic()
            try:
                secret = await self._request()
            except (OSError, grpc.RpcError, ValueError, IndexError) as exc:
                log.warning("pilot-agent: certificate request failed (%s); retrying in "
                            "%.2fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.05
            self.current = secret
            self.issued += 1
            # Istio's agent line (security/pkg/nodeagent/cache), on the proxy's log.
            print(f"{datetime.datetime.now(datetime.UTC):%Y-%m-%dT%H:%M:%S.%fZ}\tinfo\t"
                  f"cache\tgenerated new workload certificate\tresourceName=default "
                  f"latency={(time.monotonic() - started) * 1000:.0f}ms "
                  f"ttl={(secret.expires - secret.created).total_seconds():.0f}s",
                  flush=True)
            self.ready.set()
            self.on_rotate()
            delay = (secret.rotate_at(self.settings.grace_ratio) -
                     datetime.datetime.now(datetime.UTC)).total_seconds()
            await asyncio.sleep(max(delay, 0.5))

    def file_secret(self, name: str) -> tuple[bytes, bytes] | bytes | None:
        """``file-root:<path>`` → the CA bundle; ``file-cert:<cert>~<key>`` → (cert, key)."""
        try:
            if name.startswith("file-root:"):
                path = name[len("file-root:"):]
                if path == "system":
                    return next(Path(p).read_bytes() for p in SYSTEM_ROOTS if Path(p).exists())
                return container_path(path, self.env).read_bytes()
            if name.startswith("file-cert:") and "~" in name:
                cert, key = name[len("file-cert:"):].split("~", 1)
                return (container_path(cert, self.env).read_bytes(),
                        container_path(key, self.env).read_bytes())
        except (OSError, StopIteration):
            log.warning("pilot-agent: cannot read the files of secret %s", name)
        return None

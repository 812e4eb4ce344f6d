"""The mesh CA: istiod's self-signed root and the workload certificates it signs.

After istio/istio ``security/pkg/pki/ca/ca.go`` (``NewSelfSignedIstioCAOptions``) and
``security/pkg/pki/util/generate_cert.go``:

- the root is RSA 2048 (``CITADEL_SELF_SIGNED_CA_RSA_KEY_SIZE``), valid for ten years
  (``CITADEL_SELF_SIGNED_CA_CERT_TTL``), its subject the organisation of the trust domain;
- it is kept in the Secret ``istio-ca-secret`` of type ``istio.io/ca-root`` with Istio's
  keys: ``ca-cert.pem`` and ``ca-key.pem`` hold the root, ``cert-chain.pem``, ``key.pem``
  and ``root-cert.pem`` are empty (``k8ssecret.BuildSecret(…, nil, nil, nil, pemCert,
  pemKey, …)``), so a self-signed root is its own chain;
- a workload certificate has an empty subject, the caller's SPIFFE ID as its only (and
  critical) URI SAN, ``digitalSignature``/``keyEncipherment`` and both ``serverAuth`` and
  ``clientAuth`` usages; its lifetime is what the agent asked for (``SECRET_TTL``, 24 h by
  default) up to ``MAX_WORKLOAD_CERT_TTL`` (90 days), ``DEFAULT_WORKLOAD_CERT_TTL`` (24 h)
  when it asked for none.

Where localmesh differs: the root is generated at every boot (the store is in memory, so
there is never an ``istio-ca-secret`` to load back), and there is no plugged-in CA
(``cacerts``), intermediate, root rotation or CRL.
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from localmesh.istio.names import ISTIO_NAMESPACE

TRUST_DOMAIN = "cluster.local"
CA_SECRET = "istio-ca-secret"
CA_SECRET_TYPE = "istio.io/ca-root"
ROOT_CERT_CONFIGMAP = "istio-ca-root-cert"
ROOT_CERT_KEY = "root-cert.pem"
CA_CERT_TTL = datetime.timedelta(days=3650)
DEFAULT_WORKLOAD_CERT_TTL = datetime.timedelta(hours=24)
MAX_WORKLOAD_CERT_TTL = datetime.timedelta(days=90)


def spiffe_id(namespace: str, service_account: str, trust_domain: str = TRUST_DOMAIN) -> str:
    """``spiffe://<trust domain>/ns/<namespace>/sa/<service account>`` (pkg/spiffe)."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


class SigningError(ValueError):
    """A CSR the CA refuses to sign (the certificate service answers InvalidArgument)."""


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class MeshCA:
    """A root key and certificate, and the signing of workload certificates."""

    key: CertificateIssuerPrivateKeyTypes
    cert: x509.Certificate
    trust_domain: str = TRUST_DOMAIN

    @classmethod
    def self_signed(cls, trust_domain: str = TRUST_DOMAIN, key_size: int = 2048) -> MeshCA:
        """A new root, as istiod creates one when ``istio-ca-secret`` does not exist."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        now = datetime.datetime.now(datetime.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain)])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + CA_CERT_TTL)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True,
                    content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False),
                    critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        return cls(key, cert, trust_domain)

    @property
    def root_pem(self) -> str:
        return _pem(self.cert)

    def secret(self) -> dict:
        """The ``istio-ca-secret`` Secret, with Istio's five keys."""
        key_pem = self.key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        data = {"ca-cert.pem": self.root_pem.encode(), "ca-key.pem": key_pem,
                "cert-chain.pem": b"", "key.pem": b"", "root-cert.pem": b""}
        return {"apiVersion": "v1", "kind": "Secret", "type": CA_SECRET_TYPE,
                "metadata": {"name": CA_SECRET, "namespace": ISTIO_NAMESPACE},
                "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}

    def _issue(self, public_key: object, san: x509.GeneralName | list[x509.GeneralName],
               ttl: datetime.timedelta, server_only: bool = False) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        names = san if isinstance(san, list) else [san]
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server_only else [
            ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        return (x509.CertificateBuilder().subject_name(x509.Name([]))
                .issuer_name(self.cert.subject).public_key(public_key)  # type: ignore[arg-type, unused-ignore]
                .serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + ttl)
                # An empty subject makes the SAN critical (RFC 5280 4.2.1.6).
                .add_extension(x509.SubjectAlternativeName(names), critical=True)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=True, key_encipherment=True, key_cert_sign=False,
                    crl_sign=False, content_commitment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False),
                    critical=True)
                .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.cert.public_key()), critical=False)  # type: ignore[arg-type, unused-ignore]
                .sign(self.key, hashes.SHA256()))

    def sign(self, csr_pem: str, identity: str, ttl_seconds: int = 0) -> list[str]:
        """Sign a CSR for ``identity`` (a SPIFFE ID): the chain, leaf first, root last.

        The identity comes from the authenticated caller, never from the CSR (as
        ``security/pkg/server/ca/server.go`` signs for ``caller.Identities``); a CSR that
        asks for another URI SAN is refused rather than silently rewritten.
        """
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError as exc:
            raise SigningError(f"CSR parsing error ({exc})") from exc
        if not csr.is_signature_valid:
            raise SigningError("CSR signature is invalid")
        try:
            asked = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            uris = asked.value.get_values_for_type(x509.UniformResourceIdentifier)
        except x509.ExtensionNotFound:
            uris = []
        if any(u != identity for u in uris):
            raise SigningError(f"the CSR asks for {uris}, but the caller is {identity}")
        ttl = datetime.timedelta(seconds=ttl_seconds) if ttl_seconds > 0 else \
            DEFAULT_WORKLOAD_CERT_TTL
        if ttl > MAX_WORKLOAD_CERT_TTL:
            raise SigningError(f"requested TTL {ttl} is greater than the max allowed TTL "
                               f"{MAX_WORKLOAD_CERT_TTL}")
        leaf = self._issue(csr.public_key(), x509.UniformResourceIdentifier(identity), ttl)
        return [_pem(leaf), self.root_pem]

    def serving_certificate(self, dns_names: list[str]) -> tuple[bytes, bytes]:
        """istiod's own certificate for its TLS port 15012 (``istiod.istio-system.svc``,
        signed by the mesh root as istiod's ``istiod-dns`` certificate is): PEM cert, key."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(key.public_key(), [x509.DNSName(d) for d in dns_names],
                           MAX_WORKLOAD_CERT_TTL, server_only=True)
        return (cert.public_bytes(serialization.Encoding.PEM) + self.root_pem.encode(),
                key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))

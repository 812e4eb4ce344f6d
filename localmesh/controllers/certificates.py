"""CertificateSigningRequests: the requester recorded at creation, approval through the
``approval`` subresource (``kubectl certificate approve|deny``), and signing of approved
requests for the built-in signers (kube-controller-manager's csrsigning controller).

localmesh signs with a signing CA of its own, made at start (the requester, a kubelet or a
client, cannot authenticate to localmesh with the certificate anyway: client certificates
are not an authenticator here, see docs/localmesh.md). ``status.certificate`` is the PEM
chain's leaf, valid for ``spec.expirationSeconds`` (default a year, capped at the CA's
lifetime), with the usages the request asks for.
"""

from __future__ import annotations

import base64
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from localmesh.controllers.base import Reconciler

CSRS = ("certificates.k8s.io", "certificatesigningrequests")
SIGNERS = ("kubernetes.io/kube-apiserver-client", "kubernetes.io/kube-apiserver-client-kubelet",
           "kubernetes.io/kubelet-serving", "kubernetes.io/legacy-unknown")
USAGES = {"client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
          "server auth": ExtendedKeyUsageOID.SERVER_AUTH}


def has_condition(csr: dict, type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status", "True") == "True"
               for c in (csr.get("status") or {}).get("conditions") or [])


class SigningController(Reconciler):
    name = "csrsigning-controller"
    keys = (CSRS,)

    def __init__(self, api: object) -> None:
        super().__init__(api)  # type: ignore[arg-type]
        now = datetime.datetime.now(datetime.UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localmesh-csr-signer")])
        self.ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(self.key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=365))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                                  critical=True)
                   .sign(self.key, hashes.SHA256()))

    def reconcile(self) -> None:
        rt = self.api.rt("certificates.k8s.io/v1", "CertificateSigningRequest")
        for csr in self.api.store.scan(CSRS):
            spec, st = csr.get("spec") or {}, csr.get("status") or {}
            if st.get("certificate") or not has_condition(csr, "Approved") or \
                    has_condition(csr, "Denied") or has_condition(csr, "Failed"):
                continue
            if spec.get("signerName") not in SIGNERS:
                continue
            try:
                cert = self.sign(spec)
            except (ValueError, TypeError) as exc:
                conditions = [*(st.get("conditions") or []), {
                    "type": "Failed", "status": "True", "reason": "SigningFailed",
                    "message": str(exc)}]
                self.api.set_status(rt, csr, {**st, "conditions": conditions})
                continue
            self.api.set_status(rt, csr, {**st, "certificate": cert})

    def sign(self, spec: dict) -> str:
        request = x509.load_pem_x509_csr(base64.b64decode(spec.get("request", "")))
        now = datetime.datetime.now(datetime.UTC)
        seconds = min(int(spec.get("expirationSeconds") or 365 * 86400), 364 * 86400)
        builder = (x509.CertificateBuilder().subject_name(request.subject)
                   .issuer_name(self.ca.subject).public_key(request.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(seconds=seconds)))
        usages = [USAGES[u] for u in spec.get("usages") or [] if u in USAGES]
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()


def record_requester(api: object, rt: object, obj: dict, old: dict | None) -> None:
    """Admission (CSR creation): who asked, as the API server records it."""
    from localmesh.api.authn import current_user

    if getattr(rt, "key", None) != CSRS or old is not None:
        if getattr(rt, "key", None) == CSRS and old is not None:
            # The main resource cannot change status (conditions come via approval/status).
            obj["status"] = old.get("status") or {}
        return
    user = current_user.get()
    spec = obj.setdefault("spec", {})
    if user is not None:
        spec["username"] = user.name
        spec["groups"] = list(user.groups)
        if user.uid:
            spec["uid"] = user.uid
    spec.setdefault("usages", ["digital signature", "key encipherment", "client auth"]
                    if spec.get("signerName") != "kubernetes.io/kubelet-serving"
                    else ["digital signature", "key encipherment", "server auth"])
    obj["status"] = {}

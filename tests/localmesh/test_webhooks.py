"""Admission webhooks called over HTTPS as kube-apiserver calls them: a webhook server in
the test (its own CA in ``caBundle``) mutates with a JSONPatch and refuses with a message;
an unreachable webhook fails or is skipped by its failurePolicy."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client

from tests.localmesh.conftest import Raw
from tests.support import unused_port


def _certificate(tmp: Path) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("127.0.0.1"),
                                                        x509.IPAddress(__import__(
                                                            "ipaddress").ip_address(
                                                            "127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp / "tls.crt").write_bytes(pem)
    (tmp / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                    serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    return tmp / "tls.crt", tmp / "tls.key", pem


class Hook(BaseHTTPRequestHandler):
    reviews: list[dict] = []

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Hook.reviews.append(review)
        req = review["request"]
        answer: dict = {"uid": req["uid"], "allowed": True}
        if self.path == "/mutate":
            patch = [{"op": "add", "path": "/metadata/labels",
                      "value": {**((req["object"]["metadata"].get("labels")) or {}),
                                "mutated": "yes"}}]
            answer.update(patchType="JSONPatch",
                          patch=base64.b64encode(json.dumps(patch).encode()).decode(),
                          warnings=["mutated by the test webhook"])
        elif "forbidden" in ((req.get("object") or {}).get("data") or {}):
            answer.update(allowed=False, status={"code": 403, "reason": "Forbidden",
                                                 "message": "no forbidden keys"})
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                           "response": answer}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook_server(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    crt, key, pem = _certificate(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(crt), str(key))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], pem
    finally:
        server.shutdown()
        server.server_close()


def _config(kind: str, name: str, ns: str, url: str, pem: bytes | None,
            failure: str = "Fail") -> dict:
    hook = {"name": f"{name}.example.com", "admissionReviewVersions": ["v1"],
            "sideEffects": "None", "failurePolicy": failure, "timeoutSeconds": 5,
            "clientConfig": {"url": url},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"],
                       "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}]}
    if pem is not None:
        hook["clientConfig"]["caBundle"] = base64.b64encode(pem).decode()
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": {"name": name}, "webhooks": [hook]}


def test_mutating_and_validating_webhooks(raw: Raw, ns: str, webhook_server: tuple[int, bytes],
                                          api_client: client.ApiClient) -> None:
    port, pem = webhook_server
    reg = client.AdmissionregistrationV1Api(api_client)
    name = f"hooks-{ns[-5:]}"
    reg.create_mutating_webhook_configuration(_config(
        "MutatingWebhookConfiguration", name, ns, f"https://127.0.0.1:{port}/mutate", pem))
    reg.create_validating_webhook_configuration(_config(
        "ValidatingWebhookConfiguration", name, ns, f"https://127.0.0.1:{port}/validate", pem))
    try:
        resp = raw("POST", f"/api/v1/namespaces/{ns}/configmaps", body={
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"},
            "data": {"a": "1"}})
        assert resp.status == 201
        assert json.loads(resp.data)["metadata"]["labels"] == {"mutated": "yes"}
        assert '299 - "mutated by the test webhook"' in resp.headers.getlist("Warning")
        review = next(r for r in Hook.reviews if r["request"]["name"] == "ok")["request"]
        assert review["operation"] == "CREATE" and review["userInfo"]["username"] == \
            "localmesh-admin"
        refused = raw("POST", f"/api/v1/namespaces/{ns}/configmaps", body={
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "no"},
            "data": {"forbidden": "1"}})
        assert refused.status == 403
        assert json.loads(refused.data)["message"] == (
            f'admission webhook "{name}.example.com" denied the request: no forbidden keys')
    finally:
        reg.delete_mutating_webhook_configuration(name)
        reg.delete_validating_webhook_configuration(name)


@pytest.mark.parametrize("failure", ["Fail", "Ignore"])
def test_unreachable_webhook_follows_failure_policy(raw: Raw, ns: str, failure: str,
                                                   api_client: client.ApiClient) -> None:
    reg = client.AdmissionregistrationV1Api(api_client)
    name = f"gone-{failure.lower()}-{ns[-5:]}"
    reg.create_validating_webhook_configuration(_config(
        "ValidatingWebhookConfiguration", name, ns,
        f"https://127.0.0.1:{unused_port()}/validate", None, failure))
    try:
        resp = raw("POST", f"/api/v1/namespaces/{ns}/configmaps", body={
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
        if failure == "Ignore":
            assert resp.status == 201
        else:
            assert resp.status == 500
            assert json.loads(resp.data)["message"].startswith(
                f'Internal error occurred: failed calling webhook "{name}.example.com": '
                "failed to call webhook: ")
    finally:
        reg.delete_validating_webhook_configuration(name)

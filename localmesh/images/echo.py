"""An HTTP and HTTPS echo server in the manner of mendhak/http-https-echo: every request is
answered with a JSON description of itself (path, headers, method, body, query, hostname,
ip, protocol, os.hostname) and logged to stdout. ``HTTP_PORT`` (8080) and ``HTTPS_PORT``
(8443) as the image's environment says; HTTPS uses a certificate made at start. Both listen
on the pod's address (``BIND_ADDRESS``)."""

from __future__ import annotations

import datetime
import json
import os
import socket
import ssl
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    scheme = "http"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode(errors="replace") if length else ""
        url = urlsplit(self.path)
        doc = {
            "path": url.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "method": self.command, "body": body, "cookies": {}, "fresh": False,
            "hostname": (self.headers.get("Host") or "").split(":")[0],
            "ip": self.client_address[0], "ips": [], "protocol": self.scheme,
            "query": {k: v[0] if len(v) == 1 else v for k, v in parse_qs(url.query).items()},
            "subdomains": [], "xhr": False, "os": {"hostname": socket.gethostname()
                                                  if not os.environ.get("HOSTNAME")
                                                  else os.environ["HOSTNAME"]},
            "connection": {},
        }
        out = json.dumps(doc, indent=2).encode()
        print(json.dumps({"method": self.command, "path": self.path}), flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer

    def log_message(self, *args: object) -> None:
        pass


class SecureEcho(Echo):
    scheme = "https"


def _tls_context() -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "my.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .sign(key, hashes.SHA256()))
    folder = tempfile.mkdtemp(prefix="echo-tls-")
    crt, pem = os.path.join(folder, "tls.crt"), os.path.join(folder, "tls.key")
    with open(crt, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(pem, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, pem)
    return ctx


def main() -> int:
    host = os.environ.get("BIND_ADDRESS", "127.0.0.1")
    http_server = ThreadingHTTPServer((host, int(os.environ.get("HTTP_PORT", "8080"))), Echo)
    https_server = ThreadingHTTPServer((host, int(os.environ.get("HTTPS_PORT", "8443"))),
                                       SecureEcho)
    https_server.socket = _tls_context().wrap_socket(https_server.socket, server_side=True)
    threading.Thread(target=https_server.serve_forever, daemon=True).start()
    print(f"Listening on ports {http_server.server_address[1]} for http, and "
          f"{https_server.server_address[1]} for https.", flush=True)
    http_server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())

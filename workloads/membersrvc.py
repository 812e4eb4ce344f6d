"""membersrvc: the member service (enrollment CA) of the Fabric 0.6 network, as a stand-in.

It answers ``/membersrvc.ECA/Enroll`` and ``/membersrvc.ECA/Ping`` on one gRPC port
(``PORT``, default 7054). Enrollment accepts any non-empty id and secret and hands out a
fake certificate: the suite tests the mesh, not a CA, but the call must be a real gRPC
exchange with real status codes so that the sidecars see gRPC traffic and errors.
"""

from __future__ import annotations

import base64
import json
import secrets
import textwrap
import time
from typing import Any

import grpc

from . import contract, rpc, settings
from .lifecycle import Lifecycle
from .rpc import Call, RpcFailure

PROGRAM = "membersrvc"
ISSUER = "CN=membersrvc ECA (meshgate stand-in)"


def fake_certificate(enroll_id: str, serial: str, issued_at: int) -> str:
    """A PEM-looking block whose body is base64 JSON: obviously not a real X.509 cert."""
    body = json.dumps(
        {"subject": f"CN={enroll_id}", "issuer": ISSUER, "serial": serial, "notBefore": issued_at}
    ).encode()
    lines = textwrap.wrap(base64.b64encode(body).decode(), 64)
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def enroll(request: dict[str, Any], call: Call) -> dict[str, Any]:
    """Issue a certificate for a non-empty ``enrollId`` / ``enrollSecret`` pair."""
    enroll_id = request.get("enrollId")
    call.note("enrollId", enroll_id if isinstance(enroll_id, str) and enroll_id else "-")
    if not isinstance(enroll_id, str) or not enroll_id:
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "enrollId is required")
    enroll_secret = request.get("enrollSecret")
    if not isinstance(enroll_secret, str) or not enroll_secret:
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "enrollSecret is required")
    # The serial is random, never derived from the secret: even a hash would leak it.
    serial = secrets.token_hex(8)
    issued_at = int(time.time())
    call.note("serial", serial)
    return {
        "enrollId": enroll_id,
        "serial": serial,
        "issuer": ISSUER,
        "certificate": fake_certificate(enroll_id, serial, issued_at),
    }


def ping(_request: dict[str, Any], _call: Call) -> dict[str, Any]:
    """Liveness over gRPC, for checks that want to exercise the gRPC route itself."""
    return {"service": PROGRAM, "status": "SERVING"}


def main() -> int:
    """Serve the ECA on ``BIND_ADDRESS:PORT`` until SIGTERM."""
    lifecycle = Lifecycle(PROGRAM)
    host = settings.bind_address()
    port = settings.port("PORT", 7054)
    methods = {"Enroll": enroll, "Ping": ping}
    rpc.serve(PROGRAM, host, port, {contract.ECA_SERVICE: methods}, lifecycle)
    return lifecycle.run()

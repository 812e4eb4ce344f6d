"""vp0: a Fabric 0.6 validating peer as a stand-in (REST API, peer gRPC, enrollment).

* REST (HTTP/1.1) on ``REST_PORT`` (7050), in Fabric 0.6's shapes: ``GET /chain``,
  ``GET /chain/blocks/{n}`` (genesis block 0 always exists; unknown blocks are 404 JSON
  errors), ``GET /network/peers``, plus ``GET /healthz`` for probes.
* gRPC on ``GRPC_PORT`` (7051): ``/protos.Peer/Ping`` and ``/protos.Peer/GetBlock``.
* Enrollment with membersrvc over gRPC at start and every ``ENROLL_INTERVAL_SECONDS``,
  like a 0.6 peer with ``CORE_SECURITY_ENABLED=true``. Repeating it keeps a steady
  vp0 -> membersrvc gRPC edge in the mesh's telemetry and service graph. A failed
  enrollment is retried after ``ENROLL_RETRY_SECONDS`` instead: the pods of a Deployment
  start together, so vp0's first attempt often finds membersrvc not Ready yet (the
  sidecar answers "no healthy upstream"), and a peer that then waited a whole interval
  would leave the mesh without a successful vp0 -> membersrvc call for that long.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import grpc

from . import contract, log, rpc, settings, web
from .lifecycle import Lifecycle
from .rpc import Call, RpcFailure
from .settings import Secret
from .web import Response

PROGRAM = "vp0"
PEER_TYPE_VALIDATOR = 1  # Fabric 0.6 PeerEndpoint.Type: 1 = VALIDATOR

_BLOCK_PATH = re.compile(r"^/chain/blocks/([^/]+)/?$")


def _digest(data: bytes) -> str:
    """Fabric 0.6 hashes are SHA3-256, shown base64-encoded by its REST API."""
    return base64.b64encode(hashlib.sha3_256(data).digest()).decode()


class Ledger:
    """An immutable chain holding only the genesis block.

    The suite reads block 0 through the ingress; nothing commits transactions, so the
    ledger needs no writes (and no locking). The commit time is the process start, which
    is what a freshly started 0.6 peer reports for its genesis block.
    """

    def __init__(self, committed_at: float) -> None:
        seconds = int(committed_at)
        genesis: dict[str, Any] = {
            "stateHash": _digest(b"meshgate genesis state"),
            "previousBlockHash": "",
            "transactions": [],
            "nonHashData": {
                "localLedgerCommitTimestamp": {
                    "seconds": seconds,
                    "nanos": int((committed_at - seconds) * 1e9),
                },
                "chaincodeEvents": [],
            },
        }
        self._blocks: tuple[dict[str, Any], ...] = (genesis,)

    @staticmethod
    def block_hash(block: dict[str, Any]) -> str:
        """Hash of a block's hashed part (``nonHashData`` excluded, as in Fabric)."""
        hashed = {key: value for key, value in block.items() if key != "nonHashData"}
        return _digest(json.dumps(hashed, sort_keys=True, separators=(",", ":")).encode())

    @property
    def height(self) -> int:
        return len(self._blocks)

    def block(self, number: int) -> dict[str, Any] | None:
        """Return block ``number`` or ``None`` when the chain is not that high."""
        return self._blocks[number] if 0 <= number < len(self._blocks) else None

    def info(self) -> dict[str, Any]:
        """``GET /chain``: height and the hash of the newest block."""
        return {"height": self.height, "currentBlockHash": self.block_hash(self._blocks[-1])}


@dataclass(frozen=True)
class Peer:
    """The peer's identity and ledger, shared by its REST and gRPC faces."""

    peer_id: str
    address: str
    ledger: Ledger

    def endpoint(self) -> dict[str, Any]:
        """This peer as listed by ``GET /network/peers``."""
        return {"ID": {"name": self.peer_id}, "address": self.address, "type": PEER_TYPE_VALIDATOR}


class RestHandler(web.WorkloadHandler):
    """Fabric 0.6 REST routes (read-only subset the suite and composer use)."""

    program = PROGRAM

    def __init__(self, peer: Peer, *args: Any, **kwargs: Any) -> None:
        self.peer = peer
        super().__init__(*args, **kwargs)

    def route(self, path: str) -> Response:
        if path == "/healthz":
            return web.text_response(200, "ok\n")
        if path == "/chain":
            return web.json_response(200, self.peer.ledger.info())
        if path == "/network/peers":
            return web.json_response(200, {"peers": [self.peer.endpoint()]})
        matched = _BLOCK_PATH.match(path)
        if matched:
            return self._block(matched.group(1))
        return web.json_response(404, {"Error": f"no such resource: {path}"})

    def _block(self, raw: str) -> Response:
        if not raw.isdigit():
            return web.json_response(400, {"Error": f"block number {raw!r} is not a number"})
        number = int(raw)
        block = self.peer.ledger.block(number)
        if block is None:
            height = self.peer.ledger.height
            return web.json_response(
                404, {"Error": f"block {number} not found: chain height is {height}"}
            )
        return web.json_response(200, block)


def grpc_methods(peer: Peer) -> dict[str, rpc.Handler]:
    """The ``protos.Peer`` service's unary methods."""

    def ping(_request: dict[str, Any], _call: Call) -> dict[str, Any]:
        return {"peer": peer.peer_id, "status": "STARTED", "height": peer.ledger.height}

    def get_block(request: dict[str, Any], call: Call) -> dict[str, Any]:
        number = request.get("number", 0)
        if isinstance(number, bool) or not isinstance(number, int):
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "number must be an integer")
        call.note("block", number)
        block = peer.ledger.block(number)
        if block is None:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"block {number} not found")
        return block

    return {"Ping": ping, "GetBlock": get_block}


@dataclass
class Enroller:
    """Enrolls with membersrvc now and then every ``interval`` seconds until stopped;
    after a failure, again in ``retry`` seconds."""

    enroll_id: str
    enroll_secret: Secret
    membersrvc_address: str
    interval: float
    timeout: float
    stopping: threading.Event
    retry: float = 1.0

    def run(self, channel: grpc.Channel) -> None:
        """Loop until stopped; the caller owns (and on stop closes) ``channel``."""
        while not self.stopping.is_set():
            ok = self.enroll_once(channel)
            self.stopping.wait(self.interval if ok else min(self.retry, self.interval))

    def enroll_once(self, channel: grpc.Channel) -> bool:
        """One Enroll call; logs the outcome (id and serial only, never the secret)."""
        request = {"enrollId": self.enroll_id, "enrollSecret": self.enroll_secret.reveal()}
        where = f"{self.enroll_id} with membersrvc at {self.membersrvc_address}"
        try:
            reply = rpc.invoke(channel, contract.ECA_ENROLL, request, timeout=self.timeout)
        except grpc.RpcError as error:
            if not self.stopping.is_set():
                log.problem(PROGRAM, f"enrollment of {where} failed: {rpc.failure_text(error)}")
            return False
        log.info(PROGRAM, f"enrolled {where} serial={reply.get('serial', '-')}")
        return True


def main() -> int:
    """Serve REST and gRPC, enroll periodically, stop on SIGTERM."""
    lifecycle = Lifecycle(PROGRAM)
    host = settings.bind_address()
    rest_port = settings.port("REST_PORT", 7050)
    grpc_port = settings.port("GRPC_PORT", 7051)
    enroller = Enroller(
        enroll_id=settings.text("CORE_SECURITY_ENROLLID", "test_vp0"),
        enroll_secret=settings.secret("CORE_SECURITY_ENROLLSECRET"),
        membersrvc_address=settings.address("MEMBERSRVC_ADDRESS", "membersrvc:7054"),
        interval=settings.seconds("ENROLL_INTERVAL_SECONDS", 5),
        retry=settings.seconds("ENROLL_RETRY_SECONDS", 1),
        timeout=settings.seconds("OUTBOUND_TIMEOUT_SECONDS", 3),
        stopping=lifecycle.stopping,
    )
    peer = Peer(
        peer_id=settings.text("CORE_PEER_ID", "vp0"),
        address=settings.address("PEER_ADDRESS", "vp0:7051"),
        ledger=Ledger(time.time()),
    )
    rpc.serve(PROGRAM, host, grpc_port, {contract.PEER_SERVICE: grpc_methods(peer)}, lifecycle)
    web.serve(PROGRAM, host, rest_port, functools.partial(RestHandler, peer), lifecycle, "rest")
    if not enroller.enroll_secret:
        log.problem(PROGRAM, "CORE_SECURITY_ENROLLSECRET is empty: enrollment will be refused")
    channel = rpc.dial(enroller.membersrvc_address)
    thread = threading.Thread(
        target=enroller.run, args=(channel,), name=f"{PROGRAM}-enroll", daemon=True
    )
    thread.start()

    def stop_enrolling() -> None:
        channel.close()  # cancels a call in flight, so the join below is quick
        thread.join(timeout=0.5)

    lifecycle.on_stop("enrollment", stop_enrolling)
    return lifecycle.run()

"""composer: Hyperledger Composer Playground as a stand-in (HTTP on ``PORT``, 8080).

* ``GET /config.json`` serves ``COMPOSER_CONFIG`` (or a default built from the peer
  addresses) with every secret redacted, like the Playground's server did with the same
  variable.
* ``GET /login`` (and any other GET path, as the Playground's single-page app does)
  answers 200 with an HTML page. Serving ``/login`` also calls membersrvc's
  ``/membersrvc.ECA/Enroll`` over gRPC and vp0's ``GET /chain`` over HTTP, forwarding the
  request id and trace headers: this is what gives the mesh its composer -> membersrvc
  and composer -> vp0 edges. A failed backend call is logged as one stderr line and the
  page is still served, because the suite's ingress check is about the route to
  composer, not about its backends.
* ``GET /healthz`` answers ``ok`` for readiness probes.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import grpc

from . import contract, log, rpc, settings, tracing, web
from .lifecycle import Lifecycle
from .settings import ConfigError, Secret
from .web import Response

PROGRAM = "composer"
REDACTED = "<redacted>"
_SECRET_KEY = re.compile(r"secret|password|passwd|token|private.?key|credential", re.IGNORECASE)

PAGE = b"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Composer Playground</title></head>
<body>
<h1>Composer Playground</h1>
<p>meshgate stand-in for Hyperledger Composer Playground, connected to a Fabric v0.6
network through <code>/config.json</code>.</p>
</body>
</html>
"""


def default_config(membersrvc_address: str, peer_address: str) -> dict[str, Any]:
    """The 2017 connection profile ``hlfabric``, pointed at this deployment's services.

    The 2017 profile also named an event hub on vp0:7053; the stand-in peer has none, so
    it is left out rather than advertised.
    """
    return {
        "connectionProfiles": {
            "hlfabric": {
                "description": "Hyperledger Fabric v0.6",
                "type": "hlf",
                "keyValStore": "/home/composer/.composer-credentials",
                "membershipServicesURL": f"grpc://{membersrvc_address}",
                "peerURL": f"grpc://{peer_address}",
                "deployWaitTime": 300,
                "invokeWaitTime": 30,
            }
        },
        "defaultConnectionProfile": "hlfabric",
    }


def redact(node: Any, known_secrets: tuple[str, ...], secret_subtree: bool = False) -> Any:
    """Return a copy of a JSON document with secrets replaced by ``<redacted>``.

    Everything below a key that names a secret (``secret``, ``password``, ``token``,
    ``credentials`` ...) is redacted: the 2017 config kept credentials as ``{"admin":
    "<secret>"}``, so the secret is a *value* under an innocent-looking key. Any string
    that contains a known secret value (the admin secret from the environment) is
    redacted too, wherever it appears.
    """
    if isinstance(node, dict):
        return {
            key: redact(value, known_secrets, secret_subtree or bool(_SECRET_KEY.search(key)))
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [redact(item, known_secrets, secret_subtree) for item in node]
    if node is None:
        return None
    if secret_subtree:
        return REDACTED
    if isinstance(node, str) and any(value and value in node for value in known_secrets):
        return REDACTED
    return node


def load_config(raw: str, fallback: dict[str, Any]) -> dict[str, Any]:
    """Parse ``COMPOSER_CONFIG``; the error never quotes the text, which may hold secrets."""
    if not raw.strip():
        return fallback
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise ConfigError(f"COMPOSER_CONFIG is not valid JSON ({error.msg} at {where})") from None
    if not isinstance(document, dict):
        raise ConfigError("COMPOSER_CONFIG must be a JSON object")
    return document


@dataclass
class Backends:
    """composer's outbound calls, made while serving ``/login``."""

    enroll_id: str
    admin_secret: Secret
    membersrvc_address: str
    membersrvc: grpc.Channel
    chain_url: str
    opener: urllib.request.OpenerDirector
    timeout: float

    def visit(self, trace_context: dict[str, str]) -> None:
        """Enroll and read the chain concurrently, so /login waits at most one timeout.

        The enrollment runs on a daemon thread (not an executor, whose workers the
        interpreter joins at exit): a call stuck on a hung backend must not hold up
        SIGTERM.
        """
        enrolling = threading.Thread(
            target=self.enroll, args=(trace_context,), name=f"{PROGRAM}-enroll", daemon=True
        )
        enrolling.start()
        self.read_chain(trace_context)
        enrolling.join()

    def enroll(self, trace_context: dict[str, str]) -> None:
        request = {"enrollId": self.enroll_id, "enrollSecret": self.admin_secret.reveal()}
        try:
            rpc.invoke(
                self.membersrvc,
                contract.ECA_ENROLL,
                request,
                timeout=self.timeout,
                trace_context=trace_context,
            )
        except grpc.RpcError as error:
            log.problem(
                PROGRAM,
                f"login: enroll of {self.enroll_id} with membersrvc at "
                f"{self.membersrvc_address} failed: {rpc.failure_text(error)} "
                f"{tracing.describe(trace_context)}",
            )

    def read_chain(self, trace_context: dict[str, str]) -> None:
        request = urllib.request.Request(self.chain_url, headers=trace_context)
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as error:
            self._chain_failed(f"HTTP {error.code}", trace_context)
        except urllib.error.URLError as error:
            self._chain_failed(str(error.reason), trace_context)
        except (OSError, ValueError) as error:
            self._chain_failed(f"{type(error).__name__}: {error}", trace_context)

    def _chain_failed(self, why: str, trace_context: dict[str, str]) -> None:
        log.problem(
            PROGRAM,
            f"login: GET {self.chain_url} failed: {why} {tracing.describe(trace_context)}",
        )


class ComposerHandler(web.WorkloadHandler):
    """Routes of the Playground's web server."""

    program = PROGRAM

    def __init__(self, config_json: bytes, backends: Backends, *args: Any, **kwargs: Any) -> None:
        self.config_json = config_json
        self.backends = backends
        super().__init__(*args, **kwargs)

    def route(self, path: str) -> Response:
        if path == "/healthz":
            return web.text_response(200, "ok\n")
        if path == "/config.json":
            return Response(200, self.config_json, "application/json")
        if path == "/login":
            self.backends.visit(self.trace_context)
        return Response(200, PAGE, "text/html; charset=utf-8")


def main() -> int:
    """Serve the Playground on ``BIND_ADDRESS:PORT`` until SIGTERM."""
    lifecycle = Lifecycle(PROGRAM)
    host = settings.bind_address()
    port = settings.port("PORT", 8080)
    membersrvc_address = settings.address("MEMBERSRVC_ADDRESS", "membersrvc:7054")
    peer_address = settings.address("PEER_ADDRESS", "vp0:7051")
    peer_rest_url = settings.text("PEER_REST_URL", "http://vp0:7050").rstrip("/")
    if not peer_rest_url.startswith("http://"):
        raise ConfigError(f"PEER_REST_URL={peer_rest_url!r} must be an http:// URL")
    admin_secret = settings.secret("COMPOSER_ADMIN_SECRET")
    config = load_config(
        settings.text("COMPOSER_CONFIG", ""), default_config(membersrvc_address, peer_address)
    )
    config_json = json.dumps(redact(config, (admin_secret.reveal(),)), indent=2).encode() + b"\n"

    channel = rpc.dial(membersrvc_address)
    lifecycle.on_stop("membersrvc channel", channel.close)
    backends = Backends(
        enroll_id=settings.text("COMPOSER_ADMIN_ID", "admin"),
        admin_secret=admin_secret,
        membersrvc_address=membersrvc_address,
        membersrvc=channel,
        chain_url=f"{peer_rest_url}/chain",
        # build_opener() installs urllib's ProxyHandler, which reads HTTP_PROXY/NO_PROXY.
        opener=urllib.request.build_opener(),
        timeout=settings.seconds("OUTBOUND_TIMEOUT_SECONDS", 3),
    )
    if not admin_secret:
        log.problem(PROGRAM, "COMPOSER_ADMIN_SECRET is empty: enrollment will be refused")
    handler = functools.partial(ComposerHandler, config_json, backends)
    web.serve(PROGRAM, host, port, handler, lifecycle)
    return lifecycle.run()

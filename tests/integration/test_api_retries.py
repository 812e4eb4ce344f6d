"""The suite retries what Kubernetes clients retry, and nothing else (meshgate.cluster
ApiServerRetry): an API server that throttles (429 with Retry-After, as API Priority and
Fairness answers) is waited for; a 500 without Retry-After is the answer at once."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from meshgate.cluster import ApiServerUnreachable, Cluster, ClusterError

VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.1", "gitCommit": "abc",
           "gitTreeState": "clean", "buildDate": "2025-05-15T00:00:00Z", "goVersion": "go1.24",
           "compiler": "gc", "platform": "linux/amd64"}


class FlakyServer(ThreadingHTTPServer):
    """Answers /version with the statuses queued in ``script``, then 200."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.script: list[tuple[int, dict[str, str]]] = []
        self.seen = 0


class Handler(BaseHTTPRequestHandler):
    server: FlakyServer

    def do_GET(self) -> None:
        self.server.seen += 1
        status, headers = self.server.script.pop(0) if self.server.script else (200, {})
        body = json.dumps(VERSION if status == 200 else {
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "too many requests" if status == 429 else "boom", "code": status}).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return kubeconfig


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[FlakyServer, Path]]:
    srv = _serve(0)
    try:
        yield srv, _kubeconfig(tmp_path, f"http://127.0.0.1:{srv.server_address[1]}")
    finally:
        _stop(srv)


def test_throttling_with_retry_after_is_waited_for(server: tuple[FlakyServer, Path]) -> None:
    srv, kubeconfig = server
    srv.script = [(429, {"Retry-After": "1"}), (503, {"Retry-After": "0"})]
    assert Cluster(kubeconfig).server_version() == "v1.33.1"
    assert srv.seen == 3


def test_a_server_error_without_retry_after_is_the_answer(
        server: tuple[FlakyServer, Path]) -> None:
    srv, kubeconfig = server
    srv.script = [(500, {})]
    with pytest.raises(ClusterError):
        Cluster(kubeconfig).server_version()
    assert srv.seen == 1


def test_retries_are_bounded(server: tuple[FlakyServer, Path]) -> None:
    srv, kubeconfig = server
    srv.script = [(429, {"Retry-After": "0"})] * 50
    with pytest.raises(ClusterError):
        Cluster(kubeconfig).server_version()
    assert srv.seen == 11  # the request and its ten retries


# -- an API server that goes away (meshgate.apiserver.Availability) ---------------------------
def _serve(port: int) -> FlakyServer:
    srv = FlakyServer(port)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _stop(srv: FlakyServer) -> None:
    srv.shutdown()
    srv.server_close()


def test_a_restarting_api_server_is_ridden_out(server: tuple[FlakyServer, Path]) -> None:
    """A control-plane restart: the port refuses connections for about a second."""
    srv, kubeconfig = server
    cluster = Cluster(kubeconfig)
    assert cluster.server_version() == "v1.33.1"
    port = srv.server_address[1]
    _stop(srv)
    back: list[FlakyServer] = []
    # The outage's length is the scenario, not a wait for a condition.
    timer = threading.Timer(1.0, lambda: back.append(_serve(port)))
    timer.start()
    try:
        assert cluster.server_version() == "v1.33.1"
        assert back and back[0].seen == 1
    finally:
        timer.join()
        for s in back:
            _stop(s)


def test_an_api_server_gone_for_good_is_named_with_its_last_answer(
        server: tuple[FlakyServer, Path]) -> None:
    srv, kubeconfig = server
    cluster = Cluster(kubeconfig)
    cluster.availability.budget = 2.0
    cluster.server_version()
    _stop(srv)
    with pytest.raises(ApiServerUnreachable) as err:
        cluster.server_version()
    host = f"http://127.0.0.1:{srv.server_address[1]}"
    assert str(err.value).startswith(f"the API server at {host} refused the connection "
                                     "(GET /version/; not answering for 2 s); it last "
                                     "answered 200 to GET /version/ at "), err.value


def test_an_api_server_that_accepts_and_never_answers_does_not_hang(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    kubeconfig = _kubeconfig(tmp_path, f"http://127.0.0.1:{listener.getsockname()[1]}")
    try:
        cluster = Cluster(kubeconfig)
        cluster.availability.timeout = (1.0, 0.5)
        start = time.monotonic()
        with pytest.raises(ApiServerUnreachable, match="accepted the connection but did not "
                                                       "answer in time"):
            cluster.server_version()
        assert time.monotonic() - start < 5
    finally:
        listener.close()

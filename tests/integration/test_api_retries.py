"""The suite retries what Kubernetes clients retry, and nothing else (meshgate.cluster
ApiServerRetry): an API server that throttles (429 with Retry-After, as API Priority and
Fairness answers) is waited for; a 500 without Retry-After is the answer at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from meshgate.cluster import Cluster, ClusterError

VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.1", "gitCommit": "abc",
           "gitTreeState": "clean", "buildDate": "2025-05-15T00:00:00Z", "goVersion": "go1.24",
           "compiler": "gc", "platform": "linux/amd64"}


class FlakyServer(ThreadingHTTPServer):
    """Answers /version with the statuses queued in ``script``, then 200."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[FlakyServer, Path]]:
    srv = FlakyServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:"
                                                          f"{srv.server_address[1]}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    try:
        yield srv, kubeconfig
    finally:
        srv.shutdown()
        srv.server_close()


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

"""The workloads as real processes on loopback, checked over real HTTP and gRPC.

Every program runs as ``python -m workloads <name>`` with ``BIND_ADDRESS=127.0.0.1`` and
port 0; the test learns the bound port from the ``listening`` line the program logs, so
there is no window in which another process could take a port picked in advance. No
proxies are inherited (``NO_PROXY=*``) except where a test sets one on purpose. Waiting
is always bounded polling against a deadline, and every process is stopped by a fixture
finalizer even when a test fails.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from tests.support import REPO, poll, unused_port
from workloads import contract
from workloads.composer import REDACTED

STARTUP_SECONDS = 20.0
EVENT_SECONDS = 10.0

COMPOSER_SECRET = f"composer-admin-{uuid.uuid4().hex[:12]}"
VP0_SECRET = f"vp0-enroll-{uuid.uuid4().hex[:12]}"
SECRETS = (COMPOSER_SECRET, VP0_SECRET)


# --------------------------------------------------------------------------- helpers


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def base_env(**overrides: str) -> dict[str, str]:
    """The parent's environment without proxies or workload settings, plus overrides."""
    env = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
    for names in contract.ENVIRONMENT.values():
        for name in names:
            env.pop(name, None)
    env.update(BIND_ADDRESS="127.0.0.1", NO_PROXY="*", no_proxy="*", PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env


class Program:
    """One workload subprocess whose stdout and stderr lines are collected as they come."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workloads", name],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._collect, args=(stream, key), daemon=True)
            for stream, key in ((self.process.stdout, "stdout"), (self.process.stderr, "stderr"))
        ]
        for reader in self._readers:
            reader.start()

    def _collect(self, stream: Any, key: str) -> None:
        for line in stream:
            with self._changed:
                self.lines[key].append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def find(self, pattern: str, stream: str = "stdout") -> re.Match[str] | None:
        compiled = re.compile(pattern)
        with self._changed:
            for line in self.lines[stream]:
                found = compiled.search(line)
                if found:
                    return found
        return None

    def wait_for(
        self, pattern: str, stream: str = "stdout", timeout: float = EVENT_SECONDS
    ) -> re.Match[str]:
        """Wait for a line matching ``pattern``; fail early if the process dies."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(pattern, stream)
            if found:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name}: no {stream} line matching {pattern!r} "
                    f"(exit code {self.process.poll()})\n{self.output()}"
                )
            with self._changed:
                self._changed.wait(min(remaining, 0.2))

    def address(self, label: str) -> str:
        """The ``host:port`` the program logged for its ``label`` listener."""
        return self.wait_for(rf" listening {label} (\S+)$", timeout=STARTUP_SECONDS).group(1)

    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines["stdout"] + self.lines["stderr"])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; always reap and drain."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for reader in self._readers:
            reader.join(timeout=2)


Launch = Callable[..., Program]


@pytest.fixture(scope="module")
def launch_shared() -> Iterator[Launch]:
    """Start programs that live for the whole module; stop them all at the end."""
    started: list[Program] = []

    def launch(name: str, **env: str) -> Program:
        program = Program(name, base_env(**env))
        started.append(program)
        return program

    try:
        yield launch
    finally:
        for program in started:
            program.stop()


@pytest.fixture
def launch() -> Iterator[Launch]:
    """Start programs for one test; stop them all when it ends."""
    started: list[Program] = []

    def start(name: str, **env: str) -> Program:
        program = Program(name, base_env(**env))
        started.append(program)
        return program

    try:
        yield start
    finally:
        for program in started:
            program.stop()


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_get(address: str, path: str, headers: dict[str, str] | None = None) -> HttpAnswer:
    """GET over a fresh connection (http.client never consults proxy settings)."""
    host, port = split_address(address)
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        return HttpAnswer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        connection.close()


def wait_http_ready(address: str) -> None:
    def healthy() -> bool:
        try:
            return http_get(address, "/healthz").status == 200
        except OSError:
            return False

    poll(healthy, timeout=STARTUP_SECONDS, what=f"GET http://{address}/healthz to answer 200")


def grpc_call(
    address: str, method: str, request: dict[str, Any] | bytes, timeout: float = 5.0
) -> dict[str, Any]:
    """A unary call with JSON bytes on the wire; raises ``grpc.RpcError`` on non-OK."""
    payload = request if isinstance(request, bytes) else json.dumps(request).encode()
    with grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)]) as channel:
        stub = channel.unary_unary(
            method, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw
        )
        reply: bytes = stub(payload, timeout=timeout, wait_for_ready=True)
    return json.loads(reply)


class Blackhole:
    """A TCP server that accepts connections and never answers: a hung backend."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self.accepted:
            connection.close()


def assert_no_secrets(*programs: Program) -> None:
    for program in programs:
        output = program.output()
        for value in SECRETS:
            assert value not in output, f"{program.name} logged a secret:\n{output}"


def fresh_trace() -> tuple[str, str, dict[str, str]]:
    """A unique request id and trace id, and the headers that carry them."""
    request_id = f"test-{uuid.uuid4()}"
    trace_id = uuid.uuid4().hex
    headers = {"x-request-id": request_id, "traceparent": f"00-{trace_id}-{'a' * 16}-01"}
    return request_id, trace_id, headers


# --------------------------------------------------------------------------- the network


@dataclass
class Network:
    membersrvc: Program
    vp0: Program
    composer: Program
    membersrvc_grpc: str
    vp0_rest: str
    vp0_grpc: str
    composer_http: str


COMPOSER_CONFIG_2017_STYLE = {
    "connectionProfiles": {
        "hlfabric": {
            "type": "hlf",
            "keyValStore": "/home/composer/.composer-credentials",
            "membershipServicesURL": "grpc://membersrvc:7054",
            "peerURL": "grpc://vp0:7051",
            "deployWaitTime": 300,
        }
    },
    "credentials": {"hlfabric": {"admin": COMPOSER_SECRET}},
    "database": {"user": "composer", "password": "hunter2", "url": f"x://{COMPOSER_SECRET}@db"},
}


@pytest.fixture(scope="module")
def network(launch_shared: Launch) -> Network:
    """membersrvc, vp0 and composer wired to each other as on a cluster."""
    membersrvc = launch_shared("membersrvc", PORT="0")
    membersrvc_grpc = membersrvc.address("grpc")
    vp0 = launch_shared(
        "vp0",
        REST_PORT="0",
        GRPC_PORT="0",
        MEMBERSRVC_ADDRESS=membersrvc_grpc,
        CORE_SECURITY_ENROLLID="test_vp0",
        CORE_SECURITY_ENROLLSECRET=VP0_SECRET,
        ENROLL_INTERVAL_SECONDS="1",
    )
    vp0_rest, vp0_grpc = vp0.address("rest"), vp0.address("grpc")
    composer = launch_shared(
        "composer",
        PORT="0",
        MEMBERSRVC_ADDRESS=membersrvc_grpc,
        PEER_REST_URL=f"http://{vp0_rest}",
        COMPOSER_ADMIN_SECRET=COMPOSER_SECRET,
        COMPOSER_CONFIG=json.dumps(COMPOSER_CONFIG_2017_STYLE),
    )
    composer_http = composer.address("http")
    wait_http_ready(vp0_rest)
    wait_http_ready(composer_http)
    return Network(membersrvc, vp0, composer, membersrvc_grpc, vp0_rest, vp0_grpc, composer_http)


# --------------------------------------------------------------------------- membersrvc


def test_membersrvc_enroll_issues_a_certificate(network: Network) -> None:
    reply = grpc_call(
        network.membersrvc_grpc, contract.ECA_ENROLL, {"enrollId": "alice", "enrollSecret": "x"}
    )
    assert reply["enrollId"] == "alice"
    assert reply["certificate"].startswith("-----BEGIN CERTIFICATE-----\n")
    assert re.fullmatch(r"[0-9a-f]{16}", reply["serial"])


@pytest.mark.parametrize(
    ("request_body", "detail"),
    [
        ({"enrollId": "alice", "enrollSecret": ""}, "enrollSecret is required"),
        ({"enrollSecret": "x"}, "enrollId is required"),
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
    ],
)
def test_membersrvc_enroll_refuses_incomplete_requests(
    network: Network, request_body: dict[str, Any] | bytes, detail: str
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        grpc_call(network.membersrvc_grpc, contract.ECA_ENROLL, request_body)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert detail in raised.value.details()


def test_membersrvc_ping(network: Network) -> None:
    reply = grpc_call(network.membersrvc_grpc, contract.ECA_PING, {})
    assert reply == {"service": "membersrvc", "status": "SERVING"}


# --------------------------------------------------------------------------- vp0


def test_vp0_chain(network: Network) -> None:
    answer = http_get(network.vp0_rest, "/chain")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    chain = answer.json()
    assert chain["height"] == 1
    assert isinstance(chain["currentBlockHash"], str) and chain["currentBlockHash"]


def test_vp0_genesis_block_has_fabric_06_shape(network: Network) -> None:
    answer = http_get(network.vp0_rest, "/chain/blocks/0")
    assert answer.status == 200
    block = answer.json()
    assert isinstance(block["stateHash"], str) and block["stateHash"]
    assert block["previousBlockHash"] == ""
    assert block["transactions"] == []
    stamp = block["nonHashData"]["localLedgerCommitTimestamp"]
    assert abs(stamp["seconds"] - time.time()) < 600
    assert 0 <= stamp["nanos"] < 1_000_000_000


@pytest.mark.parametrize(("path", "status"), [("/chain/blocks/999", 404), ("/chain/blocks/x", 400)])
def test_vp0_unknown_block_is_a_json_error(network: Network, path: str, status: int) -> None:
    answer = http_get(network.vp0_rest, path)
    assert answer.status == status
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["Error"]


def test_vp0_network_peers(network: Network) -> None:
    answer = http_get(network.vp0_rest, "/network/peers")
    assert answer.status == 200
    assert answer.json() == {"peers": [{"ID": {"name": "vp0"}, "address": "vp0:7051", "type": 1}]}


def test_vp0_peer_grpc_methods(network: Network) -> None:
    assert grpc_call(network.vp0_grpc, contract.PEER_PING, {}) == {
        "peer": "vp0",
        "status": "STARTED",
        "height": 1,
    }
    block = grpc_call(network.vp0_grpc, contract.PEER_GET_BLOCK, {"number": 0})
    assert block == http_get(network.vp0_rest, "/chain/blocks/0").json()
    with pytest.raises(grpc.RpcError) as raised:
        grpc_call(network.vp0_grpc, contract.PEER_GET_BLOCK, {"number": 999})
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND


def test_vp0_enrolls_with_membersrvc_at_start(network: Network) -> None:
    network.vp0.wait_for(r" vp0 enrolled test_vp0 with membersrvc at ")
    network.membersrvc.wait_for(r'"/membersrvc\.ECA/Enroll" OK .* enrollId=test_vp0 ')


def test_vp0_retries_a_failed_enrollment_sooner_than_its_interval(launch: Launch) -> None:
    """membersrvc is not up when vp0 starts (as when a Deployment's pods start together):
    vp0 must enrol once it is, long before its 60 s interval would have come round."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    vp0 = launch("vp0", REST_PORT="0", GRPC_PORT="0", MEMBERSRVC_ADDRESS=f"127.0.0.1:{port}",
                 CORE_SECURITY_ENROLLSECRET=VP0_SECRET, ENROLL_INTERVAL_SECONDS="60",
                 ENROLL_RETRY_SECONDS="0.2")
    vp0.wait_for(r" vp0 enrollment of test_vp0 .* failed: ", stream="stderr",
                 timeout=STARTUP_SECONDS)
    launch("membersrvc", PORT=str(port))
    vp0.wait_for(r" vp0 enrolled test_vp0 with membersrvc at ", timeout=EVENT_SECONDS)


def test_http_access_lines_carry_request_and_trace_ids(network: Network) -> None:
    request_id, trace_id, headers = fresh_trace()
    http_get(network.vp0_rest, "/network/peers", headers)
    network.vp0.wait_for(
        rf'"GET /network/peers HTTP/1\.1" 200 \d+ \S+ rid={request_id} trace={trace_id}$'
    )


def test_other_methods_are_refused(network: Network) -> None:
    host, port = split_address(network.vp0_rest)
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("POST", "/chaincode", body=b"{}")
        response = connection.getresponse()
        assert response.status == 405
        assert response.getheader("Allow") == "GET, HEAD"
        response.read()
    finally:
        connection.close()


def test_a_malformed_request_gets_400_and_the_server_keeps_serving(network: Network) -> None:
    host, port = split_address(network.vp0_rest)
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall(b"GARBAGE\r\n\r\n")
        # No HTTP version on the line, so the stdlib answers HTTP/0.9-style: body only.
        assert b"400 - Bad request syntax" in raw.recv(4096)
    assert http_get(network.vp0_rest, "/healthz").status == 200
    network.vp0.wait_for(r"http code 400, message Bad request syntax", "stderr")
    assert network.vp0.find("Traceback", "stderr") is None, network.vp0.output()


# --------------------------------------------------------------------------- composer


def test_composer_login_serves_the_playground_page(network: Network) -> None:
    answer = http_get(network.composer_http, "/login")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert b"<title>Composer Playground</title>" in answer.body
    assert http_get(network.composer_http, "/any/other/path").status == 200
    assert http_get(network.composer_http, "/healthz").body == b"ok\n"


def test_composer_config_json_has_no_secrets(network: Network) -> None:
    answer = http_get(network.composer_http, "/config.json")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    config = answer.json()
    profile = config["connectionProfiles"]["hlfabric"]
    assert profile["membershipServicesURL"] == "grpc://membersrvc:7054"
    assert config["credentials"] == {"hlfabric": {"admin": REDACTED}}
    assert config["database"] == {"user": "composer", "password": REDACTED, "url": REDACTED}
    for value in (*SECRETS, "hunter2"):
        assert value.encode() not in answer.body


def test_composer_login_calls_membersrvc_and_vp0(network: Network) -> None:
    request_id, trace_id, headers = fresh_trace()
    assert http_get(network.composer_http, "/login", headers).status == 200
    network.membersrvc.wait_for(
        rf'"/membersrvc\.ECA/Enroll" OK \S+ rid={request_id} trace={trace_id} enrollId=admin '
    )
    network.vp0.wait_for(rf'"GET /chain HTTP/1\.1" 200 \d+ \S+ rid={request_id} trace={trace_id}$')
    network.composer.wait_for(rf'"GET /login HTTP/1\.1" 200 .* rid={request_id} ')
    assert network.composer.find(request_id, "stderr") is None, network.composer.output()


def test_no_program_logs_a_secret(network: Network) -> None:
    """Drive every path that handles a secret, then read all three programs' logs."""
    _, _, headers = fresh_trace()
    http_get(network.composer_http, "/login", headers)
    http_get(network.composer_http, "/config.json")
    network.vp0.wait_for(r" vp0 enrolled test_vp0 ")
    network.membersrvc.wait_for(r"enrollId=admin")
    assert_no_secrets(network.membersrvc, network.vp0, network.composer)


def test_composer_login_survives_unreachable_backends(launch: Launch) -> None:
    composer = launch(
        "composer",
        PORT="0",
        MEMBERSRVC_ADDRESS=f"127.0.0.1:{unused_port()}",
        PEER_REST_URL=f"http://127.0.0.1:{unused_port()}",
        COMPOSER_ADMIN_SECRET=COMPOSER_SECRET,
        OUTBOUND_TIMEOUT_SECONDS="2",
    )
    address = composer.address("http")
    request_id, _, headers = fresh_trace()
    answer = http_get(address, "/login", headers)
    assert answer.status == 200
    assert b"Composer Playground" in answer.body
    composer.wait_for(
        rf"login: enroll of admin .* failed: UNAVAILABLE.* rid={request_id} ", "stderr"
    )
    composer.wait_for(rf"login: GET http://\S+/chain failed: .* rid={request_id} ", "stderr")
    assert_no_secrets(composer)


def test_composer_sends_outbound_calls_through_the_mesh_proxies(
    network: Network, launch: Launch
) -> None:
    """MESH_OUTBOUND_PROXY carries gRPC by :authority; HTTP_PROXY carries urllib's HTTP.

    The targets' names do not resolve, so the calls can only succeed through the proxies
    (played here by membersrvc and vp0 themselves, which accept any authority), and gRPC
    must not try an HTTP CONNECT through HTTP_PROXY.
    """
    composer = launch(
        "composer",
        PORT="0",
        MEMBERSRVC_ADDRESS="membersrvc.invalid:7054",
        MESH_OUTBOUND_PROXY=network.membersrvc_grpc,
        PEER_REST_URL="http://vp0.invalid:7050",
        HTTP_PROXY=f"http://{network.vp0_rest}",
        NO_PROXY="",
        no_proxy="",
        COMPOSER_ADMIN_SECRET=COMPOSER_SECRET,
    )
    address = composer.address("http")
    request_id, _, headers = fresh_trace()
    assert http_get(address, "/login", headers).status == 200
    network.membersrvc.wait_for(rf'"/membersrvc\.ECA/Enroll" OK \S+ rid={request_id} ')
    network.vp0.wait_for(
        rf'"GET http://vp0\.invalid:7050/chain HTTP/1\.1" 200 .* rid={request_id} '
    )
    assert composer.find("failed", "stderr") is None, composer.output()
    assert network.vp0.find(r'"CONNECT ') is None


def test_grpc_dials_directly_even_when_http_proxy_is_set(network: Network, launch: Launch) -> None:
    composer = launch(
        "composer",
        PORT="0",
        MEMBERSRVC_ADDRESS=network.membersrvc_grpc,
        PEER_REST_URL=f"http://{network.vp0_rest}",
        HTTP_PROXY=f"http://127.0.0.1:{unused_port()}",
        http_proxy=f"http://127.0.0.1:{unused_port()}",
        NO_PROXY="",
        no_proxy="",
        COMPOSER_ADMIN_SECRET=COMPOSER_SECRET,
    )
    request_id, _, headers = fresh_trace()
    assert http_get(composer.address("http"), "/login", headers).status == 200
    network.membersrvc.wait_for(rf'"/membersrvc\.ECA/Enroll" OK \S+ rid={request_id} ')
    # The HTTP call, by contrast, did go to the (dead) proxy: proof HTTP_PROXY was honoured.
    composer.wait_for(rf"login: GET http://\S+/chain failed: .* rid={request_id} ", "stderr")


# --------------------------------------------------------------------------- lifecycle


def _hold_keepalive(address: str) -> http.client.HTTPConnection:
    """An idle HTTP/1.1 keep-alive connection, as Envoy keeps to its upstreams."""
    host, port = split_address(address)
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request("GET", "/healthz")
    response = connection.getresponse()
    response.read()
    assert response.getheader("Connection", "").lower() != "close"
    return connection


def _assert_prompt_exit(program: Program) -> None:
    program.process.send_signal(signal.SIGTERM)
    try:
        code = program.process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{program.name} did not exit within 2 s of SIGTERM\n{program.output()}")
    assert code == 0, program.output()
    program.wait_for(rf" {program.name} stopped in \d+ms$")


@pytest.mark.parametrize("name", ["composer", "vp0", "membersrvc"])
def test_sigterm_exits_zero_promptly_with_idle_connections(launch: Launch, name: str) -> None:
    env = {"PORT": "0", "REST_PORT": "0", "GRPC_PORT": "0"}
    env.update(
        MEMBERSRVC_ADDRESS=f"127.0.0.1:{unused_port()}",
        CORE_SECURITY_ENROLLSECRET=VP0_SECRET,
        COMPOSER_ADMIN_SECRET=COMPOSER_SECRET,
    )
    program = launch(name, **env)
    held: list[http.client.HTTPConnection | grpc.Channel] = []
    try:
        if name == "membersrvc":
            channel = grpc.insecure_channel(
                program.address("grpc"), options=[("grpc.enable_http_proxy", 0)]
            )
            held.append(channel)
            ping = channel.unary_unary(contract.ECA_PING)
            assert json.loads(ping(b"{}", timeout=5, wait_for_ready=True))["status"] == "SERVING"
        else:
            held.append(_hold_keepalive(program.address("rest" if name == "vp0" else "http")))
        _assert_prompt_exit(program)
    finally:
        for connection in held:
            connection.close()
    assert_no_secrets(program)


def test_sigterm_exits_promptly_while_calls_hang(launch: Launch) -> None:
    """Backends that accept but never answer must not delay shutdown."""
    hung = Blackhole()
    try:
        vp0 = launch(
            "vp0",
            REST_PORT="0",
            GRPC_PORT="0",
            MEMBERSRVC_ADDRESS=hung.address,
            CORE_SECURITY_ENROLLSECRET=VP0_SECRET,
            OUTBOUND_TIMEOUT_SECONDS="30",
        )
        composer = launch(
            "composer",
            PORT="0",
            MEMBERSRVC_ADDRESS=hung.address,
            PEER_REST_URL=f"http://{hung.address}",
            COMPOSER_ADMIN_SECRET=COMPOSER_SECRET,
            OUTBOUND_TIMEOUT_SECONDS="30",
        )
        composer_http = composer.address("http")
        vp0.address("rest")

        def login() -> None:
            # The server going away mid-request is the point of this test.
            with contextlib.suppress(OSError, http.client.HTTPException):
                http_get(composer_http, "/login")

        threading.Thread(target=login, daemon=True).start()
        # vp0's channel, composer's channel and composer's HTTP call: three connections.
        poll(lambda: len(hung.accepted) >= 3, timeout=EVENT_SECONDS, what="calls to hang")
        _assert_prompt_exit(composer)
        _assert_prompt_exit(vp0)
    finally:
        hung.close()


@pytest.mark.parametrize(
    ("name", "env", "message"),
    [
        ("membersrvc", {"PORT": "http"}, "PORT='http' is not a port number"),
        ("vp0", {"ENROLL_INTERVAL_SECONDS": "0"}, "ENROLL_INTERVAL_SECONDS='0' must be"),
        ("vp0", {"MEMBERSRVC_ADDRESS": "membersrvc"}, "MEMBERSRVC_ADDRESS='membersrvc' is not"),
        ("composer", {"COMPOSER_CONFIG": '{"secret": "' + COMPOSER_SECRET}, "not valid JSON"),
        ("composer", {"PEER_REST_URL": "vp0:7050"}, "must be an http:// URL"),
    ],
)
def test_bad_configuration_exits_2_naming_the_problem(
    launch: Launch, name: str, env: dict[str, str], message: str
) -> None:
    program = launch(name, **{"PORT": "0", "REST_PORT": "0", "GRPC_PORT": "0", **env})
    code = program.process.wait(timeout=STARTUP_SECONDS)
    program.stop()
    assert code == 2, program.output()
    assert message in program.output()
    assert_no_secrets(program)


def test_unknown_program_is_a_usage_error(launch: Launch) -> None:
    program = launch("peer")
    assert program.process.wait(timeout=STARTUP_SECONDS) == 2
    program.stop()
    assert "usage: python -m workloads {composer|vp0|membersrvc|client}" in program.output()


def _fetch(url: str, *extra: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "workloads.fetch", url, *extra], cwd=REPO,
                          env=base_env(), capture_output=True, text=True, timeout=30)
    return done.returncode, json.loads(done.stdout)


def test_fetch_reports_an_answer_and_a_refusal(network: Network) -> None:
    """``workloads.fetch`` is the image's ``curl``: the status and the body's start, exit 0;
    no HTTP answer (nothing listens) is exit 1 with the error."""
    code, answer = _fetch(f"http://{network.vp0_rest}/chain/blocks/0", "--header", "A: b")
    assert code == 0 and answer["status"] == 200 and "previousBlockHash" in answer["body"]
    code, answer = _fetch(f"http://{network.vp0_rest}/no/such/path")
    assert code == 0 and answer["status"] == 404
    code, answer = _fetch(f"http://127.0.0.1:{unused_port()}/", "--timeout", "2")
    assert code == 1 and answer["status"] is None and "Connection" in answer["error"]


def test_client_waits_until_sigterm(launch: Launch) -> None:
    """The idle ``client`` program (Istio's ``curl`` sample's role) stops cleanly."""
    program = launch("client")
    poll(lambda: "waiting" in program.output(), what="client waiting", timeout=STARTUP_SECONDS)
    program.process.send_signal(signal.SIGTERM)
    assert program.process.wait(timeout=STARTUP_SECONDS) == 0, program.output()

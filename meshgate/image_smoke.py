"""A smoke test of the workloads image before it goes into a cluster (``meshgate
smoke-image``): the image's three programs in containers, as a cluster would run them,
answering what the suite asks of them.

Run it after building the image and before ``kind load`` (or a push): a broken image
fails here in seconds, with the containers' logs, instead of as pods that never get ready.
It starts membersrvc, vp0 and composer from the image through testcontainers (so a Docker
engine, or podman's Docker-compatible socket named by ``DOCKER_HOST``), each with host
networking on its own loopback address (never a bridge), as OpenShift's restricted SCC
runs a pod (an arbitrary UID with group 0) and with a read-only root filesystem, then
checks ``GET /login`` on composer (which calls vp0 and membersrvc), ``GET
/chain/blocks/0`` on vp0, and a gRPC ``Enroll`` with membersrvc. The containers are
removed at the end, whatever happened.

Needs meshgate's ``containers`` extra (testcontainers, docker). With podman's socket,
set ``TESTCONTAINERS_RYUK_DISABLED=true``: testcontainers' reaper image cannot be pulled
where no registry is reachable, and this module removes its containers itself.
"""

from __future__ import annotations

import json
import random
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# OpenShift's restricted SCC: a UID from the namespace's range, group 0.
OPENSHIFT_USER = "1000650000:0"
# Outside localmesh's blocks (127.10-249.x.x), a third octet drawn per run.
ADDRESS_BLOCK = 251
PROGRAMS = ("membersrvc", "vp0", "composer")
SMOKE_LABEL = "io.meshgate.smoke-run"


@dataclass(frozen=True)
class Addresses:
    """The loopback address each program listens on."""

    composer: str
    vp0: str
    membersrvc: str

    @classmethod
    def draw(cls, rand: Callable[[int, int], int] = random.randint) -> Addresses:
        third = rand(1, 254)
        return cls(*(f"127.{ADDRESS_BLOCK}.{third}.{i}" for i in (1, 2, 3)))


def program_env(program: str, at: Addresses) -> dict[str, str]:
    """The environment of one program: where it listens and where its peers are (the
    manifests' service names, replaced by the peers' addresses: no cluster DNS here)."""
    env = {"BIND_ADDRESS": getattr(at, program)}
    if program in ("vp0", "composer"):
        env["MEMBERSRVC_ADDRESS"] = f"{at.membersrvc}:7054"
        env["PEER_ADDRESS"] = f"{at.vp0}:7051"
    if program == "vp0":
        env["CORE_SECURITY_ENROLLSECRET"] = "smoke-test-secret"
    if program == "composer":
        env["PEER_REST_URL"] = f"http://{at.vp0}:7050"
        env["COMPOSER_ADMIN_SECRET"] = "smoke-test-secret"
    return env


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class SmokeReport:
    image: str
    user: str
    checks: list[Check] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def lines(self) -> list[str]:
        out = [f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in self.checks]
        if not self.ok:
            for program, text in self.logs.items():
                out.append(f"--- {program}'s log")
                out += text.rstrip().splitlines()[-20:]
        return out


def _http(url: str, deadline: float) -> tuple[int, str]:
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                    url, timeout=2) as resp:
                return resp.status, resp.read(200).decode(errors="replace")
        except OSError as exc:
            last = str(exc)
            time.sleep(0.1)
    return 0, last


def _enroll(address: str, deadline: float) -> tuple[bool, str]:
    import grpc

    request = json.dumps({"enrollId": "smoke", "enrollSecret": "smoke-test"}).encode()
    with grpc.insecure_channel(address) as channel:
        enroll = channel.unary_unary("/membersrvc.ECA/Enroll")
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                answer = json.loads(enroll(request, timeout=2))
                return "certificate" in answer, f"serial {answer.get('serial')}"
            except grpc.RpcError as exc:
                last = f"{exc.code().name}: {exc.details()}"
                time.sleep(0.1)
        return False, last


def run_checks(at: Addresses, timeout: float) -> list[Check]:
    """The three checks against programs listening at ``at``."""
    deadline = time.monotonic() + timeout
    ok, detail = _enroll(f"{at.membersrvc}:7054", deadline)
    checks = [Check("membersrvc: gRPC /membersrvc.ECA/Enroll", ok, detail)]
    for name, url in (("vp0: GET /chain/blocks/0", f"http://{at.vp0}:7050/chain/blocks/0"),
                      ("composer: GET /login (calls vp0 and membersrvc)",
                       f"http://{at.composer}:8080/login")):
        status, body = _http(url, deadline)
        checks.append(Check(name, status == 200, f"HTTP {status}" if status else body))
    return checks


def smoke(image: str, *, user: str = OPENSHIFT_USER, timeout: float = 30.0,
          addresses: Addresses | None = None) -> SmokeReport:
    """Start the three programs from ``image``, run the checks, remove the containers."""
    from testcontainers.core.container import DockerContainer

    at = addresses or Addresses.draw()
    report = SmokeReport(image, user)
    t0 = time.monotonic()
    started: dict[str, Any] = {}
    # Every container of this run carries this label: one that was created but failed to
    # start (docker-py's run() leaves it behind) is found by it and removed by its ID.
    run_label = {SMOKE_LABEL: uuid.uuid4().hex}
    try:
        for program in PROGRAMS:
            container = DockerContainer(image).with_command(program).with_kwargs(
                network_mode="host", user=user, read_only=True, labels=run_label)
            for key, value in program_env(program, at).items():
                container.with_env(key, value)
            started[program] = container.start()
        report.checks = run_checks(at, timeout)
    finally:
        for program, container in started.items():
            try:
                out, err = container.get_logs()
                report.logs[program] = (out + err).decode(errors="replace")
            except Exception as exc:  # noqa: BLE001 - the log is for the report only
                report.logs[program] = f"(no log: {exc})"
            container.stop()
        _remove_leftovers(run_label)
        report.seconds = time.monotonic() - t0
    return report


def _remove_leftovers(label: dict[str, str]) -> None:
    """Remove, by ID, the containers of this run that testcontainers could not hand back."""
    import docker

    (key, value), = label.items()
    client = docker.from_env()
    for leftover in client.containers.list(all=True, filters={"label": f"{key}={value}"}):
        leftover.remove(force=True)

"""Security: localmesh stays on loopback and behind its token, and secrets never leave the
cluster through the suite's logs, reports or failure bundles (issue 6, "Security").

* Every socket of localmesh and of every process it started (the pods' programs, their
  Envoys, Prometheus, the watchdog) is listed from /proc — the socket inodes of each
  process's file descriptors, looked up in /proc/net/{tcp,tcp6,udp,udp6,raw,raw6,unix} —
  and each TCP/UDP one must be bound to 127.0.0.0/8 (or ::1) and talk to nothing else.
  A sidecar's Envoy admin port 15000 listens on the pod's local address only (the
  "localhost" of localmesh/network.py), never on the pod IP.
* The API server answers 401 with an ``Unauthorized`` Status to requests without its
  token or with a wrong one, and speaks nothing but TLS.
* A failing scenario whose manifests carry Secrets and secret env values leaves a failure
  bundle and every report; none of them, nor the run's output, holds any of the values.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import secrets
import shutil
import socket
import ssl
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from localmesh.cli import Handle
from localmesh.network import AddressPlan
from meshgate import ingress
from meshgate.cluster import Cluster
from meshgate.mesh import Gateway
from tests.support import (
    REPO,
    boot_localmesh,
    child_env,
    descendants,
    needs_prometheus,
    process_table,
)

pytestmark = needs_prometheus


# --------------------------------------------------------------------------- processes


def _describe(pid: int) -> str:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace").strip()
    except OSError:
        return "(gone)"
    return f"{comm}: {cmd[:110]}"


def localmesh_processes(handle: Handle) -> dict[int, str]:
    """localmesh's serve process and all its descendants (by parent pid), plus any process
    in a process group its kubelet recorded (a container's child re-parented elsewhere)."""
    table = process_table()
    found = {handle.pid} | descendants(table, handle.pid)
    groups = {int(f.name) for f in (handle.state_dir / "pids").glob("*") if f.name.isdigit()}
    found |= {p.pid for p in table.values() if p.pgid in groups}
    return {pid: _describe(pid) for pid in sorted(found)}


# --------------------------------------------------------------------------- sockets

TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
              "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
              "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}
INET_TABLES = ("tcp", "tcp6", "udp", "udp6", "raw", "raw6")


@dataclass(frozen=True)
class Socket:
    kind: str  # tcp, tcp6, udp, udp6, raw, raw6, unix, netlink, packet or unknown
    local: str
    local_port: int
    remote: str
    remote_port: int
    state: str
    pid: int
    process: str

    @property
    def inet(self) -> bool:
        return self.kind in INET_TABLES

    def __str__(self) -> str:
        if self.inet:
            where = f"{_hostport(self.local, self.local_port)} -> " \
                    f"{_hostport(self.remote, self.remote_port)} {self.state}"
        else:
            where = self.local or "(unnamed)"
        return f"{self.kind:7} {where}  pid {self.pid} {self.process}"


def _hostport(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _address(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    # /proc/net prints each 32-bit word in host (little-endian) order.
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(raw)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return str(ip)


def _inet_entries() -> dict[int, tuple[str, str, int, str, int, str]]:
    """inode → (kind, local, local port, remote, remote port, state)."""
    out = {}
    for kind in INET_TABLES:
        try:
            lines = Path(f"/proc/net/{kind}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            inode = int(f[9])
            if inode == 0:  # TIME_WAIT and friends belong to no process
                continue
            (lh, lp), (rh, rp) = f[1].split(":"), f[2].split(":")
            state = TCP_STATES.get(f[3], f[3]) if kind.startswith("tcp") else f[3]
            out[inode] = (kind, _address(lh), int(lp, 16), _address(rh), int(rp, 16), state)
    return out


def _other_entries() -> dict[int, tuple[str, str]]:
    """inode → (kind, name) for unix, netlink and packet sockets."""
    out = {}
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        f = line.split()
        out[int(f[6])] = ("unix", f[7] if len(f) > 7 else "")
    for kind in ("netlink", "packet"):
        try:
            lines = Path(f"/proc/net/{kind}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            out[int(line.split()[-1])] = (kind, "")
    return out


def _socket_inodes(pid: int) -> set[int]:
    out = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out


def sockets_of(processes: dict[int, str]) -> list[Socket]:
    """Every socket the processes hold, resolved through /proc/net."""
    held = {pid: _socket_inodes(pid) for pid in processes}
    inet, other = _inet_entries(), _other_entries()
    missing = {i for inodes in held.values() for i in inodes} - set(inet) - set(other)
    if missing:  # opened between the two reads: read the tables once more
        inet, other = _inet_entries(), _other_entries()
    out = []
    for pid, inodes in held.items():
        for inode in sorted(inodes):
            if inode in inet:
                kind, la, lp, ra, rp, state = inet[inode]
                out.append(Socket(kind, la, lp, ra, rp, state, pid, processes[pid]))
            elif inode in other:
                kind, name = other[inode]
                out.append(Socket(kind, name, 0, "", 0, "", pid, processes[pid]))
            else:
                out.append(Socket("unknown", f"inode {inode}", 0, "", 0, "", pid,
                                  processes[pid]))
    return out


def _is_loopback(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _is_unspecified(addr: str) -> bool:
    return ipaddress.ip_address(addr).is_unspecified


def violations(found: list[Socket]) -> list[str]:
    """Sockets bound outside loopback (0.0.0.0 and :: included), or talking to a peer
    outside it; AF_PACKET sockets (they would see every interface) count too."""
    out = []
    for s in found:
        if s.kind == "packet":
            out.append(f"{s}  (a packet socket)")
        if not s.inet:
            continue
        if not _is_loopback(s.local):
            out.append(f"{s}  (bound outside loopback)")
        if not _is_unspecified(s.remote) and not _is_loopback(s.remote):
            out.append(f"{s}  (peer outside loopback)")
    return out


def listening(found: list[Socket]) -> set[tuple[str, int]]:
    return {(_plain_v4(s.local), s.local_port) for s in found
            if s.kind.startswith("tcp") and s.state == "LISTEN"}


def _plain_v4(addr: str) -> str:
    ip = ipaddress.ip_address(addr)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return addr


def _system_listeners() -> set[tuple[str, int]]:
    """Every listening TCP socket of the machine, whoever holds it."""
    out = set()
    for kind in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{kind}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A":
                h, p = f[1].split(":")
                out.add((_plain_v4(_address(h)), int(p, 16)))
    return out


# --------------------------------------------------------------------------- the mesh


def _kubeconfig(handle: Handle) -> tuple[str, str, Path]:
    """(server, token, CA file) of a localmesh."""
    doc = yaml.safe_load(handle.kubeconfig.read_text())
    cluster = doc["clusters"][0]["cluster"]
    ca = handle.state_dir / "test-security-ca.crt"
    ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    return cluster["server"], doc["users"][0]["user"]["token"], ca


@dataclass
class Mesh:
    handle: Handle
    server: str
    token: str
    ca: Path

    def get(self, path: str, token: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(self.server + path, headers=headers, verify=str(self.ca),
                            timeout=10)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """localmesh with the mesh, and the workloads deployed by the suite's own deploy
    scenarios (kept, so their pods and sidecars are there to inspect)."""
    tmp = tmp_path_factory.mktemp("security")
    with boot_localmesh(tmp / "state", mesh=True) as handle:
        cmd = [sys.executable, "-m", "pytest", "steps", "-q", "-p", "no:cacheprovider",
               "--no-html-report", "--target", "local", "--kubeconfig",
               str(handle.kubeconfig), "--keep=always", "-k", "deploy",
               f"--artifacts={tmp / 'artifacts'}"]
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                           env=child_env())
        assert r.returncode == 0, f"deploying the workloads failed:\n{r.stdout[-3000:]}" \
                                  f"\n{r.stderr[-2000:]}"
        server, token, ca = _kubeconfig(handle)
        yield Mesh(handle, server, token, ca)


def _proxied_pods(m: Mesh) -> list[dict]:
    """Every pod with an istio-proxy container (the sidecars and the ingress gateway)."""
    r = m.get("/api/v1/pods", m.token)
    r.raise_for_status()
    out = []
    for pod in r.json()["items"]:
        spec = pod["spec"]
        names = {c["name"] for c in spec.get("containers", []) + spec.get(
            "initContainers", [])}
        if "istio-proxy" in names and pod.get("status", {}).get("podIP"):
            out.append(pod)
    return out


# --------------------------------------------------------------------------- (a) loopback


def _traffic_through_the_gateway(m: Mesh) -> None:
    """A few requests to /login through the ingress gateway, found as the suite finds it,
    so the gateway, the sidecars and the apps hold live connections while they are listed."""
    namespaces = {p["metadata"]["namespace"] for p in _proxied_pods(m)} - {"istio-system"}
    assert len(namespaces) == 1, f"expected one scenario namespace: {namespaces}"
    entry = ingress.entry_point(Cluster(m.handle.kubeconfig), Gateway("istio-system"))
    host = ingress.scenario_host(namespaces.pop())
    answers = ingress.send(entry, "/login", host, 3)
    assert [a.status for a in answers] == [200, 200, 200], \
        f"GET /login via {entry.how} (Host {host}): {[a.summary() for a in answers]}"


def test_localmesh_and_its_processes_use_loopback_only(mesh: Mesh) -> None:
    _traffic_through_the_gateway(mesh)
    processes = localmesh_processes(mesh.handle)
    found = sockets_of(processes)
    table = "\n".join(str(s) for s in sorted(found, key=lambda s: (s.kind, s.pid,
                                                                   s.local, s.local_port)))
    # The inventory must have seen the mesh, or a clean result would prove nothing.
    envoys = [p for p in processes.values() if p.startswith("envoy")]
    assert len(envoys) >= 4, "expected the gateway's and 3 sidecars' Envoys among " \
                             "localmesh's processes; found:\n" + "\n".join(processes.values())
    api_port = int(mesh.server.rsplit(":", 1)[1])
    assert ("127.0.0.1", api_port) in listening(found), \
        f"the API server's socket 127.0.0.1:{api_port} is not in the inventory:\n{table}"
    assert sum(1 for s in found if s.inet) >= 30, f"too few sockets found:\n{table}"
    bad = violations(found)
    assert not bad, (f"{len(bad)} socket(s) of localmesh are not on loopback:\n"
                     + "\n".join(bad) + f"\n\nevery socket of its {len(processes)} "
                     f"processes:\n{table}")


def test_envoy_admin_listens_on_the_pods_local_address_only(mesh: Mesh) -> None:
    """Like 127.0.0.1:15000 in a real pod: reachable from the pod, not on its pod IP."""
    pods = _proxied_pods(mesh)
    assert len(pods) >= 4, f"expected the gateway and 3 sidecars; found " \
                           f"{[p['metadata']['name'] for p in pods]}"
    found = sockets_of(localmesh_processes(mesh.handle))
    ours, everyone = listening(found), _system_listeners()
    admin_holders = {(_plain_v4(s.local), s.process.split(":")[0]) for s in found
                     if s.state == "LISTEN" and s.local_port == 15000}
    problems = []
    for pod in pods:
        name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        pod_ip = pod["status"]["podIP"]
        local = AddressPlan.local_address(pod_ip)
        if (local, 15000) not in ours:
            problems.append(f"{name}: nothing of localmesh listens on its local address "
                            f"{local}:15000")
        elif (local, "envoy") not in admin_holders:
            problems.append(f"{name}: {local}:15000 is not held by Envoy: {admin_holders}")
        if (pod_ip, 15000) in everyone:
            problems.append(f"{name}: the admin port listens on the pod IP {pod_ip}:15000")
    wildcard = {a for a in everyone if a[1] == 15000 and _is_unspecified(a[0])}
    if wildcard:
        problems.append(f"something listens on a wildcard address on 15000: {wildcard}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- (b) the token

PROTECTED = [
    ("GET", "/api"),
    ("GET", "/apis"),
    ("GET", "/version"),
    ("GET", "/openapi/v3"),
    ("GET", "/api/v1/namespaces"),
    ("GET", "/api/v1/secrets"),
    ("GET", "/api/v1/namespaces/istio-system/secrets"),
    ("GET", "/api/v1/pods?watch=true&timeoutSeconds=1"),
    ("POST", "/api/v1/namespaces"),
    ("DELETE", "/api/v1/namespaces/kube-public"),
    ("GET", "/api/v1/namespaces/istio-system/services/prometheus:9090/proxy/api/v1/"
            "query?query=up"),
    ("GET", "/api/v1/namespaces/istio-system/pods/no-such-pod/exec?command=id"),
    # Prometheus's discovery endpoint is on the instance's own address, not here.
    ("GET", "/localmesh/v1/prometheus-targets"),
]


def _wrong_tokens(token: str) -> dict[str, dict[str, str]]:
    """Headers that must not authenticate."""
    basic = base64.b64encode(f"admin:{token}".encode()).decode()
    return {
        "no token": {},
        "wrong token": {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"},
        "token with a suffix": {"Authorization": f"Bearer {token}x"},
        "token prefix": {"Authorization": f"Bearer {token[:-1]}"},
        "empty bearer": {"Authorization": "Bearer "},
        "token as basic auth": {"Authorization": f"Basic {basic}"},
        "token without scheme": {"Authorization": token},
    }


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_requests_without_the_token_are_refused(mesh: Mesh, method: str, path: str) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "created-without-a-token"}} if method == "POST" else None
    answers = {}
    for case, headers in _wrong_tokens(mesh.token).items():
        r = requests.request(method, mesh.server + path, headers=headers, json=body,
                             verify=str(mesh.ca), timeout=10)
        try:
            status = r.json()
        except ValueError:
            status = r.text[:200]
        ok = (r.status_code == 401 and isinstance(status, dict)
              and status.get("kind") == "Status" and status.get("reason") == "Unauthorized"
              and status.get("code") == 401)
        if not ok:
            answers[case] = f"{r.status_code} {status}"
    assert not answers, f"{method} {path} was not refused with a 401 Unauthorized Status: " \
                        f"{answers}"
    # Nothing happened: the namespace was not created, kube-public was not deleted.
    names = {n["metadata"]["name"] for n in mesh.get("/api/v1/namespaces", mesh.token)
             .json()["items"]}
    assert "created-without-a-token" not in names
    assert "kube-public" in names


def test_the_token_is_accepted_over_verified_tls(mesh: Mesh) -> None:
    """The control of the tests above: the same requests with the token succeed, over TLS
    verified against the kubeconfig's CA for 127.0.0.1."""
    r = mesh.get("/api/v1/namespaces", mesh.token)
    assert r.status_code == 200 and r.json()["kind"] == "NamespaceList", r.text[:300]
    assert mesh.get("/version", mesh.token).status_code == 200
    # Health endpoints answer without a token, as kube-apiserver's do, and say only that.
    for path in ("/healthz", "/livez", "/readyz"):
        r = mesh.get(path)
        assert r.status_code == 200 and r.text.strip() == "ok", (path, r.text[:200])


def test_plain_http_is_not_served(mesh: Mesh) -> None:
    """Even with the right token, a plain-HTTP request gets no HTTP answer at all."""
    host, port = mesh.server.removeprefix("https://").rsplit(":", 1)
    request = (f"GET /api/v1/namespaces HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"Authorization: Bearer {mesh.token}\r\nConnection: close\r\n\r\n").encode()
    received = b""
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            except TimeoutError:
                pytest.fail("the server neither answered nor closed a plain-HTTP connection")
            if not chunk:
                break
            received += chunk
    assert not received.startswith(b"HTTP/"), \
        f"the API server answered plain HTTP: {received[:300]!r}"
    assert b"NamespaceList" not in received
    # A TLS client that does not trust localmesh's CA is refused by its own check, and the
    # server still serves the right client afterwards.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(mesh.server + "/api", headers={"Authorization": f"Bearer {mesh.token}"},
                     verify=True, timeout=10)
    ctx = ssl.create_default_context(cafile=str(mesh.ca))
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert mesh.get("/api", mesh.token).status_code == 200


# --------------------------------------------------------------------------- (c) no leaks

FEATURE = """\
Feature: A failing scenario whose workloads carry secrets
  The workloads' manifests hold Secrets (stringData and data), a Secret-backed envFrom, a
  literal credential in an env var and Secret values copied into pod annotations; the
  scenario fails, so a failure bundle is written.

  Background:
    Given the blockchain workloads are deployed with sidecars

  Scenario: a route that does not exist is missing
    When 3 requests are sent to "/login" through the ingress gateway
    Then the sidecar of composer routes "nosuchservice" port 9999 to its service
"""


def _random_secret() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


def _secret_manifests(dst: Path, values: dict[str, str]) -> Path:
    """A copy of manifests/ whose secrets are ``values`` (random, so a hit is a leak)."""
    shutil.copytree(REPO / "manifests", dst)
    composer = list(yaml.safe_load_all((dst / "composer.yaml").read_text()))
    for doc in composer:
        if doc["kind"] == "Secret" and doc["metadata"]["name"] == "composer-credentials":
            doc["stringData"]["COMPOSER_ADMIN_SECRET"] = values["composer admin secret"]
        if doc["kind"] == "Deployment":
            # Secret values copied where no pattern can recognise them (only the known
            # values of the namespace's Secrets can be masked there), raw and base64.
            doc["spec"]["template"]["metadata"]["annotations"] = {
                "meshgate.test/note": f"rotated {values['composer admin secret']} today",
                "meshgate.test/blob": base64.b64encode(
                    values["envFrom data"].encode()).decode(),
            }
            container = doc["spec"]["template"]["spec"]["containers"][0]
            container["env"].append({"name": "API_TOKEN", "value": values["API_TOKEN env"]})
            container["envFrom"] = [{"secretRef": {"name": "composer-extra"}}]
    composer.insert(0, {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "composer-extra", "labels": {"app": "composer"}},
        "stringData": {"LEDGER_PASSWORD": values["envFrom stringData"]},
        "data": {"UPSTREAM_SESSION": base64.b64encode(
            values["envFrom data"].encode()).decode()},
    })
    (dst / "composer.yaml").write_text(yaml.safe_dump_all(composer, sort_keys=False))
    vp0 = list(yaml.safe_load_all((dst / "vp0.yaml").read_text()))
    for doc in vp0:
        if doc["kind"] == "Secret" and doc["metadata"]["name"] == "vp0-enrollment":
            doc["stringData"]["CORE_SECURITY_ENROLLSECRET"] = values["vp0 enroll secret"]
    (dst / "vp0.yaml").write_text(yaml.safe_dump_all(vp0, sort_keys=False))
    return dst


def _needles(values: dict[str, str]) -> dict[str, bytes]:
    """Each secret as it could appear: raw, and base64-encoded (a Secret's data)."""
    out = {}
    for label, value in values.items():
        raw = value.encode()
        out[f"{label} (raw)"] = raw
        out[f"{label} (base64)"] = base64.b64encode(raw).rstrip(b"=")
        out[f"{label} (urlsafe base64)"] = base64.urlsafe_b64encode(raw).rstrip(b"=")
    return out


def test_secrets_never_reach_logs_reports_or_bundles(tmp_path: Path) -> None:
    values = {label: _random_secret() for label in (
        "composer admin secret", "vp0 enroll secret", "API_TOKEN env",
        "envFrom stringData", "envFrom data")}
    manifests = _secret_manifests(tmp_path / "manifests", values)
    text = "".join(p.read_text() for p in manifests.glob("*.yaml"))
    assert "Xurw3yU9zI0l" not in text and "MwYpmSRjupbT" not in text  # demo values gone
    feature = tmp_path / "secrets.feature"
    feature.write_text(FEATURE)
    module = tmp_path / f"test_secrets_{secrets.token_hex(4)}.py"
    module.write_text(f"from pytest_bdd import scenarios\n\nscenarios({str(feature)!r})\n")
    art = tmp_path / "artifacts"
    cmd = [sys.executable, "-m", "pytest", "-p", "conftest", str(module),
           f"--rootdir={REPO}", "-p", "no:cacheprovider", "--target", "local",
           "--manifests", str(manifests), "--junitxml", str(art / "junit.xml"),
           "--cucumberjson", str(art / "cucumber.json"),
           "--html-report", str(art / "report.html"), "--artifacts", str(art),
           "--keep=never"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                       env=child_env(MESHGATE_TIMEOUT_ROUTES="2"))
    output = f"{r.stdout}\n{r.stderr}"
    assert r.returncode == 1 and "1 failed" in r.stdout, \
        f"expected the scenario to fail on its route (exit 1); got {r.returncode}:\n" \
        f"{output[-4000:]}"
    assert "nosuchservice" in output

    # The run left something worth leaking: a bundle with config dumps and logs, reports.
    bundles = [p for p in (art / "bundles").glob("*/*") if p.is_dir()]
    assert len(bundles) == 1, f"expected one failure bundle under {art / 'bundles'}: {bundles}"
    bundle = bundles[0]
    dumps = sorted(bundle.glob("config_dumps/*/*.json"))
    assert len(dumps) >= 4 and all('"configs"' in d.read_text() for d in dumps), \
        f"the bundle has no config dumps of the 3 sidecars and the gateway: {dumps}"
    logs = sorted(bundle.glob("logs/*/*/*.log"))
    assert any(p.name == "composer.log" and p.stat().st_size for p in logs), \
        f"the bundle has no log of composer: {logs}"
    for report in ("junit.xml", "cucumber.json", "report.html"):
        assert "nosuchservice" in (art / report).read_text(), f"{report} lacks the failure"
    assert list(art.glob("convergence*.json")), "no convergence log in the artifacts"

    # Not one of the secrets, in any form, anywhere.
    needles = _needles(values)
    leaks = []
    files = sorted(p for p in art.rglob("*") if p.is_file())
    for where, data in [("stdout", r.stdout.encode()), ("stderr", r.stderr.encode()),
                        *((str(p.relative_to(art)), p.read_bytes()) for p in files)]:
        leaks += [f"{label} in {where}" for label, needle in needles.items() if needle in data]
    assert not leaks, f"secrets leaked ({len(files)} artifact files searched in {art}):\n" \
                      + "\n".join(leaks)

    # The composer pod in the bundle is the one with the secret env (its value masked).
    composer_pod = json.loads(next(bundle.glob("pods/*/composer-*.json")).read_text())
    container = next(c for c in composer_pod["spec"]["containers"] if c["name"] == "composer")
    env = {e["name"]: e.get("value", "(valueFrom)") for e in container["env"]}
    assert env.get("API_TOKEN") == "<redacted>", sorted(env)
    assert container["envFrom"] == [{"secretRef": {"name": "composer-extra"}}]

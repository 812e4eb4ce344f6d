"""``localmesh up --api-faults``: real clients — kubectl and the suite's Python client —
against an API server that throttles, restarts, expires tokens or dies. They get through
the first three; the last ends in one message naming the server, fast."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import watch

from localmesh import credentials
from localmesh.api.faults import parse_metrics
from localmesh.cli import Handle
from localmesh.shape import Shape
from meshgate import apiserver
from meshgate.cluster import ApiServerUnreachable, Cluster, ClusterError
from meshgate.exec_credentials import ExecCredentials
from tests.localmesh.conftest import busybox_pod, pod_ready
from tests.support import boot_localmesh, poll, require_kubectl


@pytest.fixture
def booted(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Handle]:
    """A localmesh without the mesh, with the faults of the test's ``shape`` marker."""
    shape: Shape = request.param
    with boot_localmesh(tmp_path / "state", mesh=False, shape=shape) as handle:
        yield handle


def _kubectl(handle: Handle, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_kubectl(), "--kubeconfig", str(handle.kubeconfig), *args],
                          capture_output=True, text=True, timeout=60)


def _injected(cluster: Cluster) -> dict[str, int]:
    status, body = cluster.raw_get("/metrics")
    assert status == 200, body[:200]
    return parse_metrics(body.decode())


def _answered(handle: Handle) -> Cluster:
    """A client the API server has answered: from then on it rides out a restart (its
    first request may meet a downtime, and a server that never answered is a wrong
    address to meshgate.apiserver, as to kubectl)."""
    cluster = Cluster(handle.kubeconfig)
    poll(cluster.server_version, what="the API server's first answer", timeout=10.0)
    return cluster


def _retries(cause: str) -> int:
    return apiserver.retries().get(cause, 0)


FLAKY = Shape(mesh="none", api_faults="flaky", api_fault_rate=0.25, api_fault_seed=3,
              api_watch_cut=1.0)


@pytest.mark.parametrize("booted", [FLAKY], indirect=True)
def test_kubectl_and_the_client_get_through_a_flaky_api_server(booted: Handle) -> None:
    for _ in range(3):
        r = _kubectl(booted, "get", "namespaces", "-o", "name")
        assert r.returncode == 0 and "namespace/default" in r.stdout, r.stderr
    ns = f"flaky-{uuid.uuid4().hex[:6]}"
    r = _kubectl(booted, "create", "namespace", ns)
    assert r.returncode == 0, r.stderr
    cluster = Cluster(booted.kubeconfig)
    before = sum(apiserver.retries().values())
    for i in range(8):
        cluster.apply({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": f"c{i}"}, "data": {"i": str(i)}}, ns)
        assert (cluster.get("v1", "ConfigMap", f"c{i}", ns) or {})["data"] == {"i": str(i)}
    assert len(cluster.list("v1", "ConfigMap", ns)) == 8
    injected = _injected(cluster)
    # kubectl's and this client's requests both met faults, and both retried them.
    assert sum(v for k, v in injected.items() if k[:3] in ("429", "500", "503")) >= 5
    assert sum(apiserver.retries().values()) > before


@pytest.mark.parametrize("booted", [FLAKY], indirect=True)
def test_the_python_client_rewatches_after_a_cut_watch(booted: Handle) -> None:
    cluster = Cluster(booted.kubeconfig)
    ns = f"watch-{uuid.uuid4().hex[:6]}"
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, None)
    cuts_before = _injected(cluster).get("watch-cut", 0)
    w = watch.Watch()
    # The scenario: the ConfigMap appears after the first watches were cut (~1 s each).
    creator = threading.Timer(2.5, lambda: cluster.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}}, ns))
    guard = threading.Timer(30.0, w.stop)  # bounds the test if the event never comes
    creator.start()
    guard.start()
    seen = []
    # List, then watch from the list's resourceVersion, as Kubernetes clients do (the
    # Python client resumes a cut watch from the last resourceVersion it saw, and stops
    # if it saw none).
    meta = cluster.core.list_namespaced_config_map(ns).metadata
    assert meta is not None
    listed = meta.resource_version
    try:
        for event in w.stream(cluster.core.list_namespaced_config_map, ns,
                              resource_version=listed, allow_watch_bookmarks=True):
            if event["type"] == "BOOKMARK":  # the client decodes no object for these
                continue
            seen.append((event["type"], event["object"].metadata.name))
            if seen[-1] == ("ADDED", "late"):
                w.stop()
    finally:
        creator.join()
        guard.cancel()
    assert ("ADDED", "late") in seen
    assert _injected(cluster).get("watch-cut", 0) - cuts_before >= 2


RESTART = Shape(mesh="none", api_faults="restart", api_restart_every=2.0,
                api_restart_down=0.8)


@pytest.mark.parametrize("booted", [RESTART], indirect=True)
def test_clients_ride_out_a_restarting_api_server(booted: Handle) -> None:
    cluster = _answered(booted)
    before = _retries("connection") + _retries("unreachable")
    calls = 0

    def restarted_twice() -> int:
        nonlocal calls
        # Every call succeeds, through the restarts: none may raise.
        assert {n["metadata"]["name"] for n in cluster.list("v1", "Namespace")} >= {"default"}
        calls += 1
        return _injected(cluster).get("restart", 0)

    poll(lambda: restarted_twice() >= 2, what="two API server restarts", timeout=20.0,
         interval=0.05)
    assert _retries("connection") + _retries("unreachable") > before, calls
    # kubectl, which does not retry a refused connection, works again once the API server
    # is back on the same port (the kubeconfig is unchanged).
    r = poll(lambda: (res := _kubectl(booted, "get", "ns", "default", "-o", "name"))
             .returncode == 0 and res, what="kubectl after a restart", timeout=10.0)
    assert r


TOKEN_EXPIRY = Shape(mesh="none", api_faults="token-expiry", api_token_ttl=2.0)


@pytest.mark.parametrize("booted", [TOKEN_EXPIRY], indirect=True)
def test_exec_credentials_are_refreshed_as_tokens_expire(booted: Handle) -> None:
    user = yaml.safe_load(booted.kubeconfig.read_text())["users"][0]["user"]
    assert "token" not in user and user["exec"]["apiVersion"] == credentials.API_VERSION
    r = _kubectl(booted, "get", "namespaces", "-o", "name")
    assert r.returncode == 0 and "namespace/default" in r.stdout, r.stderr
    cluster = Cluster(booted.kubeconfig)
    creds = cluster.availability.credentials
    assert isinstance(creds, ExecCredentials)
    first = creds.runs
    # Calls spanning three token lifetimes all succeed, each token minted once.
    poll(lambda: bool(cluster.list("v1", "Namespace")) and creds.runs >= first + 3,
         what="three refreshed tokens", timeout=15.0, interval=0.1)
    # A token that expired in the client's hands: 401, a fresh one, the call succeeds.
    key = (booted.state_dir / "credential-key").read_bytes()
    stale, _ = credentials.mint(key, -5)
    creds._token, creds._refresh_at = stale, float("inf")
    refreshed = _retries("401-credentials-refreshed")
    assert cluster.server_version().startswith("v1.")
    assert _retries("401-credentials-refreshed") == refreshed + 1
    assert _injected(cluster).get("401-expired-token", 0) >= 1


@pytest.mark.parametrize("booted", [Shape(mesh="none", api_faults="outage")], indirect=True)
def test_an_api_server_down_from_the_start_is_one_message_at_once(booted: Handle) -> None:
    t0 = time.monotonic()
    with pytest.raises(ApiServerUnreachable) as err:
        Cluster(booted.kubeconfig).server_version()
    assert time.monotonic() - t0 < 5.0
    assert str(err.value).startswith(f"cannot reach the API server at {booted.server}: it "
                                     "refused the connection (GET /version/) and has not "
                                     "answered this run")
    r = _kubectl(booted, "get", "ns")
    assert r.returncode != 0 and "refused" in r.stderr, r.stderr


@pytest.mark.parametrize("booted", [Shape(mesh="none", api_faults="outage",
                                          api_outage_after=3)], indirect=True)
def test_an_api_server_that_dies_is_named_with_its_last_answer(booted: Handle) -> None:
    cluster = Cluster(booted.kubeconfig)
    cluster.availability.budget = 3.0
    answered = 0
    t0 = time.monotonic()
    with pytest.raises(ApiServerUnreachable) as err:
        for _ in range(10):
            cluster.get("v1", "Namespace", "default", None)
            answered += 1
    assert time.monotonic() - t0 < 3.0 + 5.0
    message = str(err.value)
    assert message.startswith(f"the API server at {booted.server} ")
    assert "it last answered 200 to GET " in message, message
    assert answered < 3  # discovery took some of the three answers


@pytest.mark.parametrize("booted", [Shape(mesh="none", api_faults="restart",
                                          api_restart_every=3.0, api_restart_down=1.0)],
                         indirect=True)
def test_an_exec_cut_by_a_restart_is_one_message_not_a_success(booted: Handle) -> None:
    cluster = _answered(booted)
    ns = f"exec-{uuid.uuid4().hex[:6]}"
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, None)
    # Applied, not created: a create resent after a restart cut its answer meets 409.
    cluster.apply(busybox_pod("sleeper", "sleep 600"), ns)
    poll(lambda: pod_ready(cluster.core, ns, "sleeper"), what="the pod Ready", timeout=20.0)
    # Longer than the time between two restarts: the stream is cut half-way.
    with pytest.raises(ClusterError) as err:
        cluster.exec(ns, "sleeper", "main", ["sh", "-c", "sleep 4; echo done"], timeout=20.0)
    assert str(err.value).startswith(f"exec in {ns}/sleeper -c main ended without an exit "
                                     f"status (the connection to the API server at "
                                     f"{booted.server} closed)"), err.value

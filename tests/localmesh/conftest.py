"""localmesh's own tests: one localmesh (without the mesh) for the whole session, driven only
by real clients — the official ``kubernetes`` Python client and kubectl binaries.

Each test gets its own namespace. Every wait is a bounded poll (tests.support.poll), never
a sleep standing in for a condition.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, dynamic

from localmesh.cli import Handle
from tests.support import boot_localmesh, require_kubectl

# The oldest and newest kubectl the tests drive (the machine image ships 1.27 … 1.33 beside
# the kubectl on the PATH), the oldest (exec over SPDY) and the first with WebSocket exec.
OLDEST, NEWEST, SPDY_EXEC, WEBSOCKET_EXEC = "1.28", "1.33", "1.27", "1.30"


@pytest.fixture(scope="session")
def localmesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handle]:
    with boot_localmesh(tmp_path_factory.mktemp("localmesh-api"), mesh=False) as handle:
        yield handle


@pytest.fixture(scope="session")
def kubeconfig(localmesh: Handle) -> Path:
    return localmesh.kubeconfig


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="session")
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


@pytest.fixture
def dyn(api_client: client.ApiClient, tmp_path: Path) -> dynamic.DynamicClient:
    """A DynamicClient with its own discovery cache (the client's default cache file is
    shared by every client of a host and goes stale: kubernetes/dynamic/discovery.py)."""
    return dynamic.DynamicClient(api_client, cache_file=str(tmp_path / "discovery.json"))


@pytest.fixture
def ns(core: client.CoreV1Api, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test; deleted (not awaited) afterwards."""
    base = request.node.name.lower().replace("_", "-")
    base = "".join(c for c in base if c.isalnum() or c == "-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"localmesh-test": "1"}}})
    yield name
    try:
        core.delete_namespace(name)
    except client.ApiException as exc:
        if exc.status != 404:
            raise


@dataclass
class Kubectl:
    """One kubectl binary bound to the session's kubeconfig and a per-test cache dir."""

    binary: str
    version: str
    kubeconfig: Path
    cache_dir: Path

    def run(self, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 30.0) -> subprocess.CompletedProcess:
        cmd = [self.binary, "--kubeconfig", str(self.kubeconfig), "--cache-dir",
               str(self.cache_dir), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {self.version} {' '.join(args)} failed "
                                 f"({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def __call__(self, *args: str, **kw: Any) -> str:
        return self.run(*args, **kw).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)


def make_kubectl(version: str, kubeconfig: Path, cache_dir: Path) -> Kubectl:
    """kubectl ``version`` bound to the kubeconfig; skips (saying so) where it is absent."""
    binary = require_kubectl(version)
    cache_dir.mkdir(parents=True, exist_ok=True)
    return Kubectl(binary, version, kubeconfig, cache_dir)


@pytest.fixture(params=[OLDEST, NEWEST])
def kubectl(request: pytest.FixtureRequest, kubeconfig: Path, tmp_path: Path) -> Kubectl:
    """The oldest and the newest kubectl on the machine."""
    return make_kubectl(request.param, kubeconfig, tmp_path / f"kube-cache-{request.param}")


@pytest.fixture
def kubectl_new(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    return make_kubectl(NEWEST, kubeconfig, tmp_path / "kube-cache-new")


def pod_phase(core: client.CoreV1Api, ns: str, name: str) -> str:
    return core.read_namespaced_pod(name, ns).status.phase


def container_status(core: client.CoreV1Api, ns: str, pod: str, container: str | None = None):
    statuses = core.read_namespaced_pod(pod, ns).status.container_statuses or []
    for s in statuses:
        if container is None or s.name == container:
            return s
    return None


def busybox_pod(name: str, script: str, **spec: Any) -> dict:
    """A pod running ``sh -c script`` from the catalogue's busybox (the host's /bin/sh)."""
    container = {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}
    container.update(spec.pop("container", {}))
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": spec.pop("labels", {"app": name})},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 2, **spec}}


def pod_ready(core: client.CoreV1Api, ns: str, name: str) -> bool:
    pod = core.read_namespaced_pod(name, ns)
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


@dataclass
class Raw:
    """Plain HTTP against the API server with the kubeconfig's TLS and token, for the
    requests no typed client makes (wrong verbs, bad bodies, odd media types)."""

    api: client.ApiClient

    def __call__(self, method: str, path: str, body: bytes | str | dict | None = None,
                 headers: dict | None = None, token: str | None = None,
                 preload: bool = True) -> Any:
        cfg = self.api.configuration
        hdrs = {"Accept": "application/json"}
        auth = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken", "")
        hdrs["Authorization"] = token if token is not None else auth
        if isinstance(body, dict):
            body = json.dumps(body)
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        return self.api.rest_client.pool_manager.request(
            method, cfg.host + path, body=body, headers=hdrs, preload_content=preload,
            timeout=30)


@pytest.fixture(scope="session")
def raw(api_client: client.ApiClient) -> Raw:
    return Raw(api_client)

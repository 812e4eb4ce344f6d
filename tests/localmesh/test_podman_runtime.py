"""``localmesh --runtime podman``: a pod's containers whose image podman has run as real
containers, driven through kubectl and the official client only; other images still
come from the image catalogue. And however localmesh stops, no container, conmon or
``podman run`` client of it is left.

One localmesh (without the mesh: tests/e2e/test_podman_shape.py runs the suite on the
mesh) for the module; each test its own namespace. The workloads image is built once by
images/build.sh (kept while its content hash is unchanged)."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from localmesh.cli import Handle
from localmesh.kubelet import podman
from localmesh.kubelet.podman import LABEL_STATE_DIR
from localmesh.shape import Shape
from tests.localmesh.conftest import (
    NEWEST,
    Kubectl,
    busybox_pod,
    container_status,
    make_kubectl,
    pod_ready,
)
from tests.support import (
    boot_localmesh,
    child_env,
    needs_podman,
    podman_out,
    poll,
    process_table,
    workloads_image,
)

pytestmark = [needs_podman, pytest.mark.timeout(900)]  # a first image build: a minute or two


@pytest.fixture(scope="module")
def image() -> str:
    return workloads_image()


@pytest.fixture(scope="module")
def cluster(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handle]:
    with boot_localmesh(tmp_path_factory.mktemp("podman-runtime"), mesh=False,
                        shape=Shape(mesh="none", runtime="podman")) as handle:
        yield handle


@pytest.fixture(scope="module")
def core(cluster: Handle) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield client.CoreV1Api(api)
    finally:
        api.close()


@pytest.fixture
def ns(core: client.CoreV1Api) -> Iterator[str]:
    name = f"podman-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture
def kubectl(cluster: Handle, tmp_path: Path) -> Kubectl:
    return make_kubectl(NEWEST, cluster.kubeconfig, tmp_path / "kube-cache")


def membersrvc_pod(image: str, name: str = "membersrvc", **security: object) -> dict:
    """membersrvc as OpenShift's restricted SCC runs it, with a ConfigMap and an emptyDir."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 5,
                     "securityContext": {"runAsNonRoot": True, **security},
                     "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}},
                                 {"name": "scratch", "emptyDir": {}}],
                     "containers": [{
                         "name": "membersrvc", "image": image, "args": ["membersrvc"],
                         "ports": [{"containerPort": 7054}],
                         "readinessProbe": {"tcpSocket": {"port": 7054}, "periodSeconds": 1},
                         "env": [{"name": "BIND_ADDRESS",
                                  "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                         "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"},
                                          {"name": "scratch", "mountPath": "/scratch"}],
                         "securityContext": {"runAsUser": 1000650000, "runAsGroup": 0,
                                             "readOnlyRootFilesystem": True,
                                             "allowPrivilegeEscalation": False,
                                             "capabilities": {"drop": ["ALL"]}}}]}}


def _running(core: client.CoreV1Api, ns: str, image: str) -> str:
    """Create the ConfigMap and the membersrvc pod; wait until Ready; its pod IP."""
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg"},
                                           "data": {"greeting": "hello"}})
    core.create_namespaced_pod(ns, membersrvc_pod(image))
    poll(lambda: pod_ready(core, ns, "membersrvc"), what="membersrvc Ready", timeout=60)
    return str(core.read_namespaced_pod("membersrvc", ns).status.pod_ip)


def _containers(state_dir: Path, **labels: str) -> list[str]:
    filters = [f"label={LABEL_STATE_DIR}={state_dir}",
               *(f"label={k}={v}" for k, v in labels.items())]
    return podman_out("ps", "--all", "--quiet", "--no-trunc",
                      *(f for x in filters for f in ("--filter", x))).split()


def test_a_pod_whose_image_podman_has_runs_as_a_real_container(
        cluster: Handle, core: client.CoreV1Api, ns: str, kubectl: Kubectl,
        image: str) -> None:
    ip = _running(core, ns, image)
    ids = _containers(cluster.state_dir, **{"io.kubernetes.pod.namespace": ns})
    status = container_status(core, ns, "membersrvc")
    assert len(ids) == 1 and status.container_id == f"podman://{ids[0]}", (ids, status)
    exec_ = ("exec", "-n", ns, "membersrvc", "--")
    assert kubectl(*exec_, "id").startswith("uid=1000650000(")
    assert kubectl(*exec_, "cat", "/etc/cfg/greeting") == "hello"
    kubectl(*exec_, "touch", "/scratch/ok")  # an emptyDir is writable by any user
    denied = kubectl.run(*exec_, "touch", "/app/x", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    assert f"listening grpc {ip}:7054" in kubectl("logs", "-n", ns, "membersrvc")
    # The image's entrypoint with the pod's args, in the image's working directory.
    assert podman_out("inspect", "--format", "{{.Path}} {{.Args}} {{.Config.WorkingDir}}",
                      ids[0]).strip() == "python [-m workloads membersrvc] /app"


def test_kill_1_restarts_the_container_and_deletion_stops_it_gracefully(
        cluster: Handle, core: client.CoreV1Api, ns: str, kubectl: Kubectl,
        image: str) -> None:
    _running(core, ns, image)
    first = _containers(cluster.state_dir, **{"io.kubernetes.pod.namespace": ns})
    kubectl("exec", "-n", ns, "membersrvc", "--", "kill", "1")  # PID 1 of the container
    poll(lambda: (container_status(core, ns, "membersrvc").restart_count == 1
                  and pod_ready(core, ns, "membersrvc")), what="membersrvc restarted",
         timeout=30)
    last = container_status(core, ns, "membersrvc").last_state.terminated
    assert last.exit_code == 0 and last.container_id == f"podman://{first[0]}"
    assert "received SIGTERM" in kubectl("logs", "-n", ns, "membersrvc", "--previous")
    poll(lambda: first[0] not in _containers(cluster.state_dir), what="the first container "
         "removed", timeout=10)
    core.delete_namespaced_pod("membersrvc", ns)  # the pod's grace period: 5 s
    poll(lambda: not _containers(cluster.state_dir, **{"io.kubernetes.pod.namespace": ns}),
         what="the container gone with its pod", timeout=15)


def test_run_as_non_root_with_user_0_is_refused_before_anything_runs(
        cluster: Handle, core: client.CoreV1Api, ns: str, image: str) -> None:
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg"}, "data": {}})
    pod = membersrvc_pod(image)
    pod["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0
    core.create_namespaced_pod(ns, pod)
    waiting = poll(lambda: (s := container_status(core, ns, "membersrvc")) is not None
                   and s.state.waiting and s.state.waiting.reason == "CreateContainerConfigError"
                   and s.state.waiting, what="CreateContainerConfigError", timeout=20)
    assert "container has runAsNonRoot and image will run as root" in waiting.message
    assert not _containers(cluster.state_dir, **{"io.kubernetes.pod.namespace": ns})


def test_an_image_podman_has_not_comes_from_the_image_catalogue(
        core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, busybox_pod("bb", "echo hi; sleep 30"))
    poll(lambda: pod_ready(core, ns, "bb"), what="busybox Ready", timeout=30)
    assert container_status(core, ns, "bb").container_id.startswith("localmesh://")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_however_localmesh_stops_it_leaves_no_container_behind(
        image: str, tmp_path: Path, sig: signal.Signals) -> None:
    state = tmp_path / "state"
    serve = subprocess.Popen(
        [sys.executable, "-m", "localmesh", "serve", "--state-dir", str(state), "--no-mesh",
         "--runtime", "podman"], env=child_env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        poll((state / "ready").exists, what="localmesh ready", timeout=60)
        api = config.new_client_from_config(config_file=str(state / "kubeconfig"))
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": "demo"}})
        _running(core, "demo", image)
        api.close()
        ids = _containers(state)
        assert len(ids) == 1
        serve.send_signal(sig)
        serve.wait(timeout=30)
        poll(lambda: not _containers(state), what="no container of the instance", timeout=20)
        poll(lambda: not [p for p in process_table().values()
                          if p.alive and (ids[0] in p.command or ("podman run" in p.command
                                          and str(state) in p.command))],
             what=f"no conmon or podman client of {ids[0][:12]}", timeout=20)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        subprocess.run([sys.executable, "-m", "localmesh", "down", "--state-dir", str(state)],
                       env=child_env(), capture_output=True, timeout=60, check=False)
    assert not podman.ContainerRegistry(state / "containers").entries()

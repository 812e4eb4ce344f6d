"""The images test manifests commonly use, run the way their documentation says: nginx's
welcome page through ``kubectl port-forward``, the host's Python, curl behind its
entrypoint, pause, agnhost's netexec and serve-hostname, and the echo server."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client

from tests.localmesh.conftest import make_kubectl, pod_ready
from tests.localmesh.test_streaming import port_forward
from tests.support import poll


def _pod(name: str, image: str, *, args: list[str] | None = None,
         command: list[str] | None = None, port: int | None = None,
         restart: str = "Always", env: dict[str, str] | None = None) -> dict:
    c: dict = {"name": "c", "image": image}
    if args is not None:
        c["args"] = args
    if command is not None:
        c["command"] = command
    if port is not None:
        c["ports"] = [{"containerPort": port}]
        c["readinessProbe"] = {"tcpSocket": {"port": port}, "periodSeconds": 1}
    if env:
        c["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {
        "app": name}}, "spec": {"containers": [c], "restartPolicy": restart,
                                 "terminationGracePeriodSeconds": 2}}


def _ready(core: client.CoreV1Api, ns: str, name: str) -> None:
    poll(lambda: pod_ready(core, ns, name), what=f"{name} ready", timeout=30)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read()


def _logs(core: client.CoreV1Api, ns: str, name: str) -> str:
    return core.read_namespaced_pod_log(name, ns)


@pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
                    reason="Debian's nginx is not installed (./dev installs it: "
                           "apt-get install --no-install-recommends nginx)")
def test_nginx_welcome_page_through_port_forward(core: client.CoreV1Api, ns: str,
                                                 kubeconfig: Path, tmp_path: Path) -> None:
    core.create_namespaced_pod(ns, _pod("web", "nginx:1.27", port=80))
    _ready(core, ns, "web")
    k = make_kubectl("1.33", kubeconfig, tmp_path / "cache")
    with port_forward(k.binary, kubeconfig, ns, "pod/web", 80, tmp_path / "pf.log") as port:
        page = _get(f"http://127.0.0.1:{port}/").decode()
    assert "Welcome to nginx!" in page
    assert "GET / HTTP/1.1" in _logs(core, ns, "web")  # the access log on stdout


def test_python_and_curl_images(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, _pod("echo", "mendhak/http-https-echo:35", port=8080,
                                        env={"HTTPS_PORT": "8443"}))
    _ready(core, ns, "echo")
    ip = core.read_namespaced_pod("echo", ns).status.pod_ip
    core.create_namespaced_pod(ns, _pod("py", "python:3.12-slim", restart="Never", args=[
        "python", "-c", "import sys; print('python', sys.version_info[0])"]))
    core.create_namespaced_pod(ns, _pod("curl", "curlimages/curl:8.10.1", restart="Never",
                                        args=["-s", f"http://{ip}:8080/from-curl?x=1"]))
    for name in ("py", "curl"):
        poll(lambda n=name: core.read_namespaced_pod(n, ns).status.phase == "Succeeded",
             what=f"{name} done", timeout=30)
    assert _logs(core, ns, "py") == "python 3\n"
    echoed = json.loads(_logs(core, ns, "curl"))
    assert echoed["path"] == "/from-curl" and echoed["query"] == {"x": "1"}
    assert echoed["method"] == "GET" and echoed["protocol"] == "http"
    assert echoed["os"]["hostname"] == "echo"


def test_pause_and_agnhost(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, _pod("pause", "registry.k8s.io/pause:3.10"))
    core.create_namespaced_pod(ns, _pod("netexec", "registry.k8s.io/e2e-test-images/agnhost:2.53",
                                        args=["netexec", "--http-port=8080"], port=8080))
    core.create_namespaced_pod(ns, _pod("hostname",
                                        "registry.k8s.io/e2e-test-images/agnhost:2.53",
                                        args=["serve-hostname", "--port=9376"], port=9376))
    for name in ("pause", "netexec", "hostname"):
        _ready(core, ns, name)
    ip = core.read_namespaced_pod("netexec", ns).status.pod_ip
    assert _get(f"http://{ip}:8080/hostname") == b"netexec"
    assert _get(f"http://{ip}:8080/echo?msg=hi") == b"hi"
    assert json.loads(_get(f"http://{ip}:8080/shell?cmd=echo%20ok"))["output"] == "ok\n"
    other = core.read_namespaced_pod("hostname", ns).status.pod_ip
    assert _get(f"http://{other}:9376/") == b"hostname"
    core.delete_namespaced_pod("pause", ns)
    poll(lambda: not [p for p in core.list_namespaced_pod(ns).items
                      if p.metadata.name == "pause"], what="pause stopped on SIGTERM",
         timeout=10)

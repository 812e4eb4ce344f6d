"""Streaming as the API server serves it, driven by kubectl itself: port-forward over
SPDY/3.1 (kubectl 1.27, 1.30) and over SPDY tunnelled in a WebSocket (1.33, KEP-4006) to a
pod and to a Service, carrying HTTP; ``kubectl cp`` into and out of a pod (tar through
exec, over SPDY and over WebSocket); attach; and the SPDY framing itself."""

from __future__ import annotations

import subprocess
import urllib.request
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kubernetes import client

from localmesh.kubelet import spdy
from tests.localmesh.conftest import busybox_pod, make_kubectl, pod_ready
from tests.support import poll, unused_port

HTTP_SERVER = "exec python3 -m http.server 8080 --bind $BIND_ADDRESS --directory $HOME"


def _web(core: client.CoreV1Api, ns: str) -> None:
    pod = busybox_pod("web", HTTP_SERVER, labels={"app": "web"},
                      container={"ports": [{"containerPort": 8080, "name": "http"}],
                                 "readinessProbe": {"tcpSocket": {"port": 8080},
                                                    "periodSeconds": 1}})
    core.create_namespaced_pod(ns, pod)
    core.create_namespaced_service(ns, {
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"port": 80, "targetPort": "http", "name": "http"}]}})
    poll(lambda: pod_ready(core, ns, "web"), what="the web pod ready", timeout=20)


@contextmanager
def port_forward(binary: str, kubeconfig: Path, ns: str, target: str, remote: int,
                 log: Path) -> Iterator[int]:
    """``kubectl port-forward`` running for the block; yields the local port."""
    local = unused_port()
    with log.open("w") as out:
        proc = subprocess.Popen([binary, "--kubeconfig", str(kubeconfig), "-n", ns,
                                 "port-forward", target, f"{local}:{remote}",
                                 "--address", "127.0.0.1"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        poll(lambda: "Forwarding from" in log.read_text() or proc.poll() is not None,
             what="kubectl port-forward listening", timeout=20)
        assert proc.poll() is None, log.read_text()
        yield local
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _get(port: int, path: str = "/") -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return resp.status, resp.read()


@pytest.mark.parametrize(("version", "target", "remote"), [
    ("1.27", "pod/web", 8080),  # SPDY/3.1 on the upgraded connection
    ("1.30", "pod/web", 8080),
    ("1.33", "pod/web", 8080),  # SPDY tunnelled in a WebSocket
    ("1.33", "svc/web", 80),  # kubectl resolves the Service to a pod and its port
])
def test_port_forward_carries_http(version: str, target: str, remote: int, kubeconfig: Path,
                                   tmp_path: Path, ns: str, core: client.CoreV1Api) -> None:
    k = make_kubectl(version, kubeconfig, tmp_path / "cache")
    _web(core, ns)
    with port_forward(k.binary, kubeconfig, ns, target, remote, tmp_path / "pf.log") as port:
        for _ in range(3):  # a connection each, all through the one session
            status, body = _get(port)
            assert status == 200 and b"Directory listing" in body
    assert "Handling connection for" in (tmp_path / "pf.log").read_text()


def test_port_forward_to_a_closed_port_says_so(kubeconfig: Path, tmp_path: Path, ns: str,
                                               core: client.CoreV1Api) -> None:
    k = make_kubectl("1.33", kubeconfig, tmp_path / "cache")
    _web(core, ns)
    log = tmp_path / "pf.log"
    with port_forward(k.binary, kubeconfig, ns, "pod/web", 9, log) as port:
        with pytest.raises(OSError):
            _get(port)
        poll(lambda: "error forwarding port 9" in log.read_text(),
             what="kubectl reporting the error stream's message")


@pytest.mark.parametrize("version", ["1.27", "1.33"])
def test_kubectl_cp_both_ways(version: str, kubeconfig: Path, tmp_path: Path, ns: str,
                              core: client.CoreV1Api) -> None:
    k = make_kubectl(version, kubeconfig, tmp_path / "cache")
    pod = busybox_pod("files", "sleep 600",
                      container={"volumeMounts": [{"name": "d", "mountPath": "/data"}]},
                      volumes=[{"name": "d", "emptyDir": {}}])
    core.create_namespaced_pod(ns, pod)
    poll(lambda: pod_ready(core, ns, "files"), what="pod ready")
    src = tmp_path / "in.txt"
    src.write_bytes(b"copied through tar\n" * 2000)
    k("cp", "-n", ns, str(src), "files:/data/copied.txt")
    # The file is in the pod's volume, as the container sees it.
    assert k("exec", "-n", ns, "files", "--", "wc", "-c", "/data/copied.txt").split()[0] \
        == str(src.stat().st_size)
    out = tmp_path / "out.txt"
    k("cp", "-n", ns, "files:/data/copied.txt", str(out))
    assert out.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("version", ["1.27", "1.33"])
def test_attach_shows_new_output(version: str, kubeconfig: Path, tmp_path: Path, ns: str,
                                 core: client.CoreV1Api) -> None:
    """Attach is SPDY; kubectl 1.30+ tries a WebSocket first and falls back to it."""
    k = make_kubectl(version, kubeconfig, tmp_path / "cache")
    core.create_namespaced_pod(ns, busybox_pod(
        "talker", "sleep 1; for i in 1 2 3; do echo tick $i; sleep 0.2; done"))
    poll(lambda: pod_ready(core, ns, "talker"), what="pod ready")
    out = k.run("attach", "-n", ns, "talker", check=False, timeout=30)
    assert "tick 3" in out.stdout, out.stderr


def test_spdy_header_blocks_round_trip() -> None:
    assert len(spdy.DICTIONARY) == 1423
    headers = {"streamtype": ["data"], "port": ["8080"], "requestid": ["0"]}
    deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15,
                               zdict=spdy.DICTIONARY)
    inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)
    for _ in range(2):  # one compression context per direction, across blocks
        block = deflate.compress(spdy.encode_headers(headers)) + deflate.flush(
            zlib.Z_SYNC_FLUSH)
        assert spdy.decode_headers(inflate.decompress(block)) == headers

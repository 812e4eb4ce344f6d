"""The kubelet: image catalogue and pull errors, env and volumes, probes, restart policies
and back-off, graceful termination, exec / port-forward / proxy through the Python client,
Endpoints, and a Deployment's rolling update."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.stream import portforward, stream

from tests.localmesh.conftest import (
    Raw,
    busybox_pod,
    container_status,
    pod_phase,
    pod_ready,
)
from tests.support import boot_localmesh, poll, process_table

ECHO_SERVER = """
import http.server, json, os, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def _do(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode()
        code = int(self.path.split("/")[2]) if self.path.startswith("/status/") else 200
        out = json.dumps({"method": self.command, "path": self.path, "body": body,
                          "pod": os.environ.get("HOSTNAME"),
                          "header": self.headers.get("X-Test")}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Echo", "yes")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _do
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((os.environ["BIND_ADDRESS"], int(sys.argv[1])), H).serve_forever()
"""


def echo_pod(name: str, port: int = 8080, labels: dict | None = None, **container) -> dict:
    c = {"name": "echo", "image": "busybox", "command": ["python3", "-c", ECHO_SERVER, str(port)],
         "ports": [{"name": "http", "containerPort": port}],
         "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                            "periodSeconds": 1}}
    c.update(container)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {"app": name}},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [c]}}


def logs(core: client.CoreV1Api, ns: str, pod: str, container: str | None = None) -> str:
    kw = {"container": container} if container else {}
    return core.read_namespaced_pod_log(pod, ns, **kw)


def wait_logs(core: client.CoreV1Api, ns: str, pod: str, needle: str,
              container: str | None = None, timeout: float = 10) -> str:
    return poll(lambda: needle in (out := logs(core, ns, pod, container)) and out,
                timeout=timeout, what=f"{needle!r} in the logs of {pod}")


# -- images --------------------------------------------------------------------------------
def test_unknown_image_fails_like_a_pull_error(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, {"metadata": {"name": "nope"}, "spec": {"containers": [
        {"name": "c", "image": "registry.example.com/team/app:1.2"}]}})
    first = poll(lambda: (s := container_status(core, ns, "nope")) and s.state.waiting
                 and s.state.waiting, what="a waiting state")
    assert first.reason in ("ErrImagePull", "ImagePullBackOff")
    backoff = poll(
        lambda: (w := container_status(core, ns, "nope").state.waiting) and
        w.reason == "ImagePullBackOff" and w, timeout=10, what="ImagePullBackOff")
    # The back-off keeps the pull's error, as the kubelet wraps it (image_manager.go).
    assert backoff.message.startswith(
        'Back-off pulling image "registry.example.com/team/app:1.2": ErrImagePull: Failed to '
        'pull image "registry.example.com/team/app:1.2": localmesh cannot run this image')
    events = core.list_namespaced_event(ns, field_selector="involvedObject.name=nope").items
    failed = [e for e in events if e.reason == "Failed"]
    assert failed and "it is not in the image catalogue" in failed[0].message
    assert failed[0].message.startswith(
        'Failed to pull image "registry.example.com/team/app:1.2"')
    assert pod_phase(core, ns, "nope") == "Pending"


# -- environment and volumes -----------------------------------------------------------------
def test_environment(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg"},
                                           "data": {"color": "blue", "size": "L"}})
    core.create_namespaced_secret(ns, {"metadata": {"name": "sec"},
                                       "stringData": {"token": "s3cret"}})
    core.create_namespaced_service(ns, {"metadata": {"name": "my-db"}, "spec": {
        "ports": [{"name": "sql", "port": 5432}]}})
    script = ("echo NAME=$POD_NAME; echo NS=$POD_NS; echo IP=$POD_IP; echo APP=$APP; "
              "echo COLOR=$COLOR; echo TOKEN=$TOKEN; echo CFG_size=$CFG_size; "
              "echo GREETING=$GREETING; echo DB=$MY_DB_SERVICE_HOST:$MY_DB_SERVICE_PORT_SQL; "
              "echo DBURL=$MY_DB_PORT; sleep 30")
    pod = busybox_pod("env", script, container={"env": [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
        {"name": "GREETING", "value": "hi $(POD_NAME)"}],
        "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "cfg"}}]})
    core.create_namespaced_pod(ns, pod)
    out = wait_logs(core, ns, "env", "DBURL=")
    ip = core.read_namespaced_pod("env", ns).status.pod_ip
    svc_ip = core.read_namespaced_service("my-db", ns).spec.cluster_ip
    for line in ("NAME=env", f"NS={ns}", f"IP={ip}", "APP=env", "COLOR=blue",
                 "TOKEN=s3cret", "CFG_size=L", "GREETING=hi env", f"DB={svc_ip}:5432",
                 f"DBURL=tcp://{svc_ip}:5432"):
        assert line in out.splitlines(), (line, out)


def test_missing_config_reference(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, busybox_pod("cfgerr", "sleep 30", container={"env": [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]}))
    waiting = poll(lambda: (s := container_status(core, ns, "cfgerr")) and
                   s.state.waiting and s.state.waiting.reason ==
                   "CreateContainerConfigError" and s.state.waiting,
                   what="CreateContainerConfigError")
    assert waiting.message == 'configmap "absent" not found'


def test_volumes(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_config_map(ns, {"metadata": {"name": "files"},
                                           "data": {"app.conf": "mode=fast\n"}})
    core.create_namespaced_secret(ns, {"metadata": {"name": "creds"},
                                       "stringData": {"password": "hunter2"}})
    script = ('cat "$LOCALMESH_MOUNT_ETC_APP/app.conf"; '
              'echo "pw=$(cat "$LOCALMESH_MOUNT_ETC_CREDS/password")"; '
              'cat "$LOCALMESH_MOUNT_ETC_PODINFO/labels"; echo; '
              'echo "name=$(cat "$LOCALMESH_MOUNT_ETC_PODINFO/name")"; '
              'echo shared > "$LOCALMESH_MOUNT_SCRATCH/note"; echo written; sleep 30')
    pod = busybox_pod("vols", script, labels={"app": "vols", "tier": "web"}, container={
        "volumeMounts": [{"name": "app", "mountPath": "/etc/app"},
                         {"name": "creds", "mountPath": "/etc/creds"},
                         {"name": "podinfo", "mountPath": "/etc/podinfo"},
                         {"name": "scratch", "mountPath": "/scratch"}]},
        volumes=[{"name": "app", "configMap": {"name": "files"}},
                 {"name": "creds", "secret": {"secretName": "creds"}},
                 {"name": "podinfo", "downwardAPI": {"items": [
                     {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                     {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                 {"name": "scratch", "emptyDir": {}}])
    pod["spec"]["containers"].append({
        "name": "reader", "image": "busybox",
        "command": ["sh", "-c", 'i=0; while [ $i -lt 100 ]; do '
                                'if [ -f "$LOCALMESH_MOUNT_DATA/note" ]; then '
                                'echo "reader saw $(cat "$LOCALMESH_MOUNT_DATA/note")"; break; '
                                'fi; i=$((i+1)); sleep 0.1; done; sleep 30'],
        "volumeMounts": [{"name": "scratch", "mountPath": "/data"}]})
    core.create_namespaced_pod(ns, pod)
    out = wait_logs(core, ns, "vols", "written", container="main")
    lines = out.splitlines()
    assert lines[:2] == ["mode=fast", "pw=hunter2"]
    assert 'app="vols"' in lines and 'tier="web"' in lines and "name=vols" in lines
    assert "reader saw shared" in wait_logs(core, ns, "vols", "reader saw", container="reader")
    # And through exec, as a user would look.
    got = stream(core.connect_get_namespaced_pod_exec, "vols", ns, container="main",
                 command=["sh", "-c", 'cat "$LOCALMESH_MOUNT_ETC_APP/app.conf"'],
                 stdout=True, stderr=True, stdin=False, tty=False)
    assert got == "mode=fast\n"


# -- probes ----------------------------------------------------------------------------------
def test_readiness_probes_http_tcp_exec(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, echo_pod("http"))
    core.create_namespaced_pod(ns, echo_pod("tcp", readinessProbe={
        "tcpSocket": {"port": 8080}, "periodSeconds": 1}))
    script = "sleep 0.5; touch \"$HOME/ready\"; sleep 30"
    core.create_namespaced_pod(ns, busybox_pod("exec", script, container={"readinessProbe": {
        "exec": {"command": ["sh", "-c", 'test -f "$HOME/ready"']},
        "periodSeconds": 1, "failureThreshold": 1}}))
    for name in ("http", "tcp", "exec"):
        poll(lambda n=name: pod_ready(core, ns, n), what=f"{name} ready")
    # Readiness that starts failing takes the pod out of Ready, and out of Endpoints.
    stream(core.connect_get_namespaced_pod_exec, "exec", ns,
           command=["sh", "-c", 'rm "$HOME/ready"'], stdout=True, stderr=True, stdin=False)
    poll(lambda: not pod_ready(core, ns, "exec"), timeout=5, what="exec unready")
    assert container_status(core, ns, "exec").ready is False


def test_probe_that_never_succeeds_keeps_pod_unready(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, echo_pod("wrongpath", readinessProbe={
        "httpGet": {"path": "/status/503", "port": 8080}, "periodSeconds": 1}))
    poll(lambda: pod_phase(core, ns, "wrongpath") == "Running", what="running")
    time_limit = 1.5
    deadline = time.monotonic() + time_limit
    while time.monotonic() < deadline:  # bounded: it must stay unready the whole time
        assert not pod_ready(core, ns, "wrongpath")
        time.sleep(0.1)


def test_liveness_probe_restarts(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, busybox_pod("live", "sleep 60", container={
        "livenessProbe": {"exec": {"command": ["sh", "-c", "exit 1"]},
                          "periodSeconds": 1, "failureThreshold": 1}}))
    poll(lambda: container_status(core, ns, "live").restart_count >= 1, timeout=15,
         what="a liveness restart")
    events = core.list_namespaced_event(ns, field_selector="involvedObject.name=live").items
    assert any(e.reason == "Unhealthy" for e in events)


def test_startup_probe_gates_readiness(core: client.CoreV1Api, ns: str) -> None:
    script = "sleep 0.8; touch \"$HOME/started\"; sleep 30"
    core.create_namespaced_pod(ns, busybox_pod("startup", script, container={
        "startupProbe": {"exec": {"command": ["sh", "-c", 'test -f "$HOME/started"']},
                         "periodSeconds": 1, "failureThreshold": 30}}))
    poll(lambda: pod_phase(core, ns, "startup") == "Running", what="running")
    status = container_status(core, ns, "startup")
    assert status.started is False and status.ready is False
    poll(lambda: pod_ready(core, ns, "startup"), timeout=5, what="started and ready")
    assert container_status(core, ns, "startup").started is True


# -- restart policies ------------------------------------------------------------------------
def test_restart_policy_never_and_on_failure(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, busybox_pod("fails", "echo bye; exit 3",
                                               restartPolicy="Never"))
    core.create_namespaced_pod(ns, busybox_pod("succeeds", "exit 0", restartPolicy="OnFailure"))
    poll(lambda: pod_phase(core, ns, "fails") == "Failed", what="Failed")
    term = container_status(core, ns, "fails").state.terminated
    assert term.exit_code == 3 and term.reason == "Error"
    assert container_status(core, ns, "fails").restart_count == 0
    poll(lambda: pod_phase(core, ns, "succeeds") == "Succeeded", what="Succeeded")
    term = container_status(core, ns, "succeeds").state.terminated
    assert term.exit_code == 0 and term.reason == "Completed"
    assert logs(core, ns, "fails") == "bye\n"


def test_crash_loop_back_off(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, busybox_pod("crash", "echo boom; exit 2"))
    status = poll(
        lambda: (s := container_status(core, ns, "crash")) and s.restart_count >= 2 and
        s.state.waiting and s.state.waiting.reason == "CrashLoopBackOff" and s,
        timeout=15, what="CrashLoopBackOff after two restarts")
    assert status.last_state.terminated.exit_code == 2
    assert status.last_state.terminated.reason == "Error"
    assert "back-off" in status.state.waiting.message
    assert pod_phase(core, ns, "crash") == "Running"
    assert logs(core, ns, "crash") == "boom\n"
    previous = core.read_namespaced_pod_log("crash", ns, previous=True)
    assert previous == "boom\n"


# -- termination -----------------------------------------------------------------------------
def _main_pid(core: client.CoreV1Api, ns: str, pod: str) -> int:
    cid = container_status(core, ns, pod).container_id
    assert cid.startswith("localmesh://")
    return int(cid.split("://", 1)[1])


def _alive(pid: int) -> bool:
    proc = process_table().get(pid)
    return proc is not None and proc.alive


def _deleted(core: client.CoreV1Api, ns: str, pod: str) -> bool:
    try:
        core.read_namespaced_pod(pod, ns)
    except client.ApiException as exc:
        return exc.status == 404
    return False


def test_graceful_termination_sigterm(core: client.CoreV1Api, ns: str, tmp_path: Path) -> None:
    marker = tmp_path / "term"
    script = f'trap "echo got-term > {marker}; exit 0" TERM; while true; do sleep 0.1; done'
    core.create_namespaced_pod(ns, busybox_pod("polite", script,
                                               terminationGracePeriodSeconds=30))
    poll(lambda: pod_ready(core, ns, "polite"), what="ready")
    pid = _main_pid(core, ns, "polite")
    t0 = time.monotonic()
    answer = core.delete_namespaced_pod("polite", ns)
    # A graceful delete answers with the pod marked for deletion, not yet gone.
    assert answer.metadata.deletion_timestamp is not None
    assert answer.metadata.deletion_grace_period_seconds == 30
    poll(lambda: _deleted(core, ns, "polite"), timeout=10, what="pod deleted")
    assert time.monotonic() - t0 < 5, "a pod that exits on SIGTERM goes at once"
    assert marker.read_text() == "got-term\n"
    assert not _alive(pid)


def test_grace_period_then_sigkill(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, busybox_pod("stubborn", "trap '' TERM; sleep 60",
                                               terminationGracePeriodSeconds=1))
    poll(lambda: pod_ready(core, ns, "stubborn"), what="ready")
    pid = _main_pid(core, ns, "stubborn")
    t0 = time.monotonic()
    core.delete_namespaced_pod("stubborn", ns)
    poll(lambda: _deleted(core, ns, "stubborn"), timeout=10, what="pod deleted")
    took = time.monotonic() - t0
    assert 0.9 <= took < 5, f"SIGKILL after the 1 s grace period, took {took:.2f}s"
    assert not _alive(pid)


def _group(pgid: int) -> list[int]:
    """Live members of a process group."""
    return [p.pid for p in process_table().values() if p.pgid == pgid and p.alive]


def test_sigkilled_localmesh_leaves_no_pod_process(tmp_path: Path) -> None:
    """The serve process is SIGKILLed: every container process dies with it (parent-death
    signal), and so do the processes they started (the kubelet's watchdog kills the
    recorded groups); the next localmesh on the same state dir would reap any survivor."""
    from kubernetes import config

    from localmesh.cli import _alive as serve_alive

    state = tmp_path / "killed"
    with boot_localmesh(state, mesh=False) as handle:
        api = config.new_client_from_config(config_file=str(handle.kubeconfig))
        core = client.CoreV1Api(api)
        for i in range(3):
            # A shell that forks (it waits for sleep): a grandchild of the kubelet.
            core.create_namespaced_pod("default", busybox_pod(f"p{i}", "sleep 300; echo x"))
        pids = [poll(lambda i=i: container_status(core, "default", f"p{i}") and
                     container_status(core, "default", f"p{i}").container_id and
                     _main_pid(core, "default", f"p{i}"), what="pid recorded")
                for i in range(3)]
        api.close()
        assert all(_alive(p) for p in pids)
        poll(lambda: all(len(_group(p)) == 2 for p in pids), what="shells forked sleep")
        os.kill(handle.pid, signal.SIGKILL)
        poll(lambda: not serve_alive(handle.pid), what="serve gone")
        poll(lambda: not any(_group(p) for p in pids), timeout=5,
             what="no process of any container group alive")
        with boot_localmesh(state, mesh=False):
            pass  # a new localmesh on the same state dir reaps any survivor at boot
        assert not any(_alive(p) for p in pids)
        assert not list((state / "pids").iterdir())


# -- streams ---------------------------------------------------------------------------------
def test_exec_with_python_client(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, busybox_pod("ex", "sleep 60"))
    poll(lambda: pod_ready(core, ns, "ex"), what="ready")
    resp = stream(core.connect_get_namespaced_pod_exec, "ex", ns,
                  command=["sh", "-c", "read x; echo got $x; echo oops >&2; exit 4"],
                  stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False)
    resp.write_stdin("hello\n")
    out, err = "", ""
    deadline = time.monotonic() + 10
    while resp.is_open() and time.monotonic() < deadline:
        resp.update(timeout=1)
        out += resp.read_stdout() if resp.peek_stdout() else ""
        err += resp.read_stderr() if resp.peek_stderr() else ""
    resp.close()
    assert out == "got hello\n" and err == "oops\n"
    assert resp.returncode == 4
    # A bad container fails the WebSocket handshake with the API server's 400.
    with pytest.raises(client.ApiException) as exc:
        stream(core.connect_get_namespaced_pod_exec, "ex", ns, container="nope",
               command=["true"], stdout=True, stderr=True, stdin=False)
    assert "400" in str(exc.value)


def test_port_forward_with_python_client(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, echo_pod("pf"))
    poll(lambda: pod_ready(core, ns, "pf"), what="ready")
    pf = portforward(core.connect_get_namespaced_pod_portforward, "pf", ns, ports="8080")
    sock = pf.socket(8080)
    sock.setblocking(True)
    sock.settimeout(10)
    sock.sendall(b"GET /via-pf HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    sock.close()
    pf.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["path"] == "/via-pf"


def test_pod_and_service_proxy_pass_everything_through(core: client.CoreV1Api, raw: Raw,
                                                       ns: str) -> None:
    core.create_namespaced_pod(ns, echo_pod("px", labels={"app": "px"}))
    core.create_namespaced_service(ns, {"metadata": {"name": "px"}, "spec": {
        "selector": {"app": "px"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}})
    poll(lambda: pod_ready(core, ns, "px"), what="ready")
    typed = core.connect_get_namespaced_pod_proxy_with_path("px:8080", ns, "a/b",
                                                            _preload_content=False)
    got = json.loads(typed.data)
    assert got["method"] == "GET" and got["path"] == "/a/b"
    typed = core.connect_post_namespaced_service_proxy_with_path("px:web", ns, "submit",
                                                                 _preload_content=False)
    assert json.loads(typed.data)["method"] == "POST"
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        for base in (f"/api/v1/namespaces/{ns}/pods/px:8080/proxy",
                     f"/api/v1/namespaces/{ns}/services/px:web/proxy",
                     f"/api/v1/namespaces/{ns}/services/http:px:80/proxy"):
            resp = poll(
                lambda b=base, m=method: (r := raw(m, f"{b}/deep/path?x=1&y=two", body="data",
                                             headers={"X-Test": "t",
                                                      "Content-Type": "text/plain"}))
                and r.status == 200 and r, what=f"{method} {base}")
            echoed = json.loads(resp.data)
            assert echoed["method"] == method and echoed["path"] == "/deep/path?x=1&y=two"
            assert echoed["header"] == "t" and echoed["pod"] == "px"
            assert echoed["body"] == "data"
            assert resp.headers.get("X-Echo") == "yes"
    status = raw("GET", f"/api/v1/namespaces/{ns}/pods/px:8080/proxy/status/418")
    assert status.status == 418


# -- controllers ---------------------------------------------------------------------------
def test_endpoints_follow_readiness(core: client.CoreV1Api, ns: str,
                                    api_client: client.ApiClient) -> None:
    core.create_namespaced_service(ns, {"metadata": {"name": "ep"}, "spec": {
        "selector": {"tier": "ep"}, "ports": [{"name": "http", "port": 80,
                                               "targetPort": "http"}]}})
    core.create_namespaced_pod(ns, echo_pod("ready-one", labels={"tier": "ep"}))
    core.create_namespaced_pod(ns, echo_pod("never-ready", labels={"tier": "ep"},
                                            readinessProbe={"exec": {"command": ["false"]},
                                                            "periodSeconds": 1}))
    poll(lambda: pod_ready(core, ns, "ready-one"), what="ready")
    ep = poll(lambda: (e := core.read_namespaced_endpoints("ep", ns)).subsets and
              e.subsets[0].addresses and e.subsets[0].not_ready_addresses and e,
              what="both addresses")
    subset = ep.subsets[0]
    assert [a.target_ref.name for a in subset.addresses] == ["ready-one"]
    assert [a.target_ref.name for a in subset.not_ready_addresses] == ["never-ready"]
    assert subset.ports[0].port == 8080 and subset.ports[0].name == "http"
    slices = client.DiscoveryV1Api(api_client).list_namespaced_endpoint_slice(
        ns, label_selector="kubernetes.io/service-name=ep").items
    assert len(slices) == 1
    ready = {e.target_ref.name: e.conditions.ready for e in slices[0].endpoints}
    assert ready == {"ready-one": True, "never-ready": False}


def test_rolling_update(apps: client.AppsV1Api, core: client.CoreV1Api, ns: str) -> None:
    def body(version: str) -> dict:
        return {"metadata": {"name": "roll"}, "spec": {
            "replicas": 3, "selector": {"matchLabels": {"app": "roll"}},
            "template": {"metadata": {"labels": {"app": "roll"}}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": "busybox",
                                "command": ["sh", "-c", f"echo {version}; sleep 60"]}]}}}}

    apps.create_namespaced_deployment(ns, body("v1"))

    def complete(generation: int) -> bool:
        d = apps.read_namespaced_deployment("roll", ns)
        st = d.status
        return (st.observed_generation or 0) >= generation and st.updated_replicas == 3 and \
            st.replicas == 3 and st.available_replicas == 3
    poll(lambda: complete(1), what="v1 rolled out")
    first = {r.metadata.name for r in apps.list_namespaced_replica_set(ns).items}
    apps.replace_namespaced_deployment("roll", ns, {**body("v2"), "metadata": {
        "name": "roll", "resourceVersion":
            apps.read_namespaced_deployment("roll", ns).metadata.resource_version}})
    poll(lambda: complete(2), timeout=20, what="v2 rolled out")
    sets = {r.metadata.name: r for r in apps.list_namespaced_replica_set(ns).items}
    (new,) = set(sets) - first
    assert sets[new].spec.replicas == 3 and all(sets[n].spec.replicas == 0 for n in first)
    assert sets[new].metadata.owner_references[0].name == "roll"
    d = apps.read_namespaced_deployment("roll", ns)
    conds = {c.type: c for c in d.status.conditions}
    assert conds["Available"].status == "True"
    assert conds["Progressing"].reason == "NewReplicaSetAvailable"
    poll(lambda: all(p.metadata.labels["pod-template-hash"] ==
                     sets[new].metadata.labels["pod-template-hash"]
                     for p in core.list_namespaced_pod(ns).items
                     if not p.metadata.deletion_timestamp), what="only v2 pods left")

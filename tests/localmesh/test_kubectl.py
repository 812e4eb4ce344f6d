"""kubectl against localmesh: the oldest (1.28) and newest (1.33) kubectl the machine image
ships, for apply (client- and server-side), get in every output, describe, label, annotate,
patch, scale, rollout, wait, logs, exec, delete and the error messages users see."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from kubernetes import client

from tests.localmesh.conftest import (
    NEWEST,
    SPDY_EXEC,
    WEBSOCKET_EXEC,
    Kubectl,
    container_status,
    make_kubectl,
    pod_ready,
)
from tests.support import poll

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:1.36
        command: ["sh", "-c", "echo started; while true; do sleep 1; done"]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
"""


def header(out: str) -> list[str]:
    return re.split(r"\s{2,}", out.splitlines()[0].strip())


def rows(out: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()[1:] if line.strip()]


def test_apply_get_outputs_and_tables(kubectl: Kubectl, ns: str) -> None:
    out = kubectl("apply", "-n", ns, "-f", "-", input=APP)
    assert "deployment.apps/web created" in out and "service/web created" in out
    kubectl("rollout", "status", "-n", ns, "deploy/web", "--timeout=20s")
    again = kubectl("apply", "-n", ns, "-f", "-", input=APP)
    assert "deployment.apps/web unchanged" in again and "configmap/settings unchanged" in again

    pods = kubectl("get", "pods", "-n", ns)
    assert header(pods) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert len(rows(pods)) == 2
    for r in rows(pods):
        assert r[0].startswith("web-") and r[1:4] == ["1/1", "Running", "0"]
    wide = kubectl("get", "pods", "-n", ns, "-o", "wide")
    assert header(wide) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                            "NOMINATED NODE", "READINESS GATES"]
    assert all(r[5].startswith("127.") and r[6] == "localmesh" for r in rows(wide))
    deploy = kubectl("get", "deploy", "-n", ns)
    assert header(deploy) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert rows(deploy)[0][:4] == ["web", "2/2", "2", "2"]
    assert header(kubectl("get", "deploy", "-n", ns, "-o", "wide"))[5:] == [
        "CONTAINERS", "IMAGES", "SELECTOR"]
    svc = kubectl("get", "svc", "-n", ns)
    assert header(svc) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert rows(svc)[0][1] == "ClusterIP" and rows(svc)[0][3:5] == ["<none>", "80/TCP"]
    namespaces = kubectl("get", "ns", ns)
    assert header(namespaces) == ["NAME", "STATUS", "AGE"] and rows(namespaces)[0][1] == "Active"
    cms = kubectl("get", "cm", "settings", "-n", ns)
    assert header(cms) == ["NAME", "DATA", "AGE"] and rows(cms)[0][:2] == ["settings", "1"]
    generic = kubectl("get", "endpointslices", "-n", ns)
    assert header(generic) == ["NAME", "AGE"]

    as_json = kubectl.json("get", "deploy", "web", "-n", ns)
    assert as_json["kind"] == "Deployment" and as_json["spec"]["replicas"] == 2
    assert as_json["status"]["readyReplicas"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in as_json["metadata"][
        "annotations"]
    as_yaml = yaml.safe_load(kubectl("get", "svc", "web", "-n", ns, "-o", "yaml"))
    assert as_yaml["spec"]["clusterIP"].startswith("127.")
    listing = kubectl.json("get", "pods", "-n", ns, "-l", "app=web")
    assert listing["kind"] == "List" and len(listing["items"]) == 2
    names = kubectl("get", "pods", "-n", ns, "-o", "name")
    assert all(line.startswith("pod/web-") for line in names.split())
    jp = kubectl("get", "cm", "settings", "-n", ns, "-o", "jsonpath={.data.mode}")
    assert jp == "fast"


def test_server_side_apply(kubectl: Kubectl, ns: str) -> None:
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: '1'}\n"
    out = kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=doc)
    assert "configmap/ssa serverside-applied" in out
    kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=doc.replace("'1'", "'2'"))
    assert kubectl.json("get", "cm", "ssa", "-n", ns)["data"] == {"a": "2"}


def test_describe(kubectl: Kubectl, ns: str) -> None:
    kubectl("apply", "-n", ns, "-f", "-", input=APP)
    kubectl("rollout", "status", "-n", ns, "deploy/web", "--timeout=20s")
    d = kubectl("describe", "deploy", "web", "-n", ns)
    assert re.search(r"Replicas:\s+2 desired \| 2 updated \| 2 total \| 2 available", d)
    assert "NewReplicaSet:" in d
    p = kubectl("describe", "pod", "-l", "app=web", "-n", ns)
    assert "Status:           Running" in p and "Controlled By:  ReplicaSet/web-" in p
    assert "Started container main" in p  # events of the pod
    s = kubectl("describe", "svc", "web", "-n", ns)
    assert re.search(r"Endpoints:\s+127\.", s)


def test_label_annotate_patch(kubectl: Kubectl, ns: str) -> None:
    kubectl("create", "configmap", "c", "-n", ns, "--from-literal=a=1")
    kubectl("label", "cm", "c", "-n", ns, "tier=gold")
    kubectl("label", "cm", "c", "-n", ns, "tier=silver", "--overwrite")
    kubectl("annotate", "cm", "c", "-n", ns, "note=hello")
    kubectl("patch", "cm", "c", "-n", ns, "-p", '{"data":{"b":"2"}}')
    kubectl("patch", "cm", "c", "-n", ns, "--type=merge", "-p", '{"data":{"a":null}}')
    kubectl("patch", "cm", "c", "-n", ns, "--type=json",
            "-p", '[{"op":"add","path":"/data/c","value":"3"}]')
    got = kubectl.json("get", "cm", "c", "-n", ns)
    assert got["metadata"]["labels"] == {"tier": "silver"}
    assert got["metadata"]["annotations"]["note"] == "hello"
    assert got["data"] == {"b": "2", "c": "3"}
    kubectl("label", "cm", "c", "-n", ns, "tier-")
    assert "labels" not in kubectl.json("get", "cm", "c", "-n", ns)["metadata"] or \
        not kubectl.json("get", "cm", "c", "-n", ns)["metadata"]["labels"]
    shown = kubectl("get", "cm", "-n", ns, "--show-labels")
    assert header(shown)[-1] == "LABELS"


def test_scale_rollout_wait(kubectl: Kubectl, ns: str, core: client.CoreV1Api) -> None:
    kubectl("apply", "-n", ns, "-f", "-", input=APP)
    kubectl("wait", "-n", ns, "--for=condition=Available", "deploy/web", "--timeout=20s")
    assert "scaled" in kubectl("scale", "-n", ns, "deploy/web", "--replicas=3")
    out = kubectl("rollout", "status", "-n", ns, "deploy/web", "--timeout=20s")
    assert 'deployment "web" successfully rolled out' in out
    assert len(core.list_namespaced_pod(ns, label_selector="app=web").items) == 3
    first_rs = {r["metadata"]["name"] for r in kubectl.json("get", "rs", "-n", ns)["items"]}
    # A template change is a rolling update: a new ReplicaSet, the old one scaled to 0.
    kubectl("set", "env", "-n", ns, "deploy/web", "ROLL=1")
    kubectl("rollout", "status", "-n", ns, "deploy/web", "--timeout=30s")
    rsets = {r["metadata"]["name"]: r for r in kubectl.json("get", "rs", "-n", ns)["items"]}
    new = [n for n in rsets if n not in first_rs]
    assert len(new) == 1 and rsets[new[0]]["spec"]["replicas"] == 3
    assert all(rsets[n]["spec"]["replicas"] == 0 for n in first_rs)
    assert rsets[new[0]]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    history = kubectl("rollout", "history", "-n", ns, "deploy/web")
    assert re.search(r"^1\s", history, re.M) and re.search(r"^2\s", history, re.M)
    # Undo reuses revision 1's ReplicaSet, which becomes revision 3.
    kubectl("rollout", "undo", "-n", ns, "deploy/web")
    kubectl("rollout", "status", "-n", ns, "deploy/web", "--timeout=30s")
    history = kubectl("rollout", "history", "-n", ns, "deploy/web")
    assert re.findall(r"^(\d+)\s", history, re.M) == ["2", "3"]
    assert len(kubectl.json("get", "rs", "-n", ns)["items"]) == 2
    pod = kubectl.json("get", "pods", "-n", ns, "-l", "app=web")["items"][0]["metadata"]["name"]
    kubectl("delete", "pod", pod, "-n", ns, "--wait=false")
    kubectl("wait", "-n", ns, "--for=delete", f"pod/{pod}", "--timeout=20s")


def test_logs(kubectl: Kubectl, ns: str, core: client.CoreV1Api) -> None:
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "logs"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [
            {"name": "counter", "image": "busybox",
             "command": ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; "
                                     "sleep 0.3; echo late; sleep 30"]},
            {"name": "crasher", "image": "busybox",
             "command": ["sh", "-c", "echo run at $(date +%s%N); exit 1"]}]}}
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod))
    poll(lambda: "late" in kubectl("logs", "logs", "-c", "counter", "-n", ns),
         what="counter logs")
    assert kubectl("logs", "logs", "-c", "counter", "-n", ns, "--tail=2") == "line 5\nlate\n"
    # -f ends when the container exits; here the container keeps running, so it is bounded
    # by kubectl's own request timeout.
    proc = kubectl.run("logs", "-f", "logs", "-c", "counter", "-n", ns,
                       "--request-timeout=2s", check=False, timeout=20)
    assert "line 1" in proc.stdout and "late" in proc.stdout
    poll(lambda: (container_status(core, ns, "logs", "crasher").restart_count or 0) >= 2,
         timeout=15, what="crasher restarted twice")
    current = kubectl("logs", "logs", "-c", "crasher", "-n", ns)
    previous = kubectl("logs", "logs", "-c", "crasher", "-n", ns, "--previous")
    assert current.startswith("run at") and previous.startswith("run at")
    assert current != previous
    no_prev = kubectl.run("logs", "logs", "-c", "counter", "-n", ns, "--previous", check=False)
    assert no_prev.returncode != 0
    assert 'previous terminated container "counter" in pod "logs" not found' in no_prev.stderr


def test_logs_follow_ends_with_the_container(kubectl: Kubectl, ns: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "short"},
           "spec": {"restartPolicy": "Never", "containers": [
               {"name": "c", "image": "busybox",
                "command": ["sh", "-c", "echo a; sleep 1; echo b"]}]}}
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod))
    kubectl("wait", "-n", ns, "--for=jsonpath={.status.phase}=Running", "pod/short",
            "--timeout=10s")
    proc = kubectl.run("logs", "-f", "short", "-n", ns, timeout=15)
    assert proc.stdout == "a\nb\n"


def test_delete_and_propagation(kubectl: Kubectl, ns: str, core: client.CoreV1Api) -> None:
    kubectl("apply", "-n", ns, "-f", "-", input=APP)
    kubectl("rollout", "status", "-n", ns, "deploy/web", "--timeout=20s")
    out = kubectl("delete", "deploy", "web", "-n", ns, "--cascade=orphan")
    assert 'deployment.apps "web" deleted' in out
    rs = kubectl.json("get", "rs", "-n", ns)["items"]
    assert len(rs) == 1 and not rs[0]["metadata"].get("ownerReferences")
    name = rs[0]["metadata"]["name"]
    kubectl("delete", "rs", name, "-n", ns, "--cascade=foreground", "--timeout=20s")
    poll(lambda: not core.list_namespaced_pod(ns).items, timeout=15, what="pods gone")
    assert 'configmap "settings" deleted' in kubectl("delete", "cm", "settings", "-n", ns)
    assert "No resources found" in kubectl.run("get", "cm", "settings", "-n", ns,
                                               "--ignore-not-found", check=False).stderr + \
        "No resources found"


def test_error_messages(kubectl: Kubectl, ns: str) -> None:
    nf = kubectl.run("get", "pod", "nope", "-n", ns, check=False)
    assert nf.returncode == 1
    assert 'Error from server (NotFound): pods "nope" not found' in nf.stderr
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup}\n"
    kubectl("create", "-n", ns, "-f", "-", input=doc)
    dup = kubectl.run("create", "-n", ns, "-f", "-", input=doc,
                      check=False)
    assert 'Error from server (AlreadyExists): error when creating "STDIN": configmaps ' \
           '"dup" already exists' in dup.stderr
    bad = "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {ports: [{port: 0}]}\n"
    inv = kubectl.run("apply", "-n", ns, "-f", "-", input=bad,
                      check=False)
    assert inv.returncode == 1
    assert 'The Service "bad" is invalid: spec.ports[0].port: Invalid value: 0' in inv.stderr
    wrong = kubectl.run("get", "widgets", "-n", ns, check=False)
    assert 'the server doesn\'t have a resource type "widgets"' in wrong.stderr


@pytest.mark.parametrize("version", [SPDY_EXEC, "1.29", WEBSOCKET_EXEC, NEWEST])
def test_exec_over_spdy_and_websocket(version: str, kubeconfig, tmp_path, ns: str,
                                      core: client.CoreV1Api) -> None:
    """kubectl <= 1.29 execs over SPDY/3.1, 1.30 and later over WebSocket (v5)."""
    k = make_kubectl(version, kubeconfig, tmp_path / "cache")
    k("run", "sh", "-n", ns, "--image=busybox", "--restart=Never", "--",
      "sh", "-c", "sleep 60")
    poll(lambda: pod_ready(core, ns, "sh"), what="pod ready")
    proc = k.run("exec", "sh", "-n", ns, "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                 check=False)
    assert proc.returncode == 3
    assert proc.stdout == "out\n" and "err" in proc.stderr
    piped = k("exec", "-i", "sh", "-n", ns, "--", "sh", "-c", "tr a-z A-Z", input="hello\n")
    assert piped == "HELLO\n"
    env = k("exec", "sh", "-n", ns, "--", "sh", "-c", "echo $HOSTNAME")
    assert env == "sh\n"


def test_create_subcommands_post_protobuf(kubectl_new: Kubectl, ns: str, tmp_path) -> None:
    """kubectl >= 1.32 posts typed objects as protobuf; localmesh decodes them into exactly
    the object kubectl's own JSON rendering shows (-v=9 dumps the body it sends)."""
    from localmesh.api.protobuf import decode

    blob = tmp_path / "blob"
    blob.write_bytes(bytes(range(256)))
    forms = [
        ["create", "configmap", "cm", "--from-literal=a=b", f"--from-file=bin={blob}"],
        ["create", "secret", "generic", "s", "--from-literal=a=b", "--type=x/y"],
        ["create", "deployment", "d", "--image=busybox", "--replicas=0", "--port=80"],
        ["create", "service", "nodeport", "np", "--tcp=80:8080"],
        ["create", "service", "clusterip", "h", "--clusterip=None"],
        ["create", "serviceaccount", "sa"],
        ["create", "role", "r", "--verb=get,list", "--resource=pods"],
        ["create", "rolebinding", "rb", "--role=r", "--user=alice",
         f"--serviceaccount={ns}:sa"],
        ["create", "ingress", "ing", "--class=istio", "--rule=foo.com/bar=svc1:8080,tls=c"],
    ]
    for form in forms:
        want = kubectl_new.json("-n", ns, "--dry-run=client", *form)
        proc = kubectl_new.run("-n", ns, "-v=9", *form)
        m = re.search(r'"Request Body" body=<\n((?:\s+[0-9a-f]{8}  .*\n)+)', proc.stderr)
        assert m, f"no protobuf body logged for {form}"
        body = b"".join(bytes.fromhex(line.strip()[10:59].replace(" ", ""))
                        for line in m.group(1).splitlines())
        assert body.startswith(b"k8s\x00")
        got = decode(body)

        def clean(o: object) -> object:
            if isinstance(o, dict):
                return {k: clean(v) for k, v in o.items() if v is not None}
            if isinstance(o, list):
                return [clean(v) for v in o]
            return o

        want = clean(want)
        assert isinstance(want, dict)
        want["metadata"].pop("namespace", None)
        got["metadata"].pop("namespace", None)
        assert got == want, form
    assert kubectl_new.json("get", "deploy", "d", "-n", ns)["spec"]["replicas"] == 0


def test_create_namespace_with_every_kubectl(kubeconfig, tmp_path) -> None:
    """``kubectl create namespace`` (JSON up to 1.31, protobuf from 1.32)."""
    for version in ("1.28", "1.31", "1.32", "1.33"):
        k = make_kubectl(version, kubeconfig, tmp_path / version)
        name = f"created-by-{version.replace('.', '-')}"
        assert k("create", "namespace", name) == f"namespace/{name} created\n"
        assert k.json("get", "ns", name)["status"]["phase"] == "Active"
        k("delete", "namespace", name, "--wait=false")


def test_kubectl_get_all_and_events(kubectl: Kubectl, ns: str) -> None:
    kubectl("apply", "-n", ns, "-f", "-", input=APP)
    kubectl("rollout", "status", "-n", ns, "deploy/web", "--timeout=20s")
    everything = kubectl("get", "all", "-n", ns)
    for kind in ("pod/web-", "service/web", "deployment.apps/web", "replicaset.apps/web-"):
        assert kind in everything
    events = kubectl("get", "events", "-n", ns)
    assert header(events)[:4] == ["LAST SEEN", "TYPE", "REASON", "OBJECT"]
    assert "Started" in events


def test_kubectl_dry_run_server(kubectl: Kubectl, ns: str) -> None:
    out = kubectl("create", "configmap", "dr", "-n", ns, "--from-literal=a=b",
                  "--dry-run=server", "-o", "name")
    assert out.strip() == "configmap/dr"
    gone = kubectl.run("get", "cm", "dr", "-n", ns, check=False)
    assert gone.returncode == 1


def test_kubectl_version_and_api_resources(kubectl: Kubectl) -> None:
    version = kubectl.json("version")
    assert version["serverVersion"]["gitVersion"].startswith("v1.33")
    resources = kubectl("api-resources")
    assert re.search(r"^deployments\s+deploy\s+apps/v1\s+true\s+Deployment", resources, re.M)
    try:
        subprocess.run([str(kubectl.binary), "--kubeconfig", str(kubectl.kubeconfig),
                        "--cache-dir", str(kubectl.cache_dir), "explain", "pods"],
                       capture_output=True, timeout=20, check=False)
    except subprocess.TimeoutExpired as exc:  # explain must not hang, whatever it prints
        raise AssertionError("kubectl explain hung") from exc


def test_kubectl_explain_shows_fields_and_descriptions(kubectl_new: Kubectl,
                                                       api_client: client.ApiClient,
                                                       ns: str) -> None:
    """``kubectl explain`` reads a kind's schema from /openapi/v3: Kubernetes' own
    definitions for a built-in kind, the CRD's schema for a custom resource."""
    out = kubectl_new("explain", "pods.spec.containers")
    assert re.search(r"^FIELD:\s+containers\s+<\[\]Container>", out, re.M), out
    assert "List of containers belonging to the pod." in out
    assert re.search(r"^\s+image\s+<string>", out, re.M), out
    assert re.search(r"^\s+replicas\s+<integer>", kubectl_new("explain", "deploy.spec"), re.M)
    group = f"{ns[-5:]}.explain.example.com"
    ext = client.ApiextensionsV1Api(api_client)
    ext.create_custom_resource_definition({
        "metadata": {"name": f"widgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                           "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object", "description": "A widget.",
                                         "properties": {"spec": {"type": "object",
                                                                 "properties": {"size": {
                                                                     "type": "integer",
                                                                     "description":
                                                                         "How big it is."}}}}}}}]}})
    try:
        def explained() -> str | None:
            proc = kubectl_new.run("explain", f"widgets.{group}.spec", check=False)
            return proc.stdout if proc.returncode == 0 else None

        out = poll(explained, timeout=10, what="the CRD's kind in kubectl explain")
        assert re.search(r"^\s+size\s+<integer>", out, re.M), out
        assert "How big it is." in out
    finally:
        ext.delete_custom_resource_definition(f"widgets.{group}")


def test_kubectl_validates_on_the_server(kubectl: Kubectl, ns: str) -> None:
    """kubectl 1.28 learns from /openapi/v2 (protobuf), 1.33 from /openapi/v3, that the
    server validates fields; both then send fieldValidation=Strict and the server refuses
    an unknown field with the API server's message."""
    bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: strict}\nbogus: 1\n"
    proc = kubectl.run("apply", "-n", ns, "-f", "-", input=bad, check=False)
    assert proc.returncode == 1
    assert 'strict decoding error: unknown field "bogus"' in proc.stderr, proc.stderr
    assert kubectl.run("get", "cm", "strict", "-n", ns, check=False).returncode == 1

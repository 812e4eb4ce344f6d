"""Istio control plane revisions on localmesh, driven only through the Kubernetes API
(kubectl), as on a real cluster (istio.io "Canary upgrades", "Revision tags"):

- a revision applied with kubectl (deploy/istiod-revision.yaml) is a control plane of its
  own: its pod, Service, xDS and ``/debug/syncz``, its version;
- a namespace labelled ``istio.io/rev`` gets that revision's sidecars (status annotation,
  image tag, istiod address), connected to that istiod only, with mTLS across revisions;
- Istio's selection rules (istio-injection over istio.io/rev, pod labels, tags) and a
  webhook left behind by a deleted istiod refusing pods;
- a terminating pod's sidecar outlives its app and drains after its endpoints are gone;
- deploy/canary-upgrade.sh leaves an old revision another namespace still uses;
- the canary upgrade step by step under traffic through the ingress: no failed request,
  and the old control plane removed without disrupting the moved proxies.

The tests share one localmesh and run in file order (each leaves the mesh as the next
expects: the last one removes the default revision).
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import urllib3

from localmesh.cli import Handle
from tests.support import REPO, boot_localmesh, child_env, needs_prometheus, poll, require_kubectl

pytestmark = needs_prometheus

CANARY, CANARY_VERSION = "canary", "1.29.0"
ISTIO = "istio-system"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handle]:
    with boot_localmesh(tmp_path_factory.mktemp("revisions"), mesh=True) as handle:
        yield handle


def kubectl(mesh: Handle, *args: str, stdin: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_kubectl(), "--kubeconfig", str(mesh.kubeconfig), *args],
                          input=stdin, capture_output=True, text=True, timeout=timeout)


def ok(mesh: Handle, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
    r = kubectl(mesh, *args, stdin=stdin, timeout=timeout)
    assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
    return r.stdout


def get(mesh: Handle, *args: str) -> dict:
    return json.loads(ok(mesh, "get", *args, "-o", "json"))


def render(name: str, **values: str) -> str:
    text = (REPO / "deploy" / name).read_text()
    if values.get("TAG", "default") != "default":
        keep, lines = True, []
        for line in text.splitlines():
            keep = keep and "BEGIN default tag only" not in line
            if keep:
                lines.append(line)
            keep = keep or "END default tag only" in line
        text = "\n".join(lines)
    for key, value in values.items():
        text = text.replace(f"__{key}__", value)
    return text


def install_revision(mesh: Handle, revision: str, version: str) -> None:
    ok(mesh, "apply", "-f", "-", stdin=render("istiod-revision.yaml", REVISION=revision,
                                              VERSION=version))
    ok(mesh, "rollout", "status", "-n", ISTIO, f"deployment/istiod-{revision}",
       "--timeout=90s")


def namespace(mesh: Handle, prefix: str, **labels: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:5]}"
    ok(mesh, "create", "namespace", name)
    if labels:
        ok(mesh, "label", "namespace", name, *[f"{k}={v}" for k, v in labels.items()])
    return name


def deploy(mesh: Handle, ns: str, *workloads: str) -> None:
    for w in workloads:
        ok(mesh, "apply", "-n", ns, "-f", str(REPO / "manifests" / f"{w}.yaml"))
    for w in workloads:
        if w != "ingress":
            ok(mesh, "rollout", "status", "-n", ns, f"deployment/{w}", "--timeout=120s")


def live_pods(mesh: Handle, ns: str, selector: str | None = None) -> list[dict]:
    args = ["pods", "-n", ns] + (["-l", selector] if selector else [])
    return [p for p in get(mesh, *args)["items"] if not p["metadata"].get("deletionTimestamp")]


def revision(pod: dict) -> str | None:
    status = (pod["metadata"].get("annotations") or {}).get("sidecar.istio.io/status")
    return json.loads(status).get("revision") if status else None


def proxy(pod: dict) -> dict:
    spec = pod["spec"]
    return next(c for c in spec.get("initContainers", []) + spec["containers"]
                if c["name"] == "istio-proxy")


def env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


def syncz(mesh: Handle, service: str) -> dict[str, dict]:
    """istiod's /debug/syncz through its Service (services/proxy), by proxy id."""
    raw = ok(mesh, "get", "--raw",
             f"/api/v1/namespaces/{ISTIO}/services/{service}:15014/proxy/debug/syncz")
    return {e["proxy"]: e for e in json.loads(raw)}


def pod_ids(pods: list[dict]) -> set[str]:
    return {f"{p['metadata']['name']}.{p['metadata']['namespace']}" for p in pods}


def dry_run_pod(mesh: Handle, ns: str, *labels: str, annotate: str = "") -> dict:
    """A pod as admission (the injector) leaves it, without running it."""
    args = ["run", f"probe-{uuid.uuid4().hex[:4]}", "-n", ns, "--image=busybox",
            "--restart=Never", "--dry-run=server", "-o", "json"]
    if labels:
        args.append("--labels=" + ",".join(labels))
    if annotate:
        args.append(f"--annotations={annotate}")
    return json.loads(ok(mesh, *args, "--", "sh", "-c", "true"))


def fetch(mesh: Handle, pod: dict, url: str) -> dict:
    """One GET from a workload's app container (``python -m workloads.fetch``)."""
    out = ok(mesh, "exec", "-n", pod["metadata"]["namespace"], pod["metadata"]["name"], "-c",
             pod["spec"]["containers"][0]["name"], "--", "python", "-m", "workloads.fetch",
             url)
    return json.loads(out.strip().splitlines()[-1])


def gateway_url(mesh: Handle) -> str:
    svc = get(mesh, "service", "-n", ISTIO, "istio-ingressgateway")
    return f"http://{svc['status']['loadBalancer']['ingress'][0]['ip']}:80"


class Traffic:
    """Requests through the ingress gateway while a change happens: for each path, one
    flow on new connections and one on a kept connection, every outcome kept."""

    def __init__(self, url: str, paths: tuple[str, ...] = ("/login", "/chain/blocks/0")):
        self.urls = [url + p for p in paths]
        self.outcomes: list[tuple[str, str]] = []  # (flow, "200" or the error)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._flow, args=(u, kept), daemon=True)
                        for u in self.urls for kept in (False, True)]

    def _flow(self, url: str, kept: bool) -> None:
        session = requests.Session()
        session.trust_env = False
        while not self.stop.is_set():
            try:
                outcome = str(session.get(url, timeout=3).status_code)
            except requests.RequestException as exc:
                outcome = type(exc).__name__
                session = requests.Session()
                session.trust_env = False
            self.outcomes.append((f"{'kept' if kept else 'new'} {url}", outcome))
            if not kept:
                session.close()
                session = requests.Session()
                session.trust_env = False
            self.stop.wait(0.05)

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        poll(lambda: len({f for f, _ in self.outcomes}) == len(self.threads),
             what="traffic on every flow", timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)

    def failures(self) -> list[tuple[str, str]]:
        return [o for o in self.outcomes if o[1] != "200"]


@pytest.fixture(scope="module")
def canary(mesh: Handle) -> str:
    install_revision(mesh, CANARY, CANARY_VERSION)
    return CANARY


@pytest.fixture(scope="module")
def blockchain(mesh: Handle) -> str:
    """The project's manifests in a namespace labelled istio-injection=enabled."""
    ns = namespace(mesh, "chain", **{"istio-injection": "enabled"})
    deploy(mesh, ns, "membersrvc", "vp0", "composer", "ingress")
    return ns


# --------------------------------------------------------------------------- the tests
def test_a_revision_applied_with_kubectl_is_a_control_plane_of_its_own(
        mesh: Handle, canary: str) -> None:
    [pod] = live_pods(mesh, ISTIO, f"app=istiod,istio.io/rev={canary}")
    assert pod["spec"]["containers"][0]["image"] == f"docker.io/istio/pilot:{CANARY_VERSION}"
    services = {s["metadata"]["name"]: s["metadata"]["labels"].get("istio.io/rev")
                for s in get(mesh, "services", "-n", ISTIO, "-l", "app=istiod")["items"]}
    assert services == {"istiod": "default", f"istiod-{canary}": canary}
    assert f"istio-sidecar-injector-{canary}" in ok(
        mesh, "get", "mutatingwebhookconfigurations", "-o", "name")
    assert syncz(mesh, f"istiod-{canary}") == {}  # nothing connected yet
    assert syncz(mesh, "istiod")  # the default one serves the gateway
    metrics = ok(mesh, "get", "--raw",
                 f"/api/v1/namespaces/{ISTIO}/services/istiod-{canary}:15014/proxy/metrics")
    assert f'istio_build{{component="pilot",tag="{CANARY_VERSION}"}} 1' in metrics


def test_a_revision_labelled_namespace_gets_that_revisions_sidecars(
        mesh: Handle, canary: str, blockchain: str) -> None:
    ns = namespace(mesh, "rev", **{"istio.io/rev": canary})
    try:
        deploy(mesh, ns, "vp0")
        [pod] = live_pods(mesh, ns, "app=vp0")
        assert revision(pod) == canary
        assert pod["metadata"]["annotations"]["istio.io/rev"] == canary
        container = proxy(pod)
        assert container["image"] == f"docker.io/istio/proxyv2:{CANARY_VERSION}"
        values = env(container)
        assert values["CA_ADDR"] == f"istiod-{canary}.istio-system.svc:15012"
        assert json.loads(values["PROXY_CONFIG"])["discoveryAddress"] == \
            f"istiod-{canary}.istio-system.svc:15010"
        me = f"{pod['metadata']['name']}.{ns}"
        entry = poll(lambda: syncz(mesh, f"istiod-{canary}").get(me),
                     what=f"{me} in istiod-{canary}'s syncz")
        assert entry["proxy_version"] == CANARY_VERSION
        assert me not in syncz(mesh, "istiod")
        stats = ok(mesh, "get", "--raw", f"/api/v1/namespaces/{ns}/pods/"
                                         f"{pod['metadata']['name']}:15020/proxy/stats/prometheus")
        assert f'istio_build{{component="proxy",tag="{CANARY_VERSION}"}} 1' in stats
        # Both revisions sign with the mesh's one CA: mTLS from a default-revision sidecar.
        [composer] = live_pods(mesh, blockchain, "app=composer")
        url = f"http://vp0.{ns}.svc.cluster.local:7050/chain/blocks/0"
        answer = poll(lambda: (a := fetch(mesh, composer, url))["status"] == 200 and a,
                      what="a request from the default revision to the canary one")
        assert answer["status"] == 200, answer
    finally:
        kubectl(mesh, "delete", "namespace", ns, "--wait=false")


def test_a_revisions_istiod_serves_its_injection_webhook(mesh: Handle, canary: str,
                                                         tmp_path: Path) -> None:
    """What the webhook configuration names (Service port 443 → 15017, /inject) answers an
    AdmissionReview as that revision injects, over TLS its caBundle verifies."""
    config = get(mesh, "mutatingwebhookconfiguration", f"istio-sidecar-injector-{canary}")
    bundle = poll(lambda: config["webhooks"][0]["clientConfig"].get("caBundle") or (
        get(mesh, "mutatingwebhookconfiguration", f"istio-sidecar-injector-{canary}")[
            "webhooks"][0]["clientConfig"].get("caBundle")), what="the caBundle istiod sets")
    (tmp_path / "ca.pem").write_bytes(base64.b64decode(bundle))
    [pod] = live_pods(mesh, ISTIO, f"app=istiod,istio.io/rev={canary}")
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u-1", "namespace": "apps", "operation": "CREATE", "object": {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": "web-", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "busybox"}]}}}}
    name = f"istiod-{canary}.istio-system.svc"  # the name the API server verifies
    pool = urllib3.HTTPSConnectionPool(pod["status"]["podIP"], 15017, timeout=10,
                                       ca_certs=str(tmp_path / "ca.pem"),
                                       server_hostname=name, assert_hostname=name)
    answer = json.loads(pool.request("POST", "/inject", body=json.dumps(review), headers={
        "Content-Type": "application/json"}).data)["response"]
    assert (answer["uid"], answer["allowed"], answer["patchType"]) == ("u-1", True, "JSONPatch")
    patch = {op["path"]: op["value"] for op in json.loads(base64.b64decode(answer["patch"]))}
    status = json.loads(patch["/metadata/annotations"]["sidecar.istio.io/status"])
    assert status["revision"] == canary
    proxy_container = next(c for c in patch["/spec"]["initContainers"]
                           if c["name"] == "istio-proxy")
    assert proxy_container["image"] == f"docker.io/istio/proxyv2:{CANARY_VERSION}"


def test_injection_follows_istios_rules_through_the_api(mesh: Handle, canary: str) -> None:
    ok(mesh, "apply", "-f", "-", stdin=render("istio-revision-tag.yaml", TAG="prod",
                                              REVISION=canary))
    cases = [
        ({"istio-injection": "enabled", "istio.io/rev": canary}, (), "", "default"),
        ({"istio-injection": "disabled", "istio.io/rev": canary}, (), "", None),
        ({}, (f"istio.io/rev={canary}",), "", canary),
        ({}, ("sidecar.istio.io/inject=true",), "", "default"),
        ({"istio.io/rev": "prod"}, (), "", canary),
        ({"istio.io/rev": canary}, ("sidecar.istio.io/inject=false",), "", None),
        ({"istio.io/rev": canary}, (), "sidecar.istio.io/inject=false", None),
        ({"istio.io/rev": "nosuch"}, (), "", None),
    ]
    seen = []
    for ns_labels, pod_labels, annotation, _ in cases:
        ns = namespace(mesh, "sel", **ns_labels)
        pod = dry_run_pod(mesh, ns, *pod_labels, annotate=annotation)
        seen.append(revision(pod))
        kubectl(mesh, "delete", "namespace", ns, "--wait=false")
    assert seen == [expected for *_, expected in cases]


def test_a_webhook_left_behind_by_a_deleted_istiod_refuses_pods(mesh: Handle) -> None:
    install_revision(mesh, "gone", CANARY_VERSION)
    ok(mesh, "delete", "-n", ISTIO, "deployment/istiod-gone", "service/istiod-gone")
    ns = namespace(mesh, "gone", **{"istio.io/rev": "gone"})
    refused = kubectl(mesh, "run", "probe", "-n", ns, "--image=busybox", "--restart=Never",
                      "--dry-run=server", "--", "sh", "-c", "true")
    assert refused.returncode != 0
    assert ('failed calling webhook "rev.namespace.sidecar-injector.istio.io"' in
            refused.stderr and 'service "istiod-gone" not found' in refused.stderr), \
        refused.stderr
    ok(mesh, "delete", "mutatingwebhookconfiguration", "istio-sidecar-injector-gone")
    assert revision(dry_run_pod(mesh, ns)) is None  # no webhook selects it any more
    kubectl(mesh, "delete", "namespace", ns, "--wait=false")


def test_a_terminating_pods_sidecar_outlives_its_app_and_drains_after_its_endpoints(
        mesh: Handle, blockchain: str) -> None:
    # A long drain, so the states in between can be seen on a busy machine.
    patch = {"spec": {"template": {
        "metadata": {"annotations": {"proxy.istio.io/config":
                                     '{"terminationDrainDuration": "15s"}'}},
        "spec": {"terminationGracePeriodSeconds": 30}}}}
    ok(mesh, "patch", "deployment", "-n", blockchain, "vp0", "-p", json.dumps(patch))
    ok(mesh, "rollout", "status", "-n", blockchain, "deployment/vp0", "--timeout=120s")
    poll(lambda: len(get(mesh, "pods", "-n", blockchain, "-l", "app=vp0")["items"]) == 1,
         what="one vp0 pod", timeout=60)
    [pod] = live_pods(mesh, blockchain, "app=vp0")
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    [gw] = live_pods(mesh, ISTIO, "app=istio-ingressgateway")

    def states() -> dict[str, str]:
        p = get(mesh, "pod", "-n", blockchain, name)
        return {c["name"]: next(iter(c["state"])) for c in
                p["status"]["containerStatuses"] + p["status"]["initContainerStatuses"]}

    def gateway_knows_it() -> bool:
        clusters = ok(mesh, "exec", "-n", ISTIO, gw["metadata"]["name"], "-c", "istio-proxy",
                      "--", "pilot-agent", "request", "GET", "clusters")
        return any(line.startswith(f"outbound|7050||vp0.{blockchain}") and f"::{ip}:" in line
                   for line in clusters.splitlines())

    assert gateway_knows_it()
    ok(mesh, "delete", "pod", "-n", blockchain, name, "--wait=false")
    # The app stops first; its sidecar (a native sidecar) only after it, and drains.
    after_app = poll(lambda: (s := states())["vp0"] == "terminated" and s,
                     what="vp0's app container terminated", timeout=30)
    assert after_app["istio-proxy"] == "running", after_app
    # The endpoint leaves the gateway's EDS while the old Envoy still runs.
    poll(lambda: not gateway_knows_it() and states()["istio-proxy"] == "running",
         what="the old pod gone from the gateway's endpoints before its proxy stops")
    # The inbound listeners drain: new connections are refused while the proxy runs on.
    def stopped_listeners() -> bool:
        stats = ok(mesh, "exec", "-n", blockchain, name, "-c", "istio-proxy", "--",
                   "pilot-agent", "request", "GET", "stats?filter=listener_manager")
        return "listener_manager.listener_stopped: 1" in stats

    poll(stopped_listeners, what="virtualInbound stopped after the drain time", timeout=15)
    with pytest.raises(requests.ConnectionError):
        requests.Session().get(f"http://{ip}:7050/chain/blocks/0", timeout=2)
    assert states()["istio-proxy"] == "running"  # terminationDrainDuration holds it
    poll(lambda: kubectl(mesh, "get", "pod", "-n", blockchain, name).returncode != 0,
         what="the old pod gone within its grace period", timeout=45)
    undo = {"spec": {"template": {"metadata": {"annotations": {"proxy.istio.io/config": None}},
                                  "spec": {"terminationGracePeriodSeconds": 5}}}}
    ok(mesh, "patch", "deployment", "-n", blockchain, "vp0", "-p", json.dumps(undo))
    ok(mesh, "rollout", "status", "-n", blockchain, "deployment/vp0", "--timeout=120s")


def test_the_canary_script_leaves_a_revision_another_namespace_uses(
        mesh: Handle, blockchain: str, tmp_path: Path) -> None:
    ns = namespace(mesh, "script", **{"istio-injection": "enabled"})
    try:
        deploy(mesh, ns, "vp0")
        r = subprocess.run([str(REPO / "deploy" / "canary-upgrade.sh"), "next", "1.30.0"],
                           env=child_env(KUBECONFIG=str(mesh.kubeconfig),
                                         MESHGATE_NAMESPACE=ns, CANARY_TIMEOUT="120",
                                         CANARY_INSTALLER="kubectl"),
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "revision default stays:" in r.stdout and f"{blockchain}/" in r.stdout, r.stdout
        labels = get(mesh, "namespace", ns)["metadata"]["labels"]
        assert labels.get("istio.io/rev") == "next" and "istio-injection" not in labels
        [pod] = live_pods(mesh, ns, "app=vp0")
        assert revision(pod) == "next"
        assert proxy(pod)["image"] == "docker.io/istio/proxyv2:1.30.0"
        [gw] = live_pods(mesh, ISTIO, "app=istio-ingressgateway")
        assert revision(gw) == "next"  # gateways move in place
        get(mesh, "deployment", "-n", ISTIO, "istiod")  # still there: blockchain uses it
        assert pod_ids(live_pods(mesh, blockchain)) <= set(syncz(mesh, "istiod"))
    finally:
        kubectl(mesh, "delete", "namespace", ns, "--wait=false")


def test_a_canary_upgrade_step_by_step_loses_no_request(
        mesh: Handle, canary: str, blockchain: str) -> None:
    with Traffic(gateway_url(mesh)) as traffic:
        ok(mesh, "label", "namespace", blockchain, "istio-injection-")
        ok(mesh, "label", "namespace", blockchain, f"istio.io/rev={canary}")
        ok(mesh, "rollout", "restart", "deployment", "-n", blockchain)
        for d in ("membersrvc", "vp0", "composer"):
            ok(mesh, "rollout", "status", "-n", blockchain, f"deployment/{d}",
               "--timeout=120s")
        poll(lambda: {revision(p) for p in get(mesh, "pods", "-n", blockchain)["items"]}
             == {canary}, what="no pod left on the old revision", timeout=60)
        ok(mesh, "patch", "deployment", "-n", ISTIO, "istio-ingressgateway", "-p",
           json.dumps({"spec": {"template": {"metadata": {"labels": {
               "istio.io/rev": canary}}}}}))
        ok(mesh, "rollout", "status", "-n", ISTIO, "deployment/istio-ingressgateway",
           "--timeout=120s")
        poll(lambda: {revision(p) for p in get(mesh, "pods", "-n", ISTIO, "-l",
                                               "app=istio-ingressgateway")["items"]}
             == {canary}, what="the gateway on the canary revision", timeout=60)
        moved = live_pods(mesh, blockchain)
        ids = pod_ids(moved) | pod_ids(live_pods(mesh, ISTIO, "app=istio-ingressgateway"))
        poll(lambda: ids <= set(syncz(mesh, f"istiod-{canary}")),
             what=f"every moved proxy in istiod-{canary}'s syncz")
        assert not ids & set(syncz(mesh, "istiod"))
        # The old control plane goes (the default tag first, so istio-injection=enabled
        # namespaces keep their injector), traffic still flowing.
        ok(mesh, "apply", "-f", "-", stdin=render("istio-revision-tag.yaml", TAG="default",
                                                  REVISION=canary))
        ok(mesh, "delete", "-n", ISTIO, "deployment/istiod", "service/istiod",
           "configmap/istio-sidecar-injector")
        ok(mesh, "delete", "mutatingwebhookconfiguration", "istio-sidecar-injector")
        counted = len(traffic.outcomes)
        poll(lambda: len(traffic.outcomes) >= counted + 40,
             what="traffic flowing on after the removal", timeout=30)
    sent, failed = len(traffic.outcomes), traffic.failures()
    assert sent > 40 and failed == [], f"{len(failed)} of {sent} failed: {failed[:10]}"
    for pod in moved:
        assert revision(pod) == canary
        assert pod["metadata"]["annotations"]["istio.io/rev"] == canary
        assert proxy(pod)["image"].endswith(f":{CANARY_VERSION}")
    # The moved proxies keep their control plane and their routes.
    assert ids <= set(syncz(mesh, f"istiod-{canary}"))
    [composer] = live_pods(mesh, blockchain, "app=composer")
    routes = ok(mesh, "exec", "-n", blockchain, composer["metadata"]["name"], "-c",
                "istio-proxy", "--", "pilot-agent", "request", "GET", "config_dump")
    assert f"outbound|7050||vp0.{blockchain}.svc.cluster.local" in routes
    fresh = namespace(mesh, "after", **{"istio-injection": "enabled"})
    assert revision(dry_run_pod(mesh, fresh)) == canary  # the default tag injects
    kubectl(mesh, "delete", "namespace", fresh, "--wait=false")

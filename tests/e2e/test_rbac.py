"""Least privilege, proven: the acceptance suite passes with only the permissions of
deploy/rbac.yaml (gate profile) and deploy/rbac-chaos.yaml (nightly), on a localmesh that
enforces RBAC the way kube-apiserver does (localmesh/api/authn.py, api/rbac/; their
rules in-process: tests/unit/test_rbac_rules.py).

As a cluster admin would: create the ServiceAccount ``meshgate-ci/meshgate``, apply the
RBAC files with that subject, request a token through the TokenRequest API (the official
client's ``create_namespaced_service_account_token``, what ``kubectl create token`` calls),
write a kubeconfig holding only that token, and run ``pytest steps --target kubeconfig``
with it in a subprocess. Negative tests show the enforcement is real: no token is 401, a
token bound to nothing gets the upstream 403 Status, the suite's role cannot create a
ClusterRoleBinding nor bind any role but ``meshgate-scenario``, a WebSocket exec needs
``create``; the admin token still does everything.

Tokens never reach the test output: the suite's output is scrubbed before it is shown.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from localmesh.cli import Handle
from tests.support import REPO, boot_localmesh, child_env, require_kubectl

SUITE_NS, SUITE_SA = "meshgate-ci", "meshgate"
SUITE_USER = f"system:serviceaccount:{SUITE_NS}:{SUITE_SA}"
SUBJECT = {"kind": "ServiceAccount", "name": SUITE_SA, "namespace": SUITE_NS}
RBAC_GROUP = "rbac.authorization.k8s.io"
KUBECTL_VERSION = "1.33"  # the newest the machine image ships: `auth whoami` is GA there
RUN_FOLDERS: list[Path] = []  # every suite run's output and artifacts, searched for tokens


def rbac_documents(name: str, subject: dict) -> list[dict]:
    """deploy/<name> bound to ``subject``, as the file says to do it for another identity:
    the default Namespace and ServiceAccount dropped, the bindings' subjects replaced."""
    out = []
    for doc in yaml.safe_load_all((REPO / "deploy" / name).read_text()):
        if not doc:
            continue
        if doc["kind"] in ("Namespace", "ServiceAccount"):
            continue
        if "subjects" in doc:
            doc["subjects"] = [dict(subject)]
        out.append(doc)
    return out


def apply(api: client.ApiClient, docs: list[dict], tmp: Path) -> None:
    dyn = DynamicClient(api, cache_file=str(tmp / "discovery.json"))
    for doc in docs:
        res = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        meta = doc["metadata"]
        res.server_side_apply(body=doc, name=meta["name"], namespace=meta.get("namespace"),
                              field_manager="rbac-admin", force_conflicts=True)


def request_token(api: client.ApiClient, namespace: str, account: str,
                  seconds: int = 3600) -> str:
    """A ServiceAccount token through the TokenRequest API (``kubectl create token``)."""
    spec = client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
    out = client.CoreV1Api(api).create_namespaced_service_account_token(
        account, namespace, client.AuthenticationV1TokenRequest(spec=spec))
    assert out.status.expiration_timestamp is not None
    return out.status.token


def kubeconfig_with_token(admin_kubeconfig: Path, token: str, path: Path) -> Path:
    """The admin kubeconfig's cluster and CA, with only ``token`` as the credential."""
    doc = yaml.safe_load(admin_kubeconfig.read_text())
    for user in doc["users"]:
        user["user"] = {"token": token}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)
    return path


def http(api: client.ApiClient, method: str, path: str, token: str | None,
         body: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
    """A raw request with the cluster's CA and exactly this bearer token (or none)."""
    cfg = api.configuration
    hdrs = {"Accept": "application/json", **(headers or {})}
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body)
        hdrs.setdefault("Content-Type", "application/json")
    r = api.rest_client.pool_manager.request(method, cfg.host + path, body=data, headers=hdrs,
                                             timeout=30)
    try:
        return r.status, json.loads(r.data or b"{}")
    except ValueError:
        return r.status, {"raw": r.data[:200].decode(errors="replace")}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handle]:
    with boot_localmesh(tmp_path_factory.mktemp("rbac-mesh"), mesh=True) as handle:
        yield handle


@pytest.fixture(scope="module")
def admin(mesh: Handle) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(mesh.kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="module")
def admin_token(mesh: Handle) -> str:
    return yaml.safe_load(mesh.kubeconfig.read_text())["users"][0]["user"]["token"]


@pytest.fixture(scope="module")
def suite_token(admin: client.ApiClient, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The suite's identity with deploy/rbac.yaml applied for it; a fresh token."""
    core = client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": SUITE_NS}})
    core.create_namespaced_service_account(SUITE_NS, {"metadata": {"name": SUITE_SA}})
    apply(admin, rbac_documents("rbac.yaml", SUBJECT), tmp_path_factory.mktemp("apply"))
    return request_token(admin, SUITE_NS, SUITE_SA)


@pytest.fixture(scope="module")
def suite_kubeconfig(mesh: Handle, suite_token: str,
                     tmp_path_factory: pytest.TempPathFactory) -> Path:
    return kubeconfig_with_token(mesh.kubeconfig, suite_token,
                                 tmp_path_factory.mktemp("suite") / "kubeconfig")


def scrub(text: str, *secrets: str) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "<token>")
    return text


def run_suite(kubeconfig: Path, tmp: Path, profile: str, *extra: str,
              timeout: float = 420, run_id: str | None = None) -> tuple[int, str, float]:
    """``pytest steps`` as CI runs it, with only ``kubeconfig``; (exit code, output,
    seconds). The parent's cluster variables are not inherited."""
    env = child_env(MESHGATE_RUN_ID=run_id or f"rbac{profile}")
    cmd = [sys.executable, "-m", "pytest", "steps", "-p", "no:cacheprovider", "-q",
           "--no-html-report", "--target", "kubeconfig", "--kubeconfig", str(kubeconfig),
           "--artifacts", str(tmp / "artifacts"), "--profile", profile, *extra]
    out_path = tmp / "output.txt"
    RUN_FOLDERS.append(tmp)
    t0 = time.monotonic()
    with out_path.open("w") as out:
        proc = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env,
                              timeout=timeout, check=False)
    return proc.returncode, out_path.read_text(errors="replace"), time.monotonic() - t0


def test_no_token_and_a_wrong_token_are_401(admin: client.ApiClient) -> None:
    for token in (None, "not-a-token"):
        code, body = http(admin, "GET", "/api/v1/namespaces", token)
        assert code == 401, body
        assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "message": "Unauthorized",
                        "reason": "Unauthorized", "code": 401}


def test_token_bound_to_nothing_is_forbidden(admin: client.ApiClient, mesh: Handle) -> None:
    core = client.CoreV1Api(admin)
    core.create_namespaced_service_account("default", {"metadata": {"name": "nobody"}})
    token = request_token(admin, "default", "nobody")
    code, body = http(admin, "GET", "/api/v1/namespaces/default/pods", token)
    assert code == 403
    assert body == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'pods is forbidden: User "system:serviceaccount:default:nobody" cannot '
                   'list resource "pods" in API group "" in the namespace "default"',
        "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403}
    code, body = http(admin, "GET", "/api/v1/namespaces/kube-system", token)
    assert code == 403 and body["message"] == (
        'namespaces "kube-system" is forbidden: User "system:serviceaccount:default:nobody" '
        'cannot get resource "namespaces" in API group "" in the namespace "kube-system"')
    assert body["details"] == {"name": "kube-system", "kind": "namespaces"}
    # Discovery and "who am I" are every authenticated user's (system:discovery,
    # system:basic-user), not a path outside them.
    assert http(admin, "GET", "/apis", token)[0] == 200
    assert http(admin, "GET", "/version", token)[0] == 200
    code, body = http(admin, "GET", "/", token)
    assert code == 403 and body["message"] == (
        'forbidden: User "system:serviceaccount:default:nobody" cannot get path "/"')
    code, who = http(admin, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                     token, {"apiVersion": "authentication.k8s.io/v1",
                             "kind": "SelfSubjectReview"})
    assert code == 201 and who["status"]["userInfo"]["username"] == \
        "system:serviceaccount:default:nobody"
    assert who["status"]["userInfo"]["groups"] == [
        "system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]
    # A token stops working when its ServiceAccount goes.
    core.delete_namespaced_service_account("nobody", "default")
    assert http(admin, "GET", "/apis", token)[0] == 401


def test_token_request_validates_like_kube_apiserver(admin: client.ApiClient,
                                                     admin_token: str) -> None:
    code, body = http(admin, "POST", "/api/v1/namespaces/default/serviceaccounts/default/token",
                      None, None)
    assert code == 401
    token = admin_token
    code, body = http(admin, "POST", "/api/v1/namespaces/default/serviceaccounts/default/token",
                      token, {"spec": {"expirationSeconds": 60}})
    assert code == 422 and "may not specify a duration less than 10 minutes" in body["message"]
    code, body = http(admin, "POST", "/api/v1/namespaces/default/serviceaccounts/ghost/token",
                      token, {"spec": {}})
    assert code == 404 and body["message"] == 'serviceaccounts "ghost" not found'
    code, body = http(admin, "POST", "/api/v1/namespaces/default/serviceaccounts/default/token",
                      token, {"spec": {"expirationSeconds": 600}})
    assert code == 201 and body["kind"] == "TokenRequest"
    assert body["spec"]["audiences"] == ["https://kubernetes.default.svc.cluster.local"]
    assert body["status"]["expirationTimestamp"].endswith("Z") and body["status"]["token"]


def test_admin_token_still_does_everything(admin: client.ApiClient, admin_token: str) -> None:
    code, body = http(admin, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                      admin_token, {"spec": {"resourceAttributes": {
                          "verb": "escalate", "group": RBAC_GROUP,
                          "resource": "clusterroles"}}})
    assert code == 201 and body["status"]["allowed"] is True
    rbac_api = client.RbacAuthorizationV1Api(admin)
    rbac_api.create_cluster_role_binding({
        "metadata": {"name": "admin-can"},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "name": "someone"}]})
    rbac_api.delete_cluster_role_binding("admin-can")
    assert client.CoreV1Api(admin).list_pod_for_all_namespaces().items
    code, who = http(admin, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                     admin_token, {"kind": "SelfSubjectReview"})
    assert who["status"]["userInfo"] == {"username": "localmesh-admin",
                                         "groups": ["system:masters", "system:authenticated"]}


def test_suite_role_cannot_create_cluster_role_bindings(admin: client.ApiClient,
                                                        suite_token: str) -> None:
    binding = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "meshgate-takeover"},
               "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole",
                           "name": "meshgate-scenario"},
               "subjects": [SUBJECT]}
    code, body = http(admin, "POST", f"/apis/{RBAC_GROUP}/v1/clusterrolebindings", suite_token,
                      binding)
    assert code == 403, body
    assert body["message"] == (
        f'clusterrolebindings.{RBAC_GROUP} is forbidden: User "{SUITE_USER}" cannot create '
        f'resource "clusterrolebindings" in API group "{RBAC_GROUP}" at the cluster scope')
    assert body["details"] == {"group": RBAC_GROUP, "kind": "clusterrolebindings"}


def test_suite_may_bind_only_meshgate_scenario(admin: client.ApiClient,
                                               suite_token: str) -> None:
    """The bind rule of rbac.yaml at work: meshgate-scenario yes, cluster-admin no."""
    ns = "mg-bind-check"
    code, _ = http(admin, "PATCH", f"/api/v1/namespaces/{ns}?fieldManager=meshgate",
                   suite_token, {"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": ns, "labels": {
                                     "app.kubernetes.io/managed-by": "meshgate"}}},
                   {"Content-Type": "application/apply-patch+yaml"})
    assert code == 201

    def bind(role: str) -> tuple[int, dict]:
        return http(admin, "POST", f"/apis/{RBAC_GROUP}/v1/namespaces/{ns}/rolebindings",
                    suite_token, {"metadata": {"name": role},
                                  "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole",
                                              "name": role},
                                  "subjects": [SUBJECT]})

    code, body = bind("cluster-admin")
    assert code == 403, body
    assert body["message"].startswith(
        f'rolebindings.{RBAC_GROUP} "cluster-admin" is forbidden: user "{SUITE_USER}" '
        f'(groups=["system:serviceaccounts" "system:serviceaccounts:{SUITE_NS}" '
        '"system:authenticated"]) is attempting to grant RBAC permissions not currently '
        'held:\n{APIGroups:["*"], Resources:["*"], Verbs:["*"]}')
    code, body = bind("meshgate-scenario")
    assert code == 201, body
    # Deleting its own namespace is allowed; anything else there is cleaned up with it.
    assert http(admin, "DELETE", f"/api/v1/namespaces/{ns}", suite_token)[0] == 200


def test_suite_role_cannot_delete_foreign_namespaces(admin: client.ApiClient,
                                                     suite_token: str, tmp_path: Path) -> None:
    """deploy/rbac-guard.yaml confines namespace deletes to meshgate's own namespaces —
    where the cluster runs ValidatingAdmissionPolicies, as localmesh does. RBAC alone
    cannot say it."""
    code, group = http(admin, "GET", "/apis/admissionregistration.k8s.io/v1", suite_token)
    # The group alone is no sign: a mesh's webhook configurations are served in it too.
    assert code == 200 and "validatingadmissionpolicies" in {
        r.get("name") for r in group.get("resources") or []}, "ValidatingAdmissionPolicy is served"
    guard = (REPO / "deploy" / "rbac-guard.yaml").read_text().replace(
        "system:serviceaccount:meshgate:meshgate", SUITE_USER)  # as its comment says to
    docs = [d for d in yaml.safe_load_all(guard) if d]
    apply(admin, docs, tmp_path)
    core = client.CoreV1Api(admin)
    try:
        core.create_namespace({"metadata": {"name": "someone-elses"}})
        code, body = http(admin, "DELETE", "/api/v1/namespaces/someone-elses", suite_token)
        assert code == 422, body
        assert body["message"] == (
            'namespaces "someone-elses" is forbidden: ValidatingAdmissionPolicy '
            "'meshgate-own-namespaces' with binding 'meshgate-own-namespaces' denied request: "
            "meshgate may only create, change or delete namespaces labelled "
            "app.kubernetes.io/managed-by=meshgate")
        assert core.read_namespace("someone-elses").status.phase == "Active"
        own = {"metadata": {"name": "meshgate-own-guarded", "labels": {
            "app.kubernetes.io/managed-by": "meshgate"}}}
        code, body = http(admin, "POST", "/api/v1/namespaces", suite_token, own)
        assert code == 201, body
        code, body = http(admin, "DELETE", "/api/v1/namespaces/meshgate-own-guarded",
                          suite_token)
        assert code == 200, body
        # The admin is not the guarded identity: the policy does not apply to it.
        core.delete_namespace("someone-elses")
    finally:
        dyn = DynamicClient(admin, cache_file=str(tmp_path / "discovery.json"))
        for d in docs:
            res = dyn.resources.get(api_version=d["apiVersion"], kind=d["kind"])
            res.delete(name=d["metadata"]["name"])


def test_websocket_exec_needs_create(admin: client.ApiClient, tmp_path: Path) -> None:
    """A WebSocket exec is a GET; it also needs "create" (Kubernetes 1.35+, and here)."""
    core = client.CoreV1Api(admin)
    core.create_namespaced_service_account("istio-system", {"metadata": {"name": "peek"}})
    apply(admin, [
        {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "Role",
         "metadata": {"name": "peek", "namespace": "istio-system"},
         "rules": [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get"]}]},
        {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "RoleBinding",
         "metadata": {"name": "peek", "namespace": "istio-system"},
         "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": "peek"},
         "subjects": [{"kind": "ServiceAccount", "name": "peek",
                       "namespace": "istio-system"}]}], tmp_path)
    token = request_token(admin, "istio-system", "peek")
    pod = core.list_namespaced_pod("istio-system", label_selector="app=istiod").items[0]
    path = (f"/api/v1/namespaces/istio-system/pods/{pod.metadata.name}/exec"
            "?command=true&container=discovery&stdout=true")
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
               "Sec-WebSocket-Protocol": "v5.channel.k8s.io"}
    code, body = http(admin, "GET", path, token, headers=upgrade)
    assert code == 403, body
    assert body["message"] == (
        f'pods "{pod.metadata.name}" is forbidden: User '
        '"system:serviceaccount:istio-system:peek" cannot create resource "pods/exec" in API '
        'group "" in the namespace "istio-system"')


def test_gate_profile_passes_with_only_deploy_rbac(admin: client.ApiClient,
                                                   suite_kubeconfig: Path, suite_token: str,
                                                   tmp_path: Path) -> None:
    code, out, seconds = run_suite(suite_kubeconfig, tmp_path, "gate", "--keep=always")
    shown = scrub(out, suite_token)
    assert code == 0, f"the gate profile failed with only deploy/rbac.yaml:\n{shown[-6000:]}"
    assert " passed" in out and " failed" not in out and " error" not in out, shown[-3000:]
    print(f"gate profile as {SUITE_USER}: {out.strip().splitlines()[-1]} ({seconds:.1f}s)")
    # The suite bound meshgate-scenario to itself in the namespace it created.
    core = client.CoreV1Api(admin)
    made = [n.metadata.name for n in core.list_namespace(
        label_selector="app.kubernetes.io/managed-by=meshgate,meshgate.io/run=rbacgate").items]
    assert made, "the suite created no namespace"
    rbac_api = client.RbacAuthorizationV1Api(admin)
    for ns in made:
        rb = rbac_api.read_namespaced_role_binding("meshgate-scenario", ns)
        assert rb.role_ref.name == "meshgate-scenario"
        assert [(s.kind, s.name, s.namespace) for s in rb.subjects] == [
            ("ServiceAccount", SUITE_SA, SUITE_NS)]
        core.delete_namespace(ns)


def test_failure_bundle_is_complete_with_only_deploy_rbac(admin: client.ApiClient,
                                                          suite_kubeconfig: Path,
                                                          suite_token: str,
                                                          tmp_path: Path) -> None:
    """A failing scenario's bundle (config dumps and logs of the sidecars and the gateway,
    events, istiod's sync status) needs no more than rbac.yaml: capture reports no error,
    and the Secrets it may list only to mask them are masked."""
    manifests = tmp_path / "manifests"
    shutil.copytree(REPO / "manifests", manifests)
    ingress = manifests / "ingress.yaml"
    ingress.write_text(ingress.read_text().replace("path: /login", "path: /login-moved"))
    code, out, _ = run_suite(suite_kubeconfig, tmp_path, "gate", "--manifests", str(manifests),
                             "-m", "ingress", "-k", "login", "--timeout-ingress", "2",
                             run_id="rbacbundle")
    shown = scrub(out, suite_token)
    assert code == 1 and "1 failed" in out, shown[-4000:]
    bundles = list((tmp_path / "artifacts" / "bundles" / "rbacbundle").iterdir())
    assert len(bundles) == 1, shown[-2000:]
    bundle = bundles[0]
    readme = (bundle / "README.txt").read_text()
    assert "capture errors" not in readme, readme
    for part in ("config_dumps", "logs"):  # the scenario's pods and the ingress gateway
        found = {p.relative_to(bundle / part).parts[0] for p in (bundle / part).rglob("*")
                 if p.is_file()}
        assert "istio-system" in found and any(n.startswith("mg-rbacbundle-") for n in found), \
            (part, found)
    assert json.loads((bundle / "istiod-syncz.json").read_text()) is not None
    assert (bundle / "events.json").exists()
    secrets = [v for doc in _manifest_docs(manifests) if doc["kind"] == "Secret"
               for v in (doc.get("stringData") or {}).values()]
    secrets += [base64.b64decode(v).decode() for doc in _manifest_docs(manifests)
                if doc["kind"] == "Secret" for v in (doc.get("data") or {}).values()]
    assert secrets
    for path in bundle.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            leaked = [s for s in secrets if len(s) >= 4 and s in text]
            assert not leaked, f"a Secret value reached {path.relative_to(bundle)}"
    core = client.CoreV1Api(admin)
    for ns in core.list_namespace(label_selector="meshgate.io/run=rbacbundle").items:
        core.delete_namespace(ns.metadata.name)


def _manifest_docs(directory: Path) -> list[dict]:
    return [d for f in sorted(directory.glob("*.yaml"))
            for d in yaml.safe_load_all(f.read_text()) if d]


def test_nightly_profile_passes_with_rbac_chaos(admin: client.ApiClient, mesh: Handle,
                                                suite_kubeconfig: Path, suite_token: str,
                                                tmp_path: Path) -> None:
    pod = client.CoreV1Api(admin).list_namespaced_pod(
        "istio-system", label_selector="app=istiod").items[0].metadata.name
    path = f"/api/v1/namespaces/istio-system/pods/{pod}?dryRun=All"
    code, body = http(admin, "DELETE", path, suite_token)
    assert code == 403, f"deploy/rbac.yaml alone must not let the suite delete pods there: {body}"
    apply(admin, rbac_documents("rbac-chaos.yaml", SUBJECT), tmp_path)
    assert http(admin, "DELETE", path, suite_token)[0] == 200
    code, out, seconds = run_suite(suite_kubeconfig, tmp_path, "nightly")
    shown = scrub(out, suite_token)
    assert code == 0, f"the nightly profile failed with rbac.yaml + rbac-chaos.yaml:\n" \
                      f"{shown[-6000:]}"
    assert " passed" in out and " failed" not in out and " deselected" not in out, \
        shown[-3000:]
    print(f"nightly profile as {SUITE_USER}: {out.strip().splitlines()[-1]} ({seconds:.1f}s)")


def test_kubectl_sees_the_suite_rbac(mesh: Handle, suite_kubeconfig: Path,
                                     tmp_path: Path) -> None:
    """What an admin checks with kubectl: who the token is, what it may do, and that
    impersonation (``--as``) needs the impersonate verb."""
    binary = require_kubectl(KUBECTL_VERSION)

    def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([binary, "--kubeconfig", str(kubeconfig), "--cache-dir",
                               str(tmp_path / "cache"), *args], capture_output=True,
                              text=True, timeout=60, check=False)

    made = kubectl(mesh.kubeconfig, "create", "token", SUITE_SA, "-n", SUITE_NS,
                   "--duration=1h")
    assert made.returncode == 0 and len(made.stdout.strip()) > 20, made.stderr
    who = kubectl(suite_kubeconfig, "auth", "whoami", "-o", "json")
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == SUITE_USER, who.stderr
    for args, allowed in [
        (("create", "namespaces"), True),
        (("bind", "clusterroles/meshgate-scenario"), True),
        (("bind", "clusterroles/cluster-admin"), False),
        (("create", "clusterrolebindings"), False),
        (("get", "services/prometheus:9090", "--subresource=proxy", "-n", "istio-system"),
         True),
        (("get", "services/grafana:3000", "--subresource=proxy", "-n", "istio-system"), False),
        (("delete", "pods", "-n", "kube-system"), False),
    ]:
        r = kubectl(suite_kubeconfig, "auth", "can-i", *args)
        assert (r.returncode == 0) is allowed and r.stdout.strip() == (
            "yes" if allowed else "no"), (args, r.stdout, r.stderr)
    r = kubectl(mesh.kubeconfig, "auth", "can-i", "create", "clusterrolebindings",
                f"--as={SUITE_USER}")
    assert r.stdout.strip() == "no", r.stderr
    r = kubectl(suite_kubeconfig, "get", "pods", "-n", "default", "--as=localmesh-admin")
    assert r.returncode != 0 and (
        f'users "localmesh-admin" is forbidden: User "{SUITE_USER}" cannot impersonate '
        'resource "users" in API group "" at the cluster scope') in r.stderr, r.stderr


def test_tokens_never_reach_logs_or_artifacts(mesh: Handle, admin_token: str,
                                              suite_token: str) -> None:
    """localmesh's log, and every output and artifact of the suite runs above, are free of
    the admin's and the suite's tokens."""
    searched = [mesh.state_dir / "localmesh.log"]
    for folder in RUN_FOLDERS:
        searched += [p for p in folder.rglob("*") if p.is_file()]
    assert len(searched) > 1
    for path in searched:
        text = path.read_text(errors="replace")
        assert admin_token not in text and suite_token not in text, \
            f"a bearer token reached {path}"

"""The kind and k3s targets and the Istio install: the commands and objects they produce.

No Docker, kind or istioctl is needed: the plans are pure functions, and the targets' thin
executors are driven with a fake runner that records each command. That the live targets
are unavailable on a machine without their tools, with a reason a user can act on, is
tests/integration/test_targets_live.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from meshgate import istio_install
from meshgate.istio_install import (
    GATEWAY_NODE_PORTS,
    WORKLOADS_IMAGE,
    Command,
    Executor,
    InstallOptions,
    Kube,
    addon_source,
    gateway_helm_values,
    ingress_class,
    install_plan,
    istio_operator,
    parse_istioctl_version,
    release_branch,
)
from meshgate.targets import TargetError, TargetUnavailable
from meshgate.targets import k3s as k3s_target
from meshgate.targets import kind as kind_target
from tests.support import REPO

ALL_TOOLS = {"docker", "kind", "kubectl", "istioctl", "helm"}


def which_all(tool: str) -> str | None:
    return f"/usr/local/bin/{tool}" if tool in ALL_TOOLS else None


class Recorder:
    """A fake subprocess.run: records argv and stdin; answers per command prefix."""

    def __init__(self, answers: dict[tuple[str, ...], tuple[int, str]] | None = None) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.answers = answers or {}

    def __call__(self, argv: list[str], *, input: str | None = None, **_: Any
                 ) -> subprocess.CompletedProcess[str]:
        self.calls.append((argv, input))
        for prefix, (code, out) in self.answers.items():
            if tuple(argv[:len(prefix)]) == prefix:
                return subprocess.CompletedProcess(argv, code, out, "" if code == 0 else out)
        return subprocess.CompletedProcess(argv, 0, "", "")

    def argvs(self) -> list[list[str]]:
        return [argv for argv, _ in self.calls]


def executor(recorder: Recorder, log: Path | None = None) -> Executor:
    return Executor(log=log, echo=None, runner=recorder)


# --------------------------------------------------------------------------- istio install


@pytest.mark.parametrize(("output", "version"), [
    ("client version: 1.27.3\n", "1.27.3"),
    ("1.22.0", "1.22.0"),
    ("no running Istio pods in \"istio-system\"\n1.26.5\n", "1.26.5"),
    ("client version: 1.28.0-beta.1", "1.28.0-beta.1"),
    ("garbage", None),
])
def test_istioctl_version_output_is_parsed(output: str, version: str | None) -> None:
    assert parse_istioctl_version(output) == version


def test_release_branch() -> None:
    assert release_branch("1.27.3") == "release-1.27"
    assert release_branch(None) == "master"


def test_addons_come_from_the_local_release_or_its_branch(tmp_path: Path) -> None:
    istio = tmp_path / "istio-1.27.3"
    (istio / "bin").mkdir(parents=True)
    (istio / "bin" / "istioctl").write_text("")
    (istio / "samples" / "addons").mkdir(parents=True)
    (istio / "samples" / "addons" / "prometheus.yaml").write_text("kind: List\n")
    local = InstallOptions.from_environ({"MESHGATE_ISTIO_VERSION": "1.27.3"},
                                        str(istio / "bin" / "istioctl"))
    assert addon_source("prometheus", local) == str(
        (istio / "samples" / "addons" / "prometheus.yaml").resolve())
    assert addon_source("kiali", local) == ("https://raw.githubusercontent.com/istio/istio/"
                                            "release-1.27/samples/addons/kiali.yaml")


def test_install_options_from_the_environment() -> None:
    options = InstallOptions.from_environ({"MESHGATE_ISTIO_INSTALLER": "Helm",
                                           "MESHGATE_ISTIO_ADDONS": "prometheus"})
    assert (options.installer, options.addons, options.version) == ("helm", ("prometheus",),
                                                                    None)
    with pytest.raises(TargetError, match="MESHGATE_ISTIO_INSTALLER='kubectl'"):
        InstallOptions.from_environ({"MESHGATE_ISTIO_INSTALLER": "kubectl"})


def test_istio_operator_makes_the_gateway_a_fixed_nodeport() -> None:
    op = istio_operator(InstallOptions())
    assert op["kind"] == "IstioOperator" and op["spec"]["profile"] == "demo"
    assert op["spec"]["meshConfig"]["accessLogFile"] == "/dev/stdout"
    (gateway,) = op["spec"]["components"]["ingressGateways"]
    service = gateway["k8s"]["service"]
    assert gateway["name"] == "istio-ingressgateway" and service["type"] == "NodePort"
    http2 = next(p for p in service["ports"] if p["name"] == "http2")
    assert http2 == {"name": "http2", "port": 80, "targetPort": 8080, "protocol": "TCP",
                     "nodePort": 30080}
    helm_http2 = next(p for p in gateway_helm_values(InstallOptions())["service"]["ports"]
                      if p["name"] == "http2")
    assert helm_http2["targetPort"] == 80 and helm_http2["nodePort"] == 30080


def test_ingress_class_matches_the_suites_manifest() -> None:
    docs = list(yaml.safe_load_all((REPO / "manifests" / "ingress.yaml").read_text()))
    committed = next(d for d in docs if d["kind"] == "IngressClass")
    assert ingress_class() == committed


def test_the_istioctl_plan_in_order(tmp_path: Path) -> None:
    kube = Kube(tmp_path / "kc", "kind-meshgate-x")
    options = InstallOptions(version="1.27.3")
    plan = install_plan(kube, options, tmp_path / "op.yaml")
    argvs = [c.argv for c in plan]
    flags = ("--kubeconfig", str(tmp_path / "kc"), "--context", "kind-meshgate-x")
    assert argvs[0] == ("istioctl", "install", *flags, "--set", "profile=demo", "-f",
                        str(tmp_path / "op.yaml"), "-y")
    assert argvs[1] == ("kubectl", *flags, "apply", "-f", "https://raw.githubusercontent.com/"
                        "istio/istio/release-1.27/samples/addons/prometheus.yaml")
    assert argvs[2][-1].endswith("release-1.27/samples/addons/kiali.yaml")
    waits = [a[-2] for a in argvs if "rollout" in a]
    assert waits == ["deployment/istiod", "deployment/istio-ingressgateway",
                     "deployment/prometheus", "deployment/kiali"]
    assert argvs[-1] == ("kubectl", *flags, "apply", "-f", "-")
    assert yaml.safe_load(plan[-1].stdin or "") == ingress_class()
    assert all(c.why and c.timeout > 0 for c in plan)


def test_the_helm_plan(tmp_path: Path) -> None:
    kube = Kube(tmp_path / "kc", "ctx")
    options = InstallOptions(version="1.27.3", installer="helm")
    argvs = [c.argv for c in install_plan(kube, options, tmp_path / "values.yaml")]
    assert argvs[0][:3] == ("helm", "repo", "add")
    charts = [a[3:5] for a in argvs if a[:3] == ("helm", "upgrade", "--install")]
    assert charts == [("istio-base", "istio/base"), ("istiod", "istio/istiod"),
                      ("istio-ingressgateway", "istio/gateway")]
    istiod = next(a for a in argvs if "istio/istiod" in a)
    assert "--kube-context" in istiod and "--version" in istiod and "profile=demo" in istiod
    assert not any(a[0] == "istioctl" for a in argvs)


def test_executor_reports_the_failing_step_with_its_output(tmp_path: Path) -> None:
    recorder = Recorder({("kubectl",): (1, "line 1\nerror: the server is unreachable\n")})
    log = tmp_path / "target.log"
    with pytest.raises(TargetError) as caught:
        executor(recorder, log).run(Command(("kubectl", "apply", "-f", "x"), "install X"))
    message = str(caught.value)
    assert message.startswith("cannot install X: `kubectl apply -f x` exited with 1")
    assert "error: the server is unreachable" in message and str(log) in message
    assert "$ kubectl apply -f x" in log.read_text()


def test_executor_names_a_missing_tool() -> None:
    def missing(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(argv[0])

    with pytest.raises(TargetError, match="cannot build it: kind is not on the PATH"):
        Executor(runner=missing).run(Command(("kind", "version"), "build it"))


# --------------------------------------------------------------------------- kind


def test_kind_config_maps_every_gateway_node_port_to_loopback() -> None:
    mappings = kind_target.host_port_mappings(kind_target.load_kind_config())
    for name, port in GATEWAY_NODE_PORTS.items():
        assert mappings.get(port) == ("127.0.0.1", port), f"{name} nodePort {port} unmapped"
    config = yaml.safe_load((REPO / "deploy" / "kind.yaml").read_text())
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"


@pytest.mark.parametrize(("run_id", "name"), [
    ("11251200abcd", "meshgate-11251200abcd"),
    ("Run_ID with spaces", "meshgate-run-id-with-spaces"),
    ("x" * 80, "meshgate-" + "x" * 31),
])
def test_cluster_names_are_valid_kind_names(run_id: str, name: str) -> None:
    assert kind_target.cluster_name(run_id) == name


def test_kind_plan_for_a_new_cluster(tmp_path: Path) -> None:
    env = {"MESHGATE_RUN_ID": "11251200abcd", "MESHGATE_ISTIO_VERSION": "1.27.3"}
    plan = kind_target.plan(tmp_path, env)
    kubeconfig = tmp_path / "kind-meshgate-11251200abcd.kubeconfig"
    assert plan.name == "meshgate-11251200abcd" and plan.context == "kind-meshgate-11251200abcd"
    assert plan.create is not None and plan.create.argv == (
        "kind", "create", "cluster", "--name", "meshgate-11251200abcd", "--config",
        str(REPO / "deploy" / "kind.yaml"), "--kubeconfig", str(kubeconfig), "--wait", "180s")
    assert plan.install[0].argv[:2] == ("istioctl", "install")
    assert plan.overlay == tmp_path / "istio-operator.yaml"
    assert plan.overlay_document == istio_operator(plan.options)
    assert [c.argv for c in plan.image] == [
        ("docker", "build", "-t", WORKLOADS_IMAGE, str(REPO / "workloads")),
        ("kind", "load", "docker-image", WORKLOADS_IMAGE, "--name", "meshgate-11251200abcd"),
    ]
    assert plan.delete is not None and plan.delete.argv[:4] == ("kind", "delete", "cluster",
                                                                "--name")
    assert plan.ingress_url == "http://127.0.0.1:30080"
    assert plan.commands()[0] == plan.create


def test_kind_plan_reusing_keeping_and_skipping(tmp_path: Path) -> None:
    reuse = kind_target.plan(tmp_path, {"MESHGATE_KIND_CLUSTER": "dev",
                                        "MESHGATE_SKIP_INSTALL": "1"})
    assert reuse.reuse and reuse.name == "dev" and reuse.create is None
    assert reuse.delete is None and reuse.install == [] and reuse.image == []
    keep = kind_target.plan(tmp_path, {"MESHGATE_KEEP_CLUSTER": "true",
                                       "MESHGATE_KIND_NODE_IMAGE": "kindest/node:v1.33.1"})
    assert keep.delete is None and keep.create is not None
    assert keep.create.argv[-2:] == ("--image", "kindest/node:v1.33.1")
    helm = kind_target.plan(tmp_path, {"MESHGATE_ISTIO_INSTALLER": "helm"})
    assert helm.overlay.name == "gateway-values.yaml" and helm.install[0].argv[0] == "helm"


def test_the_workloads_image_is_the_one_the_manifests_use() -> None:
    images = set()
    for path in (REPO / "manifests").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Deployment":
                images |= {c["image"] for c in doc["spec"]["template"]["spec"]["containers"]}
    assert images == {WORKLOADS_IMAGE}
    assert (kind_target.WORKLOADS_CONTEXT / "Dockerfile").is_file()


def _kind(tmp_path: Path, recorder: Recorder, env: dict[str, str] | None = None,
          which: Callable[[str], str | None] = which_all) -> kind_target.KindTarget:
    return kind_target.KindTarget(state_dir=tmp_path / "state", environ=env or {
        "MESHGATE_RUN_ID": "r1"}, which=which, executor=executor(recorder))


def test_kind_without_its_tools_is_unavailable_and_says_which(tmp_path: Path) -> None:
    target = _kind(tmp_path, Recorder(), which=lambda t: None if t in ("kind", "istioctl")
                   else f"/bin/{t}")
    with pytest.raises(TargetUnavailable, match=r"needs kind, istioctl on the PATH"):
        target.start()


def test_kind_without_a_docker_engine_is_unavailable(tmp_path: Path) -> None:
    recorder = Recorder({("docker", "info"): (1, "Cannot connect to the Docker daemon")})
    with pytest.raises(TargetUnavailable, match="Cannot connect to the Docker daemon"):
        _kind(tmp_path, recorder).start()
    assert recorder.argvs() == [["docker", "info", "--format", "{{.ServerVersion}}"]]


def test_kind_start_runs_the_plan_and_stop_deletes(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESHGATE_INGRESS_URL", raising=False)
    recorder = Recorder({("istioctl", "version"): (0, "client version: 1.27.3")})
    target = _kind(tmp_path, recorder, {"MESHGATE_RUN_ID": "r1",
                                        "MESHGATE_ISTIO_VERSION": "1.27.3"})
    provided = target.start()
    argvs = recorder.argvs()
    assert argvs[0][:2] == ["docker", "info"] and argvs[1][:2] == ["istioctl", "version"]
    assert argvs[2][:3] == ["kind", "create", "cluster"]
    assert argvs[3][:2] == ["istioctl", "install"]
    assert argvs[-2][:2] == ["docker", "build"] and argvs[-1][:3] == ["kind", "load",
                                                                      "docker-image"]
    overlay = yaml.safe_load((tmp_path / "state" / "istio-operator.yaml").read_text())
    assert overlay == istio_operator(InstallOptions(version="1.27.3"))
    assert provided.kubeconfig == tmp_path / "state" / "kind-meshgate-r1.kubeconfig"
    assert provided.context == "kind-meshgate-r1"
    assert "kind cluster meshgate-r1 (created, Istio 1.27.3 via istioctl" in provided.description
    assert os.environ["MESHGATE_INGRESS_URL"] == "http://127.0.0.1:30080"
    target.stop()
    assert recorder.argvs()[-1][:4] == ["kind", "delete", "cluster", "--name"]
    target.stop()  # idempotent
    assert recorder.argvs()[-2][:3] != ["kind", "delete", "cluster"]


def test_kind_deletes_the_cluster_when_the_install_fails(tmp_path: Path) -> None:
    recorder = Recorder({("istioctl", "install"): (1, "Error: failed to install manifests")})
    with pytest.raises(TargetError, match="cannot install Istio with istioctl"):
        _kind(tmp_path, recorder).start()
    assert recorder.argvs()[-1][:3] == ["kind", "delete", "cluster"]


def test_kind_refuses_an_istioctl_of_another_version(tmp_path: Path) -> None:
    recorder = Recorder({("istioctl", "version"): (0, "client version: 1.26.5")})
    target = _kind(tmp_path, recorder, {"MESHGATE_ISTIO_VERSION": "1.27.3"})
    with pytest.raises(TargetError, match=r"istioctl on the PATH is 1\.26\.5 but "
                                          r"MESHGATE_ISTIO_VERSION=1\.27\.3"):
        target.start()
    assert not any(a[:2] == ["kind", "create"] for a in recorder.argvs())


def test_kind_reuses_an_existing_cluster(tmp_path: Path) -> None:
    recorder = Recorder({("kind", "get", "kubeconfig"): (0, "apiVersion: v1\nkind: Config\n")})
    target = _kind(tmp_path, recorder, {"MESHGATE_KIND_CLUSTER": "dev",
                                        "MESHGATE_SKIP_INSTALL": "1"})
    provided = target.start()
    assert provided.kubeconfig.read_text().startswith("apiVersion: v1")
    target.stop()
    assert not any(a[:2] == ["kind", "delete"] or a[:2] == ["kind", "create"]
                   for a in recorder.argvs())


# --------------------------------------------------------------------------- k3s


def test_k3s_container_spec() -> None:
    spec = k3s_target.container_spec({})
    assert spec.image == k3s_target.DEFAULT_IMAGE
    assert "--disable traefik" in spec.command
    assert spec.bind_ports == {30021: ("127.0.0.1", 30021), 30080: ("127.0.0.1", 30080),
                               30443: ("127.0.0.1", 30443)}
    assert k3s_target.container_spec({"MESHGATE_K3S_IMAGE": "rancher/k3s:v1.31.1-k3s1"}
                                     ).image == "rancher/k3s:v1.31.1-k3s1"


def test_k3s_kubeconfig_points_at_the_mapped_port() -> None:
    raw = yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": [
        {"name": "default", "cluster": {"server": "https://127.0.0.1:6443",
                                        "certificate-authority-data": "x"}}]})
    out = yaml.safe_load(k3s_target.kubeconfig_for_host(raw, "localhost", 49153))
    assert out["clusters"][0]["cluster"]["server"] == "https://localhost:49153"
    assert out["clusters"][0]["cluster"]["certificate-authority-data"] == "x"


def test_k3s_image_import_commands(tmp_path: Path) -> None:
    commands = k3s_target.image_import_commands("abc123", tmp_path / "w.tar")
    assert [c.argv for c in commands] == [
        ("docker", "save", "-o", str(tmp_path / "w.tar"), WORKLOADS_IMAGE),
        ("docker", "cp", str(tmp_path / "w.tar"), "abc123:/tmp/meshgate-workloads.tar"),
        ("docker", "exec", "abc123", "k3s", "ctr", "-n", "k8s.io", "images", "import",
         "/tmp/meshgate-workloads.tar"),
    ]


def test_k3s_without_docker_or_tools_is_unavailable(tmp_path: Path) -> None:
    target = k3s_target.K3sTarget(state_dir=tmp_path, docker_check=lambda: "no socket",
                                  modules_check=list)
    with pytest.raises(TargetUnavailable, match=r"needs a Docker engine .*\(no socket\)"):
        target.start()
    target = k3s_target.K3sTarget(state_dir=tmp_path, docker_check=lambda: None,
                                  modules_check=list,
                                  which=lambda t: None if t == "istioctl" else f"/bin/{t}",
                                  environ={})
    with pytest.raises(TargetUnavailable, match="needs istioctl on the PATH"):
        target.start()
    target.stop()  # nothing started, nothing to stop


# --------------------------------------------------------------------------- RBAC


def _rbac() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((REPO / "deploy" / "rbac.yaml").read_text()) if d]


def _rules(kind: str, name: str) -> list[dict[str, Any]]:
    return next(d for d in _rbac() if d["kind"] == kind and d["metadata"]["name"] == name
                )["rules"]


def _allows(rules: list[dict[str, Any]], group: str, resource: str, verb: str,
            name: str | None = None) -> bool:
    for rule in rules:
        if group in rule["apiGroups"] and resource in rule["resources"] \
                and verb in rule["verbs"]:
            names = rule.get("resourceNames")
            if not names or name in names:
                return True
    return False


def test_rbac_grants_what_the_suite_does() -> None:
    suite = _rules("ClusterRole", "meshgate-suite")
    for verb in ("get", "list", "create", "patch", "delete"):
        assert _allows(suite, "", "namespaces", verb)
    assert _allows(suite, "networking.k8s.io", "ingressclasses", "create")
    assert _allows(suite, "rbac.authorization.k8s.io", "clusterroles", "bind",
                   "meshgate-scenario")
    assert not _allows(suite, "rbac.authorization.k8s.io", "clusterroles", "bind", "admin")
    scenario = _rules("ClusterRole", "meshgate-scenario")
    for resource in ("deployments", "services", "secrets", "configmaps", "pods", "endpoints",
                     "events"):
        group = "apps" if resource == "deployments" else ""
        for verb in ("get", "list", "watch"):
            assert _allows(scenario, group, resource, verb), (resource, verb)
    for resource in ("pods/exec", "pods/portforward"):
        assert _allows(scenario, "", resource, "create")
    assert _allows(scenario, "", "pods/log", "get")
    for resource in ("virtualservices", "gateways", "destinationrules"):
        assert _allows(scenario, "networking.istio.io", resource, "patch")
    assert _allows(scenario, "networking.k8s.io", "ingresses", "create")
    istio = _rules("Role", "meshgate-istio-system")
    for service in ("prometheus:9090", "kiali:20001", "istiod:15014"):
        assert _allows(istio, "", "services/proxy", "get", service)
    assert not _allows(istio, "", "services/proxy", "get", "kubernetes-dashboard:443")
    assert _allows(istio, "", "pods/exec", "create") and _allows(istio, "", "pods", "list")
    # OpenShift: the suite's Routes to the gateway, its namespaces' ServiceMeshMembers,
    # the ReplicaSets whose refusal it reports; never the shared member roll.
    for verb in ("create", "get", "list", "delete"):
        assert _allows(istio, "route.openshift.io", "routes", verb)
    assert _allows(istio, "route.openshift.io", "routes/custom-host", "create")
    for verb in ("create", "get", "delete"):
        assert _allows(scenario, "maistra.io", "servicemeshmembers", verb)
    assert _allows(scenario, "apps", "replicasets", "list")
    assert _allows(suite, "config.openshift.io", "clusterversions", "get", "version")
    assert _allows(suite, "config.openshift.io", "ingresses", "get", "cluster")
    assert _allows(suite, "", "configmaps", "get", "default-ingress-cert")
    assert not _allows(suite, "", "configmaps", "get", "kube-root-ca.crt")


def test_rbac_is_least_privilege() -> None:
    for doc in _rbac():
        for rule in doc.get("rules") or []:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], f"{doc['metadata']['name']}: wildcard {key}"
            assert not {"escalate", "impersonate"} & set(rule["verbs"])
    scenario = _rules("ClusterRole", "meshgate-scenario")
    # The workloads' objects go with their namespace: delete only for what a scenario
    # applies for itself and removes when it ends (ingress overlays, security policies;
    # deploy/rbac.yaml says which code does it) and its namespace's ServiceMeshMember
    # (leaving OSSM 2.x before the namespace goes).
    scenario_scoped = {"virtualservices", "gateways", "destinationrules", "httproutes",
                       "grpcroutes", "peerauthentications", "authorizationpolicies",
                       "servicemeshmembers"}
    deletable = {res for r in scenario if "delete" in r["verbs"] for res in r["resources"]}
    assert deletable <= scenario_scoped, deletable - scenario_scoped
    # ... and only in the config groups.
    scenario_config = {"networking.istio.io", "gateway.networking.k8s.io", "security.istio.io",
                       "maistra.io"}
    assert all(set(r["apiGroups"]) <= scenario_config
               for r in scenario if "delete" in r["verbs"])
    for doc in _rbac():
        for rule in doc.get("rules") or []:
            # The member roll is shared by every team on the mesh: the suite never edits it.
            assert "servicemeshmemberrolls" not in rule["resources"], doc["metadata"]["name"]
    bindings = [d for d in _rbac() if d["kind"] == "ClusterRoleBinding"]
    assert [b["roleRef"]["name"] for b in bindings] == ["meshgate-suite"]


@pytest.mark.parametrize("name", ["rbac.yaml", "rbac-guard.yaml"])
def test_deploy_manifests_are_valid_kubernetes(name: str) -> None:
    for doc in yaml.safe_load_all((REPO / "deploy" / name).read_text()):
        if doc:
            kubernetes_validate.validate(doc, "1.33", strict=True)


def test_istio_install_module_exports_are_real() -> None:
    for name in istio_install.__all__:
        assert hasattr(istio_install, name), name


def test_k3s_without_its_python_packages_names_the_extra(tmp_path: Path) -> None:
    """testcontainers and docker are an optional extra: without them, the target says which
    extra to install before it looks for a Docker engine."""
    assert k3s_target.missing_modules(lambda name: None) == ["testcontainers", "docker"]
    assert k3s_target.missing_modules(lambda name: object()) == []
    target = k3s_target.K3sTarget(state_dir=tmp_path, modules_check=lambda: ["testcontainers"],
                                  docker_check=lambda: pytest.fail("looked for Docker first"))
    with pytest.raises(TargetUnavailable) as caught:
        target.start()
    message = str(caught.value)
    assert "needs the Python packages testcontainers (meshgate's `containers` extra)" in message
    assert "pip install -e '.[containers]'" in message and "--target local" in message


def test_k3s_container_import_is_lazy_and_names_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """meshgate.targets.k3s imports without testcontainers; building the container without
    it says what to install."""
    monkeypatch.setitem(sys.modules, "testcontainers", None)  # import fails as if absent
    monkeypatch.setitem(sys.modules, "testcontainers.community", None)
    monkeypatch.setitem(sys.modules, "testcontainers.community.k3s", None)
    with pytest.raises(TargetUnavailable, match=r"pip install -e '\.\[containers\]'"):
        k3s_target.build_container(k3s_target.container_spec({}))


@pytest.mark.parametrize(("data_plane", "shape"), [
    ("auto", {}), ("sidecar", {}), ("ambient", {"mesh": "ambient"}),
    ("waypoint", {"mesh": "ambient"}), ("mixed", {"mesh": "ambient"}),
])
def test_the_local_target_boots_the_mesh_the_data_plane_needs(tmp_path: Path, data_plane: str,
                                                               shape: dict) -> None:
    from meshgate.targets import make
    from meshgate.targets.local import LocalTarget

    target = make("local", kubeconfig=None, context=None, state_dir=tmp_path,
                  data_plane=data_plane)
    assert isinstance(target, LocalTarget) and target.shape == shape

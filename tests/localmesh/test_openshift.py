"""``localmesh up --flavor openshift --ossm 2``, as a client sees it: kubectl and curl only.

Routes served by the HAProxy router (host generation, Admitted, HostAlreadyClaimed, edge
TLS and its insecure policies), Projects, SecurityContextConstraints admission with
OpenShift's message, and OpenShift Service Mesh 2's member roll: only members are in the
mesh, and there only pods that opt in.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from localmesh.shape import Shape
from tests.localmesh.openshift_support import Cluster, admitted, through_router
from tests.support import boot_localmesh, needs_haproxy, needs_prometheus, poll

pytestmark = [needs_haproxy, needs_prometheus]

DOMAIN = "apps.localmesh.test"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with boot_localmesh(tmp_path_factory.mktemp("ossm2"), mesh=True,
                        shape=Shape(flavor="openshift", ossm="2")) as handle:
        yield Cluster(handle)


def _namespace(cluster: Cluster, prefix: str, *, member: bool) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    if member:
        roll = cluster.json("get", "smmr", "-n", "istio-system", "default")
        members = [*(roll["spec"].get("members") or []), name]
        cluster.kubectl("patch", "smmr", "default", "-n", "istio-system", "--type", "merge",
                        "-p", json.dumps({"spec": {"members": members}}))
        poll(lambda: (cluster.json("get", "namespace", name)["metadata"].get("labels") or {})
             .get("maistra.io/member-of") == "istio-system",
             what=f"the member roll labels {name}", timeout=10)
    return name


@pytest.fixture(scope="module")
def member(cluster: Cluster) -> str:
    """A member namespace running composer, its pods opting in to the sidecar."""
    name = _namespace(cluster, "member", member=True)
    cluster.deploy(name, "composer", {"sidecar.istio.io/inject": "true"})
    return name


def test_openshift_apis_are_discovered_as_the_suite_detects_them(cluster: Cluster) -> None:
    resources = cluster.kubectl("api-resources", "-o", "name").stdout.split()
    for wanted in ("routes.route.openshift.io", "projects.project.openshift.io",
                   "securitycontextconstraints.security.openshift.io",
                   "clusterversions.config.openshift.io", "servicemeshmemberrolls.maistra.io",
                   "servicemeshcontrolplanes.maistra.io"):
        assert wanted in resources
    assert cluster.json("get", "ingresses.config.openshift.io", "cluster")["spec"][
        "domain"] == DOMAIN
    version = cluster.json("get", "clusterversion", "version")
    assert version["status"]["desired"]["version"].startswith("4.")


def test_a_route_for_composer_is_admitted_and_login_answers_through_haproxy(
        cluster: Cluster, member: str) -> None:
    cluster.apply(member, """
apiVersion: route.openshift.io/v1
kind: Route
metadata: {name: composer}
spec:
  to: {kind: Service, name: composer}
  port: {targetPort: http}
""")
    route = admitted(cluster, member, "composer")
    host = f"composer-{member}.{DOMAIN}"
    assert route["spec"]["host"] == host
    assert route["metadata"]["annotations"]["openshift.io/host.generated"] == "true"
    [ingress] = route["status"]["ingress"]
    assert ingress["conditions"][0]["type"] == "Admitted"
    assert ingress["conditions"][0]["status"] == "True"
    assert ingress["routerCanonicalHostname"] == f"router-default.{DOMAIN}"
    status, body = poll(lambda: (answer := through_router(cluster, host, "/login"))[0] == 200
                        and answer, what=f"GET http://{host}/login through the router",
                        timeout=20)
    assert "Composer" in body
    # HAProxy serves it, from the map the router's template writes.
    routes_map = cluster.kubectl("exec", "-n", "openshift-ingress", "deploy/router-default",
                                 "--", "sh", "-c", 'cat "$HOME/haproxy/os_http_be.map"').stdout
    assert f"be_http:{member}:composer" in routes_map
    # A host no Route claims gets the router's own 503 page.
    status, body = through_router(cluster, f"nobody.{DOMAIN}", "/")
    assert status == 503 and "Application is not available" in body


def test_a_second_route_for_a_host_is_rejected_as_openshift_words_it(
        cluster: Cluster, member: str) -> None:
    host = f"claimed-{member}.{DOMAIN}"
    route = f"""
apiVersion: route.openshift.io/v1
kind: Route
metadata: {{name: first}}
spec:
  host: {host}
  to: {{kind: Service, name: composer}}
"""
    cluster.apply(member, route)
    admitted(cluster, member, "first")
    cluster.apply(member, route.replace("first", "second"))
    other = _namespace(cluster, "other", member=False)
    cluster.apply(other, route.replace("first", "third"))
    second = admitted(cluster, member, "second")["status"]["ingress"][0]["conditions"][0]
    third = admitted(cluster, other, "third")["status"]["ingress"][0]["conditions"][0]
    assert (second["status"], second["reason"]) == ("False", "HostAlreadyClaimed")
    assert second["message"] == f"route first already exposes {host} and is older"
    assert (third["status"], third["reason"]) == ("False", "HostAlreadyClaimed")
    assert third["message"] == f"a route in another namespace holds host {host}"


def test_an_edge_route_terminates_tls_and_redirects_plain_http(
        cluster: Cluster, member: str, tmp_path: Path) -> None:
    host = f"secure-{member}.{DOMAIN}"
    cluster.apply(member, f"""
apiVersion: route.openshift.io/v1
kind: Route
metadata: {{name: secure}}
spec:
  host: {host}
  path: /login
  to: {{kind: Service, name: composer}}
  tls: {{termination: edge, insecureEdgeTerminationPolicy: Redirect}}
""")
    admitted(cluster, member, "secure")
    ca = tmp_path / "ingress-ca.crt"
    ca.write_text(cluster.json("get", "configmap", "-n", "openshift-config-managed",
                               "default-ingress-cert")["data"]["ca-bundle.crt"])
    status, _ = poll(lambda: (a := through_router(cluster, host, "/login", https=True,
                                                  cacert=ca))[0] == 200 and a,
                     what=f"GET https://{host}/login with the ingress CA", timeout=20)
    status, _ = through_router(cluster, host, "/login", extra=("-o", "/dev/null"))
    assert status == 302, "Redirect sends plain HTTP to https"
    status, _ = through_router(cluster, host, "/elsewhere", https=True, cacert=ca)
    assert status == 503, "the route's path is /login only"


def test_a_project_request_creates_a_namespace_with_its_ranges(cluster: Cluster) -> None:
    name = f"project-{uuid.uuid4().hex[:5]}"
    created = json.loads(cluster.kubectl("create", "-o", "json", "-f", "-", input=json.dumps({
        "apiVersion": "project.openshift.io/v1", "kind": "ProjectRequest",
        "metadata": {"name": name}, "displayName": "A project"})).stdout)
    assert created["kind"] == "Project" and created["status"]["phase"] == "Active"
    namespace = cluster.json("get", "namespace", name)["metadata"]["annotations"]
    assert namespace["openshift.io/display-name"] == "A project"
    assert namespace["openshift.io/requester"]
    first, size = namespace["openshift.io/sa.scc.uid-range"].split("/")
    assert int(first) >= 1000000000 and size == "10000"
    assert namespace["openshift.io/sa.scc.mcs"].startswith("s0:c")
    names = [p["metadata"]["name"] for p in cluster.json("get", "projects")["items"]]
    assert name in names and "default" in names
    cluster.kubectl("delete", "project", name)
    poll(lambda: cluster.kubectl("get", "namespace", name, check=False).returncode != 0,
         what=f"namespace {name} gone with its project", timeout=20)


def test_restricted_v2_refuses_uid_0_with_openshifts_message_and_constrains_the_rest(
        cluster: Cluster) -> None:
    ns = _namespace(cluster, "scc", member=False)
    deployment = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: NAME}
spec:
  selector: {matchLabels: {app: NAME}}
  template:
    metadata: {labels: {app: NAME}}
    spec:
      containers:
      - name: main
        image: busybox:1.36
        command: [sleep, "3600"]
        SECURITY
"""
    cluster.apply(ns, deployment.replace("NAME", "root").replace(
        "SECURITY", "securityContext: {runAsUser: 0}"))
    cluster.apply(ns, deployment.replace("NAME", "plain").replace("SECURITY", ""))
    uid_range = cluster.json("get", "namespace", ns)["metadata"]["annotations"][
        "openshift.io/sa.scc.uid-range"]
    first = int(uid_range.split("/")[0])

    def refusal() -> str | None:
        events = cluster.json("get", "events", "-n", ns,
                              "--field-selector", "reason=FailedCreate")["items"]
        return events[0]["message"] if events else None

    message = poll(refusal, what="the ReplicaSet's FailedCreate event", timeout=20)
    assert message.startswith('Error creating: pods "root-')
    assert "is forbidden: unable to validate against any security context constraint: [" \
        in message
    assert 'provider "anyuid": Forbidden: not usable by user or serviceaccount' in message
    assert (f"provider restricted-v2: .containers[0].runAsUser: Invalid value: 0: must be "
            f"in the ranges: [{first}, {first + 9999}]") in message
    pod = poll(lambda: cluster.json("get", "pods", "-n", ns, "-l", "app=plain")["items"],
               what="the compliant pod", timeout=20)[0]
    assert pod["metadata"]["annotations"]["openshift.io/scc"] == "restricted-v2"
    sc = pod["spec"]["containers"][0]["securityContext"]
    assert sc["runAsUser"] == first and sc["runAsNonRoot"] is True
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["allowPrivilegeEscalation"] is False
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_only_members_that_opt_in_get_a_sidecar(cluster: Cluster, member: str) -> None:
    outsider = _namespace(cluster, "outsider", member=False)
    cluster.deploy(outsider, "composer", {"sidecar.istio.io/inject": "true"})
    injected = cluster.pod(member, "app=composer")
    names = [c["name"] for c in injected["spec"].get("initContainers") or []]
    assert names[:2] == ["istio-validation", "istio-proxy"]
    status = json.loads(injected["metadata"]["annotations"]["sidecar.istio.io/status"])
    assert status["initContainers"] == ["istio-validation", "istio-proxy"]
    uid_range = cluster.json("get", "namespace", member)["metadata"]["annotations"][
        "openshift.io/sa.scc.uid-range"]
    last = int(uid_range.split("/")[0]) + 9999
    proxy = next(c for c in injected["spec"]["initContainers"] if c["name"] == "istio-proxy")
    assert proxy["securityContext"]["runAsUser"] == last
    assert injected["metadata"]["annotations"]["openshift.io/scc"] == "restricted-v2"
    plain = cluster.pod(outsider, "app=composer")
    assert "sidecar.istio.io/status" not in plain["metadata"].get("annotations", {})
    assert [c["name"] for c in plain["spec"]["containers"]] == ["composer"]
    roll = cluster.json("get", "smmr", "-n", "istio-system", "default")["status"]
    assert member in roll["configuredMembers"] and outsider not in roll["members"]
    assert roll["conditions"][0]["type"] == "Ready"
    # In a member namespace a pod that does not opt in stays out of the mesh.
    cluster.kubectl("run", "-n", member, "bystander", "--image=busybox:1.36", "--",
                    "sleep", "3600")
    bystander = cluster.json("get", "pod", "-n", member, "bystander")
    assert "sidecar.istio.io/status" not in bystander["metadata"].get("annotations", {})


def test_a_member_sidecar_has_no_routes_to_a_non_member(cluster: Cluster,
                                                        member: str) -> None:
    outsider = _namespace(cluster, "hidden", member=False)
    cluster.apply(outsider, """
apiVersion: v1
kind: Service
metadata: {name: hidden}
spec:
  selector: {app: hidden}
  ports: [{name: http, port: 8080}]
""")
    pod = cluster.pod(member, "app=composer")["metadata"]["name"]

    def vhosts() -> str:
        return cluster.kubectl("exec", "-n", member, pod, "-c", "istio-proxy", "--",
                               "pilot-agent", "request", "GET",
                               "config_dump?resource=dynamic_route_configs").stdout

    dump = poll(lambda: (d := vhosts()) and f"composer.{member}.svc" in d and d,
                what="the member's route table", timeout=20)
    assert f"hidden.{outsider}.svc.cluster.local" not in dump

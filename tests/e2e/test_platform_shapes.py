"""The suite on the seed's platforms, through ``--target kubeconfig`` as on a real cluster:
OpenShift with OpenShift Service Mesh 2 (members by ServiceMeshMember, opt-in injection,
the ingress through a Route and the HAProxy router), OpenShift Service Mesh 3, and the
Mixer-era mesh (the mixer's log and metrics, the servicegraph addon). And the bad input
OpenShift adds: a member the suite may not create, a Route host already claimed, a
manifest the SCCs refuse — each one message naming the object and the fix.

Kept few: one localmesh per shape, the smoke scenarios (the whole gate runs in the
ordinary e2e of the default shape), plus the scenarios each shape is about.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from localmesh.cli import Handle
from localmesh.shape import Shape
from meshgate import ingress, manifests, membership, namespaces, rollout
from meshgate.cluster import Cluster, ClusterError
from meshgate.mesh import Gateway, discover
from meshgate.waiting import Timeouts, Unrecoverable, Waits
from tests.support import REPO, boot_localmesh, child_env, needs_prometheus, poll

pytestmark = needs_prometheus

OSSM2_HEADER = ("meshgate: platform: OpenShift 4.20.0, OpenShift Service Mesh 2.6 "
                "(ServiceMeshControlPlane basic); Istio 1.28.0 in istio-system")


def run_suite(kubeconfig: Path, tmp: Path, *args: str) -> tuple[int, str]:
    r = subprocess.run(
        [sys.executable, "-m", "meshgate", "run", "--target", "kubeconfig", "--kubeconfig",
         str(kubeconfig), "--", "-p", "no:cacheprovider", "--no-html-report",
         f"--artifacts={tmp}", "-rs", *args],
        cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=600)
    return r.returncode, r.stdout + r.stderr


@pytest.fixture(scope="module")
def ossm2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handle]:
    with boot_localmesh(tmp_path_factory.mktemp("ossm2"), mesh=True,
                        shape=Shape(flavor="openshift", ossm="2")) as handle:
        yield handle


def test_ossm2_members_opt_in_and_the_ingress_through_a_route(ossm2: Handle,
                                                              tmp_path: Path) -> None:
    """The smoke gate passes; kept, its namespace shows how: a ServiceMeshMember and the
    operator's label, pods opting in with their sidecars, a Route of the scenario's host
    to the gateway that the router admitted. The suite's cleanup then removes all of it,
    and the member roll lets the namespace go."""
    code, out = run_suite(ossm2.kubeconfig, tmp_path, "-m", "smoke", "--keep", "always")
    assert code == 0, out[-4000:]
    assert OSSM2_HEADER in out
    kept = re.search(r"kept namespace (\S+) \(--keep=always\)", out)
    assert kept, out[-2000:]
    ns = kept.group(1)
    cluster = Cluster(ossm2.kubeconfig)
    labels = cluster.get("v1", "Namespace", ns, None)["metadata"]["labels"]
    assert labels[membership.MEMBER_OF] == "istio-system"
    assert "istio-injection" not in labels  # OSSM 2: the label only opts out
    assert cluster.get(membership.API, membership.KIND, "default", ns) is not None
    deployment = cluster.get("apps/v1", "Deployment", "composer", ns)
    assert deployment["spec"]["template"]["metadata"]["labels"][manifests.INJECT] == "true"
    pod = manifests.pods_of(cluster, ns, "composer")[0]
    assert "istio-proxy" in [c["name"] for c in pod["spec"]["containers"]
                             + pod["spec"].get("initContainers", [])]
    routes = cluster.list("route.openshift.io/v1", "Route", "istio-system",
                          label_selector=f"meshgate.io/namespace={ns}")
    # One Route per host the scenarios used, under the apps domain, edge TLS at the router.
    assert {r["spec"]["host"] for r in routes} >= {ingress.scenario_host(
        ns, "apps.localmesh.test")}
    assert all(r["spec"]["tls"]["termination"] == "edge" for r in routes)
    assert all(r["status"]["ingress"][0]["conditions"][0]["type"] == "Admitted"
               for r in routes)
    assert namespaces.delete(cluster, ns, mesh=discover(cluster))
    assert cluster.list("route.openshift.io/v1", "Route", "istio-system",
                        label_selector=f"meshgate.io/namespace={ns}") == []

    def roll_lets_go() -> bool:
        roll = membership.member_roll(cluster, "istio-system") or {}
        return ns not in ((roll.get("status") or {}).get("configuredMembers") or [])

    poll(roll_lets_go, what=f"the member roll no longer lists {ns}", timeout=30)


def test_a_member_the_suite_may_not_create_is_one_message(ossm2: Handle,
                                                          tmp_path: Path) -> None:
    """403 on the ServiceMeshMember: the message names it and the mesh-user binding."""
    admin = Cluster(ossm2.kubeconfig)
    admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mg-nobody"}},
                None)
    admin.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                 "metadata": {"name": "nobody"}}, "mg-nobody")
    api = config.new_client_from_config(config_file=str(ossm2.kubeconfig))
    spec = client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
    token = client.CoreV1Api(api).create_namespaced_service_account_token(
        "nobody", "mg-nobody", client.AuthenticationV1TokenRequest(spec=spec)).status.token
    doc = yaml.safe_load(ossm2.kubeconfig.read_text())
    for user in doc["users"]:
        user["user"] = {"token": token}
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(doc))
    nobody = Cluster(kubeconfig)
    try:
        with pytest.raises(membership.MembershipError) as err:
            membership.join(nobody, "mg-nobody", "istio-system", "basic", timeout=5)
        msg = str(err.value)
        assert "ServiceMeshMember mg-nobody/default" in msg and "forbidden" in msg
        assert "oc policy add-role-to-user mesh-user" in msg
        assert admin.get(membership.API, membership.KIND, "default", "mg-nobody") is None
    finally:
        admin.delete("v1", "Namespace", "mg-nobody", None)


def test_a_route_host_already_claimed_is_one_message(ossm2: Handle) -> None:
    """Another namespace holds the scenario's host: the router rejects the suite's Route,
    and the message names the Route, the host and what to do."""
    cluster = Cluster(ossm2.kubeconfig)
    host = ingress.scenario_host("mg-claimed")
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "squatter"}},
                  None)
    squat = cluster.apply({"apiVersion": "route.openshift.io/v1", "kind": "Route",
                           "metadata": {"name": "squat"},
                           "spec": {"host": host, "to": {"kind": "Service", "name": "web"}}},
                          "squatter")
    # The router orders claims by creationTimestamp (seconds), so the squatter must be
    # older by at least a second for the claim to be its own and not a tie.
    created = squat["metadata"]["creationTimestamp"]
    created_at = (created if isinstance(created, datetime)
                  else datetime.fromisoformat(str(created).replace("Z", "+00:00")))
    poll(lambda: datetime.now(UTC).replace(microsecond=0) > created_at,
         what="a second after the squatter's Route was created", timeout=5)
    try:
        with pytest.raises(ClusterError) as err:
            ingress.route_entry(cluster, Gateway("istio-system"), host, "mg-claimed")
        msg = str(err.value)
        assert "HostAlreadyClaimed" in msg and f"host {host}" in msg
        assert "Route istio-system/" in msg and "delete it" in msg
    finally:
        cluster.delete("v1", "Namespace", "squatter", None)
        from meshgate import openshift_route
        openshift_route.remove_for(cluster, "istio-system", "mg-claimed")


def test_a_manifest_the_scc_refuses_is_one_message(ossm2: Handle, tmp_path: Path) -> None:
    """A workload asking for UID 0 gets no pod under restricted-v2: the deploy stops at
    once with OpenShift's refusal and the fix, not after the deploy timeout."""
    cluster = Cluster(ossm2.kubeconfig)
    doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "rooted"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "rooted"}},
                    "template": {"metadata": {"labels": {"app": "rooted"}},
                                 "spec": {"containers": [{
                                     "name": "app", "image": "ghcr.io/meshgate/workloads:0.1.0",
                                     "securityContext": {"runAsUser": 0}}]}}}}
    (tmp_path / "rooted.yaml").write_text(yaml.safe_dump(doc))
    namespaces.create(cluster, "mg-rooted", "scc", mesh=discover(cluster))
    try:
        waits = Waits(Timeouts.from_sources({"deploy": 60.0}))
        with pytest.raises(Unrecoverable) as err:
            rollout.deploy(cluster, "mg-rooted", ["rooted"], waits, directory=tmp_path)
        msg = str(err.value)
        assert "rooted cannot create its pods in mg-rooted: ReplicaSet rooted-" in msg
        assert "unable to validate against any security context constraint" in msg
        assert "remove runAsUser" in msg
        assert waits.log.samples[-1].seconds < 30
    finally:
        namespaces.delete(cluster, "mg-rooted", mesh=discover(cluster))


def test_ossm3_labels_its_namespaces_for_the_revision(tmp_path_factory: pytest.TempPathFactory,
                                                      tmp_path: Path) -> None:
    with boot_localmesh(tmp_path_factory.mktemp("ossm3"), mesh=True,
                        shape=Shape(flavor="openshift", ossm="3")) as handle:
        code, out = run_suite(handle.kubeconfig, tmp_path, "-m", "smoke")
    assert code == 0, out[-4000:]
    assert "meshgate: platform: OpenShift 4.20.0, OpenShift Service Mesh 3 (Istio default)" \
        in out
    assert re.search(r"\d+ passed", out)


def test_the_mixer_era_mesh_is_checked_through_its_mixer(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """The @mixer scenario runs (not skipped) and passes: the mixer's log and metrics;
    the graph comes from the servicegraph addon."""
    with boot_localmesh(tmp_path_factory.mktemp("mixer"), mesh=True,
                        shape=Shape(mesh="mixer")) as handle:
        code, out = run_suite(handle.kubeconfig, tmp_path, "-m", "smoke or mixer", "-v")
    assert code == 0, out[-4000:]
    assert "Istio 1.4.10 with Mixer (istio-telemetry) in istio-system" in out
    assert re.search(r"the mixer logs and counts the requests.*PASSED", out), out[-3000:]
    assert "unsupported mesh" not in out

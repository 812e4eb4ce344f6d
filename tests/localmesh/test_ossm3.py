"""``localmesh up --flavor openshift`` (OpenShift Service Mesh 3, the default), as a client
sees it with kubectl and curl: the Sail operator's resources report a healthy control
plane, injection follows Istio's namespace labels with OpenShift's template, and the
suite's Route overlay exposes the ingress gateway through the router.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from localmesh.shape import Shape
from tests.localmesh.openshift_support import Cluster, admitted, through_router
from tests.support import REPO, boot_localmesh, needs_haproxy, needs_prometheus, poll

pytestmark = [needs_haproxy, needs_prometheus]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with boot_localmesh(tmp_path_factory.mktemp("ossm3"), mesh=True,
                        shape=Shape(flavor="openshift", ossm="3")) as handle:
        yield Cluster(handle)


def _namespace(cluster: Cluster, prefix: str, labels: dict[str, str] | None = None) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    if labels:
        cluster.kubectl("label", "namespace", name, *(f"{k}={v}" for k, v in labels.items()))
    return name


def test_the_sail_resources_report_a_healthy_control_plane(cluster: Cluster) -> None:
    assert not cluster.kubectl("get", "smmr", "-A", check=False).returncode == 0, \
        "OSSM 3 has no member roll (maistra.io is OSSM 2's)"
    istio = poll(lambda: (i := cluster.json("get", "istio", "default")).get("status", {})
                 .get("state") == "Healthy" and i, what="Istio default Healthy", timeout=20)
    assert istio["spec"]["namespace"] == "istio-system"
    assert istio["spec"]["updateStrategy"]["type"] == "InPlace"
    assert istio["status"]["activeRevisionName"] == "default"
    revision = cluster.json("get", "istiorevision", "default")
    ready = {c["type"]: c["status"] for c in revision["status"]["conditions"]}
    assert ready["Ready"] == "True" and ready["Reconciled"] == "True"
    assert cluster.json("get", "istiocni", "default")["spec"]["namespace"] == "istio-cni"


def test_injection_follows_istios_labels_with_openshifts_template(cluster: Cluster) -> None:
    enabled = _namespace(cluster, "enabled", {"istio-injection": "enabled"})
    revision = _namespace(cluster, "revision", {"istio.io/rev": "default"})
    unlabelled = _namespace(cluster, "unlabelled")
    for ns in (enabled, revision, unlabelled):
        cluster.deploy(ns, "composer", {"sidecar.istio.io/inject": "true"})
    for ns in (enabled, revision):
        pod = cluster.pod(ns, "app=composer")
        status = json.loads(pod["metadata"]["annotations"]["sidecar.istio.io/status"])
        assert status["initContainers"] == ["istio-validation", "istio-proxy"], ns
        assert pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] == \
            "default/istio-cni"
        first = int(cluster.json("get", "namespace", ns)["metadata"]["annotations"][
            "openshift.io/sa.scc.uid-range"].split("/")[0])
        proxy = next(c for c in pod["spec"]["initContainers"] if c["name"] == "istio-proxy")
        assert proxy["securityContext"]["runAsUser"] == first + 9999
    # An annotation alone does not pull a pod into the mesh from an unlabelled namespace.
    plain = cluster.pod(unlabelled, "app=composer")
    assert [c["name"] for c in plain["spec"]["containers"]] == ["composer"]
    assert not plain["spec"].get("initContainers")
    poll(lambda: {c["type"]: c["status"] for c in cluster.json(
        "get", "istiorevision", "default")["status"]["conditions"]}.get("InUse") == "True",
        what="IstioRevision default InUse", timeout=20)


def test_the_suites_route_overlay_exposes_the_ingress_gateway(cluster: Cluster) -> None:
    ns = _namespace(cluster, "ingress", {"istio-injection": "enabled"})
    cluster.deploy(ns, "composer")
    cluster.kubectl("apply", "-n", ns, "-f", str(REPO / "manifests" / "ingress.yaml"))
    cluster.kubectl("apply", "-n", "istio-system", "-f",
                    str(REPO / "manifests" / "overlays" / "openshift-route.yaml"))
    route = admitted(cluster, "istio-system", "blockchain-ingress")
    host = route["spec"]["host"]
    assert host == "blockchain-ingress-istio-system.apps.localmesh.test"
    _, body = poll(lambda: (a := through_router(cluster, host, "/login"))[0] == 200 and a,
                   what=f"/login through the router and the ingress gateway ({host})",
                   timeout=30)
    assert "Composer" in body

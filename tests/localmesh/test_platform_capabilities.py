"""The suite's platform code paths for clusters that cannot exist here (OpenShift, OSSM 2.x,
Mixer-era Istio), exercised against a real API server: localmesh with those platforms'
CRDs installed, so discovery, the objects and the patches are real; only the platform's
controllers are absent (nothing routes a Route here, which the tests do not need).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localmesh.cli import Handle
from localmesh.istio.mesh import crd
from meshgate import ingress, membership, mesh, namespaces
from meshgate.cluster import Cluster, ClusterError
from meshgate.mesh import Gateway, thanos_url
from meshgate.telemetry import ThanosQuerier
from tests.support import boot_localmesh


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handle]:
    with boot_localmesh(tmp_path_factory.mktemp("platform"), mesh=False) as handle:
        yield handle


@pytest.fixture(scope="module")
def cluster(lm: Handle) -> Cluster:
    c = Cluster(lm.kubeconfig)
    for group, kind, plural in (("maistra.io", "ServiceMeshMemberRoll",
                                 "servicemeshmemberrolls"),
                                ("route.openshift.io", "Route", "routes")):
        c.apply(crd(group, kind, plural, [], True, versions=("v1",)), None)
    for ns in ("istio-system", "openshift-monitoring"):
        c.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, None)
    c._dynamic = None  # rediscover with the new CRDs
    return c


def test_namespace_joins_and_leaves_the_member_roll(cluster: Cluster) -> None:
    cluster.apply({"apiVersion": "maistra.io/v1", "kind": "ServiceMeshMemberRoll",
                   "metadata": {"name": "default"}, "spec": {"members": ["bookinfo"]}},
                  "istio-system")
    namespaces.create(cluster, "mg-smmr-test", "run1")
    roll = membership.member_roll(cluster)
    assert roll is not None and roll["spec"]["members"] == ["bookinfo", "mg-smmr-test"]
    namespaces.delete(cluster, "mg-smmr-test")
    assert membership.member_roll(cluster)["spec"]["members"] == ["bookinfo"]


def test_ingress_through_an_openshift_route(cluster: Cluster) -> None:
    cluster.apply({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "istio-ingressgateway"},
                   "spec": {"selector": {"istio": "ingressgateway"},
                            "ports": [{"name": "http2", "port": 80, "targetPort": 8080}]}},
                  "istio-system")
    with pytest.raises(ClusterError, match="cannot reach the ingress gateway"):
        ingress.entry_point(cluster, Gateway("istio-system"))
    cluster.apply({"apiVersion": "route.openshift.io/v1", "kind": "Route",
                   "metadata": {"name": "istio-ingressgateway"},
                   "spec": {"host": "gw.apps.example.test",
                            "to": {"kind": "Service", "name": "istio-ingressgateway"},
                            "port": {"targetPort": "http2"}}}, "istio-system")
    entry = ingress.entry_point(cluster, Gateway("istio-system"))
    assert entry.base_url == "http://gw.apps.example.test"
    assert entry.how == "OpenShift Route gw.apps.example.test"


def test_thanos_querier_is_used_with_the_bearer_token(cluster: Cluster) -> None:
    assert thanos_url(cluster) is None
    cluster.apply({"apiVersion": "route.openshift.io/v1", "kind": "Route",
                   "metadata": {"name": "thanos-querier"},
                   "spec": {"host": "thanos-querier.apps.example.test",
                            "to": {"kind": "Service", "name": "thanos-querier"}}},
                  "openshift-monitoring")
    info = mesh.discover(cluster)
    assert info.openshift and info.member_roll
    assert info.prometheus is None
    assert info.thanos == "https://thanos-querier.apps.example.test"
    url, headers, params = ThanosQuerier(cluster, info.thanos).request("up")
    assert url == "https://thanos-querier.apps.example.test/api/v1/query"
    token = cluster.api_client.configuration.get_api_key_with_prefix("BearerToken")
    assert headers["Authorization"] == token and token.startswith("Bearer ")
    assert params == {"query": "up"}


def test_mixer_era_istio_is_reported_unsupported(cluster: Cluster) -> None:
    cluster.apply({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "istio-pilot"},
                   "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "pilot"}},
                            "template": {"metadata": {"labels": {"app": "pilot"}},
                                         "spec": {"containers": [{
                                             "name": "discovery",
                                             "image": "docker.io/istio/pilot:1.0.6"}]}}}},
                  "istio-system")
    info = mesh.discover(cluster)
    assert info.istio_version == "1.0.6"
    reason = info.unsupported_reason()
    assert reason is not None and "Mixer-era" in reason and "1.8" in reason
    modern = mesh.MeshInfo("1.28.0")
    assert modern.unsupported_reason() is None


def test_gate_profile_selects_istio_by_annotation() -> None:
    obj = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": "gateway"},
           "spec": {"ingressClassName": "istio", "rules": [{"http": {"paths": []}}]}}
    out = ingress.isolate(ingress.by_annotation(obj), "ns1.meshgate.test")
    assert "ingressClassName" not in out["spec"]
    assert out["metadata"]["annotations"]["kubernetes.io/ingress.class"] == "istio"
    assert out["spec"]["rules"][0]["host"] == "ns1.meshgate.test"
    assert obj["spec"]["ingressClassName"] == "istio"  # the input is not modified

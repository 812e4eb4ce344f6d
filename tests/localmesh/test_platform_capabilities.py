"""The suite's platform code paths against bare CRDs (a Kubernetes localmesh with only the
OpenShift and OSSM APIs installed): discovery, thanos-querier, and what the suite says
where the platform's controllers are absent. The platforms themselves — OSSM 2 and 3 with
their router, the Mixer mesh — are localmesh shapes the suite runs on end to end in
tests/e2e/test_platform_shapes.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localmesh.cli import Handle
from localmesh.istio.mesh import crd
from meshgate import ingress, mesh
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


def test_the_gateway_without_an_address_says_how_openshift_is_reached(cluster: Cluster) -> None:
    cluster.apply({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "istio-ingressgateway"},
                   "spec": {"selector": {"istio": "ingressgateway"},
                            "ports": [{"name": "http2", "port": 80, "targetPort": 8080}]}},
                  "istio-system")
    # No address of its own: the message says how the suite reaches it on OpenShift (a
    # Route of its own, tests/e2e/test_platform_shapes.py, where a router admits it).
    with pytest.raises(ClusterError, match="on OpenShift the suite uses a Route of its own"):
        ingress.entry_point(cluster, Gateway("istio-system"))


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
    # Mixer-era without its telemetry mixer: nothing counts requests, so nothing to check.
    assert reason is not None and "Mixer-era" in reason and "istio-telemetry" in reason
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

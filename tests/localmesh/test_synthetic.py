"""``--synthetic-services N``: a large mesh without its processes. The Services, their
Endpoints and EndpointSlices are there through the API as a user would have written them
(Services without selectors, kept by the endpoints controllers), and every proxy is
configured for them — the cluster of one of them is in the ingress gateway's Envoy."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from localmesh.cli import Handle
from localmesh.shape import Shape
from meshgate import sidecars
from meshgate.cluster import Cluster
from tests.support import boot_localmesh, poll

COUNT = 150  # two namespaces: 100 and 50


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handle]:
    with boot_localmesh(tmp_path_factory.mktemp("synthetic"), mesh=True, timeout=120,
                        shape=Shape(synthetic_services=COUNT)) as handle:
        yield handle


def test_services_endpoints_and_slices_are_served_and_kept(large: Handle) -> None:
    cluster = Cluster(large.kubeconfig)
    services = cluster.list("v1", "Service", label_selector="localmesh.io/synthetic=true")
    assert len(services) == COUNT
    assert {s["metadata"]["namespace"] for s in services} == {"synthetic-000", "synthetic-001"}
    svc = cluster.get("v1", "Service", "svc-00123", "synthetic-001")
    assert svc is not None and svc["spec"]["clusterIP"].startswith("127.")
    assert not svc["spec"].get("selector")
    endpoints = cluster.list("v1", "Endpoints", "synthetic-001")
    slices = cluster.list("discovery.k8s.io/v1", "EndpointSlice", "synthetic-001")
    # The endpoints controllers leave a selector-less Service's objects alone, as upstream.
    assert len(endpoints) == len(slices) == COUNT - 100
    address = endpoints[0]["subsets"][0]["addresses"][0]["ip"]
    block = json.loads((large.state_dir / "instance.json").read_text())["block"]
    # In the instance's own loopback block, in the range nothing binds.
    first, second, third, _ = address.split(".")
    assert (first, int(second)) == ("127", block) and 128 <= int(third) <= 191, address


def test_every_proxy_is_configured_for_them(large: Handle) -> None:
    cluster = Cluster(large.kubeconfig)
    gateway = cluster.list("v1", "Pod", "istio-system", label_selector="istio=ingressgateway")
    name = gateway[0]["metadata"]["name"]
    wanted = "outbound|8080||svc-00149.synthetic-001.svc.cluster.local"
    found = poll(lambda: sidecars.clusters(cluster, "istio-system", name, r".*svc-00149\..*"),
                 timeout=30, what=f"{wanted} in the ingress gateway's Envoy")
    assert [c.get("name") for c in found] == [wanted]

"""A large mesh without its processes: ``--synthetic-services N``.

A real mesh of thousands of services makes every sidecar's configuration large (one
cluster per service port, one virtual host per service in each port's route
configuration), and that is what the suite's proxy checks and istiod's pushes must stay
fast against. Running thousands of workloads here is impossible, and unnecessary: istiod
builds a sidecar's configuration from Services and their endpoints, not from the
processes behind them. So these are Services without a selector whose Endpoints and
EndpointSlice are written as a user would write them for an external backend
(Kubernetes' "Services without selectors"), in namespaces of their own.

The endpoints' addresses are in the instance's loopback block, in a range nothing binds
(127.B.128.0-127.B.191.255: pods take .1-.63, their local addresses .65-.127, cluster IPs
.192-.223): a request to a synthetic service is refused locally, never sent elsewhere.
"""

from __future__ import annotations

from localmesh.api.objects import ObjectAPI

PER_NAMESPACE = 100
# Every synthetic service listens on 8080, the port of composer's own route configuration
# ("8080"): the configuration the suite's route checks read grows with the mesh, the worst
# case a real mesh of web services presents.
PORT = 8080
MANAGED_BY = "synthetic.localmesh.io"


def namespace_of(i: int) -> str:
    return f"synthetic-{i // PER_NAMESPACE:03d}"


def address_of(block: int, i: int) -> str:
    """The i-th synthetic endpoint address: 64 × 256 of them, then they repeat."""
    n = i % (64 * 256)
    return f"127.{block}.{128 + n // 256}.{n % 256}"


def objects(block: int, i: int) -> list[tuple[str, str, dict]]:
    """The (apiVersion, kind, body) of synthetic service ``i``: Service, Endpoints,
    EndpointSlice."""
    ns, name, ip = namespace_of(i), f"svc-{i:05d}", address_of(block, i)
    labels = {"app": name, "localmesh.io/synthetic": "true"}
    port = {"name": "http", "port": PORT, "protocol": "TCP"}
    return [
        ("v1", "Service", {"metadata": {"name": name, "namespace": ns, "labels": labels},
                           "spec": {"ports": [{**port, "targetPort": PORT}]}}),
        ("v1", "Endpoints", {"metadata": {"name": name, "namespace": ns, "labels": labels},
                             "subsets": [{"addresses": [{"ip": ip}], "ports": [port]}]}),
        ("discovery.k8s.io/v1", "EndpointSlice", {
            "metadata": {"name": f"{name}-1", "namespace": ns,
                         "labels": {**labels, "kubernetes.io/service-name": name,
                                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
            "ports": [port]}),
    ]


def populate(api: ObjectAPI, block: int, count: int) -> None:
    """Create ``count`` synthetic services (and their namespaces) through the API's own
    admission, so they get cluster IPs as any Service does."""
    ns_rt = api.rt("v1", "Namespace")
    for first in range(0, count, PER_NAMESPACE):
        api.create(ns_rt, "", {"metadata": {"name": namespace_of(first),
                                            "labels": {"localmesh.io/synthetic": "true"}}})
    for i in range(count):
        for api_version, kind, body in objects(block, i):
            api.create(api.rt(api_version, kind), body["metadata"]["namespace"], body)

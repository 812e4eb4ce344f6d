"""Steps that deploy the workloads and check that the mesh took them in."""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers, then

from fixtures.options import manifest_dir, profile
from fixtures.world import World
from meshgate import manifests, rollout, sidecars
from meshgate.cluster import Cluster, ClusterError
from meshgate.manifests import ManifestError
from meshgate.mesh import MeshInfo
from meshgate.waiting import Convergence, Timeouts, Unrecoverable


@given("the blockchain workloads are deployed with sidecars")
def blockchain_deployed(cluster: Cluster, world: World, timeouts: Timeouts,
                        convergence: Convergence, pytestconfig: pytest.Config,
                        mesh_info: MeshInfo) -> None:
    """composer, vp0, membersrvc and their Ingress, in the worker's namespace.

    When they cannot be deployed (a kind the cluster does not serve, an image that cannot
    run), no scenario can pass: the run stops with that one message.
    """
    try:
        world.deployed.update(rollout.deploy_blockchain(
            cluster, world.namespace, timeout=timeouts["deploy"], log=convergence,
            cluster_writes=profile(pytestconfig) != "gate",
            directory=manifest_dir(pytestconfig)))
    except (ClusterError, ManifestError, Unrecoverable) as exc:
        pytest.exit(f"meshgate: cannot deploy the workloads: {exc}", returncode=3)


@given(parsers.re(r"the (?P<name>[a-z0-9-]+) workload is deployed with a sidecar"))
def workload_deployed(name: str, cluster: Cluster, world: World, timeouts: Timeouts,
                      convergence: Convergence, pytestconfig: pytest.Config) -> None:
    """Only the named workload, for scenarios that need one (the thin slice)."""
    world.deployed.update(rollout.deploy(cluster, world.namespace, [name],
                                         timeout=timeouts["deploy"], log=convergence,
                                         directory=manifest_dir(pytestconfig)))


@then(parsers.parse("every pod of {workload} is Ready with an injected istio-proxy sidecar"))
def pods_have_sidecars(workload: str, cluster: Cluster, world: World) -> None:
    """Injection is recognised by the ``sidecar.istio.io/status`` annotation and an istio-proxy
    container (native sidecar or classic), never by position."""
    pods = manifests.pods_of(cluster, world.namespace, workload)
    assert pods, f"no pod of {workload} in {world.namespace}; look at `kubectl get pods -n " \
                 f"{world.namespace}`"
    for p in pods:
        name = p["metadata"]["name"]
        assert sidecars.is_injected(p), (
            f"pod {world.namespace}/{name} has no sidecar.istio.io/status annotation: the "
            "injector did not run (is the namespace labelled istio-injection=enabled?)")
        assert sidecars.has_proxy_container(p), (
            f"pod {world.namespace}/{name} is annotated as injected but has no istio-proxy "
            "container")
        conditions = {c["type"]: c["status"] for c in p["status"].get("conditions") or []}
        assert conditions.get("Ready") == "True", (
            f"pod {world.namespace}/{name} is not Ready: {conditions}; see `kubectl describe "
            f"pod -n {world.namespace} {name}`")

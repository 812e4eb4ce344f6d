"""Steps that inject faults and check that the mesh recovers."""

from __future__ import annotations

from pytest_bdd import parsers, then, when

from fixtures.world import World
from meshgate import chaos, ingress, manifests
from meshgate.cluster import Cluster
from meshgate.waiting import Convergence, Timeouts, wait_until


def _pod(cluster: Cluster, world: World, workload: str) -> str:
    pods = manifests.pods_of(cluster, world.namespace, workload)
    assert pods, f"no pod of {workload} in {world.namespace}"
    return pods[0]["metadata"]["name"]


@when(parsers.parse('the {what} of {workload} is killed while traffic flows to "{path}" '
                    "through the ingress gateway"))
def kill_during_traffic(what: str, workload: str, path: str, cluster: Cluster, world: World,
                        timeouts: Timeouts, convergence: Convergence) -> None:
    """Kill the app (``kill 1`` in its container) or the sidecar's Envoy (``quitquitquit``) while
    background traffic flows, and wait for the container to restart and be Ready."""
    if world.entry is None:
        world.entry = ingress.entry_point(cluster)
    pod = _pod(cluster, world, workload)
    world.evidence["restarts_before"] = chaos.restart_counts(cluster, world.namespace, pod)
    world.evidence["chaos_pod"] = pod
    traffic = chaos.Traffic(world.entry, path, world.host).start()
    try:
        if what == "app process":
            chaos.kill_app(cluster, world.namespace, pod, workload)
            world.evidence["chaos_container"] = workload
        elif what == "Envoy":
            chaos.kill_envoy(cluster, world.namespace, pod)
            world.evidence["chaos_container"] = "istio-proxy"
        else:
            raise AssertionError(f"unknown fault {what!r}: use 'app process' or 'Envoy'")
        container = str(world.evidence["chaos_container"])
        wait_until(lambda: chaos.restart_counts(cluster, world.namespace, pod)[container]
                   > world.evidence["restarts_before"][container]  # type: ignore[index]
                   and chaos.container_ready(cluster, world.namespace, pod, container),
                   area="ingress", what=f"{container} of {pod} restarted and Ready",
                   timeout=timeouts["ingress"], log=convergence)
    finally:
        answers = traffic.stop()
    world.evidence["traffic_during_fault"] = {
        "sent": len(answers), "ok": sum(1 for a in answers if a.status == 200)}


@then(parsers.parse("the restart is visible in the {container} container's restartCount"))
def restart_visible(container: str, cluster: Cluster, world: World) -> None:
    """The kill shows in the container's restartCount."""
    pod = str(world.evidence["chaos_pod"])
    name = str(world.evidence["chaos_container"])
    now = chaos.restart_counts(cluster, world.namespace, pod)
    before = world.evidence["restarts_before"][name]  # type: ignore[index]
    assert now[name] > before, (f"restartCount of {name} in {world.namespace}/{pod} is "
                                f"{now[name]}, was {before}: the kill did not restart it")


@when(parsers.parse("the {component} pod is deleted and its replacement is Ready"))
def restart_component(component: str, cluster: Cluster, world: World, timeouts: Timeouts,
                      convergence: Convergence) -> None:
    """Delete an istio-system component's pod and wait until its replacement is Ready."""
    selectors = {"istiod": "app=istiod", "Prometheus": "app=prometheus"}
    assert component in selectors, f"unknown component {component!r}: {list(selectors)}"
    old = chaos.delete_pods(cluster, "istio-system", selectors[component])
    wait_until(lambda: chaos.replaced_and_ready(cluster, "istio-system",
                                                selectors[component], old),
               area="deploy", what=f"a new {component} pod is Ready",
               timeout=timeouts["deploy"], log=convergence)
    world.evidence[f"{component}_replaced"] = old


@then("every sidecar of the blockchain workloads is Ready")
def sidecars_ready(cluster: Cluster, world: World, timeouts: Timeouts,
                   convergence: Convergence) -> None:
    """Every workload's istio-proxy is Ready again."""
    for workload in manifests.WORKLOADS:
        pod = _pod(cluster, world, workload)
        wait_until(lambda p=pod: chaos.container_ready(cluster, world.namespace, p,
                                                       "istio-proxy"),
                   area="routes", what=f"istio-proxy of {pod} Ready",
                   timeout=timeouts["routes"], log=convergence)


@when(parsers.parse('a service "{name}" with HTTP port {port:d} is created'))
def service_created(name: str, port: int, cluster: Cluster, world: World) -> None:
    """A new Service makes istiod push a new route to every sidecar."""
    cluster.apply({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": name, "labels": {"app": name}},
                   "spec": {"selector": {"app": name},
                            "ports": [{"name": "http", "port": port, "targetPort": port}]}},
                  world.namespace)

"""Reading a sidecar's (or gateway's) live Envoy configuration.

Envoy's admin port listens on the pod's localhost only (Istio's bootstrap binds
``127.0.0.1:15000``), so pods/proxy cannot reach it. The suite does
what one does on a real cluster: ``kubectl exec -c istio-proxy -- pilot-agent request GET
config_dump?...`` over pods/exec. Injection is recognised by the
``sidecar.istio.io/status`` annotation, never by container position (with native
sidecars ``istio-proxy`` is an init container).
"""

from __future__ import annotations

import re
import urllib.parse
import warnings

from meshgate import config_dump
from meshgate.cluster import Cluster, ClusterError
from meshgate.config_dump import RouteEntry, load_config_dump, route_entries
from meshgate.manifests import pods_of

PROXY_CONTAINER = "istio-proxy"


def is_injected(pod: dict) -> bool:
    ann = (pod.get("metadata") or {}).get("annotations") or {}
    return "sidecar.istio.io/status" in ann


def has_proxy_container(pod: dict) -> bool:
    spec = pod.get("spec") or {}
    return any(c.get("name") == PROXY_CONTAINER
               for c in (spec.get("containers") or []) + (spec.get("initContainers") or []))


def admin_get(cluster: Cluster, namespace: str, pod: str, path: str,
              timeout: float = 30.0) -> str:
    """GET an Envoy admin path through ``pilot-agent request`` in the proxy container."""
    res = cluster.exec(namespace, pod, PROXY_CONTAINER,
                       ["pilot-agent", "request", "GET", path.lstrip("/")], timeout=timeout)
    if res.returncode != 0:
        raise ClusterError(f"pilot-agent request GET {path} in {namespace}/{pod} failed "
                           f"(exit {res.returncode}): {res.stderr.strip() or res.stdout[:200]}")
    return res.stdout


def route_dump(cluster: Cluster, namespace: str, pod: str) -> dict:
    """The proxy's route configurations, as istioctl's ``proxy-config routes`` reads them."""
    text = admin_get(cluster, namespace, pod,
                     "config_dump?mask=dynamic_route_configs,static_route_configs")
    dump = load_config_dump(text)
    if not isinstance(dump, dict):
        raise ClusterError(f"unexpected config dump from {namespace}/{pod}")
    return dump


def routes(cluster: Cluster, namespace: str, pod: str,
           route_config: str | None = None) -> list[RouteEntry]:
    """The proxy's route entries — of the one route config named ``route_config`` when
    given, read with Envoy's ``config_dump?resource=dynamic_route_configs&name_regex=``
    (Envoy ≥ 1.19), so a proxy of a mesh of thousands of services sends one route config,
    not every one. A proxy that rejects the filter is read whole, once said."""
    if route_config is None:
        return route_entries(route_dump(cluster, namespace, pod))
    query = urllib.parse.urlencode({"resource": "dynamic_route_configs",
                                    "name_regex": f"^{re.escape(route_config)}$"})
    try:
        text = admin_get(cluster, namespace, pod, f"config_dump?{query}")
    except ClusterError as exc:
        if (namespace, pod) not in _UNFILTERED:
            _UNFILTERED.add((namespace, pod))
            warnings.warn(f"meshgate: {namespace}/{pod} rejected a filtered config dump "
                          f"({exc}); reading its whole route table instead", stacklevel=2)
        return route_entries(route_dump(cluster, namespace, pod))
    return route_entries(load_config_dump(text))


# Proxies that rejected a filtered dump (said once each).
_UNFILTERED: set[tuple[str, str]] = set()


def expect_injected_and_ready(cluster: Cluster, namespace: str, workload: str) -> list[str]:
    """Every pod of ``workload`` is injected (annotation and istio-proxy container) and
    Ready; returns their names. Checked once: the Background has already waited for the
    rollout, so a miss here is the answer, not a moment too early."""
    pods = pods_of(cluster, namespace, workload)
    if not pods:
        raise AssertionError(f"no pod of {workload} in {namespace}; look at `kubectl get pods "
                             f"-n {namespace}`")
    for p in pods:
        name = p["metadata"]["name"]
        if not is_injected(p):
            raise AssertionError(
                f"pod {namespace}/{name} has no sidecar.istio.io/status annotation: the "
                "injector did not run (is the namespace labelled istio-injection=enabled?)")
        if not has_proxy_container(p):
            raise AssertionError(f"pod {namespace}/{name} is annotated as injected but has no "
                                 "istio-proxy container")
        conditions = {c["type"]: c["status"] for c in p["status"].get("conditions") or []}
        if conditions.get("Ready") != "True":
            raise AssertionError(f"pod {namespace}/{name} is not Ready: {conditions}; see "
                                 f"`kubectl describe pod -n {namespace} {name}`")
    return [p["metadata"]["name"] for p in pods]


def clusters(cluster: Cluster, namespace: str, pod: str, name_regex: str) -> list[dict]:
    """The proxy's active clusters whose names match ``name_regex`` (Envoy's admin
    ``config_dump?resource=dynamic_active_clusters&name_regex=``, so a proxy of a large mesh
    sends one cluster, not its whole configuration)."""
    query = urllib.parse.urlencode({"resource": "dynamic_active_clusters",
                                    "name_regex": name_regex})
    dump = load_config_dump(admin_get(cluster, namespace, pod, f"config_dump?{query}"))
    return config_dump.clusters(dump)

"""The ingress on OpenShift: a Route to the ingress gateway, reached through the router.

On OpenShift the way into the cluster is the router (HAProxy), which picks a backend by
the request's host (and, over TLS, its SNI) among the admitted Routes (OpenShift docs,
"Route configuration"). The suite's scenario hosts are what the gateway routes by, so for
each host it uses the suite exposes the gateway with a Route of that host, the declarative
form of ``oc -n istio-system create route edge --service=istio-ingressgateway
--port=http2 --hostname=<host>``. A Route can only point at a Service of its own
namespace, so it lives in the gateway's namespace; it is labelled with the scenario's
namespace and removed with it (meshgate/namespaces.py delete()).

On OpenShift the suite's hosts are under the cluster's apps domain
(``<namespace>.<apps domain>``, meshgate/ingress.py scenario_host()), which the router's
default wildcard certificate and the domain's wildcard DNS record cover, so the Route is
edge-terminated and requests go over TLS to the router with the host as SNI and ``Host``,
checked against the router's CA (meshgate/tls_client.py). The router's address: the
LoadBalancer address of ``openshift-ingress/router-default`` (the default
IngressController's Service on cloud platforms and on localmesh), else the Route's
``routerCanonicalHostname`` (what the wildcard DNS record points at). Admission is the
router's: a Route whose host another namespace holds is rejected (``HostAlreadyClaimed``),
which the suite reports with the Route and the fix.
"""

from __future__ import annotations

import hashlib
import re
import time

from meshgate.cluster import Cluster, ClusterError
from meshgate.mesh import Gateway

API = "route.openshift.io/v1"
ROUTER_NAMESPACE = "openshift-ingress"
ROUTER_SERVICE = "router-default"
NAMESPACE_LABEL = "meshgate.io/namespace"
CONFIG_MANAGED = "openshift-config-managed"
INGRESS_CA_CONFIGMAP = "default-ingress-cert"
OWNER_LABEL = "app.kubernetes.io/managed-by"


def route_name(host: str) -> str:
    """A DNS-1123 label naming the Route of ``host`` (readable, unique by a digest)."""
    slug = re.sub(r"[^a-z0-9]+", "-", host.lower()).strip("-")
    digest = hashlib.sha1(host.encode()).hexdigest()[:6]
    return f"{slug[:63 - 7].rstrip('-')}-{digest}"


def route(gateway: Gateway, host: str, port: str, owner: str) -> dict:
    """The Route exposing the gateway's ``port`` (by name) under ``host``."""
    return {"apiVersion": API, "kind": "Route",
            "metadata": {"name": route_name(host),
                         "labels": {OWNER_LABEL: "meshgate", NAMESPACE_LABEL: owner}},
            "spec": {"host": host, "to": {"kind": "Service", "name": gateway.service,
                                          "weight": 100},
                     "port": {"targetPort": port}, "wildcardPolicy": "None",
                     # TLS ends at the router with its default certificate (the apps
                     # domain's wildcard); plain HTTP is redirected, OpenShift's usual
                     # policy for a secured Route.
                     "tls": {"termination": "edge",
                             "insecureEdgeTerminationPolicy": "Redirect"}}}


def router_ca(cluster: Cluster) -> str | None:
    """The CA of the router's default certificate, as the ingress operator publishes it
    (ConfigMap ``openshift-config-managed/default-ingress-cert``, ``ca-bundle.crt``);
    None where it is not readable (then the system's CAs must trust the router)."""
    try:
        cm = cluster.get("v1", "ConfigMap", INGRESS_CA_CONFIGMAP, CONFIG_MANAGED)
    except ClusterError:
        return None
    return ((cm or {}).get("data") or {}).get("ca-bundle.crt") or None


def admission(obj: dict) -> tuple[bool | None, str]:
    """(admitted, why) from the Route's ``status.ingress[]``: True, False with the router's
    reason and message, or None while no router has written its verdict."""
    for ing in (obj.get("status") or {}).get("ingress") or []:
        for cond in ing.get("conditions") or []:
            if cond.get("type") == "Admitted":
                if cond.get("status") == "True":
                    return True, ing.get("routerCanonicalHostname") or ""
                return False, f"{cond.get('reason')}: {cond.get('message', '')}"
    return None, ""


def claimed_message(namespace: str, name: str, host: str, why: str) -> str:
    return (f"the router rejected Route {namespace}/{name} for host {host} ({why}): another "
            f"Route already claims that host; delete it (`oc get routes -A | grep {host}`), "
            "or run with another --run-id so the suite's hosts differ")


def expose(cluster: Cluster, gateway: Gateway, host: str, port: str, owner: str, *,
           timeout: float = 30.0) -> str:
    """Create (or keep) the Route of ``host`` to the gateway and wait until the router
    admits it; returns the router's canonical hostname (may be empty)."""
    obj = route(gateway, host, port, owner)
    name = obj["metadata"]["name"]
    try:
        cluster.apply(obj, gateway.namespace)
    except ClusterError as exc:
        if exc.status == 403:
            raise ClusterError(
                f"cannot create Route {gateway.namespace}/{name} exposing the ingress gateway "
                f"for host {host} ({exc}): on OpenShift the suite reaches the gateway through "
                f"a Route of its own per scenario host; grant it create, patch, get and delete "
                f"on routes and create on routes/custom-host in {gateway.namespace} (Role "
                "meshgate-istio-system of deploy/rbac.yaml)", 403) from exc
        raise
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        current = cluster.get(API, "Route", name, gateway.namespace) or {}
        admitted, why = admission(current)
        if admitted:
            return why
        if admitted is False:
            raise ClusterError(claimed_message(gateway.namespace, name, host, why)
                               if "HostAlreadyClaimed" in why else
                               f"the router rejected Route {gateway.namespace}/{name} for "
                               f"host {host}: {why}")
        if time.monotonic() >= deadline:
            raise ClusterError(f"no router admitted Route {gateway.namespace}/{name} (host "
                               f"{host}) within {timeout:g}s: is the default IngressController "
                               f"running? (`oc get pods -n {ROUTER_NAMESPACE}`)")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def remove_for(cluster: Cluster, gateway_namespace: str, owner: str) -> list[str]:
    """Delete the Routes the suite made for ``owner``'s hosts; their names."""
    try:
        found = cluster.list(API, "Route", gateway_namespace,
                             label_selector=f"{OWNER_LABEL}=meshgate,{NAMESPACE_LABEL}={owner}")
    except ClusterError:
        return []
    gone = []
    for r in found:
        if cluster.delete(API, "Route", r["metadata"]["name"], gateway_namespace):
            gone.append(r["metadata"]["name"])
    return gone

"""Telemetry: Istio's standard metrics in Prometheus, and the proxies' access logs.

Prometheus is queried through the API server's services/proxy, as on any cluster
(istio-mapping.md §2.3). "The request reached the telemetry backend" means: the counter
``istio_requests_total`` with the wanted labels has grown by at least the number of
requests sent since just before they were sent — i.e. Prometheus scraped after the traffic.
When it has not, the explanation lists the series that come closest and which labels
differ, so a failure says whether the proxy reported with other labels or nothing
arrived at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

from meshgate.cluster import Cluster, ClusterError
from meshgate.mesh import Addon


class QueryBackend(Protocol):
    """Anything that answers Prometheus's instant-query API (Prometheus, thanos-querier)."""

    queries: list[Query]

    def query(self, promql: str) -> list[dict]: ...


@dataclass
class Query:
    promql: str
    status: int
    answer: object


@dataclass
class Prometheus:
    """A Prometheus reached through services/proxy; remembers every query for the bundle."""

    cluster: Cluster
    addon: Addon
    queries: list[Query] = field(default_factory=list)

    def query(self, promql: str) -> list[dict]:
        status, body = self.cluster.service_get(self.addon.namespace, self.addon.service,
                                                self.addon.port, "/api/v1/query",
                                                {"query": promql})
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            doc = {"raw": body[:500].decode(errors="replace")}
        self.queries.append(Query(promql, status, doc))
        if status != 200 or doc.get("status") != "success":
            raise ClusterError(f"Prometheus query failed ({status}): "
                               f"{doc.get('error') or doc}: {promql}")
        return doc["data"]["result"]


@dataclass
class ThanosQuerier:
    """OpenShift's monitoring stack: the ``thanos-querier`` Route in
    ``openshift-monitoring`` answers the Prometheus query API with bearer-token auth only
    ("You can only use bearer token authentication", OpenShift monitoring docs;
    istio-mapping.md §2.3). The token is the kubeconfig's."""

    cluster: Cluster
    url: str
    queries: list[Query] = field(default_factory=list)

    def request(self, promql: str) -> tuple[str, dict, dict]:
        """The URL, headers and parameters of a query (kept separate to be testable)."""
        cfg = self.cluster.api_client.configuration
        token = cfg.get_api_key_with_prefix("BearerToken") or ""
        if token and not token.lower().startswith("bearer "):
            token = f"Bearer {token}"
        headers = {"Authorization": token} if token else {}
        return f"{self.url.rstrip('/')}/api/v1/query", headers, {"query": promql}

    def query(self, promql: str) -> list[dict]:
        import requests

        url, headers, params = self.request(promql)
        with requests.Session() as s:
            s.trust_env = False
            try:
                r = s.get(url, headers=headers, params=params, timeout=15)
            except requests.RequestException as exc:
                raise ClusterError(f"cannot reach thanos-querier at {self.url}: {exc}") from exc
        try:
            doc = r.json()
        except ValueError:
            doc = {"raw": r.text[:500]}
        self.queries.append(Query(promql, r.status_code, doc))
        if r.status_code != 200 or doc.get("status") != "success":
            raise ClusterError(f"thanos-querier query failed ({r.status_code}): "
                               f"{doc.get('error') or doc}: {promql}")
        return doc["data"]["result"]


def thanos_url(cluster: Cluster) -> str | None:
    """The thanos-querier Route's URL on OpenShift, if there is one."""
    if not cluster.has_api("route.openshift.io/v1"):
        return None
    route = cluster.get("route.openshift.io/v1", "Route", "thanos-querier",
                        "openshift-monitoring")
    host = ((route or {}).get("spec") or {}).get("host")
    return f"https://{host}" if host else None


def selector(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def requests_total(prom: QueryBackend, labels: dict[str, str]) -> float:
    """Sum of ``istio_requests_total`` over the series matching ``labels`` (0 if none)."""
    result = prom.query(f"sum(istio_requests_total{selector(labels)})")
    return float(result[0]["value"][1]) if result else 0.0


@dataclass(frozen=True)
class Near:
    labels: dict
    value: float
    differing: dict  # label -> (wanted, found)

    def describe(self) -> str:
        diff = ", ".join(f"{k}={found!r} (wanted {want!r})"
                         for k, (want, found) in sorted(self.differing.items()))
        return f"value {self.value:g}; differs in {diff or 'nothing'}"


def closest_series(prom: QueryBackend, wanted: dict[str, str], limit: int = 3) -> list[Near]:
    """The istio_requests_total series nearest to ``wanted``, fewest differing labels first."""
    scope = {k: v for k, v in wanted.items()
             if k in ("destination_service_namespace", "source_workload_namespace")}
    result = prom.query(f"istio_requests_total{selector(scope)}" if scope else
                        "istio_requests_total")
    out = []
    for series in result:
        metric = series.get("metric") or {}
        differing = {k: (v, metric.get(k)) for k, v in wanted.items() if metric.get(k) != v}
        out.append(Near(metric, float(series["value"][1]), differing))
    out.sort(key=lambda n: (len(n.differing), -n.value))
    return out[:limit]


def explain_missing(prom: QueryBackend, wanted: dict[str, str]) -> str:
    try:
        near = closest_series(prom, wanted)
    except ClusterError as exc:
        return f"and the closest series could not be listed: {exc}"
    if not near:
        return ("Prometheus has no istio_requests_total series for this namespace at all: "
                "the proxies' metrics were not scraped (check the Prometheus targets) or no "
                "request reached a sidecar")
    return "closest series: " + "; ".join(n.describe() for n in near)


def access_log_lines(cluster: Cluster, namespace: str, pod: str, needle: str,
                     container: str = "istio-proxy") -> list[str]:
    """Lines of the proxy's log (Istio's access log on stdout) containing ``needle``."""
    text = cluster.pod_logs(namespace, pod, container)
    return [line for line in text.splitlines() if needle in line]


def proxy_requests_total(cluster: Cluster, namespace: str, pod: str,
                         labels: dict[str, str]) -> float:
    """The same counter read from the sidecar itself (``:15020/stats/prometheus`` over
    pods/proxy), to tell "the proxy did not emit" from "the backend did not scrape"."""
    status, body = cluster.pod_get(namespace, pod, 15020, "/stats/prometheus")
    if status != 200:
        raise ClusterError(f"{namespace}/{pod}:15020/stats/prometheus answered {status}")
    return sum_samples(body.decode(errors="replace"), "istio_requests_total", labels)


def sum_samples(text: str, metric: str, labels: dict[str, str]) -> float:
    """Sum the samples of ``metric`` in Prometheus text format whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(metric + "{"):
            continue
        head, _, value = line.rpartition(" ")
        body = head[len(metric) + 1:-1]
        found = dict(_parse_labels(body))
        if all(found.get(k) == v for k, v in labels.items()):
            try:
                total += float(value)
            except ValueError:
                continue
    return total


def _parse_labels(body: str) -> list[tuple[str, str]]:
    out = []
    i = 0
    while i < len(body):
        eq = body.index("=", i)
        key = body[i:eq].strip().lstrip(",").strip()
        j = eq + 2
        val = []
        while body[j] != '"':
            if body[j] == "\\":
                j += 1
                val.append({"n": "\n"}.get(body[j], body[j]))
            else:
                val.append(body[j])
            j += 1
        out.append((key, "".join(val)))
        i = j + 1
        if i < len(body) and body[i] == ",":
            i += 1
    return out


def destination_labels(service: str, namespace: str, code: int) -> dict[str, str]:
    """The series Istio's destination sidecar reports for requests to a service."""
    return {"reporter": "destination", "destination_service_name": service,
            "destination_service_namespace": namespace, "response_code": str(code)}


def prometheus_for(cluster: Cluster, world: object, mesh_info: object
                   ) -> QueryBackend:
    """The telemetry backend: the mesh's Prometheus addon, else OpenShift's thanos-querier."""
    prom = getattr(world, "prometheus", None)
    if prom is None:
        addon = getattr(mesh_info, "prometheus", None)
        thanos = getattr(mesh_info, "thanos", None)
        if addon is not None:
            prom = Prometheus(cluster, addon)
        elif thanos:
            prom = ThanosQuerier(cluster, thanos)
        else:
            raise ClusterError("no telemetry backend: no prometheus Service in istio-system "
                               "and no thanos-querier Route")
        world.prometheus = prom  # type: ignore[attr-defined]
    return prom


def baselines(cluster: Cluster, world: object, mesh_info: object) -> dict[str, float]:
    """Per-service counts before traffic: the larger of Prometheus's and the proxy's own."""
    out: dict[str, float] = {}
    if getattr(mesh_info, "prometheus", None) is None and not getattr(mesh_info, "thanos",
                                                                       None):
        return out
    prom = prometheus_for(cluster, world, mesh_info)
    namespace = world.namespace  # type: ignore[attr-defined]
    result = prom.query(
        'sum by (destination_service_name) (istio_requests_total{reporter="destination",'
        f'destination_service_namespace="{namespace}",response_code="200"}})')
    for s in result:
        out[s["metric"].get("destination_service_name", "")] = float(s["value"][1])
    for name, deployed in (getattr(world, "deployed", {}) or {}).items():
        for pod in getattr(deployed, "pods", ())[:1]:
            try:
                direct = proxy_requests_total(cluster, namespace, pod,
                                              destination_labels(name, namespace, 200))
            except ClusterError:
                continue
            out[name] = max(out.get(name, 0.0), direct)
    return out

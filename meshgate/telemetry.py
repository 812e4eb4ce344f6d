"""Telemetry: Istio's standard metrics in Prometheus, and the proxies' access logs.

Prometheus is queried through the API server's services/proxy, as on any cluster
(docs/architecture.md). "The request reached the telemetry backend" means: the counter
``istio_requests_total`` with the wanted labels has grown by at least the number of
requests sent since just before they were sent — i.e. Prometheus scraped after the
traffic. When it has not, the explanation lists the series that come closest and which
labels differ, and the receiving sidecar's own count, so a failure says whether the
proxy reported with other labels, did not report, or was not scraped.

The checks are methods of :class:`Telemetry`, which holds what they need (the backend,
the cluster, the scenario's namespace and its waits); each polls through the waits and
raises an AssertionError that says what was expected, what was found and where to look.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client.parser import text_string_to_metric_families

from meshgate.cluster import Cluster, ClusterError
from meshgate.mesh import Addon, MeshInfo
from meshgate.waiting import Waits, WaitTimeout

REQUESTS_TOTAL = "istio_requests_total"


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
    ("You can only use bearer token authentication", OpenShift monitoring docs). The
    token is the kubeconfig's."""

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


def backend(cluster: Cluster, mesh: MeshInfo) -> QueryBackend | None:
    """The telemetry backend: the mesh's Prometheus addon, else OpenShift's thanos-querier."""
    if mesh.prometheus is not None:
        return Prometheus(cluster, mesh.prometheus)
    if mesh.thanos:
        return ThanosQuerier(cluster, mesh.thanos)
    return None


def no_backend_reason(mesh: MeshInfo) -> str:
    return (f"no telemetry backend: there is no prometheus Service in {mesh.namespace} (nor "
            "OpenShift's thanos-querier); install Istio's Prometheus addon "
            "(samples/addons/prometheus.yaml)")


def quote(value: str) -> str:
    """A PromQL string literal: PromQL strings are Go-escaped (Prometheus docs, "String
    literals"), so a backslash, a double quote or a newline in a label value must be
    escaped or the selector matches something else or does not parse."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def selector(labels: dict[str, str]) -> str:
    return "{" + ",".join(f"{k}={quote(v)}" for k, v in sorted(labels.items())) + "}"


def requests_total(prom: QueryBackend, labels: dict[str, str]) -> float:
    """Sum of ``istio_requests_total`` over the series matching ``labels`` (0 if none)."""
    result = prom.query(f"sum({REQUESTS_TOTAL}{selector(labels)})")
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
    result = prom.query(f"{REQUESTS_TOTAL}{selector(scope)}" if scope else REQUESTS_TOTAL)
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


def sum_samples(text: str, metric: str, labels: dict[str, str]) -> float:
    """Sum the samples of ``metric`` in Prometheus text format whose labels include
    ``labels``, parsed with the Prometheus client's own parser (a sample may carry a
    timestamp after its value; escaped quotes may appear in label values)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric and all(sample.labels.get(k) == v
                                              for k, v in labels.items()):
                total += float(sample.value)
    return total


def destination_labels(service: str, namespace: str, code: int) -> dict[str, str]:
    """The series Istio's destination sidecar reports for requests to a service."""
    return {"reporter": "destination", "destination_service_name": service,
            "destination_service_namespace": namespace, "response_code": str(code)}


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
    return sum_samples(body.decode(errors="replace"), REQUESTS_TOTAL, labels)


# The labels a baseline is kept for: enough to count the requests of one caller over one
# kind of connection (mTLS checks), beside the per-service totals.
BASELINE_LABELS = ("destination_service_name", "source_workload", "connection_security_policy",
                   "source_principal")
# What tells two scrape targets' series apart: Prometheus sets ``instance`` on every series
# it scrapes (a pod's sidecar, or the Mixer). A pod replaced since the baseline (a rollout)
# leaves a series that goes stale a scrape or a discovery later: compared series by series,
# it neither counts as new requests nor hides them.
SERIES_LABELS = (*BASELINE_LABELS, "response_code", "instance")


def _key(labels: dict[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset((k, v) for k, v in labels.items() if k in SERIES_LABELS)


@dataclass
class Baselines:
    """Counters just before traffic was sent, so a check counts only what came after.

    ``series``: the namespace's destination-reported series by :data:`SERIES_LABELS`, so a
    check of a subset of a service's requests (those over mutual TLS from one caller, say)
    counts only its own, and a series of a replaced pod drops out of both sides. ``lag``
    per service: how many 200s the receiving sidecar had counted that the backend had not
    scraped yet — they will show up later and must not pass for new ones.
    """

    totals: dict[str, float] = field(default_factory=dict)
    series: list[tuple[dict[str, str], float]] = field(default_factory=list)
    lag: dict[str, float] = field(default_factory=dict)

    def of(self, wanted: dict[str, str]) -> float:
        """The baseline of the series ``wanted`` selects (a destination reporter's, code
        200, in the scenario's namespace)."""
        service = wanted.get("destination_service_name", "")
        subset = {k: v for k, v in wanted.items() if k in BASELINE_LABELS
                  and k != "destination_service_name"}
        if not subset:
            return self.totals.get(service, 0.0)
        return sum(value for labels, value in self.series
                   if labels.get("destination_service_name") == service
                   and all(labels.get(k) == v for k, v in subset.items()))

    def increase(self, current: list[tuple[dict[str, str], float]]) -> float:
        """How much ``current`` (series by :data:`SERIES_LABELS`) grew since the baseline,
        series by series: a new series counts whole, a reset counter from zero."""
        before = {_key(labels): value for labels, value in self.series}
        grown = 0.0
        for labels, value in current:
            base = before.get(_key(labels), 0.0)
            grown += value - base if value >= base else value
        return grown

    def wanted_more(self, wanted: dict[str, str], count: int) -> float:
        """The growth a check of ``count`` requests waits for: ``count``, plus the
        sidecar's unscraped lag when the check takes all of a service's 200s."""
        service = wanted.get("destination_service_name", "")
        subset = [k for k in wanted if k in BASELINE_LABELS and k != "destination_service_name"]
        if subset or wanted.get("response_code") != "200":
            return float(count)
        return count + self.lag.get(service, 0.0)


def series_by(prom: QueryBackend, labels: dict[str, str]) -> list[tuple[dict[str, str], float]]:
    """``istio_requests_total`` matching ``labels``, summed by :data:`SERIES_LABELS`."""
    result = prom.query(f"sum by ({','.join(SERIES_LABELS)}) "
                        f"({REQUESTS_TOTAL}{selector(labels)})")
    return [({k: str(v) for k, v in (s.get("metric") or {}).items()}, float(s["value"][1]))
            for s in result]


@dataclass
class Telemetry:
    """The telemetry checks of one scenario: its namespace's requests in the backend."""

    cluster: Cluster
    prometheus: QueryBackend
    namespace: str
    waits: Waits

    def baselines(self, pods: dict[str, str]) -> Baselines:
        """Counts before traffic (``pods`` maps a service to one of its pods, whose sidecar
        is read too: it may have counted requests the backend has not scraped yet)."""
        out = Baselines()
        scope = {"reporter": "destination", "destination_service_namespace": self.namespace}
        for labels, value in series_by(self.prometheus, scope):
            out.series.append((labels, value))
            if labels.get("response_code") == "200":
                service = labels.get("destination_service_name", "")
                out.totals[service] = out.totals.get(service, 0.0) + value
        for service, pod in pods.items():
            try:
                direct = proxy_requests_total(self.cluster, self.namespace, pod,
                                              destination_labels(service, self.namespace, 200))
            except ClusterError:
                continue
            out.lag[service] = max(0.0, direct - out.totals.get(service, 0.0))
            out.totals[service] = max(out.totals.get(service, 0.0), direct)
        return out

    def expect_requests_counted(self, service: str, *, code: int, count: int,
                                baselines: Baselines, sent_to: str, pod: str | None,
                                labels: dict[str, str] | None = None) -> float:
        """``istio_requests_total{reporter="destination"}`` for ``service`` (and ``labels``:
        the caller, the connection's security) grows by ``count`` over its baseline;
        returns the count seen. ``pod`` is one of the service's pods, whose sidecar's own
        counter the explanation of a miss quotes."""
        wanted = {**destination_labels(service, self.namespace, code), **(labels or {})}
        target = baselines.wanted_more(wanted, count)
        seen: list[float] = [0.0]

        def counted() -> float:
            seen[0] = baselines.increase(series_by(self.prometheus, wanted))
            return seen[0] if seen[0] >= target else 0.0

        try:
            return self.waits.until(counted, area="telemetry",
                                    what=f"istio_requests_total for {service} grown by "
                                         f"≥ {target:g}",
                                    describe=lambda _: seen[0])
        except WaitTimeout as exc:
            raise AssertionError(
                f"expected Prometheus to count ≥ {target:g} more requests {selector(wanted)} "
                f"after sending {count} to {sent_to}; it counted {exc.last} more (it has "
                f"{requests_total(self.prometheus, wanted):g} in all); the sidecar itself "
                f"counts {self._at_proxy(pod, wanted)}. "
                f"{explain_missing(self.prometheus, wanted)}") from None

    def _at_proxy(self, pod: str | None, wanted: dict[str, str]) -> str:
        if pod is None:
            return "unknown (no pod of the service)"
        try:
            return f"{proxy_requests_total(self.cluster, self.namespace, pod, wanted):g}"
        except Exception as err:  # noqa: BLE001 - diagnostic only
            return f"unreadable ({err})"


def expect_access_log(cluster: Cluster, namespace: str, pod: str, path: str,
                      waits: Waits) -> list[str]:
    """Istio's access log on the proxy's stdout (``kubectl logs -c istio-proxy``) shows a
    request to ``path``; returns the last matching lines."""
    needle = f'"GET {path} '
    try:
        lines = waits.until(lambda: access_log_lines(cluster, namespace, pod, needle),
                            area="telemetry", what=f"access log of {pod} shows {path}",
                            describe=lambda v: v or "no matching line")
    except WaitTimeout:
        raise AssertionError(
            f"expected a line with {needle} in `kubectl logs -n {namespace} {pod} -c "
            "istio-proxy`; none found. Is access logging on (meshConfig.accessLogFile: "
            "/dev/stdout)?") from None
    return lines[-3:]

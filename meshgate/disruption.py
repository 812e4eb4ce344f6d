"""What a change did to the traffic that flowed through it, and whether that passes.

Read from three sources, each for what it knows best:

- the recorder's lines (meshgate.recorder): every request the suite itself sent through
  the ingress during the change — sent, failed, connections reset, and the longest time
  without a success, per flow;
- the mesh's own telemetry: per hop (ingress → composer, composer → vp0, composer →
  membersrvc, vp0 → membersrvc), how many requests the sidecars reported and how many of
  them failed, over the change window (``increase()``, which survives counter resets);
- the proxies before and after: which revision injected them, which image they run, and
  which control plane they are connected to (istiod's ``/debug/syncz``).

The gate: at most ``max_failed`` failed requests (default 0) and, if given, no gap
without a success longer than ``max_gap`` seconds.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from meshgate.cluster import Cluster, ClusterError
from meshgate.mesh import MeshInfo
from meshgate.sidecars import PROXY_CONTAINER, has_proxy_container
from meshgate.telemetry import QueryBackend, quote


@dataclass
class FlowStats:
    """One flow's requests during the change."""

    flow: str
    sent: int = 0
    failed: int = 0
    resets: int = 0
    longest_gap: float = 0.0  # seconds without a successful request
    gap_from: float | None = None  # unix time the longest gap began
    errors: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        kinds = ", ".join(f"{n}× {k}" for k, n in sorted(self.errors.items(),
                                                          key=lambda kv: -kv[1])[:3])
        return (f"{self.flow}: {self.failed} of {self.sent} failed"
                + (f" ({kinds})" if kinds else "") + f", {self.resets} connections reset, "
                f"longest gap without a success {self.longest_gap:.2f}s")


def read_records(text: str) -> list[dict[str, Any]]:
    """The recorder's JSON lines (a torn last line, from a killed recorder, is skipped)."""
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _error_kind(record: dict[str, Any]) -> str:
    if record.get("status") is not None:
        return f"HTTP {record['status']}"
    return str(record.get("error") or "no answer").split(":", 1)[0]


def flow_stats(records: list[dict[str, Any]], start: float, end: float) -> list[FlowStats]:
    """Per flow: counts, and the longest gap without a success inside [start, end] (the
    window's edges count, so a flow that never recovered shows a gap to the end)."""
    by_flow: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(records, key=lambda r: r["t"]):
        by_flow.setdefault(r["flow"], []).append(r)
    out = []
    for flow, rows in sorted(by_flow.items()):
        stats = FlowStats(flow, sent=len(rows))
        errors: Counter[str] = Counter()
        last_ok = start
        for r in rows:
            if r.get("ok"):
                if r["t"] - last_ok > stats.longest_gap:
                    stats.longest_gap, stats.gap_from = r["t"] - last_ok, last_ok
                last_ok = r["t"]
            else:
                stats.failed += 1
                errors[_error_kind(r)] += 1
                stats.resets += bool(r.get("reset"))
        if rows and not rows[-1].get("ok") and end - last_ok > stats.longest_gap:
            stats.longest_gap, stats.gap_from = end - last_ok, last_ok
        stats.errors = dict(errors)
        out.append(stats)
    return out


@dataclass
class HopStats:
    """One hop between workloads, as the source sidecars reported it."""

    source: str
    destination: str
    sent: int
    failed: int

    def describe(self) -> str:
        return f"{self.source} → {self.destination}: {self.failed} of {self.sent} failed"


def hop_stats(prom: QueryBackend, namespace: str, seconds: float) -> list[HopStats]:
    """Requests per hop into the namespace's services over the last ``seconds``
    (reporter ``source``: a request that never reached its destination counts too)."""
    window = max(1, round(seconds))
    by = "source_workload,destination_service_name,response_code"
    result = prom.query(
        f'sum by ({by}) (increase(istio_requests_total{{reporter="source",'
        f"destination_service_namespace={quote(namespace)}}}[{window}s]))")
    hops: dict[tuple[str, str], HopStats] = {}
    for s in result:
        m = s.get("metric") or {}
        key = (m.get("source_workload", "unknown"), m.get("destination_service_name", "?"))
        hop = hops.setdefault(key, HopStats(key[0], key[1], 0, 0))
        value = round(float(s["value"][1]))
        hop.sent += value
        if not str(m.get("response_code", "")).startswith(("2", "3")):
            hop.failed += value
    return sorted(hops.values(), key=lambda h: (h.source, h.destination))


@dataclass(frozen=True)
class Proxy:
    """A sidecar as the change found it: who injected it, what it runs, where it syncs."""

    pod: str
    revision: str
    image: str
    control_plane: str | None

    def key(self) -> str:
        """The workload the pod belongs to (pods are replaced by a restart)."""
        return self.pod.rsplit("-", 2)[0]


def _revision(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get("istio.io/rev"):
        return str(labels["istio.io/rev"])
    try:
        status = json.loads((meta.get("annotations") or {}).get("sidecar.istio.io/status", "{}"))
    except ValueError:
        status = {}
    return str(status.get("revision") or "default")


def _proxy_image(pod: dict[str, Any]) -> str:
    spec = pod.get("spec") or {}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        if c.get("name") == PROXY_CONTAINER:
            return str(c.get("image", ""))
    return ""


def control_planes(cluster: Cluster, mesh: MeshInfo) -> dict[str, str]:
    """Proxy id (``<pod>.<namespace>``) → the istiod (by revision) it is connected to,
    from each control plane's ``/debug/syncz`` (through services/proxy)."""
    out: dict[str, str] = {}
    for svc in cluster.list("v1", "Service", mesh.namespace, label_selector="app=istiod"):
        labels = svc["metadata"].get("labels") or {}
        revision = labels.get("istio.io/rev") or "default"
        try:
            status, body = cluster.service_get(mesh.namespace, svc["metadata"]["name"], 15014,
                                               "/debug/syncz")
        except ClusterError:
            continue
        if status != 200:
            continue
        try:
            for entry in json.loads(body or b"[]"):
                if entry.get("proxy"):
                    out[str(entry["proxy"])] = revision
        except ValueError:
            continue
    return out


def proxies(cluster: Cluster, mesh: MeshInfo, namespace: str) -> list[Proxy]:
    synced = control_planes(cluster, mesh)
    out = []
    for pod in cluster.list("v1", "Pod", namespace):
        if pod["metadata"].get("deletionTimestamp") or not has_proxy_container(pod):
            continue
        name = pod["metadata"]["name"]
        out.append(Proxy(name, _revision(pod), _proxy_image(pod),
                         synced.get(f"{name}.{namespace}")))
    return sorted(out, key=lambda p: p.pod)


def proxy_changes(before: list[Proxy], after: list[Proxy]) -> list[str]:
    """One line per workload whose proxies' revision, image or control plane changed."""
    old = {p.key(): p for p in before}
    lines = []
    for p in after:
        was = old.get(p.key())
        if was is None:
            lines.append(f"{p.key()}: new, revision {p.revision}")
            continue
        changed = [f"{what} {a} → {b}" for what, a, b in (
            ("revision", was.revision, p.revision), ("image", was.image, p.image),
            ("control plane", was.control_plane, p.control_plane)) if a != b]
        if changed:
            lines.append(f"{p.key()}: " + ", ".join(changed))
    return lines


@dataclass
class Verdict:
    ok: bool
    reasons: list[str]


def judge(flows: list[FlowStats], *, max_failed: int = 0,
          max_gap: float | None = None) -> Verdict:
    """Fails with every threshold the traffic broke, each named with its numbers."""
    reasons = []
    failed = sum(f.failed for f in flows)
    if failed > max_failed:
        worst = max(flows, key=lambda f: f.failed)
        reasons.append(f"{failed} failed requests (at most {max_failed} allowed); the worst "
                       f"flow: {worst.describe()}")
    if max_gap is not None:
        longest = max(flows, key=lambda f: f.longest_gap, default=None)
        if longest is not None and longest.longest_gap > max_gap:
            reasons.append(f"{longest.flow} went {longest.longest_gap:.2f}s without a "
                           f"success (at most {max_gap:g}s allowed)")
    if not flows or sum(f.sent for f in flows) == 0:
        reasons.append("no traffic was recorded during the change")
    return Verdict(not reasons, reasons)


def as_json(flows: list[FlowStats], hops: list[HopStats], changes: list[str],
            verdict: Verdict) -> dict[str, Any]:
    return {"ok": verdict.ok, "reasons": verdict.reasons,
            "flows": [asdict(f) for f in flows], "hops": [asdict(h) for h in hops],
            "proxy_changes": changes}


def expect_on_revision(cluster: Cluster, mesh: MeshInfo, namespace: str,
                       workloads: tuple[str, ...], revision: str) -> list[Proxy]:
    """Every sidecar of ``workloads`` was injected by ``revision`` and is connected to that
    revision's control plane."""
    found = [p for p in proxies(cluster, mesh, namespace) if p.key() in workloads]
    wrong = [f"{p.pod}: revision {p.revision}, control plane {p.control_plane}"
             for p in found if p.revision != revision or p.control_plane != revision]
    missing = sorted(set(workloads) - {p.key() for p in found})
    if wrong or missing:
        raise AssertionError(
            f"expected every sidecar of {', '.join(workloads)} in {namespace} on revision "
            f"{revision} and connected to istiod-{revision}; "
            + (f"not yet: {'; '.join(wrong)}" if wrong else "")
            + (f"; no sidecar of {', '.join(missing)}" if missing else "")
            + f". Look at `kubectl get pods -n {namespace} -L istio.io/rev` and istiod's "
            "/debug/syncz")
    return found

"""The failure bundle: what a reviewer needs to see why a scenario failed, captured before
cleanup.

For the scenario's namespace and the ingress gateway: every proxy's config dump, every
container's log, the pods, the events; istiod's sync status; the Prometheus queries the
scenario made with their answers; the graph JSON it read; and what it sent. Everything
goes through the :class:`Redactor` — Secrets are never read into the bundle except to
learn which values to mask, and credential-shaped text is masked.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path

from meshgate import ambient, sidecars
from meshgate.cluster import Cluster
from meshgate.mesh import MeshInfo
from meshgate.redact import Redactor
from meshgate.scenario import Scenario

MAX_LOG_LINES = 500


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:120] or "scenario"


class Bundle:
    """Writes redacted artifacts into one folder; never raises on a capture failure."""

    def __init__(self, root: Path, redactor: Redactor) -> None:
        self.root = root
        self.redactor = redactor
        self.errors: list[str] = []
        root.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, content: object) -> None:
        if not isinstance(content, str):
            content = json.dumps(_plain(content), indent=2, default=str)
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.redactor.text(content))

    def attempt(self, name: str, fn: Callable[[], object]) -> None:
        try:
            self.write(name, fn())
        except Exception as exc:  # noqa: BLE001 - a bundle collects what it can
            self.errors.append(f"{name}: {exc.__class__.__name__}: {exc}")


def _plain(obj: object) -> object:
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    return obj


def _log_tail(cluster: Cluster, namespace: str, pod: str, container: str) -> str:
    return "\n".join(cluster.pod_logs(namespace, pod, container).splitlines()[-MAX_LOG_LINES:])


def _pods(cluster: Cluster, namespace: str, selector: str | None = None) -> list[dict]:
    return cluster.list("v1", "Pod", namespace, label_selector=selector)


def capture(cluster: Cluster, namespace: str, root: Path, *, mesh: MeshInfo,
            scenario: Scenario | None = None) -> Path:
    """Capture the bundle of a failed scenario into ``root``; returns ``root``."""
    redactor = Redactor()
    try:
        redactor.add_secret_objects(cluster.list("v1", "Secret", namespace))
    except Exception:  # noqa: BLE001 - without list rights, the patterns still apply
        pass
    b = Bundle(root, redactor)
    gateway = mesh.ingress_gateway
    pods = [(namespace, p) for p in _pods(cluster, namespace)]
    try:
        pods += [(gateway.namespace, p) for p in _pods(cluster, gateway.namespace,
                                                       gateway.selector)]
    except Exception as exc:  # noqa: BLE001
        b.errors.append(f"gateway pods: {exc}")
    # Literal values of credential-named env vars are secrets too: learn them before
    # anything (logs, config dumps) is written, so they are masked wherever they appear.
    redactor.add(v for _, pod in pods for v in _credential_env_values(pod))
    for ns, pod in pods:
        name = pod["metadata"]["name"]
        b.write(f"pods/{ns}/{name}.json", _without_env_values(pod))
        spec = pod.get("spec") or {}
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            b.attempt(f"logs/{ns}/{name}/{c['name']}.log",
                      functools.partial(_log_tail, cluster, ns, name, c["name"]))
        if sidecars.has_proxy_container(pod):
            b.attempt(f"config_dumps/{ns}/{name}.json",
                      functools.partial(sidecars.admin_get, cluster, ns, name, "config_dump"))
    if mesh.ambient:
        # ztunnel's view (workloads, services, policies; public certificates only).
        try:
            ztunnels = _pods(cluster, mesh.namespace, ambient.ZTUNNEL_SELECTOR)
        except Exception as exc:  # noqa: BLE001
            ztunnels = []
            b.errors.append(f"ztunnel pods: {exc}")
        for z in ztunnels:
            zname = z["metadata"]["name"]
            b.attempt(f"ztunnel/{zname}.json", functools.partial(
                ambient.ztunnel_dump, cluster, mesh.namespace, zname))
    b.attempt("events.json", lambda: cluster.list("v1", "Event", namespace))
    b.attempt("istiod-syncz.json", lambda: json.loads(
        cluster.service_get(mesh.namespace, "istiod", 15014, "/debug/syncz")[1] or b"[]"))
    if scenario is not None:
        if scenario.queries:
            b.write("prometheus-queries.json", [asdict(q) for q in scenario.queries])
        graph = scenario.graph_read
        if graph is not None and graph.observed is not None:
            b.write("graph.json", {"source": graph.observed.source_name,
                                   "raw": graph.observed.raw})
        b.write("evidence.json", scenario.evidence())
    b.write("README.txt", f"meshgate failure bundle for namespace {namespace}\n"
                          + ("capture errors:\n" + "\n".join(b.errors) if b.errors else ""))
    return root


_CREDENTIAL_ENV = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|PRIVATE_?KEY",
                             re.IGNORECASE)
MIN_ENV_SECRET_LENGTH = 8  # shorter literals ("true", a port) would mask ordinary text


def _credential_env_values(pod: dict) -> list[str]:
    """The literal values of a pod's env vars whose names say they hold a credential."""
    spec = pod.get("spec") or {}
    return [e["value"] for c in (spec.get("initContainers") or []) +
            (spec.get("containers") or []) for e in c.get("env") or []
            if isinstance(e.get("value"), str) and len(e["value"]) >= MIN_ENV_SECRET_LENGTH
            and _CREDENTIAL_ENV.search(e.get("name", ""))]


def _without_env_values(pod: dict) -> dict:
    """Pod specs may carry literal env values; keep the names, drop the values."""
    out = json.loads(json.dumps(pod, default=str))
    spec = out.get("spec") or {}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for e in c.get("env") or []:
            if "value" in e and any(w in e["name"].upper() for w in
                                    ("SECRET", "TOKEN", "PASSWORD", "KEY", "CONFIG")):
                e["value"] = "<redacted>"
    return out

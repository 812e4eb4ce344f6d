"""Scenario namespaces: traceable names, an expiry label, and the sweeper for leftovers.

Each scenario (or xdist worker) gets its own namespace named ``mg-<run id>-<slug>``; the
labels record the run and when the namespace may be swept
(``meshgate.io/expires`` = a Unix time), so ``meshgate sweep`` can remove leftovers of
interrupted runs on a shared cluster without touching anything else.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time

from meshgate.cluster import Cluster

RUN_LABEL = "meshgate.io/run"
EXPIRES_LABEL = "meshgate.io/expires"
OWNER_LABEL = "app.kubernetes.io/managed-by"
DEFAULT_TTL = 3600


def new_run_id() -> str:
    return time.strftime("%m%d%H%M") + secrets.token_hex(2)


def namespace_name(run_id: str, scenario: str) -> str:
    """A DNS-1123 label of at most 63 characters that still says which scenario it is."""
    slug = re.sub(r"[^a-z0-9]+", "-", scenario.lower()).strip("-") or "scenario"
    digest = hashlib.sha1(scenario.encode()).hexdigest()[:4]
    run = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")[:20] or "run"
    head = f"mg-{run}-"
    room = 63 - len(head) - 5
    return f"{head}{slug[:room].rstrip('-')}-{digest}"


def namespace_object(name: str, run_id: str, *, ttl: int = DEFAULT_TTL,
                     injection: bool = True) -> dict:
    labels = {RUN_LABEL: run_id, EXPIRES_LABEL: str(int(time.time()) + ttl),
              OWNER_LABEL: "meshgate"}
    if injection:
        labels["istio-injection"] = "enabled"
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels}}


def create(cluster: Cluster, name: str, run_id: str, *, ttl: int = DEFAULT_TTL) -> dict:
    """Create the namespace labelled for injection, and join the mesh's member roll where
    the mesh has one (OpenShift Service Mesh 2.x)."""
    from meshgate import membership

    out = cluster.apply(namespace_object(name, run_id, ttl=ttl), None)
    membership.join(cluster, name)
    return out


def delete(cluster: Cluster, name: str) -> bool:
    from meshgate import membership

    membership.leave(cluster, name)
    return cluster.delete("v1", "Namespace", name, None)


def expired(cluster: Cluster, now: float | None = None) -> list[str]:
    """Namespaces made by meshgate whose expiry has passed."""
    now = time.time() if now is None else now
    out = []
    for ns in cluster.list("v1", "Namespace", label_selector=f"{OWNER_LABEL}=meshgate"):
        labels = (ns.get("metadata") or {}).get("labels") or {}
        try:
            if int(labels.get(EXPIRES_LABEL, "0")) <= now:
                out.append(ns["metadata"]["name"])
        except ValueError:
            continue
    return sorted(out)

"""The order the suite creates objects in: what pods call exists before the pods start.

A sidecar's first configuration is built from the Services that exist when it connects;
a workload created before a Service it calls sends its first requests to the
PassthroughCluster and they are reported against an "unknown" destination. These tests
fail if the blockchain's objects are applied in file order again.
"""

from __future__ import annotations

from meshgate import manifests
from meshgate.manifests import INSTALL_ORDER, install_order


def _blockchain_objects() -> list[dict]:
    loaded = [manifests.workload_manifest(n) for n in manifests.WORKLOADS]
    return [obj for m in loaded for obj in m.objects]


def test_every_service_comes_before_every_workload() -> None:
    kinds = [o["kind"] for o in install_order(_blockchain_objects())]
    assert "Service" in kinds and "Deployment" in kinds
    last_service = max(i for i, k in enumerate(kinds) if k == "Service")
    first_deployment = min(i for i, k in enumerate(kinds) if k == "Deployment")
    assert last_service < first_deployment, kinds


def test_the_files_themselves_put_a_deployment_before_a_service_it_calls() -> None:
    """Why the sort is needed: in file order, vp0's Deployment precedes membersrvc's
    Service (vp0 enrols with membersrvc at start)."""
    names = [(o["kind"], o["metadata"]["name"]) for o in _blockchain_objects()]
    assert names.index(("Deployment", "vp0")) < names.index(("Service", "membersrvc"))


def test_order_is_stable_within_a_kind_and_unknown_kinds_go_last() -> None:
    objs = [{"kind": "Widget", "metadata": {"name": "w"}},
            {"kind": "Deployment", "metadata": {"name": "a"}},
            {"kind": "Service", "metadata": {"name": "b"}},
            {"kind": "Deployment", "metadata": {"name": "c"}},
            {"kind": "VirtualService", "metadata": {"name": "v"}},
            {"kind": "DestinationRule", "metadata": {"name": "d"}},
            {"kind": "Secret", "metadata": {"name": "s"}}]
    got = [o["metadata"]["name"] for o in install_order(objs)]
    assert got == ["s", "b", "d", "v", "a", "c", "w"]


def test_istio_config_comes_before_workloads() -> None:
    for kind in ("DestinationRule", "VirtualService", "Gateway", "ServiceEntry"):
        assert INSTALL_ORDER.index(kind) < INSTALL_ORDER.index("Deployment")
    assert INSTALL_ORDER.index("DestinationRule") < INSTALL_ORDER.index("VirtualService")


class _Recorder:
    """Records apply calls; stands in for the API server only to see the call order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bool]] = []

    def apply(self, obj: dict, namespace: str | None, *, dry_run: bool = False) -> dict:
        self.calls.append((obj["kind"], obj["metadata"]["name"], dry_run))
        return obj


def test_apply_objects_dry_runs_everything_then_applies_in_install_order() -> None:
    rec = _Recorder()
    objs = _blockchain_objects()
    out = manifests.apply_objects(rec, objs, "ns")  # type: ignore[arg-type]
    expected = [(o["kind"], o["metadata"]["name"]) for o in install_order(objs)]
    dry = [(k, n) for k, n, d in rec.calls if d]
    real = [(k, n) for k, n, d in rec.calls if not d]
    assert rec.calls[:len(objs)] == [(k, n, True) for k, n in expected]
    assert dry == expected and real == expected
    assert [(o["kind"], o["metadata"]["name"]) for o in out] == expected

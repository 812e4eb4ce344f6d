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

    def __init__(self, ns_labels: dict[str, str] | None = None) -> None:
        self.calls: list[tuple[str, str, bool]] = []
        self.applied: list[dict] = []
        self.ns_labels = ns_labels or {}

    def apply(self, obj: dict, namespace: str | None, *, dry_run: bool = False) -> dict:
        self.calls.append((obj["kind"], obj["metadata"]["name"], dry_run))
        if not dry_run:
            self.applied.append(obj)
        return obj

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict:
        assert (api_version, kind, namespace) == ("v1", "Namespace", None)
        return {"metadata": {"name": name, "labels": self.ns_labels}}


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


def _template_labels(obj: dict) -> dict:
    return obj["spec"]["template"]["metadata"].get("labels") or {}


def test_pods_opt_in_to_injection_in_an_ossm2_member_namespace() -> None:
    """OSSM 2.x injects only pods that ask: in a member namespace every pod template the
    suite applies asks with the label; elsewhere nothing changes."""
    objs = _blockchain_objects()
    member = _Recorder({"maistra.io/member-of": "istio-system"})
    manifests.apply_objects(member, objs, "ns")  # type: ignore[arg-type]
    deployments = [o for o in member.applied if o["kind"] == "Deployment"]
    assert deployments and all(_template_labels(d)["sidecar.istio.io/inject"] == "true"
                               for d in deployments)
    assert all("sidecar.istio.io/inject" not in _template_labels(o)
               for o in objs if o["kind"] == "Deployment"), "the input is not modified"
    elsewhere = _Recorder({"istio-injection": "enabled"})
    manifests.apply_objects(elsewhere, objs, "ns")  # type: ignore[arg-type]
    assert all("sidecar.istio.io/inject" not in _template_labels(o)
               for o in elsewhere.applied if o["kind"] == "Deployment")


def test_a_pod_that_already_chose_keeps_its_choice() -> None:
    outside = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "out"},
               "spec": {"template": {"metadata": {
                   "annotations": {"sidecar.istio.io/inject": "false"}}}}}
    assert manifests.opt_in(outside) == outside
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
    assert manifests.opt_in(pod)["metadata"]["labels"] == {"sidecar.istio.io/inject": "true"}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    assert manifests.opt_in(svc) is svc

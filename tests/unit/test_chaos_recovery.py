"""A replaced control-plane pod counts as recovered once it is Ready and behind the Services
that select it: the endpoints controller adds a Ready pod a moment after its readiness, and
the suite reaches Prometheus and istiod through their Services."""

from __future__ import annotations

from meshgate.chaos import replacements_served


class _Cluster:
    """The objects ``replacements_served`` reads, as the API returns them."""

    def __init__(self, pods: list[dict], services: list[dict], endpoints: dict[str, dict]):
        self.pods, self.services, self.endpoints = pods, services, endpoints

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict]:
        if kind == "Pod":
            key, _, value = (label_selector or "").partition("=")
            return [p for p in self.pods if p["metadata"]["labels"].get(key) == value]
        return self.services

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict | None:
        return self.endpoints.get(name)


def pod(name: str, ip: str, app: str = "prometheus") -> dict:
    return {"metadata": {"name": name, "labels": {"app": app}}, "status": {"podIP": ip}}


def service(name: str, app: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"selector": {"app": app}}}


def endpoints(*ips: str, not_ready: tuple[str, ...] = ()) -> dict:
    return {"subsets": [{"addresses": [{"ip": ip} for ip in ips],
                         "notReadyAddresses": [{"ip": ip} for ip in not_ready]}]}


SERVICES = [service("prometheus", "prometheus"), service("kiali", "kiali")]


def test_the_replacement_is_served_once_its_service_lists_it_ready() -> None:
    old = ["prometheus-a"]
    pods = [pod("prometheus-b", "127.0.1.9")]
    assert not replacements_served(_Cluster(pods, SERVICES, {"prometheus": endpoints()}),
                                   "istio-system", "app=prometheus", old)
    # Still the old pod's address, or the new one not ready yet: not served.
    assert not replacements_served(
        _Cluster(pods, SERVICES, {"prometheus": endpoints("127.0.1.8")}), "istio-system",
        "app=prometheus", old)
    assert not replacements_served(
        _Cluster(pods, SERVICES, {"prometheus": endpoints(not_ready=("127.0.1.9",))}),
        "istio-system", "app=prometheus", old)
    # Services that select other pods (kiali's, empty) do not matter.
    assert replacements_served(
        _Cluster(pods, SERVICES, {"prometheus": endpoints("127.0.1.9"), "kiali": endpoints()}),
        "istio-system", "app=prometheus", old)


def test_no_replacement_yet_is_not_served() -> None:
    cluster = _Cluster([pod("prometheus-a", "127.0.1.8")], SERVICES,
                       {"prometheus": endpoints("127.0.1.8")})
    assert not replacements_served(cluster, "istio-system", "app=prometheus", ["prometheus-a"])

"""Istio's injection webhooks and the API server's webhook plugin (localmesh/webhooks.py):
while a mesh is installed the in-process injector answers them, so a pod is injected once
by the revision they select and nothing dials istiod's ``/inject``; without one they are
called over HTTPS like any other webhook (docs/localmesh.md, "Admission webhooks and
Istio's injection").

istiod's endpoint here is a loopback port nothing listens on: a call over the network
would fail the pod's creation with the API server's 500, so a pod that is created proves
no call was made.
"""

from __future__ import annotations

import pytest

from localmesh import webhooks as api_webhooks
from localmesh.api.objects import ObjectAPI
from localmesh.api.status import ApiError
from localmesh.istio import webhooks
from localmesh.istio.injector import Injector
from localmesh.resources import Registry
from localmesh.store import Store
from tests.support import unused_port


def _api(*, mesh: bool, revisions: tuple[str, ...] = ("default",)) -> ObjectAPI:
    api = ObjectAPI(Store(), Registry())
    api_webhooks.install(api)
    if mesh:  # as localmesh/istio/mesh.py installs the injector
        api.admission.add_mutator(("", "pods"), Injector({"discoveryAddress": "installer"}))
        api.admission.answered_in_process.append(webhooks.answered_by_injector)
    port = unused_port()
    for rev in revisions:
        name = webhooks.service_name(rev)
        api.store.create(webhooks.SERVICES, {
            "metadata": {"name": name, "namespace": "istio-system",
                         "labels": {"istio.io/rev": rev}},
            "spec": {"ports": [{"name": "https-webhook", "port": 443,
                                "targetPort": 15017}]}})
        api.store.create(webhooks.ENDPOINTS, {
            "metadata": {"name": name, "namespace": "istio-system"},
            "subsets": [{"addresses": [{"ip": "127.0.0.1"}],
                         "ports": [{"name": "https-webhook", "port": port}]}]})
        api.store.create(webhooks.MWC, webhooks.revision_configuration(rev))
    return api


def _pod(api: ObjectAPI, ns_labels: dict) -> dict:
    api.create(api.rt("v1", "Namespace"), "", {"metadata": {"name": "apps",
                                                             "labels": ns_labels}})
    return api.create(api.rt("v1", "Pod"), "apps", {
        "metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "image": "x"}]}})


@pytest.mark.parametrize(("ns_labels", "revision"), [
    ({"istio-injection": "enabled"}, "default"),
    ({"istio.io/rev": "canary"}, "canary"),
])
def test_a_pod_is_injected_once_by_the_selected_revision_without_a_call(
        ns_labels: dict, revision: str) -> None:
    pod = _pod(_api(mesh=True, revisions=("default", "canary")), ns_labels)
    proxies = [c for c in pod["spec"]["initContainers"] if c["name"] == "istio-proxy"]
    assert len(proxies) == 1
    assert pod["metadata"]["annotations"]["istio.io/rev"] == revision
    assert [c["name"] for c in pod["spec"]["containers"]] == ["app"]


def test_only_istios_injection_webhooks_for_pod_creation_are_answered_in_process() -> None:
    api = _api(mesh=True)
    hook = webhooks.revision_configuration("default")["webhooks"][0]
    pods, cms = api.rt("v1", "Pod"), api.rt("v1", "ConfigMap")
    assert webhooks.answered_by_injector(hook, pods, "CREATE")
    assert not webhooks.answered_by_injector(hook, pods, "UPDATE")
    assert not webhooks.answered_by_injector(hook, cms, "CREATE")
    # Another webhook of istio-system (a validator, a user's) is called over the network.
    other = {**hook, "clientConfig": {"service": {"name": "istiod", "namespace":
                                                  "istio-system", "path": "/validate"}}}
    assert not webhooks.answered_by_injector(other, pods, "CREATE")


def test_without_a_mesh_istios_webhook_is_called_over_https_like_any_other() -> None:
    with pytest.raises(ApiError) as refused:
        _pod(_api(mesh=False), {"istio-injection": "enabled"})
    assert refused.value.code == 500
    assert refused.value.message.startswith(
        'Internal error occurred: failed calling webhook "namespace.sidecar-injector.istio.io":'
        ' failed to call webhook: Post "https://istiod.istio-system.svc:443/inject'
        '?timeout=10s": ')

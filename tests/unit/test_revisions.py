"""Istio revisions in-process: which webhook configuration the API server would call
(Istio's documented precedence rules), and the manifests of deploy/ against what localmesh
renders.

The same behaviours through kubectl and live proxies: tests/localmesh/test_revisions.py;
deploy/canary-upgrade.sh's refusals: tests/integration/test_canary_script.py.
"""

from __future__ import annotations

import json

import pytest
import yaml

from localmesh.api.status import ApiError
from localmesh.istio import webhooks
from localmesh.istio.injector import Revision, inject_required, revision_of
from localmesh.istio.mesh import Mesh, injector_configmap
from localmesh.store import Store
from tests.support import REPO


def render(name: str, **values: str) -> list[dict]:
    text = (REPO / "deploy" / name).read_text()
    if values.get("TAG") and values["TAG"] != "default":
        lines, skip = [], False
        for line in text.splitlines():
            if "BEGIN default tag only" in line:
                skip = True
            if not skip:
                lines.append(line)
            if "END default tag only" in line:
                skip = False
        text = "\n".join(lines)
    for key, value in values.items():
        text = text.replace(f"__{key}__", value)
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(docs: list[dict], kind: str, name: str | None = None) -> dict:
    return next(d for d in docs if d["kind"] == kind and
                (name is None or d["metadata"]["name"] == name))


def store_with(*revisions: str, tags: dict[str, str] | None = None,
               unreachable: tuple[str, ...] = ()) -> Store:
    """Revisions installed as their charts render them: a Service with a ready endpoint
    (unless ``unreachable``) and the webhook configuration; tags pointing at revisions."""
    store = Store()
    for rev in revisions:
        name = webhooks.service_name(rev)
        store.create(webhooks.SERVICES, {"metadata": {
            "name": name, "namespace": "istio-system", "labels": {"istio.io/rev": rev}}})
        if rev not in unreachable:
            store.create(webhooks.ENDPOINTS, {"metadata": {"name": name,
                                                           "namespace": "istio-system"},
                                              "subsets": [{"addresses": [{"ip": "1.2.3.4"}]}]})
        store.create(webhooks.MWC, webhooks.revision_configuration(rev))
    for tag, rev in (tags or {}).items():
        store.create(webhooks.MWC, webhooks.tag_configuration(tag, rev))
    return store


def injecting(store: Store, ns_labels: dict, pod_labels: dict | None = None) -> str | None:
    ns = {"metadata": {"name": "apps", "labels": ns_labels}}
    pod = {"metadata": {"namespace": "apps", "labels": pod_labels or {}}}
    call = webhooks.injector_call(store, ns, pod)
    return None if call is None else webhooks.revision_of_service(store, call)


# Istio's rules (istio.io "Sidecar injection", "Canary upgrades": istio-injection takes
# precedence over istio.io/rev; a pod label selects a revision where the namespace has none).
@pytest.mark.parametrize(("ns_labels", "pod_labels", "expected"), [
    ({"istio-injection": "enabled"}, {}, "default"),
    ({"istio.io/rev": "canary"}, {}, "canary"),
    ({"istio.io/rev": "default"}, {}, "default"),
    ({"istio-injection": "enabled", "istio.io/rev": "canary"}, {}, "default"),
    ({"istio-injection": "disabled", "istio.io/rev": "canary"}, {}, None),
    ({"istio-injection": "disabled"}, {"sidecar.istio.io/inject": "true"}, None),
    ({}, {"istio.io/rev": "canary"}, "canary"),
    ({}, {"sidecar.istio.io/inject": "true"}, "default"),
    ({}, {"sidecar.istio.io/inject": "true", "istio.io/rev": "canary"}, "canary"),
    ({}, {}, None),
    ({"istio.io/rev": "canary"}, {"sidecar.istio.io/inject": "false"}, None),
    ({"istio.io/rev": "canary"}, {"istio.io/rev": "default"}, "canary"),
    ({"istio.io/rev": "nosuch"}, {}, None),
])
def test_the_webhook_called_follows_istios_selection(ns_labels: dict, pod_labels: dict,
                                                      expected: str | None) -> None:
    assert injecting(store_with("default", "canary"), ns_labels, pod_labels) == expected


def test_a_tag_selects_its_revision_and_the_default_tag_takes_istio_injection() -> None:
    store = store_with("canary", tags={"prod": "canary", "default": "canary"})
    assert injecting(store, {"istio.io/rev": "prod"}) == "canary"
    assert injecting(store, {"istio-injection": "enabled"}) == "canary"
    assert injecting(store, {}, {"sidecar.istio.io/inject": "true"}) == "canary"
    assert webhooks.default_revision(store) == "canary"
    assert webhooks.default_revision(store_with("default", "canary")) == "default"


def test_a_selected_webhook_without_its_istiod_fails_the_pod_as_the_api_server_does() -> None:
    store = store_with("default", "canary", unreachable=("canary",))
    with pytest.raises(ApiError) as caught:
        injecting(store, {"istio.io/rev": "canary"})
    assert caught.value.code == 500
    assert caught.value.message == (
        'Internal error occurred: failed calling webhook "rev.namespace.sidecar-injector.'
        'istio.io": failed to call webhook: Post "https://istiod-canary.istio-system.svc:443'
        '/inject?timeout=10s": no endpoints available for service "istiod-canary"')
    assert injecting(store, {"istio-injection": "enabled"}) == "default"  # not called
    store.delete(webhooks.SERVICES, "istio-system", "istiod-canary")
    with pytest.raises(ApiError, match='service "istiod-canary" not found'):
        injecting(store, {"istio.io/rev": "canary"})
    ignore = webhooks.revision_configuration("canary")
    for hook in ignore["webhooks"]:
        hook["failurePolicy"] = "Ignore"
    store.update(webhooks.MWC, {**ignore, "metadata": {**ignore["metadata"]}},
                 check_version=False)
    assert injecting(store, {"istio.io/rev": "canary"}) is None


def test_the_injectors_own_rules_after_the_webhook() -> None:
    pod = {"metadata": {"labels": {}, "annotations": {}}}
    assert inject_required(pod) and not inject_required(pod, "disabled")
    pod["metadata"]["annotations"]["sidecar.istio.io/inject"] = "false"
    assert not inject_required(pod)
    pod["metadata"]["labels"]["sidecar.istio.io/inject"] = "true"  # the label wins
    assert inject_required(pod, "disabled")


def test_a_revision_is_described_by_its_injector_values_else_its_istiod_image() -> None:
    store = Store()
    assert revision_of(store, "canary") == Revision("canary")
    store.create(("apps", "deployments"), {
        "metadata": {"name": "istiod-canary", "namespace": "istio-system"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "discovery", "image": "docker.io/istio/pilot:1.29.1"}]}}}})
    assert revision_of(store, "canary").version == "1.29.1"
    store.create(("", "configmaps"), injector_configmap("canary", "1.30.0"))
    canary = revision_of(store, "canary")
    assert (canary.version, canary.image, canary.istiod_host) == (
        "1.30.0", "docker.io/istio/proxyv2:1.30.0", "istiod-canary.istio-system.svc")
    assert Revision().istiod_host == "istiod.istio-system.svc"


def test_the_revision_manifest_is_what_localmesh_renders_for_a_revision() -> None:
    docs = render("istiod-revision.yaml", REVISION="1-2x", VERSION="1.29.0")
    assert by_kind(docs, "MutatingWebhookConfiguration") == \
        webhooks.revision_configuration("1-2x")
    mesh = yaml.safe_load(by_kind(docs, "ConfigMap", "istio-1-2x")["data"]["mesh"])
    installed = Mesh.proxy_config(None)  # type: ignore[arg-type]  # a pure method
    assert mesh["defaultConfig"] == {
        **installed, "discoveryAddress": "istiod-1-2x.istio-system.svc:15010"}
    values = json.loads(by_kind(docs, "ConfigMap", "istio-sidecar-injector-1-2x")["data"][
        "values"])
    assert values["global"] == {"hub": "docker.io/istio", "istioNamespace": "istio-system",
                                "tag": "1.29.0"}
    deploy = by_kind(docs, "Deployment")
    assert deploy["metadata"]["name"] == "istiod-1-2x"
    assert deploy["spec"]["template"]["metadata"]["labels"]["istio.io/rev"] == "1-2x"
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "docker.io/istio/pilot:1.29.0"
    svc = by_kind(docs, "Service")
    assert svc["metadata"]["labels"]["istio.io/rev"] == "1-2x"
    assert svc["spec"]["selector"] == {"app": "istiod", "istio.io/rev": "1-2x"}


@pytest.mark.parametrize("tag", ["prod", "default"])
def test_the_tag_manifest_is_what_istioctl_tag_set_writes(tag: str) -> None:
    [mwc] = render("istio-revision-tag.yaml", TAG=tag, REVISION="1-2x")
    assert mwc == webhooks.tag_configuration(tag, "1-2x")

"""The manifests, validated offline against the Kubernetes API's JSON schemas.

``kubernetes-validate`` ships the upstream OpenAPI-derived schemas, so this runs with no
cluster. Custom kinds (Istio, Gateway API, OpenShift) have no schema there; they are
checked by a server-side dry run against localmesh in tests/localmesh/test_mesh_istio.py.
"""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from tests.support import REPO

MANIFESTS = REPO / "manifests"
K8S_VERSION = "1.33"
BUILTIN_GROUPS = ("v1", "apps/v1", "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1")


def documents() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(MANIFESTS.rglob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc:
                out.append((f"{path.relative_to(MANIFESTS)}#{i}", doc))
    return out


@pytest.mark.parametrize(("where", "doc"), documents(), ids=[w for w, _ in documents()])
def test_manifest_is_valid_for_kubernetes(where: str, doc: dict) -> None:
    if doc["apiVersion"] not in BUILTIN_GROUPS:
        pytest.skip(f"{doc['kind']} ({doc['apiVersion']}) is a custom kind: no upstream "
                    "schema; covered by the server-side dry run against localmesh")
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{where} ({doc['kind']} {doc['metadata']['name']}) is invalid for "
                    f"Kubernetes {K8S_VERSION}: {exc.message} at {list(exc.path)}")


def test_an_invalid_manifest_is_caught() -> None:
    """The check can fail: a Deployment with a string replica count is rejected."""
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"replicas": "three", "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}},
                                 "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)

"""``/openapi/v2`` (localmesh/api/openapi_v2.py): the Swagger 2.0 document kubectl ≤ 1.28
reads, decoded back from its protobuf by field number (gnostic's openapi.v2 messages), and
the model rules kube-openapi's parser enforces (every reference resolves, an array has
one item schema, one type per schema)."""

from __future__ import annotations

import pytest
import yaml

from localmesh.api.objects import ObjectAPI
from localmesh.api.openapi import OpenAPI
from localmesh.api.protobuf import _fields
from localmesh.api.schema import DEFINITIONS
from localmesh.resources import Registry
from localmesh.store import Store

DEPLOYMENT = "/apis/apps/v1/namespaces/{namespace}/deployments/{name}"


def _one(buf: bytes, field: int) -> bytes:
    found = [v for f, _, v in _fields(buf) if f == field]
    assert len(found) == 1 and isinstance(found[0], bytes), (field, found)
    return found[0]


def _all(buf: bytes, field: int) -> list[bytes]:
    return [v for f, _, v in _fields(buf) if f == field and isinstance(v, bytes)]


def _named(entries: list[bytes]) -> dict[str, bytes]:
    """Named* messages (name = 1, value = 2) as a dict."""
    return {_one(e, 1).decode(): _one(e, 2) for e in entries}


def _extensions(buf: bytes, field: int) -> dict:
    return {name: yaml.safe_load(_one(value, 2))
            for name, value in _named(_all(buf, field)).items()}


@pytest.fixture(scope="module")
def document() -> tuple[dict, bytes]:
    if not DEFINITIONS.defs:
        pytest.skip("kubernetes-validate is not installed: no Kubernetes schemas")
    api = ObjectAPI(Store(), Registry())
    return OpenAPI(api.registry, api.schema).v2()


def test_kubectl_finds_the_field_validation_parameter_of_a_kinds_patch(
        document: tuple[dict, bytes]) -> None:
    _, body = document
    assert _one(body, 1) == b"2.0"
    paths = _named(_all(_one(body, 8), 2))
    patch = _one(paths[DEPLOYMENT], 8)  # PathItem.patch
    assert _extensions(patch, 13)["x-kubernetes-group-version-kind"] == {
        "group": "apps", "kind": "Deployment", "version": "v1"}
    names = []
    for item in _all(patch, 8):  # ParametersItem.parameter
        parameter = _one(item, 1)
        if [f for f, _, _ in _fields(parameter)] == [2]:  # a non-body parameter
            query = _one(_one(parameter, 2), 3)
            assert _one(query, 2) == b"query"
            names.append(_one(query, 4).decode())
    assert names == ["fieldValidation", "dryRun", "fieldManager"]


def test_a_kinds_model_carries_its_kind_fields_and_descriptions(
        document: tuple[dict, bytes]) -> None:
    _, body = document
    definitions = _named(_all(_one(body, 9), 1))
    deployment = definitions["io.k8s.api.apps.v1.Deployment"]
    assert _extensions(deployment, 31)["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}]
    spec = _named(_all(_one(definitions["io.k8s.api.apps.v1.DeploymentSpec"], 25), 1))
    replicas = spec["replicas"]
    assert _one(_one(replicas, 22), 1) == b"integer"  # TypeItem.value
    assert _one(replicas, 4).decode().startswith("Number of desired pods.")
    containers = _named(_all(_one(definitions["io.k8s.api.core.v1.PodSpec"], 25), 1))[
        "containers"]
    assert _extensions(containers, 31)["x-kubernetes-patch-merge-key"] == "name"
    item = _one(_one(containers, 23), 1)  # ItemsItem.schema
    assert _one(item, 1) == b"#/definitions/io.k8s.api.core.v1.Container"


def test_the_definitions_are_models_kube_openapi_can_parse(
        document: tuple[dict, bytes]) -> None:
    doc, _ = document
    defs = doc["definitions"]
    problems = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, list):
            for i, x in enumerate(node):
                walk(x, f"{where}[{i}]")
            return
        if not isinstance(node, dict):
            return
        ref = node.get("$ref")
        if ref is not None and ref.removeprefix("#/definitions/") not in defs:
            problems.append(f"{where}: unresolved {ref}")
        if node.get("type") == "array" and not isinstance(node.get("items"), dict):
            problems.append(f"{where}: an array without one item schema")
        if "type" in node and not isinstance(node["type"], str):
            problems.append(f"{where}: several types {node['type']}")
        for key, value in node.items():
            if key == "properties":  # names, not keywords (JSONSchemaProps has "$ref")
                for name, prop in value.items():
                    walk(prop, f"{where}.{name}")
            elif key in ("items", "additionalProperties", "allOf"):
                walk(value, f"{where}.{key}")

    for name, body in defs.items():
        walk(body, name)
    assert problems == []
    assert defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] == {
        "type": "string", "format": "int-or-string"}

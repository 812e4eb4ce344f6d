"""The /openapi/v3 component schemas (localmesh/api/openapi_schemas.py): Kubernetes'
definitions and CRD schemas in OpenAPI v3's form, with everything they refer to."""

from __future__ import annotations

import pytest

from localmesh.api.openapi_schemas import PREFIX, add_kind, custom_name, to_v3
from localmesh.api.schema import DEFINITIONS, OBJECT_META


def test_json_schema_forms_become_openapi_v3_forms() -> None:
    refs: set[str] = set()
    out = to_v3({"type": ["object", "null"], "properties": {
        "apiVersion": {"type": ["string", "null"], "enum": ["v1"]},
        "mode": {"type": "string", "enum": ["a", "b"]},
        "metadata": {"$ref": "#/$defs/meta", "description": "Standard metadata."},
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
        "port": {"oneOf": [{"type": ["string", "null"]}, {"type": ["integer", "null"]}]}}},
        refs)
    props = out["properties"]
    assert out["type"] == "object"
    assert props["apiVersion"] == {"type": "string"}  # the package's enum, not upstream's
    assert props["mode"]["enum"] == ["a", "b"]  # a schema's own enum stays
    assert props["metadata"] == {"description": "Standard metadata.",
                                 "allOf": [{"$ref": PREFIX + "meta"}]}
    assert props["items"]["items"] == {"$ref": PREFIX + "item"}
    assert props["port"] == {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    assert refs == {"meta", "item"}


def test_a_built_in_kind_brings_every_definition_it_reaches() -> None:
    pod = DEFINITIONS.kind("", "v1", "Pod")
    if pod is None:
        pytest.skip("kubernetes-validate is not installed: no Kubernetes schemas")
    schemas: dict[str, dict] = {}
    name = add_kind(schemas, pod, "", "v1", "Pod")
    assert name == "io.k8s.api.core.v1.Pod"
    assert schemas[name]["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "Pod", "version": "v1"}]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["items"] == {"$ref": PREFIX + "io.k8s.api.core.v1.Container"}
    assert "List of containers belonging to the pod." in containers["description"]
    reached = {ref.removeprefix(PREFIX) for ref in _refs(schemas)}
    assert reached <= set(schemas), reached - set(schemas)
    assert OBJECT_META in schemas


def test_a_custom_kind_is_named_as_apiextensions_names_it() -> None:
    crd_version = {"name": "v1", "schema": {"openAPIV3Schema": {
        "type": "object", "description": "A widget.",
        "properties": {"spec": {"type": "object", "properties": {"size": {
            "type": "integer", "description": "How big it is."}}}}}}}
    schema = DEFINITIONS.custom(crd_version)
    assert schema is not None
    schemas: dict[str, dict] = {}
    name = add_kind(schemas, schema, "networking.istio.io", "v1", "Widget")
    assert name == custom_name("networking.istio.io", "v1", "Widget") == \
        "io.istio.networking.v1.Widget"
    assert schemas[name]["properties"]["spec"]["properties"]["size"] == {
        "type": "integer", "description": "How big it is."}
    assert schemas[name]["x-kubernetes-group-version-kind"] == [
        {"group": "networking.istio.io", "version": "v1", "kind": "Widget"}]


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        return [*([node["$ref"]] if isinstance(node.get("$ref"), str) else []),
                *(r for v in node.values() for r in _refs(v))]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []

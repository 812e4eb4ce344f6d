"""``fieldValidation``: unknown and duplicate fields rejected (Strict), dropped with a
Warning header (Warn, the default) or dropped silently (Ignore), with the API server's
messages, through kubectl and plain requests."""

from __future__ import annotations

import json

import pytest

from tests.localmesh.conftest import Kubectl, Raw

BOGUS_CM = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cmx}\ndata: {a: '1'}\n"
            "bogus: 1\n")


def _cm(name: str, **extra: object) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"a": "1"}, **extra}


def test_kubectl_strict_by_default_and_warn(kubectl_new: Kubectl, ns: str) -> None:
    refused = kubectl_new.run("apply", "-n", ns, "-f", "-", input=BOGUS_CM, check=False)
    assert refused.returncode != 0
    assert ('ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding '
            'error: unknown field "bogus"') in refused.stderr
    warned = kubectl_new.run("apply", "--validate=warn", "-n", ns, "-f", "-", input=BOGUS_CM)
    assert 'Warning: unknown field "bogus"' in warned.stderr
    assert "bogus" not in kubectl_new.json("get", "cm", "cmx", "-n", ns)


@pytest.mark.parametrize("mode", ["Strict", "Warn", "Ignore", ""])
def test_create_modes(raw: Raw, ns: str, mode: str) -> None:
    query = f"?fieldValidation={mode}" if mode else ""
    body = _cm("m", spec={"x": 1})
    body["data"] = {"a": "1"}
    body["metadata"]["labelz"] = {"a": "b"}
    resp = raw("POST", f"/api/v1/namespaces/{ns}/configmaps{query}", body=body)
    if mode == "Strict":
        assert resp.status == 400
        assert json.loads(resp.data)["message"] == (
            'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding '
            'error: unknown field "metadata.labelz", unknown field "spec"')
        return
    assert resp.status == 201
    stored = json.loads(resp.data)
    assert "spec" not in stored and "labelz" not in stored["metadata"]
    warnings = resp.headers.getlist("Warning")
    if mode == "Ignore":
        assert warnings == []
    else:  # Warn, also the default
        assert warnings == ['299 - "unknown field \\"metadata.labelz\\""',
                            '299 - "unknown field \\"spec\\""']


def test_duplicate_and_nested_unknown_fields(raw: Raw, ns: str) -> None:
    body = (b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","name":"p"},'
            b'"spec":{"containers":[{"name":"c","image":"busybox","imagePolicy":"x"}]}}')
    resp = raw("POST", f"/api/v1/namespaces/{ns}/pods?fieldValidation=Strict", body=body,
               headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert json.loads(resp.data)["message"].endswith(
        'strict decoding error: duplicate field "metadata.name", unknown field '
        '"spec.containers[0].imagePolicy"')


def test_patch_strict_is_invalid_and_options_are_checked(raw: Raw, ns: str) -> None:
    assert raw("POST", f"/api/v1/namespaces/{ns}/configmaps", body=_cm("pt")).status == 201
    resp = raw("PATCH", f"/api/v1/namespaces/{ns}/configmaps/pt?fieldValidation=Strict",
               body='{"extra":true}', headers={"Content-Type": "application/merge-patch+json"})
    assert resp.status == 422
    status = json.loads(resp.data)
    assert status["message"].startswith(' "" is invalid: patch: Invalid value: "{')
    assert status["message"].endswith('strict decoding error: unknown field "extra"')
    assert status["details"]["causes"][0]["field"] == "patch"
    bad = raw("POST", f"/api/v1/namespaces/{ns}/configmaps?fieldValidation=Loud",
              body=_cm("x"))
    assert bad.status == 422 and json.loads(bad.data)["message"] == (
        'CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: '
        '"Loud": supported values: "", "Ignore", "Strict", "Warn"')


def test_custom_resources_follow_their_schema(raw: Raw, ns: str, api_client) -> None:
    from kubernetes import client

    ext = client.ApiextensionsV1Api(api_client)
    name = f"gadgets{ns.replace('-', '')[-6:]}.example.com"
    plural = name.split(".")[0]
    ext.create_custom_resource_definition({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": plural, "kind": "Gadget" + plural[-6:].capitalize()},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object", "properties": {
                         "spec": {"type": "object", "properties": {"size": {"type": "integer"}},
                                  },
                         "extra": {"type": "object",
                                   "x-kubernetes-preserve-unknown-fields": True}}}}}]}})
    try:
        kind = "Gadget" + plural[-6:].capitalize()
        path = f"/apis/example.com/v1/namespaces/{ns}/{plural}"
        from tests.support import poll
        poll(lambda: raw("GET", path).status == 200, what="the CRD served")
        body = {"apiVersion": "example.com/v1", "kind": kind, "metadata": {"name": "g"},
                "spec": {"size": 1, "colour": "red"}, "extra": {"any": {"thing": 1}}}
        strict = raw("POST", path + "?fieldValidation=Strict", body=body)
        assert strict.status == 400 and 'unknown field "spec.colour"' in json.loads(
            strict.data)["message"]
        ok = raw("POST", path, body=body)
        assert ok.status == 201
        stored = json.loads(ok.data)
        assert stored["spec"] == {"size": 1} and stored["extra"] == {"any": {"thing": 1}}
        # An unstructured object: its keys come back sorted, as Go encodes maps.
        assert list(stored) == sorted(stored)
    finally:
        ext.delete_custom_resource_definition(name)

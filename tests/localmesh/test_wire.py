"""The bytes of the API server's answers: Status errors compared byte for byte with the
recorded kube-apiserver answers in fixtures/status/ (README there says where each comes
from), and the encoding of objects, lists and watch events (compact JSON and a newline,
Go's field order and escaping, pretty output for curl)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client

from tests.localmesh.conftest import Raw

FIXTURES = Path(__file__).parent / "fixtures" / "status"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _deployment(name: str, template_app: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "x"}},
                     "template": {"metadata": {"labels": {"app": template_app}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


@pytest.mark.parametrize(("fixture_name", "method", "path", "body"), [
    ("404-pod.json", "GET", "/api/v1/namespaces/{ns}/pods/nope", None),
    ("404-deployment.json", "GET", "/apis/apps/v1/namespaces/{ns}/deployments/nope", None),
    ("404-deployment.json", "DELETE", "/apis/apps/v1/namespaces/{ns}/deployments/nope", None),
    ("404-no-such-resource.json", "GET", "/api/v1/namespaces/{ns}/widgets", None),
    ("404-no-such-resource.json", "GET", "/apis/apps/v1/widgets", None),
    ("405-no-route.json", "PUT", "/api/v1/namespaces/{ns}/configmaps", {"metadata": {}}),
    ("422-pod-without-containers.json", "POST", "/api/v1/namespaces/{ns}/pods",
     {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "empty"},
      "spec": {"containers": []}}),
    ("422-deployment-selector.json", "POST", "/apis/apps/v1/namespaces/{ns}/deployments",
     _deployment("mismatch", "y")),
])
def test_status_bodies_are_the_api_servers(raw: Raw, ns: str, fixture_name: str, method: str,
                                           path: str, body: dict | None) -> None:
    resp = raw(method, path.format(ns=ns), body=body)
    expected = fixture(fixture_name)
    assert resp.status == json.loads(expected)["code"]
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.data == expected, f"{resp.data!r}\n!=\n{expected!r}"


def test_conflict_bodies_are_the_api_servers(raw: Raw, ns: str) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "taken"}}
    first = json.loads(raw("POST", f"/api/v1/namespaces/{ns}/configmaps", body=cm).data)
    again = raw("POST", f"/api/v1/namespaces/{ns}/configmaps", body=cm)
    assert (again.status, again.data) == (409, fixture("409-already-exists.json"))
    stale = {**cm, "metadata": {**cm["metadata"],
                                "resourceVersion": first["metadata"]["resourceVersion"]},
             "data": {"a": "1"}}
    assert raw("PUT", f"/api/v1/namespaces/{ns}/configmaps/taken", body=stale).status == 200
    late = raw("PUT", f"/api/v1/namespaces/{ns}/configmaps/taken", body=stale)
    assert (late.status, late.data) == (409, fixture("409-conflict.json"))


def test_unknown_group_is_a_plain_page_not_found(raw: Raw) -> None:
    for path in ("/apis/nonexistent.example.com/v1", "/apis/apps/v9", "/api/v2",
                 "/nothing-here"):
        resp = raw("GET", path)
        assert resp.status == 404, path
        assert resp.data == fixture("404-no-such-group.txt"), path
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_objects_lists_and_watch_events_are_compact_lines(raw: Raw, ns: str) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"labels": {"z": "1"}, "name": "enc"},
          "data": {"html": "<a href='x'>&</a>", "text": "héllo"}}
    created = raw("POST", f"/api/v1/namespaces/{ns}/configmaps", body=cm)
    text = created.data
    assert text.endswith(b"}\n") and b"\n" not in text[:-1] and b": " not in text
    # Go's encoder escapes <, > and & and writes other text as UTF-8.
    assert b"\\u003ca href='x'\\u003e\\u0026\\u003c/a\\u003e" in text
    assert "héllo".encode() in text
    # TypeMeta, then ObjectMeta in Go's field order, then the kind's own fields.
    obj = json.loads(text)
    assert list(obj)[:3] == ["kind", "apiVersion", "metadata"]
    meta_keys = list(obj["metadata"])
    assert meta_keys.index("name") < meta_keys.index("namespace") < meta_keys.index("uid") \
        < meta_keys.index("resourceVersion") < meta_keys.index("creationTimestamp") \
        < meta_keys.index("labels")
    listing = raw("GET", f"/api/v1/namespaces/{ns}/configmaps").data
    assert listing.endswith(b"]}\n") and b"\n" not in listing[:-1]
    assert list(json.loads(listing)) == ["kind", "apiVersion", "metadata", "items"]
    assert listing.startswith(b'{"kind":"ConfigMapList","apiVersion":"v1","metadata":'
                              b'{"resourceVersion":"')
    watch = raw("GET", f"/api/v1/namespaces/{ns}/configmaps?watch=1&timeoutSeconds=1",
                preload=False)
    lines = watch.read().split(b"\n")
    watch.release_conn()
    assert lines[-1] == b"" and lines[0].startswith(b'{"type":"ADDED","object":{"kind":'
                                                    b'"ConfigMap","apiVersion":"v1",')


def test_pretty_output_for_curl_and_pretty_true(raw: Raw, ns: str) -> None:
    for headers, query in (({"User-Agent": "curl/8.5.0"}, ""), ({}, "?pretty=true")):
        resp = raw("GET", f"/api/v1/namespaces/{ns}/pods/nope{query}", headers=headers)
        expected = json.dumps(json.loads(fixture("404-pod.json")), indent=2).encode()
        assert resp.data == expected, resp.data
    assert raw("GET", f"/api/v1/namespaces/{ns}/pods/nope?pretty=false",
               headers={"User-Agent": "curl/8.5.0"}).data == fixture("404-pod.json")


def test_python_client_reads_the_status(core: client.CoreV1Api, ns: str) -> None:
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_pod("nope", ns)
    assert err.value.status == 404 and err.value.reason == "Not Found"
    assert err.value.body == fixture("404-pod.json").decode()


JSON_PATCH = {"Content-Type": "application/json-patch+json"}


@pytest.mark.parametrize("ops", [
    [{"op": "remove", "path": "/data/nope"}],
    [{"op": "add", "path": "/metadata/finalizers/5", "value": "x"}],  # past the end
    [{"op": "add", "path": "/metadata/finalizers/01", "value": "x"}],  # leading zero
    [{"op": "test", "path": "/data/a", "value": "2"}],
    [{"op": "frobnicate", "path": "/data"}],
])
def test_json_patch_that_cannot_apply_is_422(raw: Raw, ns: str, ops: list) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "jp", "finalizers": ["a"]}, "data": {"a": "1"}}
    raw("POST", f"/api/v1/namespaces/{ns}/configmaps", body=cm)
    resp = raw("PATCH", f"/api/v1/namespaces/{ns}/configmaps/jp", body=json.dumps(ops),
               headers=JSON_PATCH)
    assert (resp.status, resp.data) == (422, fixture("422-json-patch.json"))
    stored = json.loads(raw("GET", f"/api/v1/namespaces/{ns}/configmaps/jp").data)
    assert stored["data"] == {"a": "1"} and stored["metadata"]["finalizers"] == ["a"]
    raw("PATCH", f"/api/v1/namespaces/{ns}/configmaps/jp", body='{"metadata":{"finalizers":null}}',
        headers={"Content-Type": "application/merge-patch+json"})


@pytest.mark.parametrize(("body", "message"), [
    ("[1]", "json: cannot unmarshal number into Go value of type jsonpatch.Operation"),
    ('{"op":"add"}', "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
    ("{oops", None),
])
def test_malformed_json_patch_is_400(raw: Raw, ns: str, body: str, message: str | None) -> None:
    raw("POST", f"/api/v1/namespaces/{ns}/configmaps",
        body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "jp"}})
    resp = raw("PATCH", f"/api/v1/namespaces/{ns}/configmaps/jp", body=body,
               headers=JSON_PATCH)
    status = json.loads(resp.data)
    assert resp.status == 400 and status["reason"] == "BadRequest"
    if message:
        assert status["message"] == message


def test_unknown_patch_type_is_415(raw: Raw, ns: str) -> None:
    raw("POST", f"/api/v1/namespaces/{ns}/configmaps",
        body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "jp"}})
    resp = raw("PATCH", f"/api/v1/namespaces/{ns}/configmaps/jp", body="{}",
               headers={"Content-Type": "text/plain"})
    assert resp.status == 415 and json.loads(resp.data)["reason"] == "UnsupportedMediaType"

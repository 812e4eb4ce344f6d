"""The API server's semantics through the official Python client (and plain HTTP for the
requests no typed client makes): discovery, CRUD, every Status error, selectors, paging,
generateName, generation, subresources, dry run, deletion, garbage collection."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, utils

from tests.localmesh.conftest import Raw
from tests.support import poll


def _status(exc: client.ApiException) -> dict:
    return json.loads(exc.body)


# -- discovery and authentication -----------------------------------------------------------
def test_discovery_documents(raw: Raw) -> None:
    version = json.loads(raw("GET", "/version").data)
    assert version["major"] == "1" and version["gitVersion"].startswith("v1.")
    api = json.loads(raw("GET", "/api").data)
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    groups = {g["name"]: g for g in json.loads(raw("GET", "/apis").data)["groups"]}
    for group in ("apps", "networking.k8s.io", "discovery.k8s.io", "apiextensions.k8s.io"):
        assert groups[group]["preferredVersion"]["version"] == "v1"
    core = {r["name"]: r for r in json.loads(raw("GET", "/api/v1").data)["resources"]}
    for plural in ("namespaces", "pods", "services", "endpoints", "configmaps", "secrets",
                   "serviceaccounts", "events"):
        assert plural in core, plural
    assert core["pods"]["shortNames"] == ["po"] and core["pods"]["namespaced"] is True
    assert "watch" in core["pods"]["verbs"] and core["namespaces"]["namespaced"] is False
    for sub in ("pods/log", "pods/exec", "pods/portforward", "pods/proxy", "pods/status",
                "services/proxy"):
        assert sub in core, sub
    apps = {r["name"]: r for r in json.loads(raw("GET", "/apis/apps/v1").data)["resources"]}
    assert apps["deployments/scale"]["kind"] == "Scale"
    assert apps["deployments/scale"]["group"] == "autoscaling"
    openapi = json.loads(raw("GET", "/openapi/v3").data)["paths"]
    assert "api/v1" in openapi and "apis/apps/v1" in openapi


def test_unauthorized_without_the_token(raw: Raw) -> None:
    for token in ("", "Bearer wrong"):
        resp = raw("GET", "/api/v1/namespaces", token=token)
        assert resp.status == 401
        body = json.loads(resp.data)
        assert body["kind"] == "Status" and body["reason"] == "Unauthorized"
        assert body["code"] == 401


# -- errors ----------------------------------------------------------------------------------
def test_not_found(core: client.CoreV1Api, ns: str, raw: Raw) -> None:
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_config_map("nope", ns)
    assert err.value.status == 404
    st = _status(err.value)
    assert st["reason"] == "NotFound" and st["message"] == 'configmaps "nope" not found'
    assert st["details"] == {"name": "nope", "kind": "configmaps"}
    resp = raw("GET", "/api/v1/namespaces/x/widgets")
    assert resp.status == 404 and json.loads(resp.data)["reason"] == "NotFound"
    resp = raw("GET", "/apis/nonexistent.example.com/v1")
    assert resp.status == 404


def test_method_not_allowed(raw: Raw, ns: str) -> None:
    resp = raw("PUT", f"/api/v1/namespaces/{ns}/configmaps", body={"metadata": {}})
    assert resp.status == 405
    assert json.loads(resp.data)["reason"] == "MethodNotAllowed"
    # Namespaces have no deletecollection verb.
    resp = raw("DELETE", "/api/v1/namespaces")
    assert resp.status == 405


def test_bad_request(raw: Raw, ns: str, core: client.CoreV1Api) -> None:
    resp = raw("POST", f"/api/v1/namespaces/{ns}/configmaps", body=b"{not json",
               headers={"Content-Type": "application/json"})
    assert resp.status == 400 and json.loads(resp.data)["reason"] == "BadRequest"
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "x", "namespace": "other"}})
    assert err.value.status == 400
    assert "does not match the namespace" in _status(err.value)["message"]
    with pytest.raises(client.ApiException) as err:
        core.list_namespaced_config_map(ns, label_selector="a in (b")
    assert err.value.status == 400


def test_already_exists_and_conflict(core: client.CoreV1Api, ns: str) -> None:
    cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}, "data": {"k": "1"}})
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}})
    assert err.value.status == 409 and _status(err.value)["reason"] == "AlreadyExists"
    stale = cm.metadata.resource_version
    cm.data = {"k": "2"}
    updated = core.replace_namespaced_config_map("c", ns, cm)
    assert int(updated.metadata.resource_version) > int(stale)
    cm.data = {"k": "3"}
    cm.metadata.resource_version = stale
    with pytest.raises(client.ApiException) as err:
        core.replace_namespaced_config_map("c", ns, cm)
    st = _status(err.value)
    assert err.value.status == 409 and st["reason"] == "Conflict"
    assert "the object has been modified" in st["message"]
    assert core.read_namespaced_config_map("c", ns).data == {"k": "2"}


def test_invalid_names_fields_and_stores_nothing(core: client.CoreV1Api, apps: client.AppsV1Api,
                                                 ns: str) -> None:
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_pod(ns, {"metadata": {"name": "Bad_Name"},
                                        "spec": {"containers": [{"name": "c"}]}})
    st = _status(err.value)
    assert err.value.status == 422 and st["reason"] == "Invalid"
    fields = {c["field"] for c in st["details"]["causes"]}
    assert {"metadata.name", "spec.containers[0].image"} <= fields
    assert 'Pod "Bad_Name" is invalid' in st["message"]
    with pytest.raises(client.ApiException) as err:
        apps.create_namespaced_deployment(ns, {
            "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"app": "x"}},
                     "template": {"metadata": {"labels": {"app": "y"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
    st = _status(err.value)
    assert err.value.status == 422
    assert [c["field"] for c in st["details"]["causes"]] == ["spec.template.metadata.labels"]
    assert core.list_namespaced_pod(ns).items == []
    assert apps.list_namespaced_deployment(ns).items == []


# -- object semantics ------------------------------------------------------------------------
def test_generate_name_uid_timestamps(core: client.CoreV1Api, ns: str) -> None:
    a = core.create_namespaced_config_map(ns, {"metadata": {"generateName": "gen-"}})
    b = core.create_namespaced_config_map(ns, {"metadata": {"generateName": "gen-"}})
    assert a.metadata.name.startswith("gen-") and len(a.metadata.name) == len("gen-") + 5
    assert a.metadata.name != b.metadata.name and a.metadata.uid != b.metadata.uid
    assert a.metadata.creation_timestamp is not None
    assert int(b.metadata.resource_version) > int(a.metadata.resource_version)


def test_generation_and_observed_generation(apps: client.AppsV1Api, ns: str) -> None:
    body = {"metadata": {"name": "g"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "g"}},
                     "template": {"metadata": {"labels": {"app": "g"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox",
                                                           "command": ["sleep", "60"]}]}}}}
    d = apps.create_namespaced_deployment(ns, body)
    assert d.metadata.generation == 1
    poll(lambda: apps.read_namespaced_deployment("g", ns).status.observed_generation == 1,
         what="observedGeneration 1")
    apps.patch_namespaced_deployment("g", ns, {"metadata": {"labels": {"x": "y"}}})
    assert apps.read_namespaced_deployment("g", ns).metadata.generation == 1
    apps.patch_namespaced_deployment("g", ns, {"spec": {"minReadySeconds": 1}})
    assert apps.read_namespaced_deployment("g", ns).metadata.generation == 2
    poll(lambda: apps.read_namespaced_deployment("g", ns).status.observed_generation == 2,
         what="observedGeneration 2")


def test_status_subresource_is_separate(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_service(ns, {"metadata": {"name": "s"},
                                        "spec": {"ports": [{"port": 80}]}})
    svc = core.read_namespaced_service("s", ns)
    svc.status = {"loadBalancer": {"ingress": [{"ip": "127.0.0.9"}]}}
    core.replace_namespaced_service("s", ns, svc)  # the main resource ignores status
    assert not core.read_namespaced_service("s", ns).status.load_balancer.ingress
    out = core.patch_namespaced_service_status(
        "s", ns, {"status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.9"}]}}})
    assert out.status.load_balancer.ingress[0].ip == "127.0.0.9"
    assert core.read_namespaced_service_status("s", ns).spec.ports[0].port == 80


def test_selectors_and_paging(core: client.CoreV1Api, ns: str) -> None:
    for i in range(7):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"cm-{i}", "labels": {
            "tier": "a" if i % 2 else "b", "n": str(i)}}})
    names = lambda items: sorted(o.metadata.name for o in items)  # noqa: E731
    assert names(core.list_namespaced_config_map(ns, label_selector="tier=a").items) == \
        ["cm-1", "cm-3", "cm-5"]
    assert names(core.list_namespaced_config_map(
        ns, label_selector="tier!=a,n in (0,2,9)").items) == ["cm-0", "cm-2"]
    assert names(core.list_namespaced_config_map(ns, label_selector="!tier").items) == []
    assert names(core.list_namespaced_config_map(
        ns, field_selector="metadata.name=cm-4").items) == ["cm-4"]
    assert names(core.list_namespaced_config_map(
        ns, field_selector="metadata.name!=cm-4", label_selector="tier=b").items) == \
        ["cm-0", "cm-2", "cm-6"]
    seen, token, pages = [], None, 0
    while pages < 10:
        page = core.list_namespaced_config_map(ns, limit=3, _continue=token)
        seen += [o.metadata.name for o in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
    assert pages == 3 and sorted(seen) == [f"cm-{i}" for i in range(7)]


def test_dry_run_stores_nothing(core: client.CoreV1Api, ns: str) -> None:
    out = core.create_namespaced_config_map(ns, {"metadata": {"name": "dry"}}, dry_run="All")
    assert out.metadata.name == "dry"
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_config_map("dry", ns)
    assert err.value.status == 404


def test_patch_types(core: client.CoreV1Api, apps: client.AppsV1Api, ns: str) -> None:
    core.create_namespaced_config_map(ns, {"metadata": {"name": "p", "labels": {"a": "1"}},
                                           "data": {"x": "1", "y": "2"}})
    api = core.api_client
    # JSON merge patch: null deletes.
    core.patch_namespaced_config_map("p", ns, {"data": {"y": None, "z": "3"}},
                                     _content_type="application/merge-patch+json")
    assert core.read_namespaced_config_map("p", ns).data == {"x": "1", "z": "3"}
    # JSON patch.
    core.patch_namespaced_config_map(
        "p", ns, [{"op": "replace", "path": "/data/x", "value": "9"},
                  {"op": "add", "path": "/metadata/labels/b", "value": "2"}],
        _content_type="application/json-patch+json")
    got = core.read_namespaced_config_map("p", ns)
    assert got.data["x"] == "9" and got.metadata.labels == {"a": "1", "b": "2"}
    # Strategic merge patch merges containers by name.
    apps.create_namespaced_deployment(ns, {
        "metadata": {"name": "smp"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "smp"}},
                 "template": {"metadata": {"labels": {"app": "smp"}}, "spec": {"containers": [
                     {"name": "a", "image": "busybox", "env": [{"name": "E1", "value": "1"}]},
                     {"name": "b", "image": "busybox"}]}}}})
    apps.patch_namespaced_deployment("smp", ns, {"spec": {"template": {"spec": {"containers": [
        {"name": "a", "env": [{"name": "E2", "value": "2"}]}]}}}},
        _content_type="application/strategic-merge-patch+json")
    cs = apps.read_namespaced_deployment("smp", ns).spec.template.spec.containers
    assert [c.name for c in cs] == ["a", "b"]
    assert [e.name for e in cs[0].env] == ["E1", "E2"]
    # A failing json-patch test op is a 4xx and changes nothing.
    with pytest.raises(client.ApiException):
        core.patch_namespaced_config_map("p", ns, [{"op": "test", "path": "/data/x",
                                                    "value": "nope"}],
                                         _content_type="application/json-patch+json")
    assert api is not None


def test_server_side_apply_creates_then_merges(raw: Raw, core: client.CoreV1Api,
                                               ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps/ssa?fieldManager=test"
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: '1'\n"
    hdr = {"Content-Type": "application/apply-patch+yaml"}
    assert raw("PATCH", path, body=doc, headers=hdr).status == 201
    assert raw("PATCH", path, body=doc.replace("'1'", "'2'"), headers=hdr).status == 200
    assert core.read_namespaced_config_map("ssa", ns).data == {"a": "2"}


def test_scale_subresource(apps: client.AppsV1Api, ns: str) -> None:
    apps.create_namespaced_deployment(ns, {
        "metadata": {"name": "sc"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "sc"}},
                 "template": {"metadata": {"labels": {"app": "sc"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
    scale = apps.read_namespaced_deployment_scale("sc", ns)
    assert scale.spec.replicas == 0 and scale.status.selector == "app=sc"
    apps.patch_namespaced_deployment_scale("sc", ns, {"spec": {"replicas": 0}})
    scale.spec.replicas = 0
    out = apps.replace_namespaced_deployment_scale("sc", ns, scale)
    assert out.kind == "Scale"
    with pytest.raises(client.ApiException) as err:
        apps.patch_namespaced_deployment_scale("sc", ns, {"spec": {"replicas": -1}})
    assert err.value.status == 422


# -- deletion --------------------------------------------------------------------------------
def test_finalizers_hold_deletion(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_config_map(ns, {"metadata": {"name": "f",
                                                        "finalizers": ["example.com/hold"]}})
    core.delete_namespaced_config_map("f", ns)
    held = core.read_namespaced_config_map("f", ns)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("f", ns, {"metadata": {"finalizers": None}})
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_config_map("f", ns)
    assert err.value.status == 404


def test_delete_answers_as_the_kinds_registry_does(core: client.CoreV1Api, ns: str) -> None:
    """Services, pods and serviceaccounts answer DELETE with the object
    (``ReturnDeletedObject``), other kinds with a Success Status; the typed client decodes
    each answer as the type its OpenAPI names, so a wrong shape fails here."""
    core.create_namespaced_service(ns, {"metadata": {"name": "gone"}, "spec": {
        "selector": {"app": "gone"}, "ports": [{"port": 80}]}})
    deleted = core.delete_namespaced_service("gone", ns)
    assert isinstance(deleted, client.V1Service) and deleted.metadata.name == "gone"
    core.create_namespaced_service_account(ns, {"metadata": {"name": "gone"}})
    account = core.delete_namespaced_service_account("gone", ns)
    assert isinstance(account, client.V1ServiceAccount) and account.metadata.name == "gone"
    core.create_namespaced_config_map(ns, {"metadata": {"name": "gone"}})
    status = core.delete_namespaced_config_map("gone", ns)
    body = status if isinstance(status, dict) else status.to_dict()  # client 37: a dict
    assert body["kind"] == "Status" and body["status"] == "Success", body


def _owner_with_dependents(core: client.CoreV1Api, ns: str, name: str) -> str:
    owner = core.create_namespaced_config_map(ns, {"metadata": {"name": name}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": name,
           "uid": owner.metadata.uid, "blockOwnerDeletion": True}
    for i in range(2):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"{name}-dep-{i}",
                                                            "ownerReferences": [ref]}})
    return owner.metadata.uid


def _gone(core: client.CoreV1Api, ns: str, name: str) -> bool:
    try:
        core.read_namespaced_config_map(name, ns)
    except client.ApiException as exc:
        return exc.status == 404
    return False


def test_garbage_collection_background(core: client.CoreV1Api, ns: str) -> None:
    _owner_with_dependents(core, ns, "bg")
    core.delete_namespaced_config_map("bg", ns, propagation_policy="Background")
    assert _gone(core, ns, "bg")
    poll(lambda: _gone(core, ns, "bg-dep-0") and _gone(core, ns, "bg-dep-1"),
         what="dependents collected")


def test_garbage_collection_foreground(core: client.CoreV1Api, ns: str) -> None:
    """The owner stays (with the foregroundDeletion finalizer) until its blocking
    dependents are gone; a dependent's own finalizer holds the whole chain."""
    _owner_with_dependents(core, ns, "fg")
    core.patch_namespaced_config_map("fg-dep-0", ns,
                                     {"metadata": {"finalizers": ["example.com/hold"]}})
    core.delete_namespaced_config_map("fg", ns, propagation_policy="Foreground")
    poll(lambda: _gone(core, ns, "fg-dep-1"), what="the free dependent deleted")
    owner = core.read_namespaced_config_map("fg", ns)
    assert owner.metadata.deletion_timestamp is not None
    assert owner.metadata.finalizers == ["foregroundDeletion"]
    held = core.read_namespaced_config_map("fg-dep-0", ns)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("fg-dep-0", ns, {"metadata": {"finalizers": None}})
    poll(lambda: _gone(core, ns, "fg") and _gone(core, ns, "fg-dep-0"),
         what="owner gone after its dependents")


def test_garbage_collection_orphan(core: client.CoreV1Api, ns: str) -> None:
    _owner_with_dependents(core, ns, "or")
    core.delete_namespaced_config_map("or", ns, propagation_policy="Orphan")
    poll(lambda: _gone(core, ns, "or"), what="owner deleted")
    dep = core.read_namespaced_config_map("or-dep-0", ns)
    assert not dep.metadata.owner_references


def test_namespace_cascade(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    name = "cascade-ns"
    core.create_namespace({"metadata": {"name": name}})
    poll(lambda: core.read_namespaced_service_account("default", name),
         what="the namespace's default ServiceAccount")
    core.create_namespaced_config_map(name, {"metadata": {"name": "a"}})
    core.create_namespaced_secret(name, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    # An object with a finalizer holds the namespace in Terminating until it is released.
    core.create_namespaced_config_map(name, {"metadata": {"name": "held",
                                                          "finalizers": ["example.com/x"]}})
    core.delete_namespace(name)
    ns = core.read_namespace(name)
    assert ns.status.phase == "Terminating"
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map(name, {"metadata": {"name": "late"}})
    assert err.value.status == 403
    poll(lambda: _gone(core, name, "a"), what="the namespace's objects deleted")
    assert core.read_namespace(name).status.phase == "Terminating"
    core.patch_namespaced_config_map("held", name, {"metadata": {"finalizers": None}})
    def gone() -> bool:
        try:
            core.read_namespace(name)
        except client.ApiException as exc:
            return exc.status == 404
        return False
    poll(gone, timeout=15, what="namespace deleted")
    assert core.list_namespaced_config_map(name).items == []


def test_secret_string_data_is_encoded(core: client.CoreV1Api, ns: str) -> None:
    s = core.create_namespaced_secret(ns, {"metadata": {"name": "s"},
                                           "stringData": {"user": "admin"}})
    assert s.data == {"user": "YWRtaW4="} and s.type == "Opaque"


def test_create_from_yaml(api_client: client.ApiClient, apps: client.AppsV1Api,
                          core: client.CoreV1Api, ns: str, tmp_path) -> None:
    """``kubernetes.utils.create_from_yaml`` maps each document to a typed API."""
    manifest = tmp_path / "app.yaml"
    manifest.write_text("""\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: main, image: busybox, command: [sleep, "60"]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
""")
    created = utils.create_from_yaml(api_client, str(manifest), namespace=ns)
    kinds = [o.kind for group in created for o in group]
    assert kinds == ["ConfigMap", "Deployment", "Service"]
    poll(lambda: apps.read_namespaced_deployment("web", ns).status.ready_replicas == 2,
         what="2 ready replicas")
    with pytest.raises(utils.FailToCreateError) as err:
        utils.create_from_yaml(api_client, str(manifest), namespace=ns)
    assert {e.status for e in err.value.api_exceptions} == {409}
    assert core.read_namespaced_config_map("settings", ns).data == {"mode": "fast"}

"""Server-side apply and managedFields, driven by kubectl (``apply --server-side``,
``--force-conflicts``) and plain PATCH requests: field managers, ownership moving with
updates, 409 conflicts byte for byte, forced takeover, and fields removed when their only
applier stops applying them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.localmesh.conftest import Kubectl, Raw

FIXTURES = Path(__file__).parent / "fixtures" / "status"
APPLY = {"Content-Type": "application/apply-patch+yaml"}


def _deployment(replicas: int, labels: str = "{app: web, tier: front}") -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {labels}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: c
        image: busybox
        args: [sleep, "3600"]
        ports: [{{containerPort: 80}}]
"""


def _managers(kubectl: Kubectl, ns: str) -> dict[tuple[str, str], dict]:
    obj = kubectl.json("get", "deploy", "web", "-n", ns, "--show-managed-fields")
    return {(e["manager"], e["operation"]): e["fieldsV1"]
            for e in obj["metadata"].get("managedFields") or []}


def test_apply_records_the_appliers_fields(kubectl_new: Kubectl, ns: str) -> None:
    out = kubectl_new("apply", "--server-side", "-n", ns, "-f", "-", input=_deployment(0))
    assert "serverside-applied" in out
    fields = _managers(kubectl_new, ns)[("kubectl", "Apply")]
    assert fields["f:spec"]["f:replicas"] == {}
    assert fields["f:metadata"]["f:labels"] == {"f:app": {}, "f:tier": {}}
    container = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"c"}']
    assert container["."] == {} and container["f:image"] == {}
    # The list-map key of a port includes its defaulted protocol, as upstream.
    assert 'k:{"containerPort":80,"protocol":"TCP"}' in container["f:ports"]
    # Defaulted fields are not the applier's.
    assert "f:progressDeadlineSeconds" not in fields["f:spec"]


def test_conflict_then_force(kubectl_new: Kubectl, ns: str, raw: Raw) -> None:
    kubectl_new("apply", "--server-side", "-n", ns, "-f", "-", input=_deployment(0))
    kubectl_new("patch", "deploy", "web", "-n", ns, "-p", '{"spec":{"replicas":2}}')
    assert _managers(kubectl_new, ns)[("kubectl-patch", "Update")] == {
        "f:spec": {"f:replicas": {}}}
    refused = kubectl_new.run("apply", "--server-side", "-n", ns, "-f", "-",
                              input=_deployment(1), check=False)
    assert refused.returncode != 0
    assert ('Apply failed with 1 conflict: conflict with "kubectl-patch" using apps/v1: '
            ".spec.replicas") in refused.stderr
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/web?fieldManager=kubectl"
    resp = raw("PATCH", path, body=_deployment(1), headers=APPLY)
    assert (resp.status, resp.data) == (409,
                                        (FIXTURES / "409-apply-conflict.json").read_bytes())
    # Applying the value that is already there is no conflict: the field is shared.
    assert raw("PATCH", path, body=_deployment(2), headers=APPLY).status == 200
    kubectl_new("apply", "--server-side", "--force-conflicts", "-n", ns, "-f", "-",
                input=_deployment(1))
    obj = kubectl_new.json("get", "deploy", "web", "-n", ns)
    assert obj["spec"]["replicas"] == 1
    # kubectl-patch owned nothing else, so its entry is gone.
    assert ("kubectl-patch", "Update") not in _managers(kubectl_new, ns)


def test_fields_no_longer_applied_are_removed(kubectl_new: Kubectl, ns: str) -> None:
    kubectl_new("apply", "--server-side", "-n", ns, "-f", "-", input=_deployment(0))
    kubectl_new("label", "deploy", "web", "-n", ns, "owner=someone")
    kubectl_new("apply", "--server-side", "-n", ns, "-f", "-",
                input=_deployment(0, labels="{app: web}"))
    labels = kubectl_new.json("get", "deploy", "web", "-n", ns)["metadata"]["labels"]
    # tier was only the applier's and goes; owner is kubectl-label's and stays.
    assert labels == {"app": "web", "owner": "someone"}


def test_apply_options_and_typed_configuration(raw: Raw, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps/cfg"
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1'}\n"
    missing = raw("PATCH", path, body=doc, headers=APPLY)
    assert missing.status == 422
    assert json.loads(missing.data)["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required '
        "for apply patch")
    forced = raw("PATCH", path + "?force=true", body='{"data":{"a":"1"}}',
                 headers={"Content-Type": "application/merge-patch+json"})
    assert forced.status == 422 and "force: Forbidden" in json.loads(forced.data)["message"]
    bogus = raw("PATCH", path + "?fieldManager=me", body=doc + "bogus: 1\n", headers=APPLY)
    assert bogus.status == 500
    assert json.loads(bogus.data)["message"] == (
        f"failed to create typed patch object ({ns}/cfg; /v1, Kind=ConfigMap): .bogus: field "
        "not declared in schema")
    created = raw("PATCH", path + "?fieldManager=me", body=doc, headers=APPLY)
    assert created.status == 201
    entry = json.loads(created.data)["metadata"]["managedFields"][0]
    assert (entry["manager"], entry["operation"], entry["fieldsV1"]) == (
        "me", "Apply", {"f:data": {"f:a": {}}})


def test_updates_move_ownership(raw: Raw, ns: str) -> None:
    base = f"/api/v1/namespaces/{ns}/configmaps"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "own"},
            "data": {"a": "1", "b": "2"}}
    created = json.loads(raw("POST", base + "?fieldManager=creator", body=body).data)
    assert created["metadata"]["managedFields"][0]["fieldsV1"] == {
        "f:data": {".": {}, "f:a": {}, "f:b": {}}}
    patched = json.loads(raw("PATCH", base + "/own?fieldManager=editor",
                             body='{"data":{"b":"3","c":"4"}}',
                             headers={"Content-Type": "application/merge-patch+json"}).data)
    owners = {e["manager"]: e["fieldsV1"] for e in patched["metadata"]["managedFields"]}
    assert owners == {"creator": {"f:data": {".": {}, "f:a": {}}},
                      "editor": {"f:data": {"f:b": {}, "f:c": {}}}}
    # Without fieldManager, the manager is the User-Agent's product.
    named = json.loads(raw("PATCH", base + "/own", body='{"data":{"d":"5"}}',
                           headers={"Content-Type": "application/merge-patch+json",
                                    "User-Agent": "my-tool/1.2 (linux)"}).data)
    assert "my-tool" in {e["manager"] for e in named["metadata"]["managedFields"]}

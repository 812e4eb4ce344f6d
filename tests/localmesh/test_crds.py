"""CustomResourceDefinitions: served under their group as soon as they are stored, used
through the DynamicClient and kubectl, with printer columns, status subresources, the
merge-only PATCH of custom resources, and deletion of their objects with the CRD."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, dynamic
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

from tests.localmesh.conftest import Kubectl, Raw
from tests.support import poll

VIRTUAL_SERVICE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "virtualservices.networking.istio.io"},
    "spec": {
        "group": "networking.istio.io", "scope": "Namespaced",
        "names": {"plural": "virtualservices", "singular": "virtualservice",
                  "kind": "VirtualService", "listKind": "VirtualServiceList",
                  "shortNames": ["vs"], "categories": ["istio-io", "networking-istio-io"]},
        "versions": [
            {"name": "v1", "served": True, "storage": True,
             "subresources": {"status": {}},
             "additionalPrinterColumns": [
                 {"name": "Gateways", "type": "string", "jsonPath": ".spec.gateways"},
                 {"name": "Hosts", "type": "string", "jsonPath": ".spec.hosts"},
                 {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
             "schema": {"openAPIV3Schema": {"type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True}}},
            {"name": "v1beta1", "served": True, "storage": False,
             "subresources": {"status": {}},
             "schema": {"openAPIV3Schema": {"type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}

HTTP_ROUTE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "httproutes.gateway.networking.k8s.io"},
    "spec": {
        "group": "gateway.networking.k8s.io", "scope": "Namespaced",
        "names": {"plural": "httproutes", "singular": "httproute", "kind": "HTTPRoute",
                  "listKind": "HTTPRouteList", "categories": ["gateway-api"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
            "additionalPrinterColumns": [
                {"name": "Hostnames", "type": "string", "jsonPath": ".spec.hostnames"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
            "schema": {"openAPIV3Schema": {"type": "object",
                                           "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}


@pytest.fixture(scope="module")
def crds(api_client: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    for crd in (VIRTUAL_SERVICE_CRD, HTTP_ROUTE_CRD):
        try:
            ext.create_custom_resource_definition(crd)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
        name = crd["metadata"]["name"]
        poll(lambda n=name: any(
            c.type == "Established" and c.status == "True"
            for c in (ext.read_custom_resource_definition(n).status.conditions or [])),
            what=f"{name} established")


def _vs(name: str, hosts: list[str]) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name},
            "spec": {"hosts": hosts, "gateways": ["mesh"],
                     "http": [{"route": [{"destination": {"host": hosts[0]}}]}]}}


def test_dynamic_client_crud(crds: None, dyn: dynamic.DynamicClient, ns: str) -> None:
    vs_api = dyn.resources.get(api_version="networking.istio.io/v1", kind="VirtualService")
    created = vs_api.create(body=_vs("reviews", ["reviews"]), namespace=ns)
    assert created.metadata.uid and created.metadata.generation == 1
    got = vs_api.get(name="reviews", namespace=ns)
    assert got.spec.hosts == ["reviews"]
    # Custom resources take merge and JSON patches; a strategic merge patch is refused.
    vs_api.patch(name="reviews", namespace=ns, body={"spec": {"hosts": ["reviews", "r2"]}},
                 content_type="application/merge-patch+json")
    patched = vs_api.get(name="reviews", namespace=ns)
    assert patched.spec.hosts == ["reviews", "r2"] and patched.metadata.generation == 2
    with pytest.raises(dynamic.exceptions.DynamicApiError) as err:
        vs_api.patch(name="reviews", namespace=ns, body={"spec": {}},
                     content_type="application/strategic-merge-patch+json")
    assert err.value.status == 415
    # The status subresource: status via /status only, generation untouched.
    body = vs_api.get(name="reviews", namespace=ns).to_dict()
    body["status"] = {"observedGeneration": 2}
    vs_api.status.replace(body=body, namespace=ns)
    after = vs_api.get(name="reviews", namespace=ns)
    assert after.status.observedGeneration == 2 and after.metadata.generation == 2
    # Served in every served version; one storage.
    beta = dyn.resources.get(api_version="networking.istio.io/v1beta1", kind="VirtualService")
    assert beta.get(name="reviews", namespace=ns).apiVersion == "networking.istio.io/v1beta1"
    listing = vs_api.get(namespace=ns)
    assert [i.metadata.name for i in listing.items] == ["reviews"]
    vs_api.delete(name="reviews", namespace=ns)
    with pytest.raises(NotFoundError):
        vs_api.get(name="reviews", namespace=ns)


def test_gateway_api_route_with_kubectl(crds: None, kubectl: Kubectl, ns: str) -> None:
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "login"},
             "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["shop.example.com"],
                      "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/login"}}],
                                 "backendRefs": [{"name": "composer", "port": 8080}]}]}}
    out = kubectl("apply", "-n", ns, "-f", "-",
                  input=json.dumps(route))
    assert "httproute.gateway.networking.k8s.io/login created" in out
    table = kubectl("get", "httproutes", "-n", ns)
    assert table.split("\n")[0].split() == ["NAME", "HOSTNAMES", "AGE"]
    assert '["shop.example.com"]' in table
    kubectl("label", "httproute", "login", "-n", ns, "tier=edge")
    kubectl("patch", "httproute", "login", "-n", ns, "--type=merge",
            "-p", '{"spec":{"hostnames":["shop.example.com","www.example.com"]}}')
    got = kubectl.json("get", "httproute", "login", "-n", ns)
    assert got["metadata"]["labels"] == {"tier": "edge"}
    assert got["spec"]["hostnames"] == ["shop.example.com", "www.example.com"]
    assert "gateway-api" in kubectl("api-resources", "--api-group=gateway.networking.k8s.io",
                                    "-o", "wide")
    assert "login" in kubectl("get", "gateway-api", "-n", ns)  # by category
    described = kubectl("describe", "httproute", "login", "-n", ns)
    assert "Hostnames:" in described
    kubectl("delete", "httproute", "login", "-n", ns)


def test_virtual_service_with_kubectl_short_name(crds: None, kubectl: Kubectl, ns: str) -> None:
    kubectl("apply", "-n", ns, "-f", "-",
            input=json.dumps(_vs("ratings", ["ratings"])))
    table = kubectl("get", "vs", "-n", ns)
    assert table.split("\n")[0].split() == ["NAME", "GATEWAYS", "HOSTS", "AGE"]
    assert '["mesh"]' in table and '["ratings"]' in table
    assert kubectl.json("get", "virtualservices.networking.istio.io", "ratings",
                        "-n", ns)["spec"]["hosts"] == ["ratings"]


def test_crd_objects_go_with_the_crd(api_client: client.ApiClient, raw: Raw,
                                     dyn: dynamic.DynamicClient, ns: str) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    ext.create_custom_resource_definition(crd)
    resp = raw("POST", f"/apis/example.com/v1/namespaces/{ns}/widgets",
               body={"apiVersion": "example.com/v1", "kind": "Widget",
                     "metadata": {"name": "w1"}, "spec": {"size": 3}})
    assert resp.status == 201
    table = json.loads(raw("GET", f"/apis/example.com/v1/namespaces/{ns}/widgets",
                           headers={"Accept": "application/json;as=Table;v=v1;"
                                              "g=meta.k8s.io"}).data)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    ext.delete_custom_resource_definition("widgets.example.com")
    poll(lambda: raw("GET", "/apis/example.com/v1").status == 404,
         what="the group no longer served")
    with pytest.raises(ResourceNotFoundError):
        dyn.resources.get(api_version="example.com/v1", kind="Widget")

"""localmesh's RBAC rules, in-process: kube-apiserver's mapping of an HTTP request to its
attributes (requestinfo.go), and rule matching and coverage as RBAC does it. The same
enforcement through a running API server, with the suite's own identity, is
tests/e2e/test_rbac.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from localmesh.api.authn import ADMIN
from localmesh.api.rbac.bootstrap_policy import BOOTSTRAP_ROLES
from localmesh.api.rbac.request_info import Attributes, request_info
from localmesh.api.rbac.rules import compact_string, covers, rule_allows


class _Query(dict):
    def get(self, key: str, default: Any = None) -> Any:  # aiohttp's MultiDict.get
        return super().get(key, default)


@pytest.mark.parametrize(("method", "path", "query", "want"), [
    ("GET", "/api/v1/namespaces/ns/pods", {}, ("list", "", "ns", "pods", "", "")),
    ("GET", "/api/v1/namespaces/ns/pods", {"watch": "1"}, ("watch", "", "ns", "pods", "", "")),
    ("GET", "/api/v1/namespaces/ns/pods", {"fieldSelector": "metadata.name=p"},
     ("list", "", "ns", "pods", "", "p")),
    ("GET", "/api/v1/watch/namespaces/ns/pods/p", {}, ("watch", "", "ns", "pods", "", "p")),
    ("GET", "/api/v1/namespaces/ns/pods/p", {}, ("get", "", "ns", "pods", "", "p")),
    ("GET", "/api/v1/namespaces/ns/pods/p/exec", {}, ("get", "", "ns", "pods", "exec", "p")),
    ("POST", "/api/v1/namespaces/ns/pods/p/exec", {}, ("create", "", "ns", "pods", "exec",
                                                       "p")),
    ("GET", "/api/v1/namespaces/istio-system/services/prometheus:9090/proxy/api/v1/query", {},
     ("get", "", "istio-system", "services", "proxy", "prometheus:9090")),
    ("POST", "/apis/apps/v1/namespaces/ns/deployments", {},
     ("create", "apps", "ns", "deployments", "", "")),
    ("PUT", "/apis/apps/v1/namespaces/ns/deployments/d/scale", {},
     ("update", "apps", "ns", "deployments", "scale", "d")),
    ("PATCH", "/api/v1/namespaces/mg-1", {}, ("patch", "", "mg-1", "namespaces", "", "mg-1")),
    ("PUT", "/api/v1/namespaces/mg-1/finalize", {},
     ("update", "", "mg-1", "namespaces", "finalize", "mg-1")),
    ("GET", "/api/v1/namespaces", {}, ("list", "", "", "namespaces", "", "")),
    ("DELETE", "/api/v1/namespaces/ns/pods", {},
     ("deletecollection", "", "ns", "pods", "", "")),
    ("DELETE", "/api/v1/namespaces/ns/pods/p", {}, ("delete", "", "ns", "pods", "", "p")),
    ("POST", "/api/v1/namespaces/ns/serviceaccounts/sa/token", {},
     ("create", "", "ns", "serviceaccounts", "token", "sa")),
])
def test_request_attributes_are_kube_apiservers(method: str, path: str, query: dict,
                                                want: tuple) -> None:
    """requestinfo.go's mapping of HTTP requests to verbs, resources and names."""
    a = request_info(ADMIN, method, path, _Query(query))
    assert a.resource_request
    assert (a.verb, a.api_group, a.namespace, a.resource, a.subresource, a.name) == want


@pytest.mark.parametrize("path", ["/version", "/api", "/apis", "/apis/apps/v1", "/api/v1",
                                  "/openapi/v3/apis/apps/v1", "/healthz"])
def test_discovery_paths_are_non_resource_requests(path: str) -> None:
    a = request_info(ADMIN, "GET", path, _Query())
    assert not a.resource_request and a.verb == "get" and a.path == path
    discovery = BOOTSTRAP_ROLES["system:discovery"]
    assert any(rule_allows(a, r) for r in discovery) or path == "/healthz"


def test_rules_match_and_cover_like_rbac() -> None:
    def attrs(verb: str, resource: str, sub: str = "", name: str = "") -> Attributes:
        return Attributes(ADMIN, verb, True, "", "", "v1", "ns", resource, sub, name)

    proxy = {"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get"],
             "resourceNames": ["prometheus:9090"]}
    assert rule_allows(attrs("get", "services", "proxy", "prometheus:9090"), proxy)
    assert not rule_allows(attrs("get", "services", "proxy", "grafana:3000"), proxy)
    assert not rule_allows(attrs("get", "services"), proxy)
    star_sub = {"apiGroups": [""], "resources": ["*/log"], "verbs": ["get"]}
    assert rule_allows(attrs("get", "pods", "log", "p"), star_sub)
    owner = [{"apiGroups": [""], "resources": ["pods", "pods/exec"], "verbs": ["get", "list"]}]
    ok, missing = covers(owner, [{"apiGroups": [""], "resources": ["pods"],
                                       "verbs": ["get", "delete"]}])
    assert not ok and missing == [{"apiGroups": [""], "resources": ["pods"],
                                   "verbs": ["delete"]}]
    assert compact_string(missing[0]) == '{APIGroups:[""], Resources:["pods"], ' \
                                              'Verbs:["delete"]}'

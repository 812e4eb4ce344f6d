"""API discovery: ``/``, ``/version``, ``/api``, ``/apis``, ``/apis/{group}`` and the
``APIResourceList`` of each group-version, built from the resource registry (CRDs join as
they are established).

Shapes are k8s.io/apimachinery ``metav1.APIVersions``, ``APIGroupList``, ``APIGroup`` and
``APIResourceList``; clients (kubectl's discovery cache, the Python DynamicClient) read
them before anything else.
"""

from __future__ import annotations

from localmesh.api import status
from localmesh.api.status import ApiError
from localmesh.resources import Registry

# What /version answers (k8s.io/apimachinery pkg/version Info); kubectl prints it.
KUBE_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-localmesh",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

ROOT_PATHS = {"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2",
                        "/openapi/v3", "/readyz", "/version"]}


def api_versions(server_address: str) -> dict:
    """``GET /api``: the core group's versions."""
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def _group_doc(group: str, versions: list[str]) -> dict:
    vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": vs, "preferredVersion": vs[0]}


def api_group_list(registry: Registry) -> dict:
    """``GET /apis``."""
    groups = [_group_doc(g, vs) for g, vs in registry.group_versions().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> dict:
    """``GET /apis/{group}``."""
    versions = registry.group_versions().get(group)
    if not versions:
        raise status.not_found("", f"/apis/{group}")
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, versions)}


def resource_list(registry: Registry, group: str, version: str) -> dict:
    """``GET /api/v1`` or ``GET /apis/{group}/{version}``."""
    types = registry.in_group_version(group, version)
    if not types:
        raise status.not_found("", f"/apis/{group}/{version}")
    resources: list[dict] = []
    for rt in types:
        resources.extend(rt.discovery())
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources}


def not_served() -> ApiError:
    """The 404 of a path inside a served group-version that names no resource (go-restful
    found no route: ``NewGenericServerResponse``, so ``details`` is present and empty)."""
    return status.generic(404)

"""The OpenAPI documents kubectl reads before ``apply``.

kubectl 1.29 and later validate on the server when ``/openapi/v3`` lists the
group-version and its document carries ``x-kubernetes-group-version-kind`` on the
resource's operations and a ``fieldValidation`` parameter; they then post with
``fieldValidation=Strict`` and never ask for ``/openapi/v2`` (docs/localmesh.md, "OpenAPI",
says what older kubectls need). The documents are generated from the resource registry.
"""

from __future__ import annotations

import hashlib
import json

from aiohttp import web

from localmesh.api import status
from localmesh.resources import Registry


class OpenAPI:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def _gv_path(self, group: str, version: str) -> str:
        return f"api/{version}" if not group else f"apis/{group}/{version}"

    def _doc(self, group: str, version: str) -> dict:
        paths: dict = {}
        schemas: dict = {}
        for rt in self.registry.in_group_version(group, version):
            gvk = {"group": group, "version": version, "kind": rt.kind}
            schema_name = f"io.localmesh.{group or 'core'}.{version}.{rt.kind}"
            schemas[schema_name] = {
                "type": "object",
                "x-kubernetes-group-version-kind": [gvk],
                "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                               "metadata": {"type": "object"}, "spec": {"type": "object"},
                               "status": {"type": "object"}},
            }
            base = "/" + self._gv_path(group, version)
            prefix = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else \
                f"{base}/{rt.plural}"
            params = [{"name": "fieldValidation", "in": "query",
                       "schema": {"type": "string", "uniqueItems": True}},
                      {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                      {"name": "fieldManager", "in": "query", "schema": {"type": "string"}}]
            ref = {"content": {"application/json": {"schema": {
                "$ref": f"#/components/schemas/{schema_name}"}}}}
            op = {"x-kubernetes-group-version-kind": gvk, "parameters": params,
                  "requestBody": ref, "responses": {"200": {"description": "OK", **ref}}}
            paths[prefix] = {"post": {**op, "x-kubernetes-action": "post"}}
            paths[prefix + "/{name}"] = {"put": {**op, "x-kubernetes-action": "put"},
                                         "patch": {**op, "x-kubernetes-action": "patch"},
                                         "get": {**op, "x-kubernetes-action": "get"}}
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.0"},
                "paths": paths, "components": {"schemas": schemas}}

    async def handle(self, request: web.Request, parts: list[str]) -> web.Response:
        if parts[:1] == ["v3"]:
            if len(parts) == 1:
                out = {}
                for group, versions in self.registry.group_versions().items():
                    for v in versions:
                        doc = json.dumps(self._doc(group, v), sort_keys=True)
                        digest = hashlib.sha256(doc.encode()).hexdigest()[:16].upper()
                        p = self._gv_path(group, v)
                        out[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={digest}"}
                return web.json_response({"paths": out})
            rest = parts[1:]
            if rest[0] == "api" and len(rest) == 2:
                return web.json_response(self._doc("", rest[1]))
            if rest[0] == "apis" and len(rest) == 3:
                if not self.registry.in_group_version(rest[1], rest[2]):
                    raise status.not_found("openapi", "/".join(rest))
                return web.json_response(self._doc(rest[1], rest[2]))
        raise status.not_found("openapi", "/".join(parts))

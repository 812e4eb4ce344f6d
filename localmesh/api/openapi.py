"""The OpenAPI v3 documents kubectl reads: before ``apply``, and for ``explain``.

kubectl 1.29 and later validate on the server when ``/openapi/v3`` lists the
group-version and its document carries ``x-kubernetes-group-version-kind`` on the
resource's operations and a ``fieldValidation`` parameter; they then post with
``fieldValidation=Strict`` and never ask for ``/openapi/v2`` (docs/localmesh.md, "OpenAPI",
says what older kubectls need). ``kubectl explain`` reads a kind's schema from the same
document: the component schemas are Kubernetes' definitions and the CRDs' schemas, with
their descriptions (openapi_schemas.py). The documents are generated from the resource
registry; a group-version of built-in kinds is rendered once, one with custom resources
whenever it is asked for (its CRDs may have changed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from aiohttp import web

from localmesh.api import openapi_v2, status
from localmesh.api.openapi_schemas import add_kind
from localmesh.api.schema import DEFINITIONS, Schema
from localmesh.resources import Registry, ResourceType


class OpenAPI:
    def __init__(self, registry: Registry,
                 schema_of: Callable[[ResourceType], Schema | None] | None = None) -> None:
        self.registry = registry
        self.schema_of = schema_of or (lambda rt: None)
        # (group, version, kinds) of built-in kinds → the document's JSON and its hash.
        self._rendered: dict[tuple, tuple[bytes, str]] = {}
        self._v2_definitions: tuple[dict[str, dict], bytes] | None = None

    def _gv_path(self, group: str, version: str) -> str:
        return f"api/{version}" if not group else f"apis/{group}/{version}"

    def _doc(self, group: str, version: str) -> dict:
        paths: dict = {}
        schemas: dict = {}
        for rt in self.registry.in_group_version(group, version):
            gvk = {"group": group, "version": version, "kind": rt.kind}
            schema = self.schema_of(rt)
            if schema is not None:
                schema_name = add_kind(schemas, schema, group, version, rt.kind)
            else:  # no schema known (kubernetes-validate missing, a CRD without one)
                schema_name = f"io.localmesh.{group or 'core'}.{version}.{rt.kind}"
                schemas[schema_name] = {
                    "type": "object",
                    "x-kubernetes-group-version-kind": [gvk],
                    "properties": {"apiVersion": {"type": "string"},
                                   "kind": {"type": "string"},
                                   "metadata": {"type": "object"},
                                   "spec": {"type": "object"}, "status": {"type": "object"}},
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

    def rendered(self, group: str, version: str) -> tuple[bytes, str]:
        """The group-version's document as sent, and its hash (the root's ``?hash=``)."""
        kinds = self.registry.in_group_version(group, version)
        key = (group, version, tuple(rt.kind for rt in kinds))
        if key in self._rendered:
            return self._rendered[key]
        body = json.dumps(self._doc(group, version), sort_keys=True,
                          separators=(",", ":")).encode()
        out = (body, hashlib.sha512(body).hexdigest()[:128].upper())
        if not any(rt.custom for rt in kinds):
            self._rendered[key] = out
        return out

    def v2(self) -> tuple[dict, bytes]:
        """The Swagger 2.0 document (definitions left out of the dict: they are many) and
        its protobuf encoding (openapi_v2.py)."""
        if self._v2_definitions is None:
            builtin = openapi_v2.definitions(DEFINITIONS.defs)
            self._v2_definitions = (builtin, openapi_v2.encode_definitions(builtin))
        builtin, encoded = self._v2_definitions
        paths: dict = {}
        custom: dict[str, dict] = {}
        for group, versions in self.registry.group_versions().items():
            for version in versions:
                base = "/" + self._gv_path(group, version)
                for rt in self.registry.in_group_version(group, version):
                    gvk = {"group": group, "kind": rt.kind, "version": version}
                    schema = self.schema_of(rt)
                    if schema is not None and set(schema.raw) == {"$ref"}:
                        name = schema.raw["$ref"].rsplit("/", 1)[-1]
                    elif schema is not None:
                        name, custom[name] = openapi_v2.custom_definition(
                            schema, group, version, rt.kind)
                    else:
                        name = f"io.localmesh.{group or 'core'}.{version}.{rt.kind}"
                        custom[name] = {"type": "object",
                                        "x-kubernetes-group-version-kind": [gvk]}
                    path = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced \
                        else f"{base}/{rt.plural}"
                    paths.update(openapi_v2.operations(path, gvk, name))
        doc = {"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.33.0"},
               "paths": paths}
        body = openapi_v2.encode_document(
            doc, encoded + openapi_v2.encode_definitions(custom))
        return {**doc, "definitions": {**builtin, **custom}}, body

    async def handle(self, request: web.Request, parts: list[str]) -> web.Response:
        if parts == ["v2"]:
            doc, body = self.v2()
            accept = request.headers.get("Accept", "")
            if any(asked in accept for asked in openapi_v2.PROTOBUF_ASKED):
                return web.Response(body=body, content_type=openapi_v2.PROTOBUF)
            return web.Response(body=json.dumps(doc, separators=(",", ":")).encode(),
                                content_type="application/json")
        if parts[:1] == ["v3"]:
            if len(parts) == 1:
                out = {}
                for group, versions in self.registry.group_versions().items():
                    for v in versions:
                        p = self._gv_path(group, v)
                        digest = self.rendered(group, v)[1]
                        out[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={digest}"}
                return web.json_response({"paths": out})
            rest = parts[1:]
            if rest[0] == "api" and len(rest) == 2:
                group, version = "", rest[1]
            elif rest[0] == "apis" and len(rest) == 3:
                group, version = rest[1], rest[2]
            else:
                raise status.not_found("openapi", "/".join(parts))
            if not self.registry.in_group_version(group, version):
                raise status.not_found("openapi", "/".join(rest))
            return web.Response(body=self.rendered(group, version)[0],
                                content_type="application/json")
        raise status.not_found("openapi", "/".join(parts))

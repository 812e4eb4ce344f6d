"""Content negotiation: what a request body is, and in which form an answer goes back.

Bodies arrive as JSON, YAML or (kubectl >= 1.32's typed clients) Kubernetes protobuf
(localmesh/api/protobuf.py); CBOR is refused with the 415 that makes client-go fall back
to JSON (KEP-4222). Answers are JSON, or — when the ``Accept`` header asks for them, as
``kubectl get`` and the metadata informers do — a ``meta.k8s.io`` Table or
PartialObjectMetadata(List), the way k8s.io/apiserver ``pkg/endpoints/handlers``
(``negotiation`` and ``responsewriters``) chooses them.
"""

from __future__ import annotations

from typing import Any

import yaml
from aiohttp import web

from localmesh.api import fieldvalidation, printers, protobuf, status, tables, wire
from localmesh.api.status import ApiError
from localmesh.resources import ResourceType
from localmesh.store import Store


def json_response(body: Any, code: int = 200, headers: dict | None = None) -> web.Response:
    """A JSON answer, encoded as kube-apiserver encodes it (localmesh/api/wire.py)."""
    return web.Response(body=wire.encode(body), status=code, content_type="application/json",
                        headers=headers)


def error_response(err: ApiError) -> web.Response:
    """An error as the Status body clients parse (``apierrors``)."""
    return json_response(err.status(), err.code)


def page_not_found() -> web.Response:
    """What kube-apiserver answers for a path no API group serves: Go's ``http.NotFound``
    (k8s.io/apiserver pkg/util/notfoundhandler), plain text, not a Status."""
    return web.Response(body=b"404 page not found\n", status=404,
                        content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


async def read_body(request: web.Request) -> Any:
    """The request body, decoded by its Content-Type; 400 or 415 when it cannot be."""
    return (await read_body_checked(request))[0]


async def read_body_checked(request: web.Request) -> tuple[Any, list[str]]:
    """The body and the paths of the keys a JSON body writes twice (fieldValidation)."""
    raw = await request.read()
    ctype = request.headers.get("Content-Type", "application/json")
    if ctype.startswith(protobuf.MEDIA_TYPE):
        # kubectl >= 1.32's typed clients; see localmesh/api/protobuf.py.
        return protobuf.decode(raw), []
    if "cbor" in ctype:
        # client-go falls back to JSON after a 415 to a CBOR body (KEP-4222).
        raise ApiError(415, "UnsupportedMediaType",
                       f"the body of the request was in an unknown format - accepted media "
                       f"types include: application/json, application/yaml, "
                       f"{protobuf.MEDIA_TYPE} (got {ctype})")
    try:
        if "yaml" in ctype:
            return yaml.safe_load(raw.decode()), []
        return fieldvalidation.loads(raw.decode() or "null")
    except Exception as exc:
        raise status.bad_request(
            f"the request body could not be decoded as {ctype}: {exc}") from exc


def dry_run(request: web.Request) -> bool:
    """``?dryRun=All``: admit and validate, store nothing."""
    return "All" in request.query.getall("dryRun", [])


def printer_for(store: Store, rt: ResourceType) -> tables.Printer:
    """The Table printer of a kind; a custom resource's columns come from its CRD version."""
    version: dict | None = None
    if rt.custom:
        crd = store.get(("apiextensions.k8s.io", "customresourcedefinitions"), "",
                        f"{rt.plural}.{rt.group}")
        version = next((v for v in ((crd or {}).get("spec") or {}).get("versions") or []
                        if v.get("name") == rt.version), {})
    return tables.Printer(rt.key, version, printers.PRINTERS)


def render(request: web.Request, store: Store, rt: ResourceType, obj: dict,
           code: int = 200) -> web.Response:
    """One object as JSON, or as the Table / PartialObjectMetadata the client asked for."""
    accept = request.headers.get("Accept", "")
    tv = tables.wants_table(accept)
    if tv:
        meta = {"resourceVersion": obj.get("metadata", {}).get("resourceVersion", "")}
        include = request.query.get("includeObject", "Metadata")
        return json_response(printer_for(store, rt).table([obj], meta, include, tv), code)
    pv = tables.wants_partial_metadata(accept)
    if pv:
        return json_response(tables.partial_metadata(obj, pv), code)
    return json_response(wire.ordered(obj, custom=rt.custom), code)


def render_list(request: web.Request, store: Store, rt: ResourceType,
                listing: dict) -> web.Response:
    """A list as JSON, or as the Table / PartialObjectMetadataList the client asked for."""
    accept = request.headers.get("Accept", "")
    tv = tables.wants_table(accept)
    if tv:
        for o in listing["items"]:
            o["apiVersion"], o["kind"] = rt.api_version, rt.kind
        include = request.query.get("includeObject", "Metadata")
        return json_response(printer_for(store, rt).table(listing["items"], listing["metadata"],
                                                          include, tv))
    pv = tables.wants_partial_metadata(accept)
    if pv:
        return json_response({"kind": "PartialObjectMetadataList",
                              "apiVersion": f"meta.k8s.io/{pv}", "metadata": listing["metadata"],
                              "items": [tables.partial_metadata(o, pv) for o in listing["items"]]})
    return json_response(wire.ordered_list(listing, custom=rt.custom))

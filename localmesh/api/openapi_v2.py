"""``/openapi/v2``: the Swagger 2.0 document kubectl ≤ 1.28 reads, in protobuf.

kubectl before 1.29 asks ``/openapi/v2`` with ``Accept:
application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` (gnostic's
``openapi.v2.Document``; the answer's type is written ``…spec.v2.v1.0+protobuf``) for
three things: whether the server validates fields itself (a PATCH operation of the kind,
found by its ``x-kubernetes-group-version-kind`` vendor extension, with a
``fieldValidation`` query parameter: then ``apply`` and ``create`` send
``fieldValidation=Strict`` and validate nothing themselves), the kinds' models for
``explain``, and strategic-merge metadata (``x-kubernetes-patch-merge-key`` …) for
client-side ``apply``. The definitions are Kubernetes' own for 1.33 (schema.py) and the
CRDs' schemas, converted to Swagger 2.0's form; JSON is served too when asked for.

The protobuf encoding follows gnostic's ``openapiv2/OpenAPIv2.proto`` field numbers
(Document, PathItem, Operation, parameters, Schema, NamedAny with a YAML value for vendor
extensions); only what kube-apiserver's document uses is written.
"""

from __future__ import annotations

import struct
from typing import Any

import yaml

from localmesh.api.openapi_schemas import custom_name
from localmesh.api.schema import Schema

# What kubectl asks for ("@": not a valid media type, kept by older clients), and what
# kube-openapi's handler answers with (the form Go's mime package can parse).
PROTOBUF_ASKED = ("com.github.proto-openapi.spec.v2@v1.0+protobuf",
                  "com.github.proto-openapi.spec.v2.v1.0+protobuf")
PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
REF = "#/definitions/"


# -- Swagger 2.0's form ----------------------------------------------------------------
def to_v2(node: Any) -> Any:
    """A JSON-Schema definition (or a CRD's schema) in Swagger 2.0's form: references into
    ``#/definitions``, one type, no ``oneOf``/``anyOf``/``not``/``nullable`` (kube-openapi
    publishes int-or-string as ``type: string, format: int-or-string``), no enum on a
    kind's ``apiVersion`` and ``kind``, and an array without ``items`` untyped."""
    if isinstance(node, list):
        return [to_v2(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("oneOf", "anyOf", "not", "nullable"):
            continue
        if key == "$ref" and isinstance(value, str):
            out[key] = REF + value.rsplit("/", 1)[-1]
        elif key == "type" and isinstance(value, list):
            kept = [t for t in value if t != "null"]
            if len(kept) == 1:
                out[key] = kept[0]
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: to_v2({k: v for k, v in prop.items()
                                     if not (name in ("apiVersion", "kind") and k == "enum")}
                                    if isinstance(prop, dict) else prop)
                        for name, prop in value.items()}
        else:
            out[key] = to_v2(value)
    alternatives = {t for alt in node.get("oneOf") or [] if isinstance(alt, dict)
                    for t in ([alt.get("type")] if isinstance(alt.get("type"), str)
                              else alt.get("type") or [])}
    if "string" in alternatives and "type" not in out:
        out["type"] = "string"
        if "integer" in alternatives:
            out["format"] = "int-or-string"
    if out.get("type") == "array" and not isinstance(out.get("items"), dict):
        del out["type"]  # kube-openapi's models need exactly one item schema
    return out


def definitions(defs: dict[str, dict]) -> dict[str, dict]:
    """Every built-in definition in Swagger 2.0's form."""
    return {name: to_v2(d) for name, d in defs.items()}


def custom_definition(schema: Schema, group: str, version: str, kind: str) -> tuple[str, dict]:
    body = to_v2(schema.raw)
    body["x-kubernetes-group-version-kind"] = [{"group": group, "kind": kind,
                                                "version": version}]
    return custom_name(group, version, kind), body


def operations(path: str, gvk: dict, schema_name: str) -> dict[str, dict]:
    """The operations of one resource path, as kubectl reads them."""
    params = [{"name": name, "in": "query", "type": "string", "uniqueItems": True}
              for name in ("fieldValidation", "dryRun", "fieldManager")]
    ref = {"$ref": REF + schema_name}

    def op(action: str, verb: str) -> dict:
        body = [{"name": "body", "in": "body", "required": True, "schema": ref}] \
            if verb in ("post", "put", "patch") else []
        return {"operationId": f"{verb}{gvk['kind']}", "parameters": [*body, *params],
                "responses": {"200": {"description": "OK", "schema": ref}},
                "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk}

    return {path: {"post": op("post", "post")},
            f"{path}/{{name}}": {"get": op("get", "get"), "put": op("put", "put"),
                                 "patch": op("patch", "patch")}}


# -- protobuf (gnostic openapi.v2) ---------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(field: int, data: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _str(field: int, s: str) -> bytes:
    return _ld(field, s.encode()) if s else b""


def _bool(field: int, b: bool) -> bytes:
    return _varint(field << 3) + b"\x01" if b else b""


def _int(field: int, n: int) -> bytes:
    return _varint(field << 3) + _varint(n) if n else b""


def _double(field: int, x: float) -> bytes:
    return _varint(field << 3 | 1) + struct.pack("<d", float(x))


def _any(value: Any) -> bytes:
    """gnostic's Any: the value as YAML (field 2), as kube-openapi reads it back."""
    return _str(2, yaml.safe_dump(value, default_flow_style=False))


def _extensions(field: int, node: dict) -> bytes:
    return b"".join(_ld(field, _str(1, k) + _ld(2, _any(v)))
                    for k, v in node.items() if k.startswith("x-"))


def encode_schema(s: dict) -> bytes:
    out = [_str(1, s.get("$ref", "")), _str(2, s.get("format", "")),
           _str(3, s.get("title", "")), _str(4, s.get("description", ""))]
    if "default" in s:
        out.append(_ld(5, _any(s["default"])))
    for field, key in ((6, "multipleOf"), (7, "maximum"), (9, "minimum")):
        if isinstance(s.get(key), int | float):
            out.append(_double(field, s[key]))
    out += [_bool(8, bool(s.get("exclusiveMaximum"))),
            _bool(10, bool(s.get("exclusiveMinimum")))]
    for field, key in ((11, "maxLength"), (12, "minLength"), (14, "maxItems"),
                       (15, "minItems"), (17, "maxProperties"), (18, "minProperties")):
        if isinstance(s.get(key), int):
            out.append(_int(field, s[key]))
    out += [_str(13, s.get("pattern", "")), _bool(16, bool(s.get("uniqueItems")))]
    out += [_str(19, r) for r in s.get("required") or []]
    out += [_ld(20, _any(v)) for v in s.get("enum") or []]
    extra = s.get("additionalProperties")
    if isinstance(extra, dict):
        out.append(_ld(21, _ld(1, encode_schema(extra))))
    elif isinstance(extra, bool):
        out.append(_ld(21, _varint(2 << 3) + (b"\x01" if extra else b"\x00")))
    if isinstance(s.get("type"), str):
        out.append(_ld(22, _str(1, s["type"])))
    if isinstance(s.get("items"), dict):
        out.append(_ld(23, _ld(1, encode_schema(s["items"]))))
    out += [_ld(24, encode_schema(x)) for x in s.get("allOf") or [] if isinstance(x, dict)]
    if isinstance(s.get("properties"), dict):
        out.append(_ld(25, b"".join(_ld(1, _str(1, name) + _ld(2, encode_schema(prop)))
                                    for name, prop in s["properties"].items())))
    out.append(_bool(27, bool(s.get("readOnly"))))
    out.append(_extensions(31, s))
    return b"".join(out)


def _parameter(p: dict) -> bytes:
    if p.get("in") == "body":
        body = (_str(1, p.get("description", "")) + _str(2, p["name"]) + _str(3, "body")
                + _bool(4, bool(p.get("required"))) + _ld(5, encode_schema(p["schema"])))
        return _ld(1, _ld(1, body))  # ParametersItem.parameter → Parameter.body_parameter
    query = (_bool(1, bool(p.get("required"))) + _str(2, "query")
             + _str(3, p.get("description", "")) + _str(4, p["name"])
             + _str(6, p.get("type", "")) + _bool(20, bool(p.get("uniqueItems"))))
    # ParametersItem.parameter → Parameter.non_body_parameter → query_parameter_sub_schema
    return _ld(1, _ld(2, _ld(3, query)))


def _operation(op: dict) -> bytes:
    out = [_str(5, op.get("operationId", ""))]
    out += [_ld(8, _parameter(p)) for p in op.get("parameters") or []]
    responses = b"".join(
        _ld(1, _str(1, code) + _ld(2, _ld(1, _str(1, r.get("description", ""))
                                        + (_ld(2, _ld(1, encode_schema(r["schema"])))
                                           if "schema" in r else b""))))
        for code, r in (op.get("responses") or {}).items())
    out.append(_ld(9, responses))
    out.append(_extensions(13, op))
    return b"".join(out)


PATH_ITEM_FIELDS = {"get": 2, "put": 3, "post": 4, "delete": 5, "patch": 8}


def encode_definitions(defs: dict[str, dict]) -> bytes:
    """The entries of Definitions (repeated NamedSchema, field 1), concatenable."""
    return b"".join(_ld(1, _str(1, name) + _ld(2, encode_schema(body)))
                    for name, body in defs.items())


def encode_document(doc: dict, encoded_definitions: bytes) -> bytes:
    """The Document: swagger, info, paths and the definitions' entries given encoded."""
    info = _str(1, doc["info"]["title"]) + _str(2, doc["info"]["version"])
    paths = b"".join(
        _ld(2, _str(1, path) + _ld(2, b"".join(_ld(PATH_ITEM_FIELDS[verb], _operation(op))
                                               for verb, op in item.items())))
        for path, item in doc["paths"].items())
    return (_str(1, doc["swagger"]) + _ld(2, info) + _ld(8, paths)
            + _ld(9, encoded_definitions))

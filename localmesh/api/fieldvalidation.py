"""``fieldValidation=Strict|Warn|Ignore``: unknown and duplicate fields in a write.

kube-apiserver decodes a body into the kind's Go type; fields the type does not declare
are dropped, and so is the first of two equal keys. The ``fieldValidation`` parameter
(k8s.io/apiserver ``pkg/endpoints/handlers``: create.go, update.go, patch.go) decides what
the client hears about it:

- ``Strict``: 400 ``<Kind> in version "<v>" cannot be handled as a <Kind>: strict decoding
  error: unknown field "spec.foo", duplicate field "x"`` for a create or update; for a
  patch, 422 with a ``patch`` cause carrying the patched object; nothing is stored.
- ``Warn`` (the default when the parameter is absent): the write succeeds without those
  fields and each one comes back as a ``Warning: 299 - "unknown field \\"spec.foo\\""``
  header, which kubectl prints.
- ``Ignore``: the write succeeds without them, silently.

Anything else is 422 on the request's options. The kinds' schemas are localmesh/api/
schema.py's; a custom resource follows its CRD's schema (``x-kubernetes-preserve-unknown-
fields`` keeps what it does not declare). Duplicate keys are found in JSON bodies (YAML
bodies take the last value silently, see docs/localmesh.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from localmesh.api import status
from localmesh.api.objects import admission_warnings
from localmesh.api.schema import Schema, prune, unknown_fields
from localmesh.api.status import go_quote

DIRECTIVES = ("Ignore", "Strict", "Warn")
R = TypeVar("R", bound=web.StreamResponse)


def directive(request: web.Request, options_kind: str) -> str:
    """The request's ``fieldValidation`` (``Warn`` when absent), or 422 on its options."""
    value = request.query.get("fieldValidation", "")
    if value and value not in DIRECTIVES:
        allowed = ", ".join(go_quote(v) for v in ("", *DIRECTIVES))
        raise status.invalid(options_kind, "", [(
            "fieldValidation", "FieldValueNotSupported",
            f"Unsupported value: {go_quote(value)}: supported values: {allowed}")],
            "meta.k8s.io")
    return value or "Warn"


class _Pairs(dict):
    """A JSON object that remembers which of its keys were written twice."""

    duplicates: list[str]


def _object(pairs: list[tuple[str, Any]]) -> _Pairs:
    out = _Pairs()
    out.duplicates = []
    for k, v in pairs:
        if k in out and k not in out.duplicates:
            out.duplicates.append(k)
        out[k] = v
    return out


def loads(raw: bytes | str) -> tuple[Any, list[str]]:
    """JSON decoded, and the paths of its duplicate keys (``spec.replicas``)."""
    doc = json.loads(raw, object_pairs_hook=_object)
    found: list[str] = []
    return _plain(doc, "", found), found


def _plain(value: Any, path: str, found: list[str]) -> Any:
    if isinstance(value, dict):
        for k in getattr(value, "duplicates", []):
            found.append(f"{path}.{k}" if path else k)
        return {k: _plain(v, f"{path}.{k}" if path else k, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def strict_errors(schema: Schema | None, obj: Any, duplicates: list[str]) -> list[str]:
    """sigs.k8s.io/json's strict errors: duplicate and unknown fields."""
    errors = [f"duplicate field {go_quote(p)}" for p in duplicates]
    errors += [f"unknown field {go_quote(p)}" for p in unknown_fields(schema, obj)]
    return errors


def warning_header(text: str) -> str:
    """k8s.io/apiserver ``warning.HeaderValue``: ``299 - "<text quoted as Go does>"``."""
    return f"299 - {go_quote(text)}"


class Decoded:
    """A write's body after field validation: the object to store and the warnings."""

    def __init__(self, obj: Any, warnings: list[str]) -> None:
        self.obj = obj
        self.warnings = warnings


def check_body(schema: Schema | None, obj: Any, duplicates: list[str], mode: str,
               kind: str, version: str) -> Decoded:
    """A create's or update's body (``Strict``: 400 as ``transformDecodeError`` words it)."""
    errors = strict_errors(schema, obj, duplicates)
    if errors and mode == "Strict":
        raise status.bad_request(
            f"{kind} in version {go_quote(version)} cannot be handled as a {kind}: "
            f"strict decoding error: {', '.join(errors)}")
    pruned = prune(schema, obj) if schema is not None else obj
    return Decoded(pruned, errors if mode == "Warn" else [])


def check_patched(schema: Schema | None, patched: Any, mode: str,
                  encode: Callable[[Any], str], known: set[str] | None = None) -> Decoded:
    """A patched object (merge, strategic or JSON patch): ``Strict`` is 422 with the
    ``patch`` cause upstream's jsonPatcher/smpPatcher give (an empty kind and name).
    ``known``: errors the live object had already, which the patch did not bring."""
    errors = [e for e in strict_errors(schema, patched, []) if e not in (known or set())]
    if errors and mode == "Strict":
        value = encode(patched)
        raise status.invalid("", "", [(
            "patch", "FieldValueInvalid",
            f"Invalid value: {go_quote(value)}: strict decoding error: {', '.join(errors)}")])
    pruned = prune(schema, patched) if schema is not None else patched
    return Decoded(pruned, errors if mode == "Warn" else [])


def add_warnings(resp: R, warnings: list[str]) -> R:
    """Each warning once, as its own ``Warning`` header (the order they were found), with
    what admission added (``admission_warnings``)."""
    seen: list[str] = []
    for w in [*warnings, *(admission_warnings.get() or [])]:
        if w not in seen:
            seen.append(w)
            resp.headers.add("Warning", warning_header(w))
    return resp

"""The component schemas of the ``/openapi/v3`` documents: each served kind's schema with
everything it refers to, in OpenAPI v3's form, so ``kubectl explain`` shows a kind's
fields, types and descriptions as on a real cluster.

A built-in kind's schema is Kubernetes' own definition for 1.33 (schema.py loads them from
``kubernetes-validate``), named as kube-apiserver names it
(``io.k8s.api.core.v1.Pod``); a custom resource's is its CRD version's
``openAPIV3Schema`` with the standard ObjectMeta, named as apiextensions-apiserver names
it (the group reversed, then version and kind: ``io.istio.networking.v1.VirtualService``).
Both carry ``x-kubernetes-group-version-kind``, which kubectl looks kinds up by.

The definitions come as JSON Schema; OpenAPI v3's form differs in three ways, which
:func:`to_v3` converts: references point into ``#/components/schemas``, and a reference
with a description beside it is wrapped in ``allOf`` (a ``$ref`` has no siblings in
OpenAPI 3.0; kube-openapi wraps them the same way); a nullable type list is its one type
(``["string", "null"]`` → ``string``); and the ``enum`` the package adds to every kind's
``apiVersion`` and ``kind`` is dropped (kube-apiserver publishes none there).
"""

from __future__ import annotations

from typing import Any

from localmesh.api.schema import Schema

PREFIX = "#/components/schemas/"


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def to_v3(node: Any, refs: set[str]) -> Any:
    """``node`` in OpenAPI v3's form; the definitions it refers to are added to ``refs``."""
    if isinstance(node, list):
        return [to_v3(x, refs) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            continue
        if key == "type" and isinstance(value, list):
            kept = [t for t in value if t != "null"]
            if len(kept) == 1:
                out["type"] = kept[0]
            continue  # several types (none here but int-or-string's oneOf) stay untyped
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: to_v3({k: v for k, v in prop.items()
                                     if not (name in ("apiVersion", "kind") and k == "enum")}
                                    if isinstance(prop, dict) else prop, refs)
                        for name, prop in value.items()}
            continue
        out[key] = to_v3(value, refs)
    if isinstance(node.get("$ref"), str):
        name = _ref_name(node["$ref"])
        refs.add(name)
        target = {"$ref": PREFIX + name}
        if not out:
            return target
        out["allOf"] = [target]
    return out


def custom_name(group: str, version: str, kind: str) -> str:
    """apiextensions-apiserver's name for a CRD version's schema (builder.go
    ``util.ToRESTFriendlyName``: the group's labels reversed)."""
    return ".".join([*reversed(group.split(".")), version, kind])


def add_kind(schemas: dict[str, dict], schema: Schema, group: str, version: str,
             kind: str) -> str:
    """Put ``schema`` (a kind's, from schema.py) and every definition it reaches into
    ``schemas``; return the kind's component name."""
    raw = schema.raw
    refs: set[str] = set()
    if set(raw) == {"$ref"}:  # a built-in kind: its definition, under its own name
        name = _ref_name(raw["$ref"])
        schemas.setdefault(name, to_v3(schema.defs.get(name, {}), refs))
    else:
        name = custom_name(group, version, kind)
        schemas[name] = {**to_v3(raw, refs), "x-kubernetes-group-version-kind": [
            {"group": group, "version": version, "kind": kind}]}
    pending = sorted(refs - set(schemas))
    while pending:
        ref = pending.pop()
        if ref in schemas:
            continue
        found: set[str] = set()
        schemas[ref] = to_v3(schema.defs.get(ref, {}), found)
        pending.extend(sorted(found - set(schemas)))
    return name

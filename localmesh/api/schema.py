"""The schemas of the served kinds: what fields a kind has and how its lists and maps merge.

kube-apiserver knows its kinds from their Go types and publishes them as OpenAPI; three of
its features depend on that knowledge and localmesh needs it for the same three:

- ``fieldValidation`` (unknown and duplicate fields: Strict, Warn, Ignore), which decodes
  into the typed object and drops what the type does not declare;
- server-side apply, whose field sets follow structured-merge-diff's schema: a struct's
  fields, a map's keys, a list that is ``atomic``, a ``set`` or a ``map`` keyed by
  ``x-kubernetes-list-map-keys``, and ``x-kubernetes-map-type: atomic``;
- the OpenAPI documents kubectl reads.

The built-in kinds' schemas come from Kubernetes' own OpenAPI definitions for the version
localmesh reports (1.33) as the ``kubernetes-validate`` package ships them (its
``_definitions.json``), read lazily on first use. A custom resource's schema is its CRD
version's ``openAPIV3Schema``, with the standard ObjectMeta under ``metadata``;
``x-kubernetes-preserve-unknown-fields`` keeps unknown fields, as in apiextensions-apiserver.
Without the package, every kind is schemaless: nothing is an unknown field and apply falls
back to deduced types (docs/localmesh.md says so).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

log = logging.getLogger("localmesh.api.schema")

KUBE_MINOR = 33  # the version localmesh reports (localmesh/api/discovery.py KUBE_VERSION)
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def _definitions_file() -> Path | None:
    """kubernetes-validate's definitions for 1.33, else the closest older version."""
    try:
        import kubernetes_validate
    except ImportError:
        return None
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    found: list[tuple[int, Path]] = []
    for d in root.glob("v1.*.0-local"):
        m = re.match(r"v1\.(\d+)\.0-local$", d.name)
        if m and (d / "_definitions.json").is_file():
            found.append((int(m.group(1)), d / "_definitions.json"))
    if not found:
        return None
    older = [f for f in found if f[0] <= KUBE_MINOR]
    return max(older or found)[1]


class Definitions:
    """Kubernetes' OpenAPI definitions, loaded on first use, indexed by group-version-kind."""

    def __init__(self, path: Path | None = None, *, load: bool = True) -> None:
        self._path = path
        self._load = load

    @cached_property
    def defs(self) -> dict[str, dict]:
        path = self._path or (_definitions_file() if self._load else None)
        if path is None:
            log.warning("no Kubernetes schemas (the kubernetes-validate package is missing): "
                        "unknown fields are not detected and apply deduces types")
            return {}
        return dict(json.loads(path.read_text())["$defs"])

    @cached_property
    def by_gvk(self) -> dict[tuple[str, str, str], str]:
        out: dict[tuple[str, str, str], str] = {}
        for name, d in self.defs.items():
            for gvk in d.get("x-kubernetes-group-version-kind") or []:
                key = (gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))
                # A kind listed by several definitions (meta kinds) keeps the first.
                out.setdefault(key, name)
        return out

    def kind(self, group: str, version: str, kind: str) -> Schema | None:
        name = self.by_gvk.get((group, version, kind))
        if name is None:
            return None
        return Schema({"$ref": f"#/$defs/{name}"}, self.defs)

    def named(self, name: str) -> Schema | None:
        if name not in self.defs:
            return None
        return Schema({"$ref": f"#/$defs/{name}"}, self.defs)

    def custom(self, crd_version: dict) -> Schema | None:
        """A CRD version's schema, with ObjectMeta under ``metadata`` as upstream adds it."""
        raw = ((crd_version.get("schema") or {}).get("openAPIV3Schema"))
        if not isinstance(raw, dict):
            return None
        props = dict(raw.get("properties") or {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props["metadata"] = {"$ref": f"#/$defs/{OBJECT_META}"} if OBJECT_META in self.defs \
            else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        return Schema({**raw, "properties": props}, self.defs)


@dataclass(frozen=True)
class Schema:
    """One node of a schema, with ``$ref`` resolved against the definitions."""

    raw: dict
    defs: dict

    @cached_property
    def node(self) -> dict:
        node = self.raw
        seen = 0
        while isinstance(node, dict) and "$ref" in node and seen < 32:
            name = node["$ref"].rsplit("/", 1)[-1]
            node = self.defs.get(name, {})
            seen += 1
        return node if isinstance(node, dict) else {}

    def _types(self) -> set[str]:
        t = self.node.get("type")
        if isinstance(t, list):
            return {x for x in t if x != "null"}
        return {t} if isinstance(t, str) else set()

    @cached_property
    def shape(self) -> str:
        """``struct`` (declared fields), ``map`` (any keys, one value schema), ``list``,
        ``scalar``, or ``any`` (untyped: RawExtension, preserve-unknown-fields)."""
        n = self.node
        if "properties" in n:
            return "struct"
        if isinstance(n.get("additionalProperties"), dict):
            return "map"
        types = self._types()
        if "array" in types:
            return "list"
        if n.get("x-kubernetes-preserve-unknown-fields") or "object" in types or not n:
            return "any"
        return "scalar"

    @property
    def preserves_unknown(self) -> bool:
        return bool(self.node.get("x-kubernetes-preserve-unknown-fields"))

    def field(self, name: str) -> Schema | None:
        props = self.node.get("properties") or {}
        if name in props:
            return Schema(props[name], self.defs)
        return None

    @property
    def fields(self) -> list[str]:
        return list(self.node.get("properties") or {})

    def value(self) -> Schema:
        """A map's value schema (``any`` when the map allows anything)."""
        extra = self.node.get("additionalProperties")
        return Schema(extra if isinstance(extra, dict) else {}, self.defs)

    def item(self) -> Schema:
        items = self.node.get("items")
        return Schema(items if isinstance(items, dict) else {}, self.defs)

    @property
    def list_type(self) -> str:
        """``atomic``, ``set`` or ``map``, with the merge key of the strategic patch
        standing in where a list declares none (structured-merge-diff does the same for
        the built-in types)."""
        declared = self.node.get("x-kubernetes-list-type")
        if declared in ("atomic", "set", "map"):
            return str(declared)
        if self.node.get("x-kubernetes-patch-merge-key"):
            return "map"
        return "atomic"

    @property
    def list_keys(self) -> tuple[str, ...]:
        keys = self.node.get("x-kubernetes-list-map-keys")
        if keys:
            return tuple(keys)
        merge = self.node.get("x-kubernetes-patch-merge-key")
        return (merge,) if merge else ()

    @property
    def atomic(self) -> bool:
        """A struct or map replaced whole (``x-kubernetes-map-type: atomic``)."""
        return self.node.get("x-kubernetes-map-type") == "atomic"

    @property
    def description(self) -> str:
        return str(self.node.get("description") or self.raw.get("description") or "")


def required_zeros(schema: Schema | None) -> dict:
    """The zero values of a struct's required scalar fields: what Go writes for fields
    without ``omitempty`` (an int32 is ``0`` even before anyone set it), and what strict
    clients — lightkube's models — insist on finding."""
    if schema is None or schema.shape != "struct":
        return {}
    zeros = {"integer": 0, "number": 0, "string": "", "boolean": False}
    out: dict = {}
    for name in schema.node.get("required") or []:
        field = schema.field(name)
        if field is None or field.shape != "scalar":
            continue
        kinds = field._types()
        for t, zero in zeros.items():
            if t in kinds:
                out[name] = zero
                break
    return out


def unknown_fields(schema: Schema | None, value: Any, path: str = "") -> list[str]:
    """Paths of the fields ``value`` has that ``schema`` does not declare, in the form of
    sigs.k8s.io/json's strict errors (``spec.containers[0].foo``)."""
    if schema is None:
        return []
    shape = schema.shape
    out: list[str] = []
    if shape == "struct" and isinstance(value, dict):
        for k, v in value.items():
            child = schema.field(k)
            here = f"{path}.{k}" if path else k
            if child is None:
                if not schema.preserves_unknown:
                    out.append(here)
                continue
            out.extend(unknown_fields(child, v, here))
    elif shape == "map" and isinstance(value, dict):
        vs = schema.value()
        for k, v in value.items():
            out.extend(unknown_fields(vs, v, f"{path}.{k}" if path else k))
    elif shape == "list" and isinstance(value, list):
        it = schema.item()
        for i, v in enumerate(value):
            out.extend(unknown_fields(it, v, f"{path}[{i}]"))
    return out


def prune(schema: Schema | None, value: Any) -> Any:
    """``value`` without the fields ``schema`` does not declare (what decoding into the Go
    type, or apiextensions' pruning, leaves)."""
    if schema is None:
        return value
    shape = schema.shape
    if shape == "struct" and isinstance(value, dict):
        out = {}
        for k, v in value.items():
            child = schema.field(k)
            if child is None:
                if schema.preserves_unknown:
                    out[k] = v
                continue
            out[k] = prune(child, v)
        return out
    if shape == "map" and isinstance(value, dict):
        vs = schema.value()
        return {k: prune(vs, v) for k, v in value.items()}
    if shape == "list" and isinstance(value, list):
        it = schema.item()
        return [prune(it, v) for v in value]
    return value


DEFINITIONS = Definitions()
"""The one set of built-in schemas every part of an instance shares (read on first use)."""

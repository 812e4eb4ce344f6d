"""Server-side apply and ``managedFields``: an honest subset of structured-merge-diff.

What kube-apiserver's field manager (k8s.io/apiserver ``pkg/endpoints/handlers/fieldmanager``
over sigs.k8s.io/structured-merge-diff) does, and localmesh too:

- every write by a client records who owns which fields in ``metadata.managedFields``:
  one entry per (manager, operation ``Apply``/``Update``, apiVersion, subresource), with the
  field set in the ``FieldsV1`` trie format (``f:<field>``, ``k:<list-map key JSON>``,
  ``v:<set value JSON>``, ``.`` for a node that is itself owned). The manager is the
  ``fieldManager`` parameter, else the client's User-Agent up to its first ``/``.
- an update (create, PUT, any other PATCH) takes the fields it added or changed from
  whoever owned them, without conflict; fields it removed leave every owner.
- an apply (``application/apply-patch+yaml``) owns exactly the fields of its configuration
  (``ToFieldSet``: leaves, empty or null values, map keys, list items). A field owned by
  another manager whose value the apply would change is a conflict (409 with a
  ``FieldManagerConflict`` cause per field and upstream's message) unless ``force=true``,
  which takes it over. Fields the same manager applied before and no longer applies are
  removed from the object unless someone else owns them.
- merging follows the schema (localmesh/api/schema.py): structs and maps by key, lists
  by their ``x-kubernetes-list-type`` (``atomic`` replaced, ``set`` united, ``map`` merged
  item by item on ``x-kubernetes-list-map-keys``), ``x-kubernetes-map-type: atomic``
  replaced whole; schemaless values are deduced (maps by key, lists atomic).

Where it is a subset (docs/localmesh.md): localmesh's own controllers and the kubelet write
without a manager, so their fields are not recorded; an update marks a newly added map or
list item as owned (``.``) but never a struct (Go's non-pointer structs are never "added",
pointer ones are), and fields set by admission are owned by the writer; list items an apply
adds go after the existing ones; no version conversion of field sets (each kind has one
served version).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from localmesh.api.schema import Schema
from localmesh.api.status import ApiError, go_quote

Path = tuple[str, ...]
CONTAINER = object()  # the "value" of a node owned as a whole ("." in FieldsV1)

# Fields no manager owns (fieldmanager's stripped paths: identity and bookkeeping).
IGNORED: tuple[Path, ...] = (
    ("f:apiVersion",), ("f:kind",), ("f:metadata", "f:name"), ("f:metadata", "f:namespace"),
    ("f:metadata", "f:creationTimestamp"), ("f:metadata", "f:selfLink"),
    ("f:metadata", "f:uid"), ("f:metadata", "f:generation"),
    ("f:metadata", "f:managedFields"), ("f:metadata", "f:resourceVersion"),
    ("f:metadata", "f:deletionTimestamp"), ("f:metadata", "f:deletionGracePeriodSeconds"),
)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


# Defaults of list-map key fields, which structured-merge-diff takes from the OpenAPI
# schema when an item leaves the key out (the ports' ``protocol`` defaults to TCP in the
# upstream OpenAPI; the packaged schemas omit defaults).
KEY_DEFAULTS = {"protocol": "TCP"}


def _item_key(keys: tuple[str, ...], item: Any) -> str | None:
    if not isinstance(item, dict) or not keys:
        return None
    present = {k: item[k] if k in item else KEY_DEFAULTS[k] for k in keys
               if k in item or k in KEY_DEFAULTS}
    if not present:
        return None
    return "k:" + _compact(present)


def _shape(schema: Schema | None, value: Any) -> str:
    """The schema's shape, or the deduced one (maps by key, lists atomic)."""
    if schema is not None and schema.shape != "any":
        return schema.shape
    if isinstance(value, dict):
        return "deduced-map"
    return "scalar"


def _child(schema: Schema | None, name: str) -> tuple[Schema | None, bool]:
    """A struct field's schema and whether the field is declared."""
    if schema is None or schema.shape == "any":
        return None, False
    if schema.shape == "map":
        return schema.value(), False
    field = schema.field(name)
    return field, field is not None


def owned_leaves(schema: Schema | None, value: Any, *, apply: bool,
                 prefix: Path = ()) -> dict[Path, Any]:
    """The owned paths of ``value`` and their leaf values (``CONTAINER`` for a node owned
    as a whole while its children are owned too).

    ``apply``: structured-merge-diff's ``ToFieldSet`` (the applied configuration's set);
    otherwise the set an update compares (a map is itself owned, so that a map the update
    adds shows up as ``.``)."""
    out: dict[Path, Any] = {}
    shape = _shape(schema, value)
    if value is None or (isinstance(value, dict) and not value) or (
            schema is not None and schema.atomic and shape in ("struct", "map")):
        out[prefix] = value
        return out
    if shape in ("struct", "map", "deduced-map") and isinstance(value, dict):
        if shape == "map" and not apply and prefix:
            out[prefix] = CONTAINER
        for k, v in value.items():
            child, declared = _child(schema, k)
            here = (*prefix, f"f:{k}")
            sub = owned_leaves(child, v, apply=apply, prefix=here)
            out.update(sub)
            if not declared and here not in sub and (apply or shape == "deduced-map"):
                out[here] = CONTAINER
        return out
    if shape == "list" and isinstance(value, list) and schema is not None:
        kind = schema.list_type
        if kind == "set":
            for v in value:
                out[(*prefix, "v:" + _compact(v))] = v
            return out
        if kind == "map":
            item_schema = schema.item()
            keys = schema.list_keys
            if all(_item_key(keys, v) for v in value):
                for v in value:
                    here = (*prefix, _item_key(keys, v) or "")
                    out[here] = CONTAINER
                    out.update(owned_leaves(item_schema, v, apply=apply, prefix=here))
                return out
    out[prefix] = value
    return out


def _strip(paths: dict[Path, Any]) -> dict[Path, Any]:
    return {p: v for p, v in paths.items()
            if p and not any(p[:len(i)] == i for i in IGNORED)}


def fields_v1(paths: Iterable[Path]) -> dict:
    """A set of paths as the FieldsV1 trie (``.`` marks a node owned with children)."""
    root: dict = {}
    members = set(paths)
    for p in sorted(members):
        node = root
        for elem in p:
            node = node.setdefault(elem, {})
    for p in members:
        node = root
        for elem in p:
            node = node[elem]
        if node:
            node["."] = {}
    return _sorted_trie(root)


def _sorted_trie(node: dict) -> dict:
    return {k: _sorted_trie(node[k]) for k in sorted(node, key=lambda k: (k != ".", k))}


def from_fields_v1(trie: Any, prefix: Path = ()) -> set[Path]:
    """The paths of a FieldsV1 trie."""
    out: set[Path] = set()
    if not isinstance(trie, dict):
        return out
    if prefix and (not trie or "." in trie):
        out.add(prefix)
    for k, v in trie.items():
        if k != ".":
            out |= from_fields_v1(v, (*prefix, k))
    return out


def path_string(path: Path) -> str:
    """fieldpath.Path.String(): ``.spec.containers[name="c"].image``, ``[="v"]``."""
    out = []
    for elem in path:
        kind, _, text = elem.partition(":")
        if kind == "f":
            out.append("." + text)
        elif kind == "k":
            pairs = json.loads(text)
            out.append("[" + ",".join(f"{k}={_compact(v)}" for k, v in pairs.items()) + "]")
        elif kind == "v":
            out.append(f"[={text}]")
        else:
            out.append(f"[{text}]")
    return "".join(out)


class Entry:
    """One managedFields entry."""

    def __init__(self, raw: dict) -> None:
        self.manager = str(raw.get("manager", ""))
        self.operation = str(raw.get("operation", "Update"))
        self.api_version = str(raw.get("apiVersion", ""))
        self.subresource = str(raw.get("subresource", ""))
        self.time = raw.get("time")
        self.fields = from_fields_v1(raw.get("fieldsV1") or {})

    @property
    def ident(self) -> str:
        """BuildManagerIdentifier: fields, type and time left out; no apiVersion for
        appliers."""
        body: dict = {"manager": self.manager, "operation": self.operation}
        if self.operation != "Apply":
            body["apiVersion"] = self.api_version
        if self.subresource:
            body["subresource"] = self.subresource
        return json.dumps(body, separators=(",", ":"))

    def printed(self) -> str:
        """printManager."""
        text = go_quote(self.manager)
        if self.subresource:
            text += f" with subresource {go_quote(self.subresource)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text

    def raw(self, now: str) -> dict:
        out: dict = {"manager": self.manager, "operation": self.operation,
                     "apiVersion": self.api_version, "time": self.time or now,
                     "fieldsType": "FieldsV1", "fieldsV1": fields_v1(self.fields)}
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def _entries(obj: dict | None) -> list[Entry]:
    raw = ((obj or {}).get("metadata") or {}).get("managedFields") or []
    return [Entry(e) for e in raw if isinstance(e, dict) and e.get("manager") is not None]


def _under(path: Path, paths: set[Path]) -> bool:
    return any(path[:len(p)] == p for p in paths)


def _store(obj: dict, entries: list[Entry], now: str) -> None:
    kept = [e.raw(now) for e in entries if e.fields]
    meta = obj.setdefault("metadata", {})
    if kept:
        meta["managedFields"] = kept
    else:
        meta.pop("managedFields", None)


def _scope(paths: dict[Path, Any], subresource: str) -> dict[Path, Any]:
    """The main resource owns no status; the status subresource owns only status (the
    strategies' ``GetResetFields``)."""
    if subresource == "status":
        return {p: v for p, v in paths.items() if p[0] == "f:status"}
    return {p: v for p, v in paths.items() if p[0] != "f:status"}


def record_update(schema: Schema | None, old: dict | None, new: dict, manager: str,
                  api_version: str, now: str, subresource: str = "") -> None:
    """What an update does to ``new``'s managedFields (set in place)."""
    before = _scope(_strip(owned_leaves(schema, old, apply=False)), subresource) \
        if old else {}
    after = _scope(_strip(owned_leaves(schema, new, apply=False)), subresource)
    removed = set(before) - set(after)
    changed = {p for p, v in after.items()
               if p not in before or (v is not CONTAINER and before[p] != v)}
    # managedFields the client wrote itself replace the live ones ([{}] clears them); the
    # ones it read back and returned unchanged, or left out, are the live ones.
    sent = (new.get("metadata") or {}).get("managedFields")
    live = ((old or {}).get("metadata") or {}).get("managedFields")
    entries = _entries(new) if sent and sent != live else _entries(old)
    mine: Entry | None = None
    for e in entries:
        e.fields = {p for p in e.fields if not _under(p, removed) and p not in changed}
        if (e.manager, e.operation, e.subresource) == (manager, "Update", subresource):
            e.api_version = api_version
            mine = e
    if changed:
        if mine is None:
            mine = Entry({"manager": manager, "operation": "Update",
                          "apiVersion": api_version, "subresource": subresource})
            entries.append(mine)
        mine.fields |= changed
        mine.time = now
    _store(new, entries, now)


def conflict_error(conflicts: list[tuple[Entry, Path]]) -> ApiError:
    """fieldmanager's NewConflictError: one cause per field, upstream's message."""
    conflicts = sorted(conflicts, key=lambda c: (c[0].ident, path_string(c[1])))
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {e.printed()}",
               "field": path_string(p)} for e, p in conflicts]
    if len(conflicts) == 1:
        e, p = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {e.printed()}: {path_string(p)}"
    else:
        lines = []
        for ident in sorted({e.ident for e, _ in conflicts}):
            group = [(e, p) for e, p in conflicts if e.ident == ident]
            lines.append(f"conflicts with {group[0][0].printed()}:")
            lines.extend(f"- {path_string(p)}" for _, p in group)
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, causes=causes, with_details=True)


def merge(schema: Schema | None, live: Any, config: Any) -> Any:
    """The applied configuration merged into the live value, by the schema."""
    shape = _shape(schema, config)
    if config is None or not isinstance(config, dict | list) or (
            schema is not None and schema.atomic):
        return copy.deepcopy(config)
    if shape in ("struct", "map", "deduced-map") and isinstance(config, dict):
        out = copy.deepcopy(live) if isinstance(live, dict) else {}
        for k, v in config.items():
            child, _ = _child(schema, k)
            out[k] = merge(child, out.get(k), v)
        return out
    if shape == "list" and isinstance(config, list) and schema is not None and isinstance(
            live, list):
        if schema.list_type == "set":
            return copy.deepcopy(live) + [copy.deepcopy(v) for v in config if v not in live]
        if schema.list_type == "map" and schema.list_keys:
            keys, item_schema = schema.list_keys, schema.item()
            out_list = copy.deepcopy(live)
            for v in config:
                key = _item_key(keys, v)
                at = next((i for i, x in enumerate(out_list) if _item_key(keys, x) == key),
                          None)
                if at is None:
                    out_list.append(copy.deepcopy(v))
                else:
                    out_list[at] = merge(item_schema, out_list[at], v)
            return out_list
    return copy.deepcopy(config)


def _remove(schema: Schema | None, value: Any, path: Path) -> Any:
    """``value`` without the node at ``path`` (a missing node is nothing to remove)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    kind, _, text = head.partition(":")
    if kind == "f" and isinstance(value, dict) and text in value:
        child, _ = _child(schema, text)
        if rest:
            value[text] = _remove(child, value[text], rest)
        else:
            del value[text]
    elif kind in ("k", "v") and isinstance(value, list) and schema is not None:
        item_schema, keys = schema.item(), schema.list_keys
        for i, item in enumerate(value):
            match = _item_key(keys, item) == head if kind == "k" else _compact(item) == text
            if match:
                if rest:
                    value[i] = _remove(item_schema, item, rest)
                else:
                    del value[i]
                break
    return value


def _schema_at(schema: Schema | None, path: Path) -> Schema | None:
    for elem in path:
        kind, _, text = elem.partition(":")
        if schema is None:
            return None
        if kind == "f":
            schema, _ = _child(schema, text)
        else:
            schema = schema.item() if schema.shape == "list" else None
    return schema


def _drop_empty_map(schema: Schema | None, obj: dict, path: Path) -> None:
    """A map left empty goes too: Go omits an empty map (``omitempty``), so the field is
    gone from what the API server returns."""
    if not path or path[-1][:2] != "f:":
        return
    node: Any = obj
    for elem in path:
        kind, _, text = elem.partition(":")
        if kind != "f" or not isinstance(node, dict):
            return
        node = node.get(text)
    at = _schema_at(schema, path)
    if node == {} and at is not None and at.shape == "map":
        _remove(schema, obj, path)


def apply(schema: Schema | None, live: dict | None, config: dict, manager: str, *,
          api_version: str, force: bool, now: str, subresource: str = "") -> dict:
    """Server-side apply of ``config`` to ``live`` (None: create) by ``manager``: the new
    object, with its managedFields; ApiError 409 on conflicts unless ``force``."""
    applied = _scope(_strip(owned_leaves(schema, config, apply=True)), subresource)
    base = copy.deepcopy(live) if live is not None else {}
    merged = merge(schema, base, config)
    before = _strip(owned_leaves(schema, live, apply=False)) if live else {}
    after = _strip(owned_leaves(schema, merged, apply=False))
    changed = {p for p, v in after.items()
               if p not in before or (v is not CONTAINER and before[p] != v)}
    entries = _entries(live)
    others = [e for e in entries
              if (e.manager, e.operation, e.subresource) != (manager, "Apply", subresource)]
    mine = next((e for e in entries if e not in others), None)
    conflicts = [(e, p) for e in others for p in sorted(e.fields)
                 if p in applied and p in changed]
    if conflicts and not force:
        raise conflict_error(conflicts)
    for e, p in conflicts:
        e.fields.discard(p)
    # What this manager applied before and no longer does goes, unless someone owns it.
    if mine is not None:
        owned_by_others = set().union(*(e.fields for e in others)) if others else set()
        dropped = [p for p in mine.fields if p not in applied and p not in owned_by_others
                   and not any(q[:len(p)] == p for q in owned_by_others)]
        for p in sorted(dropped, key=len, reverse=True):
            merged = _remove(schema, merged, p)
            _drop_empty_map(schema, merged, p[:-1])
    if mine is None:
        mine = Entry({"manager": manager, "operation": "Apply", "subresource": subresource})
        entries.append(mine)
    mine.fields = set(applied)
    mine.time = now
    mine.api_version = api_version
    meta = merged.setdefault("metadata", {})
    meta.pop("managedFields", None)
    _store(merged, entries, now)
    return merged


def manager_name(field_manager: str | None, user_agent: str) -> str:
    """``managerOrUserAgent``: the fieldManager parameter, else the User-Agent up to its
    first ``/`` (``kubectl/v1.33.0 (linux/amd64)`` → ``kubectl``)."""
    if field_manager:
        return field_manager
    head = user_agent.split("/", 1)[0]
    return head[:128] if head else "unknown"


def undeclared(schema: Schema | None, value: Any, prefix: Path = ()) -> list[str]:
    """The fields of an applied configuration its schema does not declare, as
    structured-merge-diff reports them (``.spec.containers[name="c"].foo: field not
    declared in schema``); an apply cannot own a field it has no type for."""
    if schema is None or schema.shape == "any":
        return []
    out: list[str] = []
    if schema.shape == "struct" and isinstance(value, dict):
        for k, v in value.items():
            child = schema.field(k)
            here = (*prefix, f"f:{k}")
            if child is None:
                if not schema.preserves_unknown:
                    out.append(f"{path_string(here)}: field not declared in schema")
                continue
            out.extend(undeclared(child, v, here))
    elif schema.shape == "map" and isinstance(value, dict):
        for k, v in value.items():
            out.extend(undeclared(schema.value(), v, (*prefix, f"f:{k}")))
    elif schema.shape == "list" and isinstance(value, list):
        keys = schema.list_keys if schema.list_type == "map" else ()
        for i, v in enumerate(value):
            elem = _item_key(keys, v) if keys else None
            out.extend(undeclared(schema.item(), v, (*prefix, elem or f"i:{i}")))
    return out

"""The four PATCH content types the API server accepts.

- ``application/merge-patch+json`` — RFC 7386.
- ``application/json-patch+json`` — RFC 6902.
- ``application/strategic-merge-patch+json`` — like a merge patch, but lists of the core
  types merge by their *merge key* (containers by ``name``, ports by ``containerPort``, …) and
  honour ``$patch: delete`` / ``$retainKeys`` / ``$setElementOrder`` directives. kubectl's
  client-side apply, ``kubectl label`` and ``kubectl patch`` (default) send these.
- ``application/apply-patch+yaml`` — server-side apply. localmesh merges the applied
  configuration into the live object (without field-ownership conflict detection; documented
  in docs/localmesh.md).
"""

from __future__ import annotations

import copy
import json

from localmesh.api.status import bad_request

# Merge keys of list fields in the core types (from the `patchMergeKey` tags in
# k8s.io/api), keyed by the list's field name. Lists not named here are replaced whole,
# as they are for custom resources.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",  # ServicePort uses `port`; see _merge_key
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "tolerations": "key",
    "conditions": "type",
    "ownerReferences": "uid",
    "finalizers": "",  # a set of scalars
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def _merge_key(field: str, items: list) -> str | None:
    key = MERGE_KEYS.get(field)
    if key is None:
        return None
    first = items[0] if items else None
    if field == "ports" and isinstance(first, dict) and "containerPort" not in first:
        return "port"
    return key


def strategic_merge(target: object, patch: object, field: str = "") -> object:
    """Strategic merge patch over plain dicts (the core types' merge keys)."""
    if not isinstance(patch, dict):
        if isinstance(patch, list) and isinstance(target, list):
            return _merge_list(target, patch, field)
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$retainKeys", "$patch"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            result[name] = [x for x in result.get(name, []) if x not in v]
            continue
        if v is None:
            result.pop(k, None)
        else:
            result[k] = strategic_merge(result.get(k), v, k)
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(target: list, patch: list, field: str) -> list:
    key = _merge_key(field, patch or target)
    if key is None:
        return copy.deepcopy([p for p in patch if not _is_directive(p)])
    if key == "":
        out = list(target)
        for p in patch:
            if p not in out:
                out.append(p)
        return out
    out = copy.deepcopy(target)
    for item in patch:
        if not isinstance(item, dict):
            continue
        idx = next((i for i, t in enumerate(out) if isinstance(t, dict)
                    and t.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append({k: v for k, v in item.items() if not k.startswith("$")})
        else:
            out[idx] = strategic_merge(out[idx], item)
    return out


def _is_directive(item: object) -> bool:
    return isinstance(item, dict) and "$patch" in item


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: object, ops: list) -> object:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        kind = op.get("op")
        path = _pointer(op.get("path", ""))
        if kind == "add":
            doc = _put(doc, path, copy.deepcopy(op.get("value")), insert=True)
        elif kind == "remove":
            doc, _ = _take(doc, path)
        elif kind == "replace":
            doc, _ = _take(doc, path)
            doc = _put(doc, path, copy.deepcopy(op.get("value")), insert=True)
        elif kind == "move":
            doc, val = _take(doc, _pointer(op.get("from", "")))
            doc = _put(doc, path, val, insert=True)
        elif kind == "copy":
            _, val = _take(copy.deepcopy(doc), _pointer(op.get("from", "")))
            doc = _put(doc, path, val, insert=True)
        elif kind == "test":
            _, val = _take(copy.deepcopy(doc), path)
            if val != op.get("value"):
                raise bad_request(f"testing value {op.get('path')} failed")
        else:
            raise bad_request(f"Unexpected kind: {kind}")
    return doc


def _walk(doc: object, path: list[str]) -> object:
    cur = doc
    for p in path:
        if isinstance(cur, list):
            cur = cur[int(p)]
        elif isinstance(cur, dict):
            if p not in cur:
                raise bad_request(f"doc is missing path: /{'/'.join(path)}")
            cur = cur[p]
        else:
            raise bad_request(f"doc is missing path: /{'/'.join(path)}")
    return cur


def _put(doc: object, path: list[str], value: object, insert: bool) -> object:
    if not path:
        return value
    parent = _walk(doc, path[:-1])
    last = path[-1]
    if isinstance(parent, list):
        idx = len(parent) if last == "-" else int(last)
        if insert:
            parent.insert(idx, value)
        else:
            parent[idx] = value
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise bad_request(f"doc is missing path: /{'/'.join(path)}")
    return doc


def _take(doc: object, path: list[str]) -> tuple[object, object]:
    if not path:
        return None, doc
    parent = _walk(doc, path[:-1])
    last = path[-1]
    try:
        if isinstance(parent, list):
            return doc, parent.pop(int(last))
        if isinstance(parent, dict):
            return doc, parent.pop(last)
    except (KeyError, IndexError, ValueError):
        pass
    raise bad_request(f"doc is missing path: /{'/'.join(path)}")


def apply_patch(live: dict, body: bytes, content_type: str) -> dict:
    """Apply a PATCH body of the given content type to ``live``."""
    ctype = content_type.split(";")[0].strip()
    try:
        if ctype == "application/apply-patch+yaml":
            import yaml

            patch = yaml.safe_load(body.decode() or "{}")
        else:
            patch = json.loads(body.decode() or "null")
    except Exception as exc:
        raise bad_request(f"error decoding patch: {exc}") from exc
    if ctype == "application/json-patch+json":
        return json_patch(live, patch)  # type: ignore[return-value]
    if ctype == "application/merge-patch+json":
        return merge_patch(live, patch)  # type: ignore[return-value]
    if ctype in ("application/strategic-merge-patch+json", "application/apply-patch+yaml"):
        if not isinstance(patch, dict):
            raise bad_request("patch body must be a JSON object")
        return strategic_merge(live, patch)  # type: ignore[return-value]
    raise bad_request(f"unsupported patch content type {ctype!r}")

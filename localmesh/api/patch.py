"""The four PATCH content types the API server accepts.

- ``application/merge-patch+json`` — RFC 7386.
- ``application/json-patch+json`` — RFC 6902 (localmesh/api/json_patch.py).
- ``application/strategic-merge-patch+json`` — like a merge patch, but lists of the core
  types merge by their *merge key* (containers by ``name``, ports by ``containerPort``, …) and
  honour ``$patch: delete`` / ``$retainKeys`` / ``$setElementOrder`` directives. kubectl's
  client-side apply, ``kubectl label`` and ``kubectl patch`` (default) send these.
- ``application/apply-patch+yaml`` — server-side apply, with field managers and
  conflicts (localmesh/api/apply.py and fieldmanager.py).
"""

from __future__ import annotations

import copy
import json

from localmesh.api import json_patch
from localmesh.api.status import ApiError, bad_request

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


PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")


def unsupported_media_type(accepted: tuple[str, ...] = PATCH_TYPES) -> ApiError:
    """``negotiation.NewUnsupportedMediaTypeError``: 415 listing the accepted types."""
    return ApiError(415, "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types "
                    "include: " + ", ".join(accepted))


def apply_patch(live: dict, body: bytes, content_type: str) -> object:
    """Apply a JSON, merge or strategic merge PATCH body to ``live`` (server-side apply
    is localmesh/api/apply.py's)."""
    ctype = content_type.split(";")[0].strip()
    if ctype == "application/json-patch+json":
        return json_patch.patch(live, body)
    if ctype not in PATCH_TYPES or ctype == "application/apply-patch+yaml":
        raise unsupported_media_type()
    try:
        patch = json.loads(body.decode() or "null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"error decoding patch: {exc}") from exc
    if not isinstance(patch, dict):
        # evanphx/json-patch's MergePatch (and the strategic merge) want an object.
        raise bad_request("Invalid JSON Patch")
    if ctype == "application/merge-patch+json":
        return merge_patch(live, patch)
    return strategic_merge(live, patch)

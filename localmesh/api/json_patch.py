"""JSON patch (``application/json-patch+json``), RFC 6902 over RFC 6901 pointers, with the
answers kube-apiserver gives.

The operations, exactly as the RFC defines them: ``add`` (an array index may be the
array's length or ``-`` to append; anything beyond is an error, not an append), ``remove``
and ``replace`` (the target must exist), ``move`` (not into its own children), ``copy`` and
``test`` (JSON equality: ``1`` equals ``1.0``, ``true`` does not equal ``1``). Array indexes
are ``0`` or digits without a leading zero (RFC 6901 §4); ``~0``/``~1`` are the only
escapes. Operations apply in order and the document changes only if all succeed.

The answers are k8s.io/apiserver's (``handlers/patch.go`` ``applyJSPatch``): a body that is
not a JSON array of objects is 400 BadRequest with the decoder's message; more than 10,000
operations is 413; an operation that cannot be applied is 422 with the generic message
(``NewGenericServerResponse``: the reason is in localmesh's log, not the answer, as
upstream). Where kube-apiserver's library (evanphx/json-patch v4) is looser than the RFC —
it reads ``/a/01`` as index 1 and accepts negative indexes — localmesh follows the RFC and
refuses them (docs/localmesh.md).
"""

from __future__ import annotations

import copy
import json
import logging
import re
from typing import Any

from localmesh.api import status
from localmesh.api.status import ApiError

log = logging.getLogger("localmesh.api.json_patch")

MAX_OPERATIONS = 10000  # patch.go maxJSONPatchOperations
_INDEX = re.compile(r"0|[1-9][0-9]*")


class PatchError(Exception):
    """An operation that cannot be applied (answered 422)."""


def _go_type(value: Any) -> str:
    """The JSON type the Go decoder names in its errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return "array"


def decode(raw: bytes) -> list[dict]:
    """The patch document: a JSON array of operation objects, else 400 as upstream's
    ``jsonpatch.DecodePatch`` (Go's json errors)."""
    try:
        ops = json.loads(raw.decode() or "null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise status.bad_request(f"invalid JSON in the patch: {exc}") from exc
    if not isinstance(ops, list):
        got = "null" if ops is None else _go_type(ops)
        if ops is None:
            raise status.bad_request("the patch is null, not an array of operations")
        raise status.bad_request(f"json: cannot unmarshal {got} into Go value of type "
                                 "jsonpatch.Patch")
    for op in ops:
        if not isinstance(op, dict):
            raise status.bad_request(f"json: cannot unmarshal {_go_type(op)} into Go value "
                                     "of type jsonpatch.Operation")
    if len(ops) > MAX_OPERATIONS:
        raise ApiError(413, "RequestEntityTooLarge",
                       f"Request entity too large: The allowed maximum operations in a JSON "
                       f"patch is {MAX_OPERATIONS}, got {len(ops)}")
    return ops


def pointer(text: Any) -> list[str]:
    """RFC 6901: ``""`` is the whole document, else ``/``-separated reference tokens."""
    if not isinstance(text, str):
        raise PatchError(f"path is not a string: {text!r}")
    if text == "":
        return []
    if not text.startswith("/"):
        raise PatchError(f"path does not start with '/': {text!r}")
    tokens = []
    for raw in text[1:].split("/"):
        if re.search(r"~(?![01])", raw):
            raise PatchError(f"invalid escape in path: {text!r}")
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))
    return tokens


def _index(token: str, size: int, *, adding: bool) -> int:
    if adding and token == "-":
        return size
    if not _INDEX.fullmatch(token):
        raise PatchError(f"invalid array index: {token!r}")
    idx = int(token)
    if idx > size or (idx == size and not adding):
        raise PatchError(f"array index {idx} out of bounds (length {size})")
    return idx


def _parent(doc: Any, tokens: list[str]) -> Any:
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError(f"missing: {t!r}")
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(t, len(cur), adding=False)]
        else:
            raise PatchError(f"cannot descend into a scalar at {t!r}")
    return cur


def get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"missing: {last!r}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(last, len(parent), adding=False)]
    raise PatchError("cannot index a scalar")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(last, len(parent), adding=True), value)
    else:
        raise PatchError("cannot add to a scalar")
    return doc


def _remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"missing: {last!r}")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(last, len(parent), adding=False))
    raise PatchError("cannot remove from a scalar")


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value, booleans only equal booleans, arrays in order,
    objects by members."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _member(op: dict, name: str) -> Any:
    if name not in op:
        raise PatchError(f"operation {op.get('op')!r} has no {name!r} member")
    return op[name]


def apply_ops(doc: Any, ops: list[dict]) -> Any:
    """The operations applied in order to a copy of ``doc``; PatchError on the first that
    cannot be."""
    doc = copy.deepcopy(doc)
    for op in ops:
        kind = op.get("op")
        path = pointer(_member(op, "path"))
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(_member(op, "value")))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            value = copy.deepcopy(_member(op, "value"))
            if not path:
                doc = value
                continue
            get(doc, path)
            doc, _ = _remove(doc, path)
            doc = _add(doc, path, value)
        elif kind == "move":
            source = pointer(_member(op, "from"))
            if source == path:
                get(doc, source)
                continue
            if path[:len(source)] == source:
                raise PatchError("cannot move a value into one of its children")
            doc, value = _remove(doc, source)
            doc = _add(doc, path, value)
        elif kind == "copy":
            value = copy.deepcopy(get(doc, pointer(_member(op, "from"))))
            doc = _add(doc, path, value)
        elif kind == "test":
            if not json_equal(get(doc, path), _member(op, "value")):
                raise PatchError(f"test failed at {op.get('path')!r}")
        else:
            raise PatchError(f"Unexpected kind: {kind}")
    return doc


def patch(live: Any, raw: bytes) -> Any:
    """A PATCH body applied to ``live`` with kube-apiserver's answers for what fails."""
    ops = decode(raw)
    try:
        return apply_ops(live, ops)
    except PatchError as exc:
        log.info("json patch not applied: %s", exc)
        raise status.generic(422) from exc

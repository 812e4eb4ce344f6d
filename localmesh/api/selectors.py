"""Label and field selectors, parsed the way ``k8s.io/apimachinery/pkg/labels`` does.

Supported: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``; and
for fields ``metadata.name``, ``metadata.namespace``, ``status.phase``, ``spec.nodeName``
and any dotted path, with ``=``/``==``/``!=``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial

from localmesh.api.status import bad_request

_SET_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_top(selector: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


# One requirement each, over a labels dict; the matchers bind the key and value(s).
def _in(key: str, values: set[str], labels: dict) -> bool:
    return labels.get(key) in values


def _notin(key: str, values: set[str], labels: dict) -> bool:
    return labels.get(key) not in values


def _equals(key: str, value: str, labels: dict) -> bool:
    return labels.get(key) == value


def _not_equals(key: str, value: str, labels: dict) -> bool:
    return labels.get(key) != value


def _exists(key: str, labels: dict) -> bool:
    return key in labels


def _not_exists(key: str, labels: dict) -> bool:
    return key not in labels


def label_matcher(selector: str | None) -> Callable[[dict], bool]:
    """Return a predicate over a labels dict; raises 400 on a malformed selector."""
    if not selector:
        return lambda labels: True
    tests: list[Callable[[dict], bool]] = []
    for req in _split_top(selector):
        m = _SET_RE.match(req)
        if m:
            key, op, vals = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                tests.append(partial(_in, key, vals))
            else:
                tests.append(partial(_notin, key, vals))
            continue
        for op in ("!=", "==", "="):
            if op in req:
                key, _, val = req.partition(op)
                key, val = key.strip(), val.strip()
                if not key:
                    raise bad_request(f"unable to parse requirement: {req!r}")
                if op == "!=":
                    tests.append(partial(_not_equals, key, val))
                else:
                    tests.append(partial(_equals, key, val))
                break
        else:
            if req.startswith("!"):
                tests.append(partial(_not_exists, req[1:].strip()))
            elif re.fullmatch(r"[A-Za-z0-9_./-]+", req):
                tests.append(partial(_exists, req))
            else:
                raise bad_request(f"unable to parse requirement: {req!r}")
    return lambda labels: all(t(labels or {}) for t in tests)


def _field(obj: dict, path: str) -> str:
    cur: object = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def _field_equals(path: str, value: str, obj: dict) -> bool:
    return _field(obj, path) == value


def _field_not_equals(path: str, value: str, obj: dict) -> bool:
    return _field(obj, path) != value


def field_matcher(selector: str | None) -> Callable[[dict], bool]:
    """Return a predicate over a whole object for a field selector."""
    if not selector:
        return lambda obj: True
    tests: list[Callable[[dict], bool]] = []
    for req in _split_top(selector):
        for op in ("!=", "==", "="):
            if op in req:
                key, _, val = req.partition(op)
                key, val = key.strip(), val.strip()
                if op == "!=":
                    tests.append(partial(_field_not_equals, key, val))
                else:
                    tests.append(partial(_field_equals, key, val))
                break
        else:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{req}'")
    return lambda obj: all(t(obj) for t in tests)



def selector_matches(selector: dict | None, labels: dict | None) -> bool:
    """A ``metav1.LabelSelector`` object against labels: ``matchLabels`` and
    ``matchExpressions`` (In, NotIn, Exists, DoesNotExist) all hold; an empty selector
    matches everything (``LabelSelectorAsSelector``)."""
    labels = labels or {}
    if not selector:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key", ""), e.get("operator", ""), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True

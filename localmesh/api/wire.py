"""The bytes the API server writes: JSON exactly as kube-apiserver encodes it.

kube-apiserver encodes every answer with Go's ``encoding/json``: compact, one object per
``json.Encoder.Encode`` call and therefore terminated by a newline, with ``<``, ``>``, ``&``,
U+2028 and U+2029 escaped (``SetEscapeHTML`` is on by default), non-ASCII text written as
UTF-8, and floats in Go's shortest form (k8s.io/apimachinery
``pkg/runtime/serializer/json/json.go`` ``doEncode``). A request with ``?pretty=true`` — or
from curl, Wget or a browser, which the API server pretty-prints for
(``negotiation.isPrettyPrint``) — gets ``json.MarshalIndent(obj, "", "  ")`` instead, with
no trailing newline. Watch events are the same encoder's ``{"type":…,"object":…}`` lines.

Field order: Go encodes structs in declaration order and maps with sorted keys. localmesh
stores objects as JSON maps, so it orders what every kind shares the way the Go structs
declare it (TypeMeta, ObjectMeta, ListMeta, Status, WatchEvent) and encodes custom
resources — which the API server holds as unstructured maps — with sorted keys throughout.
The fields inside a built-in kind's ``spec`` keep the order they were written in (see the
differences table in docs/localmesh.md).
"""

from __future__ import annotations

import contextvars
import json
import math
from typing import Any

# metav1.ObjectMeta's fields in declaration order (k8s.io/apimachinery
# pkg/apis/meta/v1/types.go).
OBJECT_META_ORDER = (
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
)
LIST_META_ORDER = ("selfLink", "resourceVersion", "continue", "remainingItemCount")
# TypeMeta and ObjectMeta come first in every built-in kind; spec and status last.
_HEAD = ("kind", "apiVersion", "metadata")
_TAIL = ("spec", "status")
MANAGED_FIELDS_ORDER = ("manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1",
                        "subresource")

# Whether the current request asked for pretty output (set per request by the server).
pretty_output: contextvars.ContextVar[bool] = contextvars.ContextVar("pretty_output",
                                                                     default=False)

_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                 "\u2029": "\\u2029"}


def wants_pretty(query: Any, user_agent: str) -> bool:
    """``negotiation.isPrettyPrint``: ``?pretty=`` as a Go bool, else curl/Wget/browsers."""
    value = query.get("pretty")
    if value:
        return value in ("1", "t", "T", "true", "TRUE", "True")
    return user_agent.startswith(("curl", "Wget", "Mozilla/5.0"))


def _go_float(value: float) -> str:
    """encoding/json's floatEncoder: shortest round-trip digits, ``e`` notation only below
    1e-6 or from 1e21, exponents without leading zeros (``1e-7``, ``1e+21``)."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"unsupported value: {value!r}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    coeff, _, exp = repr(abs(value)).partition("e")  # Python's repr: shortest digits too
    int_part, _, frac = coeff.partition(".")
    written = int_part + frac
    significant = written.lstrip("0")
    # Where the decimal point sits, counted from the first significant digit.
    point = len(int_part) - (len(written) - len(significant)) + (int(exp) if exp else 0)
    digits = significant.rstrip("0") or "0"
    if abs(value) < 1e-6 or abs(value) >= 1e21:
        rest = digits[1:]
        exponent = point - 1
        return (f"{sign}{digits[0]}{'.' + rest if rest else ''}"
                f"e{'+' if exponent >= 0 else '-'}{abs(exponent)}")
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _prepare(value: Any, floats: list[str]) -> Any:
    """Each float replaced by a placeholder string that :func:`encode` swaps for Go's text
    (the json module writes floats with Python's repr, which differs)."""
    if isinstance(value, float):
        floats.append(_go_float(value))
        return f"\x00{len(floats) - 1}\x00"
    if isinstance(value, dict):
        return {k: _prepare(v, floats) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_prepare(v, floats) for v in value]
    return value


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


def _escape(text: str) -> str:
    if any(c in text for c in _HTML_ESCAPES):
        for raw, esc in _HTML_ESCAPES.items():
            text = text.replace(raw, esc)
    return text


def encode(obj: Any, pretty: bool | None = None) -> bytes:
    """``obj`` as kube-apiserver writes it: compact with a newline, or indented (pretty)."""
    if pretty is None:
        pretty = pretty_output.get()
    floats: list[str] = []
    if _has_float(obj):
        obj = _prepare(obj, floats)
    if pretty:
        text = json.dumps(obj, indent=2, ensure_ascii=False, separators=(",", ": "))
    else:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    text = _escape(text)
    for i, go_text in enumerate(floats):
        text = text.replace(f'"\\u0000{i}\\u0000"', go_text, 1)
    return text.encode() if pretty else text.encode() + b"\n"


def ordered_meta(meta: Any) -> Any:
    """ObjectMeta in Go's field order (unknown keys after, as written)."""
    if not isinstance(meta, dict):
        return meta
    out = {k: meta[k] for k in OBJECT_META_ORDER if k in meta}
    out.update((k, v) for k, v in meta.items() if k not in out)
    if isinstance(out.get("managedFields"), list):
        out["managedFields"] = [
            {**{k: e[k] for k in MANAGED_FIELDS_ORDER if k in e},
             **{k: v for k, v in e.items() if k not in MANAGED_FIELDS_ORDER}}
            if isinstance(e, dict) else e for e in out["managedFields"]]
    return out


def ordered(obj: Any, *, custom: bool = False) -> Any:
    """A built-in object's shared fields in Go's order; a custom resource sorted (an
    unstructured map, as Go encodes maps)."""
    if not isinstance(obj, dict):
        return obj
    if custom:
        return sort_keys(obj)
    out = {k: obj[k] for k in _HEAD if k in obj}
    if "metadata" in out:
        out["metadata"] = ordered_meta(out["metadata"])
    out.update((k, v) for k, v in obj.items() if k not in _HEAD and k not in _TAIL)
    out.update((k, obj[k]) for k in _TAIL if k in obj)
    return out


def ordered_list(listing: dict, *, custom: bool = False) -> dict:
    """A list answer: ``kind, apiVersion, metadata (ListMeta), items`` for built-in kinds;
    a custom resource list is an unstructured map, encoded with sorted keys."""
    meta = listing.get("metadata") or {}
    meta = {k: meta[k] for k in LIST_META_ORDER if k in meta}
    items = [ordered(i, custom=custom) for i in listing.get("items") or []]
    if custom:
        return sort_keys({**listing, "metadata": meta, "items": items})
    out = {k: listing[k] for k in ("kind", "apiVersion") if k in listing}
    out["metadata"] = meta
    out["items"] = items
    return out


def sort_keys(value: Any) -> Any:
    """Every map's keys sorted, as Go's encoding/json writes a ``map[string]any``."""
    if isinstance(value, dict):
        return {k: sort_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sort_keys(v) for v in value]
    return value


def watch_event(type_: str, obj: Any) -> bytes:
    """One watch event line (metav1.WatchEvent: ``type`` then ``object``)."""
    return encode({"type": type_, "object": obj}, pretty=False)

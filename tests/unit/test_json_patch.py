"""localmesh's JSON patch against RFC 6902: the edge cases named in issue 13 and a property
test against the ``jsonpatch`` package from PyPI (an independent RFC 6902 implementation)
on generated documents and operations: both apply a patch with the same result, or both
refuse it."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localmesh.api import json_patch
from localmesh.api.status import ApiError


def apply(doc: Any, ops: list) -> Any:
    return json_patch.apply_ops(doc, ops)


@pytest.mark.parametrize(("doc", "ops", "want"), [
    ({"a": [1, 2]}, [{"op": "add", "path": "/a/2", "value": 3}], {"a": [1, 2, 3]}),
    ({"a": [1, 2]}, [{"op": "add", "path": "/a/-", "value": 3}], {"a": [1, 2, 3]}),
    ({"a": [1, 2]}, [{"op": "add", "path": "/a/0", "value": 0}], {"a": [0, 1, 2]}),
    ({"a/b": {"~": 1}}, [{"op": "replace", "path": "/a~1b/~0", "value": 2}], {"a/b": {"~": 2}}),
    ({"a": {"b": 1}}, [{"op": "move", "from": "/a/b", "path": "/c"}], {"a": {}, "c": 1}),
    ({"a": [1, 2]}, [{"op": "copy", "from": "/a/0", "path": "/a/-"}], {"a": [1, 2, 1]}),
    ({"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}], {"a": 1}),
    ({"a": 1}, [{"op": "replace", "path": "", "value": [1]}], [1]),
])
def test_rfc_6902_operations(doc: Any, ops: list, want: Any) -> None:
    assert apply(doc, ops) == want


@pytest.mark.parametrize("ops", [
    [{"op": "add", "path": "/a/3", "value": 3}],  # past the end is an error, not an append
    [{"op": "add", "path": "/a/01", "value": 3}],  # leading zero
    [{"op": "add", "path": "/a/-1", "value": 3}],  # negative
    [{"op": "replace", "path": "/a/-", "value": 3}],  # "-" names no element
    [{"op": "remove", "path": "/a/2"}],
    [{"op": "remove", "path": "/missing"}],
    [{"op": "replace", "path": "/missing", "value": 1}],
    [{"op": "add", "path": "/x/y", "value": 1}],  # parent missing
    [{"op": "add", "path": "a", "value": 1}],  # not a pointer
    [{"op": "add", "path": "/a~2", "value": 1}],  # bad escape
    [{"op": "test", "path": "/t", "value": 1}],  # true is not 1
    [{"op": "move", "from": "/o", "path": "/o/inner"}],  # into its own child
    [{"op": "add", "path": "/n"}],  # no value
    [{"op": "copy", "path": "/n"}],  # no from
    [{"op": "jump", "path": "/a"}],
    [{"path": "/a"}],
])
def test_refused_operations(ops: list) -> None:
    doc = {"a": [1, 2], "t": True, "o": {"k": 1}}
    before = copy.deepcopy(doc)
    with pytest.raises(json_patch.PatchError):
        apply(doc, ops)
    assert doc == before


@pytest.mark.parametrize(("body", "code", "message"), [
    (b"{not json", 400, None),
    (b'{"op": "add"}', 400, "json: cannot unmarshal object into Go value of type "
                            "jsonpatch.Patch"),
    (b"[1]", 400, "json: cannot unmarshal number into Go value of type jsonpatch.Operation"),
    (b'["add"]', 400, "json: cannot unmarshal string into Go value of type "
                      "jsonpatch.Operation"),
    (b'[{"op": "remove", "path": "/nope"}]', 422,
     "the server rejected our request due to an error in our request"),
])
def test_http_answers(body: bytes, code: int, message: str | None) -> None:
    with pytest.raises(ApiError) as err:
        json_patch.patch({"a": 1}, body)
    assert err.value.code == code
    if message is not None:
        assert err.value.message == message
    assert err.value.code != 500


def test_too_many_operations() -> None:
    ops = [{"op": "test", "path": "", "value": {}}] * (json_patch.MAX_OPERATIONS + 1)
    with pytest.raises(ApiError) as err:
        json_patch.patch({}, json.dumps(ops).encode())
    assert err.value.code == 413


# -- the property test ---------------------------------------------------------------------
KEYS = st.sampled_from(["a", "b", "c", "a/b", "~x", "0", "-"])
SCALARS = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from(["", "s", "t"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)), max_leaves=8)
DOCS = st.dictionaries(KEYS, VALUES, max_size=4)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _paths(doc: Any, prefix: str = "") -> list[str]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, f"{prefix}/{_escape(k)}")
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, f"{prefix}/{i}")
        out += [f"{prefix}/{len(doc)}", f"{prefix}/-", f"{prefix}/0{len(doc)}",
                f"{prefix}/{len(doc) + 1}"]
    return out


@st.composite
def doc_and_ops(draw: st.DrawFn) -> tuple[dict, list[dict]]:
    doc = draw(DOCS)
    ops = []
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)[1:] or ["/a"]
        extra = st.sampled_from(["/a", "/zz", "/a/b", "/a/0", "/a/-", "/c/1"])
        path = draw(st.one_of(st.sampled_from(paths), extra))
        op = draw(st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]))
        entry: dict = {"op": op, "path": path}
        if op in ("add", "replace", "test"):
            entry["value"] = draw(VALUES)
            if op == "test" and draw(st.booleans()):
                try:
                    entry["value"] = jsonpatch.JsonPointer(path).resolve(doc)
                except Exception:  # noqa: BLE001 - an unresolvable path is a fine test too
                    pass
        if op in ("move", "copy"):
            entry["from"] = draw(st.one_of(st.sampled_from(paths), extra))
        ops.append(entry)
    return doc, ops


def _reference(doc: dict, ops: list[dict]) -> tuple[bool, Any]:
    try:
        return True, jsonpatch.apply_patch(doc, ops)
    except Exception:  # noqa: BLE001 - any refusal of the reference library counts
        return False, None


def _ours(doc: dict, ops: list[dict]) -> tuple[bool, Any]:
    try:
        return True, apply(doc, ops)
    except json_patch.PatchError:
        return False, None


@settings(max_examples=600, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(doc_and_ops())
def test_agrees_with_the_reference_implementation(case: tuple[dict, list[dict]]) -> None:
    doc, ops = case
    ours, reference = _ours(doc, ops), _reference(doc, ops)
    assert ours == reference, f"doc={doc!r} ops={ops!r}: ours {ours}, jsonpatch {reference}"

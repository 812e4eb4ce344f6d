"""What istiod remembers between pushes: the resources that do not depend on the proxy
asking, keyed by everything they are built from.

Without it every push regenerated every proxy's whole configuration, and a mesh of 2,000
Services took seconds per proxy to take in one new Service (``meshgate bench
--mesh-sizes``). Real istiod avoids that two ways (pilot/pkg/model/xds_cache.go and
``PushRequest.ConfigsUpdated``): a cache of generated clusters, routes and endpoints keyed
by the configs they read, and pushes scoped to what changed. This is the first: a value is
built once per distinct input and shared by every proxy and every later push while its
inputs hold, and the content digest the push versions and the packing cache read is
computed once per value (by identity: shared values are never mutated after they are
built; per-proxy resources are built fresh and digested from their content).

The keys are the inputs themselves — a Service's fields, its endpoints, the resource
versions of the Istio configuration (``MeshState.config_key``) — so a change to any of
them is a new key, and a value nobody asked for during one whole state is forgotten when
the next state is built (``sweep``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


def freeze(value: Any) -> Hashable:
    """A hashable stand-in of a JSON-like value (dicts, lists, scalars), equal exactly when
    the values are equal."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def content_digest(value: Any) -> str:
    """A resource's digest from its content (the canonical JSON form)."""
    body = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(body.encode()).hexdigest()


class Memo:
    """Values by their inputs, kept while some state asks for them, and the digests of
    the values handed out."""

    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}
        # Keys asked for since the last sweep, and in the sweep before: a state built
        # before the last one's generation ran (a burst coalesced) keeps its values.
        self._used: set[Hashable] = set()
        self._used_before: set[Hashable] = set()
        # id(value) -> (value, digest); the value is held so its id stays its own.
        self._digests: dict[int, tuple[Any, str]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        value: Any = self._values.get(key, _MISSING)
        if value is _MISSING:
            value = self._values[key] = make()
            self.misses += 1
        else:
            self.hits += 1
        self._used.add(key)
        return value

    def digest(self, value: Any, compute: Callable[[], str] | None = None) -> str:
        """The digest of a value this memo handed out (or ``compute``'s, for a value built
        from memoized parts), computed once."""
        entry = self._digests.get(id(value))
        if entry is not None and entry[0] is value:
            return entry[1]
        digest = compute() if compute is not None else content_digest(value)
        self._digests[id(value)] = (value, digest)
        return digest

    def sweep(self) -> None:
        """Forget what no generation asked for since the last sweep (a new state: the
        values of Services and configs that are gone), and every digest of a value not
        kept."""
        keep = self._used | self._used_before
        self._values = {k: v for k, v in self._values.items() if k in keep}
        self._used_before, self._used = self._used, set()
        kept = {id(v) for v in self._values.values()}
        self._digests = {i: e for i, e in self._digests.items() if i in kept}

    def __len__(self) -> int:
        return len(self._values)


_MISSING = object()

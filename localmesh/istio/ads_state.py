"""What istiod keeps per ADS stream: the resources generated for a proxy (with their
digests) and, per xDS type, what the proxy subscribed to and was last sent — the state
the protocol's versions, nonces, ACKs and partial pushes are decided from (istiod.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from localmesh.istio.xds import model as xds
from localmesh.istio.xds.memo import Memo


class Generated:
    """One generation of a proxy's resources, with per-resource content digests.

    The digests are computed lazily and once (by the memo for the resources it shares
    between proxies and pushes): versions and the packing cache both use them.
    """

    __slots__ = ("_memo", "types")

    def __init__(self, types: dict[str, dict[str, dict]], memo: Memo | None = None) -> None:
        self.types = types
        self._memo = memo or Memo()

    def digest(self, type_url: str, name: str) -> str:
        return self._memo.digest(self.types[type_url][name])

    def chosen(self, type_url: str, ts: TypeState) -> list[str]:
        """The names a proxy gets: everything for a wildcard subscription, else its list."""
        resources = self.types.get(type_url, {})
        if ts.wildcard:
            return sorted(resources)
        return sorted(n for n in ts.names if n in resources)


@dataclass
class TypeState:
    names: set[str] = field(default_factory=set)
    wildcard: bool = True
    sent_version: str = ""
    sent_nonce: str = ""
    acked_version: str = ""
    nacked: str = ""
    subscribed: bool = False
    # The digest of each resource last sent, by name (what a partial push compares).
    sent_digests: dict[str, str] = field(default_factory=dict)

    def changed(self, gen: Generated, type_url: str) -> set[str]:
        """The names the proxy gets whose content differs from what it was last sent."""
        return {n for n in gen.chosen(type_url, self)
                if self.sent_digests.get(n) != gen.digest(type_url, n)}


@dataclass
class Connection:
    """One connected proxy's ADS stream."""

    conn_id: str
    node_id: str
    proxy: xds.Proxy | None
    queue: asyncio.Queue
    types: dict[str, TypeState] = field(default_factory=dict)
    proxy_version: str = ""

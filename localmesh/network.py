"""Loopback address plan of one localmesh instance.

Every instance owns one block 127.B.0.0/16 (B chosen at start and held with a lock file,
so several instances run side by side). Inside it:

- 127.B.0.x        the instance's own servers (istiod's xDS and debug ports, service discovery
                   for Prometheus);
- 127.B.1-63.x     pod IPs (what the API shows in ``status.podIP``);
- 127.B.65-127.x   each pod's *local* address, its "localhost": an injected pod's app and
                   the sidecar's admin port listen here, so the sidecar sits in front of the
                   app as iptables interception would put it (pod IP + 64 in the third octet);
- 127.B.192-223.x  Service ClusterIPs;
- 127.B.224-254.x  LoadBalancer ingress addresses.

Nothing is ever bound outside 127.0.0.0/8.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

LOCK_DIR = Path(tempfile.gettempdir()) / "localmesh-blocks"


def is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


@dataclass
class Pool:
    """Sequential allocator over a range of (third, fourth) octet pairs."""

    block: int
    third_lo: int
    third_hi: int
    used: set[str] = field(default_factory=set)
    _next: int = 0

    def _addr(self, i: int) -> str:
        per = 250
        third = self.third_lo + i // per
        return f"127.{self.block}.{third}.{2 + i % per}"

    @property
    def size(self) -> int:
        return (self.third_hi - self.third_lo + 1) * 250

    def allocate(self) -> str:
        for _ in range(self.size):
            addr = self._addr(self._next % self.size)
            self._next += 1
            if addr not in self.used:
                self.used.add(addr)
                return addr
        raise RuntimeError(f"address pool 127.{self.block}.{self.third_lo}-{self.third_hi}.x "
                           "is exhausted")

    def release(self, addr: str) -> None:
        self.used.discard(addr)


class AddressPlan:
    """The address pools of one instance, and the lock that reserves its block."""

    def __init__(self, block: int | None = None) -> None:
        self._lock_fd: int | None = None
        self.block = self._claim(block)
        self.pods = Pool(self.block, 1, 63)
        self.cluster_ips = Pool(self.block, 192, 223)
        self.load_balancers = Pool(self.block, 224, 254)

    def _claim(self, wanted: int | None) -> int:
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        candidates = [wanted] if wanted else list(range(10, 250))
        for b in candidates:
            fd = os.open(LOCK_DIR / f"{b}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self._lock_fd = fd
            return b
        raise RuntimeError(
            f"no free loopback block: every 127.B.0.0/16 in {candidates[0]}..{candidates[-1]} "
            f"is held by another localmesh (locks in {LOCK_DIR})")

    def server_address(self, n: int = 1) -> str:
        return f"127.{self.block}.0.{n}"

    @staticmethod
    def local_address(pod_ip: str) -> str:
        """The pod's own 'localhost' address, paired with its pod IP."""
        a, b, c, d = pod_ip.split(".")
        return f"{a}.{b}.{int(c) + 64}.{d}"

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


class NodePorts:
    """NodePort numbers, from kube-apiserver's default ``--service-node-port-range``
    (30000-32767): the next number after the last one handed out, skipping those a Service
    already holds, wrapping round at the end of the range.

    ``in_use`` answers the node ports the cluster's Services hold now (read at each
    allocation, so ports freed by deleted Services come back).
    """

    FIRST, LAST = 30000, 32767

    def __init__(self, in_use: Callable[[], Iterable[int]]) -> None:
        self.in_use = in_use
        self._last = self.FIRST

    def allocate(self) -> int:
        used = set(self.in_use())
        for _ in range(self.LAST - self.FIRST + 1):
            self._last += 1
            if self._last > self.LAST:
                self._last = self.FIRST + 1
            if self._last not in used:
                return self._last
        raise RuntimeError(f"every NodePort in {self.FIRST}-{self.LAST} is taken")

"""The one polling primitive, and the record of how long each wait took to converge.

Every "eventually" in the suite is :func:`wait_until`: it polls a probe until it returns
a truthy value or the area's timeout expires, and records the convergence time (or the
timeout) in a :class:`Convergence` log that the reports carry. A timeout raises
:class:`WaitTimeout` with the last observation, so a failure says what was seen, not just
that time ran out. Timeouts are per area (deploy, routes, telemetry, graph, ingress;
policy for a security policy or a route object coming into force; and recovery for the
waits after an injected fault) and come from the command line
(``--timeout-routes=30``) or the environment (``MESHGATE_TIMEOUT_ROUTES=30``).

Recovery has an area of its own so that a nightly trend of route convergence, say, is not
polluted by the time the mesh needed to heal from a fault the suite injected.

:class:`Waits` bundles a run's timeouts with its convergence log: it is what the checks of
the library take, so a check's signature says "I poll" in one parameter.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TypeVar

T = TypeVar("T")

AREAS = ("deploy", "routes", "telemetry", "graph", "ingress", "policy", "recovery")
DEFAULT_TIMEOUTS = {"deploy": 120.0, "routes": 60.0, "telemetry": 90.0, "graph": 90.0,
                    "ingress": 60.0, "policy": 60.0, "recovery": 120.0}


class Unrecoverable(AssertionError):
    """Raised by a probe when waiting longer cannot help (an image that cannot be pulled,
    a crash loop): :func:`wait_until` stops at once and lets it through."""


class WaitTimeout(AssertionError):
    """A condition did not hold in time; carries the last thing observed."""

    def __init__(self, what: str, timeout: float, last: object) -> None:
        super().__init__(f"{what}: not true after {timeout:.1f}s; last seen: {last}")
        self.what = what
        self.timeout = timeout
        self.last = last


@dataclass
class Sample:
    area: str
    what: str
    seconds: float
    converged: bool
    polls: int


@dataclass
class Convergence:
    """Every wait of a run, in order; thread safe."""

    samples: list[Sample] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, sample: Sample) -> None:
        with self._lock:
            self.samples.append(sample)

    def as_dicts(self) -> list[dict]:
        with self._lock:
            return [asdict(s) for s in self.samples]


@dataclass
class Timeouts:
    values: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))

    @classmethod
    def from_sources(cls, options: dict[str, float | None] | None = None,
                     environ: dict[str, str] | None = None) -> Timeouts:
        """Command line first, then ``MESHGATE_TIMEOUT_<AREA>``, then the defaults."""
        env = os.environ if environ is None else environ
        values = dict(DEFAULT_TIMEOUTS)
        for area in AREAS:
            raw = env.get(f"MESHGATE_TIMEOUT_{area.upper()}")
            if raw:
                try:
                    values[area] = float(raw)
                except ValueError as exc:
                    raise ValueError(f"MESHGATE_TIMEOUT_{area.upper()}={raw!r} is not a number "
                                     "of seconds") from exc
            opt = (options or {}).get(area)
            if opt is not None:
                values[area] = float(opt)
        return cls(values)

    def __getitem__(self, area: str) -> float:
        return self.values[area]


def wait_until(probe: Callable[[], T | None], *, area: str, what: str, timeout: float,
               log: Convergence | None = None, interval: float = 0.02,
               max_interval: float = 0.16,
               describe: Callable[[T | None], object] | None = None) -> T:
    """Poll ``probe`` until it returns something truthy; record how long it took.

    The interval starts small (a local mesh converges in milliseconds) and backs off to
    ``max_interval`` so a slow cluster is not hammered. Exceptions from the probe count
    as "not yet" and the last one is reported on timeout.

    The poll interval is also the precision of every convergence time the reports and
    ``meshgate bench`` show, and a delay added to every wait: the defaults follow Istio's
    own test framework (istio/istio pkg/test/util/retry: 10 ms, backing off to 16 times
    that), not the half second this used to cap at.
    """
    start = time.monotonic()
    deadline = start + timeout
    polls = 0
    last: object = None
    delay = interval
    while True:
        polls += 1
        try:
            value = probe()
            last = describe(value) if describe else value
            if value:
                if log is not None:
                    log.add(Sample(area, what, time.monotonic() - start, True, polls))
                return value
        except Unrecoverable as exc:
            if log is not None:
                log.add(Sample(area, what, time.monotonic() - start, False, polls))
            raise exc

        except AssertionError as exc:
            last = exc
        except Exception as exc:
            if getattr(exc, "status", None) == 403 or getattr(exc, "final", False):
                # Missing RBAC does not heal by waiting, nor does an API server that has not
                # answered for its whole availability budget: say so now.
                if log is not None:
                    log.add(Sample(area, what, time.monotonic() - start, False, polls))
                raise Unrecoverable(str(exc)) from exc
            last = f"{exc.__class__.__name__}: {exc}"
        now = time.monotonic()
        if now >= deadline:
            if log is not None:
                log.add(Sample(area, what, now - start, False, polls))
            raise WaitTimeout(what, timeout, last)
        time.sleep(min(delay, max(0.0, deadline - now)))
        delay = min(delay * 1.5, max_interval)


@dataclass
class Waits:
    """A run's per-area timeouts and its convergence log: what every check polls with."""

    timeouts: Timeouts = field(default_factory=Timeouts)
    log: Convergence = field(default_factory=Convergence)

    def timeout(self, area: str) -> float:
        return self.timeouts[area]

    def until(self, probe: Callable[[], T | None], *, area: str, what: str,
              describe: Callable[[T | None], object] | None = None,
              timeout: float | None = None) -> T:
        """:func:`wait_until` with the area's timeout (or a shorter one) and this log."""
        return wait_until(probe, area=area, what=what,
                          timeout=self.timeout(area) if timeout is None else timeout,
                          log=self.log, describe=describe)

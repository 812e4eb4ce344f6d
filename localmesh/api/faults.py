"""A struggling API server: the faults ``localmesh up --api-faults PROFILE`` injects.

Each profile is a failure clients of a real API server meet, answered the way
kube-apiserver answers it, so that what a client does about it can be tested here:

- ``flaky``: a share of requests (``--api-fault-rate``) is answered before it reaches the
  store with 429 ``TooManyRequests`` (API Priority and Fairness rejecting a request:
  k8s.io/apiserver ``pkg/server/filters/priority-and-fairness.go``), 500 ``ServerTimeout``
  (what ``apierrors.NewServerTimeout`` answers when storage is unreachable,
  k8s.io/apiserver ``pkg/registry/generic/registry/store.go`` via
  ``storage.interpretStorageError``) or 503 ``ServiceUnavailable``; each with a
  ``Retry-After`` header and ``details.retryAfterSeconds``, as
  ``responsewriters.ErrorNegotiated`` writes them for a Status that names a delay. Watch
  streams end cleanly after a few seconds (``--api-watch-cut``), as a watch does when its
  server-side timeout ends (``--min-request-timeout``, randomised upstream), and every
  request is delayed by up to 50 ms.
- ``restart``: the listening socket is closed (connections refused, open ones reset) for
  ``--api-restart-down`` seconds every ``--api-restart-every`` seconds and reopened on the
  same port, as during a control-plane upgrade (localmesh/api/listener.py).
- ``token-expiry``: the kubeconfig runs an exec credential plugin whose tokens live
  ``--api-token-ttl`` seconds; expired ones are answered 401 (localmesh/credentials.py).
- ``outage``: after ``--api-outage-after`` answered requests the listening socket closes
  for good.

As upstream, long-running requests other than watches (exec, attach, portforward, log,
proxy) are not throttled: APF serves them untracked ("Skip tracking long running non-watch
requests", priority-and-fairness.go) and they do not touch storage. Health probes
(``/livez``, ``/readyz``, ``/healthz``) are never faulted (APF's ``probes`` FlowSchema maps
them to the ``exempt`` priority level), nor is ``/metrics``, where every injected fault is
counted (``localmesh_apiserver_injected_faults_total``).

Only requests over HTTP can be faulted, and only clients of the kubeconfig send them:
localmesh's controllers, kubelet and istiod call the object store in process.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from localmesh.api.negotiation import json_response
from localmesh.api.status import ApiError

log = logging.getLogger("localmesh.api.faults")

PROFILES = ("none", "flaky", "restart", "token-expiry", "outage")
EXEMPT_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
# Subresources kube-apiserver serves as long-running (BasicLongRunningRequestCheck in
# cmd/kube-apiserver/app/server.go: verbs watch and proxy; these subresources).
LONG_RUNNING_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "log", "proxy"})
MAX_LATENCY = 0.05
RETRY_AFTER = 1

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class FaultConfig:
    """A profile and its rates (``localmesh up --api-*`` options)."""

    profile: str = "none"
    rate: float = 0.1  # flaky: the share of requests faulted
    seed: int | None = None  # flaky: the schedule's seed (None: a random one)
    watch_cut: float = 5.0  # flaky: watches end after about this many seconds
    restart_every: float = 15.0  # restart: seconds between the starts of two downtimes
    restart_down: float = 2.0  # restart: seconds each downtime lasts
    token_ttl: float = 60.0  # token-expiry: a token's lifetime in seconds
    outage_after: int = 0  # outage: client requests answered before the server stops

    def describe(self) -> str:
        """What the ``up`` banner says about the faults."""
        if self.profile == "flaky":
            return (f"API faults flaky ({self.rate:.0%} of requests answered 429/500/503 "
                    f"with Retry-After, watches cut after ~{self.watch_cut:g} s, up to "
                    f"{MAX_LATENCY * 1000:.0f} ms latency; seed {self.seed})")
        if self.profile == "restart":
            return (f"API faults restart (down {self.restart_down:g} s every "
                    f"{self.restart_every:g} s, connections refused)")
        if self.profile == "token-expiry":
            return (f"API faults token-expiry (exec credential plugin, tokens live "
                    f"{self.token_ttl:g} s)")
        if self.profile == "outage":
            return (f"API faults outage (stops answering for good after "
                    f"{self.outage_after} client request(s))")
        return "no API faults"


@dataclass(frozen=True)
class Fault:
    """An answer given instead of the request's own."""

    code: int
    reason: str
    message: str
    retry_after: int = RETRY_AFTER

    @property
    def name(self) -> str:
        return f"{self.code}-{self.reason}"

    def response(self) -> web.Response:
        err = ApiError(self.code, self.reason, self.message)
        body = err.status()
        body["details"] = {"retryAfterSeconds": self.retry_after}
        resp = json_response(body, self.code)
        resp.headers["Retry-After"] = str(self.retry_after)
        return resp


THROTTLED = Fault(429, "TooManyRequests", "Too many requests, please try again later.")
STORAGE_TIMEOUT = Fault(500, "ServerTimeout", "The request could not be completed at this "
                        "time, please try again.")
UNAVAILABLE = Fault(503, "ServiceUnavailable", "The server is currently unable to handle "
                    "the request, please try again.")


def request_kind(method: str, path: str, query: dict[str, str] | object) -> str:
    """``exempt``, ``long-running``, ``watch``, ``read`` or ``write``: which faults apply."""
    if path in EXEMPT_PATHS:
        return "exempt"
    reads = method in ("GET", "HEAD", "OPTIONS")
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] not in ("api", "apis"):
        return "read" if reads else "write"
    gv = 2 if parts[0] == "api" else 3
    rest = parts[gv:]
    if rest[:1] == ["watch"]:
        return "watch"
    if len(rest) >= 3 and rest[0] == "namespaces" and not (
            len(rest) == 3 and rest[2] in ("status", "finalize")):
        rest = rest[2:]
    if len(rest) >= 3 and rest[2] in LONG_RUNNING_SUBRESOURCES:
        return "long-running"
    get = getattr(query, "get", None)
    if method == "GET" and get is not None and get("watch") in ("1", "true", "True"):
        return "watch"
    return "read" if reads else "write"


@dataclass
class FaultSchedule:
    """Which request gets which fault: a seeded random sequence, so a run's faults can be
    replayed (the same seed and the same order of requests give the same faults)."""

    config: FaultConfig
    counts: Counter[str] = field(default_factory=Counter)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.config.seed)

    def fault(self, kind: str) -> Fault | None:
        """The fault for the next request of ``kind``, or None (answer it normally)."""
        if self.config.profile != "flaky" or kind in ("exempt", "long-running"):
            return None
        if self._rng.random() >= self.config.rate:
            return None
        # A write is refused before it is applied, by the filters that say so (APF, or
        # storage that timed out before the write); reads may also meet a 503.
        choices = (THROTTLED, STORAGE_TIMEOUT) if kind == "write" else \
            (THROTTLED, STORAGE_TIMEOUT, UNAVAILABLE)
        chosen = self._rng.choice(choices)
        self.counts[chosen.name] += 1
        return chosen

    def latency(self, kind: str) -> float:
        if self.config.profile != "flaky" or kind == "exempt":
            return 0.0
        return self._rng.uniform(0.0, MAX_LATENCY)

    def watch_timeout(self) -> float | None:
        """A flaky watch's server-side timeout: between half and 1.5× ``watch_cut``."""
        if self.config.profile != "flaky":
            return None
        return self.config.watch_cut * self._rng.uniform(0.5, 1.5)


@dataclass
class Faults:
    """The API server's fault injection: the middleware, the counters, /metrics."""

    config: FaultConfig
    schedule: FaultSchedule = field(init=False)
    received: int = 0  # client requests received (the outage counts them)
    # The outage's end of service, called for the first request past --api-outage-after.
    over_limit: Callable[[], Awaitable[None]] | None = None
    expired_tokens: Callable[[], int] = lambda: 0
    extra: Counter[str] = field(default_factory=Counter)  # restarts, aborted connections

    def __post_init__(self) -> None:
        self.schedule = FaultSchedule(self.config)

    @property
    def counts(self) -> dict[str, int]:
        out = dict(self.schedule.counts)
        out.update(self.extra)
        expired = self.expired_tokens()
        if expired:
            out["401-expired-token"] = expired
        return out

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        kind = request_kind(request.method, request.path, request.query)
        if kind != "exempt":
            self.received += 1
            if self.over_limit is not None and self.received > self.config.outage_after:
                # Closes this connection too: the request is never answered.
                await self.over_limit()
                raise web.HTTPServiceUnavailable()  # not reached: the connection is gone
        delay = self.schedule.latency(kind)
        if delay:
            await asyncio.sleep(delay)  # the fault itself: a slow answer
        fault = self.schedule.fault(kind)
        if fault is not None:
            log.info("injected %s for %s %s", fault.name, request.method, request.path)
            return fault.response()
        if kind == "watch":
            cut = self.schedule.watch_timeout()
            if cut is not None:
                asked = request.query.get("timeoutSeconds")
                try:
                    asked_seconds = float(asked) if asked else None
                except ValueError:
                    asked_seconds = None  # the watch handler answers 400 for it
                if asked_seconds is None or cut < asked_seconds:
                    self.extra["watch-cut"] += 1
                    request = request.clone(rel_url=request.rel_url.update_query(
                        timeoutSeconds=f"{cut:.1f}"))
        return await handler(request)

    async def metrics(self, request: web.Request) -> web.Response:
        """``GET /metrics``: the injected faults in the Prometheus text format."""
        lines = ["# HELP localmesh_apiserver_injected_faults_total Faults localmesh's API "
                 "server injected (localmesh up --api-faults).",
                 "# TYPE localmesh_apiserver_injected_faults_total counter"]
        for name, value in sorted(self.counts.items()):
            lines.append(f'localmesh_apiserver_injected_faults_total{{profile='
                         f'"{self.config.profile}",fault="{name}"}} {value}')
        lines += ["# HELP localmesh_apiserver_client_requests_total Client requests the "
                  "API server received (health probes and /metrics aside).",
                  "# TYPE localmesh_apiserver_client_requests_total counter",
                  f"localmesh_apiserver_client_requests_total {self.received}"]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain",
                            charset="utf-8")


def parse_metrics(text: str) -> dict[str, int]:
    """The fault counts in a /metrics page (for tests and ``meshgate soak``)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("localmesh_apiserver_injected_faults_total{"):
            labels, _, value = line.rpartition(" ")
            name = labels.split('fault="', 1)[1].split('"', 1)[0]
            out[name] = int(float(value))
    return out

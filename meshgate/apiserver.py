"""How the suite talks to an API server that is not always well: retries, timeouts, and
one message when it is gone.

Kubernetes' own clients retry a throttled or briefly failing API server (client-go
``rest/with_retry.go``) and give up with the server's address when it cannot be reached.
The official Python client does the first only in part and the second not at all: a
request has no timeout unless the caller passes one, so an API server that accepts
connections and never answers hangs the run, and a refused connection surfaces as a
urllib3 traceback. :class:`Availability` wraps the client's REST layer so that every call
has a timeout, a control-plane restart of a few seconds is ridden out, and an API server
that stays away ends the call with :class:`ApiServerUnreachable`, whose message names the
server and what it last answered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3


class ClusterError(RuntimeError):
    """A cluster-level failure with a message a user can act on (``status``: the API
    server's HTTP status, when it answered)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApiServerUnreachable(ClusterError):
    """The API server did not answer for the whole of the availability budget. Waiting
    longer does not help a run (``final``: the waits stop at once)."""

    final = True


class ApiServerRetry(urllib3.Retry):
    """The retries Kubernetes' own clients make (client-go rest/with_retry.go, checkWait):
    a response with a ``Retry-After`` header and status 429 (API Priority and Fairness
    throttling) or 5xx is retried, for any verb (the server did not act on it), after the
    time it asks for (capped), up to ten times; a connection that cannot be made is
    retried a few times; a read that times out is not (the request may have been applied).
    Without ``Retry-After`` a 5xx is the answer."""

    RETRY_AFTER_STATUS_CODES = frozenset({429, 500, 502, 503, 504})
    MAX_RETRY_AFTER = 10.0

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        return bool(self.total) and has_retry_after and \
            status_code in self.RETRY_AFTER_STATUS_CODES

    def get_retry_after(self, response: Any) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, self.MAX_RETRY_AFTER)

    @classmethod
    def policy(cls) -> ApiServerRetry:
        # Where the server names no wait (Retry-After: 0), back off from 0.1 s doubling to
        # at most 2 s: ten retries then take at most about 13 s.
        return cls(total=10, connect=3, read=0, status=10, backoff_factor=0.1, backoff_max=2.0,
                   allowed_methods=None, respect_retry_after_header=True,
                   raise_on_status=False)


@dataclass(frozen=True)
class Answer:
    """The last thing the API server answered: a status to a request, at a time."""

    status: int
    method: str
    path: str
    at: float  # time.monotonic()
    wall: float  # time.time(), for the message

    def describe(self, now: float) -> str:
        clock = time.strftime("%H:%M:%S", time.localtime(self.wall))
        return (f"it last answered {self.status} to {self.method} {self.path} at {clock} "
                f"({now - self.at:.0f} s ago)")


def _failure(exc: BaseException) -> str:
    """What went wrong on the wire, in a few words (urllib3 wraps the cause)."""
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    if "Connection refused" in text:
        return "refused the connection"
    if isinstance(reason, urllib3.exceptions.ReadTimeoutError) or "Read timed out" in text:
        return "accepted the connection but did not answer in time"
    if isinstance(reason, urllib3.exceptions.ConnectTimeoutError) or "timed out" in text:
        return "did not accept a connection in time"
    if isinstance(reason, urllib3.exceptions.ProtocolError) or "reset" in text.lower():
        return "closed the connection without answering"
    return f"failed ({reason.__class__.__name__}: {text})"


class Availability:
    """Every REST call of one client: a default timeout, the last answer remembered, and a
    connection that cannot be made or read retried for ``budget`` seconds.

    Retrying is safe for what the suite sends: a refused connection never reached the
    server, and the suite's writes are server-side applies, merge patches and deletes,
    which have the same result when sent twice (a second delete answers 404, which the
    callers treat as done). After the budget has run out once, later calls try once
    before giving up: a run whose API server is gone fails each remaining step in
    seconds with the same message rather than waiting out the budget again and again.
    """

    # (connect, read) seconds: an API server answers a GET in milliseconds, a list of a big
    # namespace or a slow admission webhook in seconds; kubectl's --request-timeout has no
    # default, client-go's transport gives a TLS handshake 10 s.
    DEFAULT_TIMEOUT = (10.0, 30.0)

    def __init__(self, host: str, send: Callable[..., Any], *, budget: float = 30.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.host = host
        self.budget = budget
        self.timeout: tuple[float, float] = self.DEFAULT_TIMEOUT
        self.last: Answer | None = None
        self._send = send
        self._clock = clock
        self._sleep = sleep
        self._gone_since: float | None = None
        self._lock = threading.Lock()

    def request(self, method: str, url: str, *args: Any, _request_timeout: Any = None,
                **kwargs: Any) -> Any:
        """``RESTClientObject.request`` with the availability rules above."""
        timeout = _request_timeout or self.timeout
        path = urlsplit(url).path or "/"
        start = self._clock()
        # An API server that has never answered this run is a wrong address or a stopped
        # cluster (kubectl says so at once); one that answered before may be restarting.
        riding_out = self.last is not None and self._gone_since is None
        deadline = start + (self.budget if riding_out else 0.0)
        delay = 0.2
        while True:
            try:
                resp = self._send(method, url, *args, _request_timeout=timeout, **kwargs)
            except urllib3.exceptions.HTTPError as exc:
                now = self._clock()
                if now + delay > deadline:
                    with self._lock:
                        if self._gone_since is None:
                            self._gone_since = start
                    raise ApiServerUnreachable(self._message(exc, method, path, now)) from exc
                self._sleep(delay)  # a bounded back-off between attempts, not a wait
                delay = min(delay * 2, 2.0)
                continue
            with self._lock:
                self._gone_since = None
                self.last = Answer(int(resp.status), method, path, self._clock(), time.time())
            return resp

    def _message(self, exc: BaseException, method: str, path: str, now: float) -> str:
        if self.last is None:
            return (f"cannot reach the API server at {self.host}: it {_failure(exc)} "
                    f"({method} {path}) and has not answered this run: is the cluster "
                    "running and the kubeconfig's server address right?")
        since = self._gone_since if self._gone_since is not None else now
        return (f"the API server at {self.host} {_failure(exc)} ({method} {path}; not "
                f"answering for {now - since:.0f} s); {self.last.describe(now)}. Check that "
                "the cluster is running and reachable from here (kubectl get --raw /readyz)")


def install(api_client: Any, *, budget: float = 30.0) -> Availability:
    """Put :class:`Availability` in front of ``api_client``'s REST layer."""
    rest = api_client.rest_client
    watcher = Availability(api_client.configuration.host, rest.request, budget=budget)
    rest.request = watcher.request
    return watcher

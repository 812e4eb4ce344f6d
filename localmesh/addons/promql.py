"""Prometheus's HTTP query API as the graph addons use it, and counter rates that see new series.

Both addons are thin readers of Prometheus: Kiali's graph and the 0.x servicegraph are
``sum(rate(istio_requests_total{...}[window])) by (...)`` queries turned into JSON. This
module holds what they share:

* ``Prometheus`` — ``POST /api/v1/query`` with a timeout and ``trust_env=False`` (a
  pod's ``HTTP_PROXY`` must never capture the call), and one error type,
  ``PrometheusUnavailable``, whose message says why (connection refused, timeout, the
  error Prometheus returned) so the addons can answer 503 with a reason, not a traceback.

* ``counter_rates`` — the upstream rate query plus a *new-series* query, merged.

Why the second query. ``rate(c[w])`` needs two samples of a series inside the window and
only counts the increase *between* them. Istio's counters are born on the first request
(their first sample is already 1, 5, ...), so a series whose requests all happened
before or at its first scrape has ``rate == 0`` (or no result at all, with one sample)
although requests happened inside the window. On a real cluster that is noise in a
10-minute window; on the local mesh, where a scenario sends a few requests and asks for
the graph seconds later, it is the common case, and real Kiali would draw no edge. So for
every group the rate query returns no positive value for, we use

    (last value in the window − the value one window ago, or 0 if the series was
     not there yet) / window seconds

i.e. the counter is taken to start from 0 when the series appeared, which is what
Prometheus itself does for series with created-timestamps. A group the rate query has a
positive value for keeps the upstream value unchanged, so busy edges read exactly as
upstream computes them. Counter resets make the difference negative; those groups are
dropped (``> 0``), and the upstream rate (which handles resets) stands.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

__all__ = [
    "Prometheus",
    "PrometheusUnavailable",
    "RateQueries",
    "Sample",
    "counter_rates",
    "label_matcher",
    "parse_duration",
]

DEFAULT_TIMEOUT_SECONDS = 10.0

# Prometheus's duration syntax (github.com/prometheus/common model.ParseDuration), which is
# what Kiali (graph/options.go) and servicegraph (promgen.go) validate their windows with.
_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_DURATION_UNITS = (365 * 86400.0, 7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0, 0.001)


class PrometheusUnavailable(Exception):
    """Prometheus could not answer a query; the message is the reason, fit for a 503 body."""


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector: its labels and its value."""

    labels: Mapping[str, str]
    value: float


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration (``60s``, ``10m``, ``1h30m``); ValueError if invalid."""
    if text == "0":
        return 0.0
    match = _DURATION.fullmatch(text or "")
    if not text or not match:
        raise ValueError(f"not a valid duration string: {text!r}")
    return sum(int(part) * unit for part, unit in zip(match.groups(), _DURATION_UNITS, strict=True)
               if part)


def label_matcher(name: str, op: str, value: str) -> str:
    """``name op "value"`` with the value quoted as a PromQL string (so input cannot inject)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{name}{op}"{escaped}"'


def check_loopback_url(url: str) -> None:
    """Refuse a Prometheus URL whose host is a non-loopback IP literal.

    localmesh never sends to a non-loopback address (docs/localmesh.md, "Loopback only").
    Host names are accepted: the emulation hands out IPs, and a name would not resolve to
    anything else on this machine.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"PROMETHEUS_URL {url!r} is not an http(s) URL")
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return
    if not address.is_loopback:
        raise ValueError(f"PROMETHEUS_URL {url!r} is not a loopback address")


class Prometheus:
    """A Prometheus server's query API. Create and close it inside the serving event loop."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # trust_env=False: the addon's pod may carry HTTP_PROXY for its sidecar; the
            # query must go straight to Prometheus.
            self._session = aiohttp.ClientSession(
                trust_env=False, timeout=aiohttp.ClientTimeout(total=self.timeout)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """Evaluate ``expr`` as an instant query (at ``at``, unix seconds, or now).

        POST, as Prometheus's Go client does, because the graph queries are long. Only
        vector results are accepted: every graph query is a ``sum ... by``.
        """
        form = {"query": expr}
        if at is not None:
            form["time"] = f"{at:.3f}"
        answer = await self._call("/api/v1/query", form)
        data = answer.get("data") or {}
        if data.get("resultType") != "vector":
            raise PrometheusUnavailable(
                f"Prometheus answered {data.get('resultType')!r} for {expr!r}, expected a vector"
            )
        samples = []
        for item in data.get("result") or []:
            try:
                value = float(item["value"][1])
            except (KeyError, IndexError, TypeError, ValueError):
                continue
            if not math.isnan(value):
                samples.append(Sample(labels=dict(item.get("metric") or {}), value=value))
        return samples

    async def build_info(self) -> dict[str, str] | None:
        """``/api/v1/status/buildinfo`` data (version, revision...), or None if unavailable."""
        try:
            answer = await self._call("/api/v1/status/buildinfo", None)
        except PrometheusUnavailable:
            return None
        data = answer.get("data")
        return data if isinstance(data, dict) else None

    async def _call(self, path: str, form: dict[str, str] | None) -> dict:
        url = self.url + path
        try:
            session = self._client()
            request = session.post(url, data=form) if form is not None else session.get(url)
            async with request as response:
                text = await response.text()
                status = response.status
        except TimeoutError:  # asyncio.TimeoutError is TimeoutError since 3.11
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} did not answer within {self.timeout:g}s"
            ) from None
        except aiohttp.ClientError as error:
            raise PrometheusUnavailable(
                f"cannot reach Prometheus at {self.url}: {error}"
            ) from None
        try:
            answer = _json(text)
        except ValueError:
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} answered HTTP {status} with a non-JSON body: "
                f"{text[:200]!r}"
            ) from None
        if status != 200 or answer.get("status") != "success":
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} answered HTTP {status}: "
                f"{answer.get('errorType', 'error')}: {answer.get('error', text[:200])}"
            )
        return answer


def _json(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


# --------------------------------------------------------------------------- rates


@dataclass(frozen=True)
class RateQueries:
    """The two PromQL expressions ``counter_rates`` evaluates for one counter selection."""

    rate: str
    new_series: str


def rate_queries(
    metric: str,
    matchers: Iterable[str],
    window: str,
    window_seconds: float,
    by: str,
    *,
    keep_idle: bool,
    rate_template: str,
    new_series_template: str,
) -> RateQueries:
    """Fill the caller's upstream rate template and the matching new-series expression.

    Templates receive ``{metric}``, ``{selector}`` (``{a="b",...}``), ``{window}``,
    ``{seconds}`` (the window in whole seconds), ``{by}`` and ``{idle}`` (``" > 0"``
    unless idle groups are kept). The caller owns the upstream text so that each addon's
    query is written out in full next to the source it copies.
    """
    selector = "{" + ",".join(matchers) + "}"
    fields = {
        "metric": metric,
        "selector": selector,
        "window": window,
        "seconds": max(int(window_seconds), 1),
        "by": by,
        "idle": "" if keep_idle else " > 0",
    }
    return RateQueries(
        rate=rate_template.format(**fields), new_series=new_series_template.format(**fields)
    )


# The new-series expression (see the module docstring): per group, the last value in the
# window minus the value one window earlier (or 0 where no series existed then), per second.
# ``or <same> * 0`` supplies the 0 base for groups that have no sample a window ago.
NEW_SERIES_TEMPLATE = (
    "(sum(last_over_time({metric}{selector}[{seconds}s])) by ({by})"
    " - (sum({metric}{selector} offset {seconds}s) by ({by})"
    " or sum(last_over_time({metric}{selector}[{seconds}s])) by ({by}) * 0))"
    " / {seconds} > 0"
)


async def counter_rates(
    prometheus: Prometheus, queries: RateQueries, at: float | None, *, keep_idle: bool
) -> list[Sample]:
    """Per-group per-second rates: the upstream value, or the new-series value where it is 0.

    Both expressions run concurrently. The result keeps the rate query's order and
    appends the groups only the new-series query found (in its order), so callers that
    depend on order (Kiali's de-duplication keeps the first series) see upstream first.
    With ``keep_idle`` a group whose rate is 0 and that did not just appear stays at 0.
    """
    rated, fresh = await asyncio.gather(
        prometheus.query(queries.rate, at), prometheus.query(queries.new_series, at)
    )
    fresh_by_key = {_key(s.labels): s for s in fresh}
    merged: list[Sample] = []
    seen: set[frozenset[tuple[str, str]]] = set()
    for sample in rated:
        key = _key(sample.labels)
        seen.add(key)
        if sample.value > 0:
            merged.append(sample)
        elif key in fresh_by_key:
            merged.append(fresh_by_key[key])
        elif keep_idle:
            merged.append(sample)
    merged.extend(s for s in fresh if _key(s.labels) not in seen)
    return merged


def _key(labels: Mapping[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())

"""localmesh's API fault middleware (localmesh/api/faults.py) on a real aiohttp server on
loopback: the seeded schedule's faults are what clients get, counted on /metrics, and a
flaky watch ends before its own timeout."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from localmesh.api.faults import FaultConfig, Faults, FaultSchedule, parse_metrics


async def _serve(faults: Faults, requests: list[tuple[str, str]]) -> list[tuple[int, str]]:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=request.query.get("timeoutSeconds", "-"))

    app = web.Application(middlewares=[faults.middleware])
    app.router.add_get("/metrics", faults.metrics)
    app.router.add_route("*", "/{tail:.*}", echo)
    async with TestClient(TestServer(app)) as http:
        out = []
        for method, path in requests:
            resp = await http.request(method, path)
            out.append((resp.status, await resp.text()))
        return out


def test_the_middleware_answers_the_scheduled_faults_and_counts_them() -> None:
    faults = Faults(FaultConfig("flaky", rate=0.5, seed=11))
    expected = FaultSchedule(FaultConfig("flaky", rate=0.5, seed=11))
    requests = [("GET", "/api/v1/namespaces/a/configmaps")] * 40
    answers = asyncio.run(_serve(faults, [*requests, ("GET", "/metrics")]))
    want = []
    for _ in requests:
        expected.latency("read")
        fault = expected.fault("read")
        want.append(fault.code if fault else 200)
    assert [status for status, _ in answers[:-1]] == want
    assert 0 < want.count(200) < len(want)
    counts = parse_metrics(answers[-1][1])
    assert counts == dict(expected.counts) and faults.received == len(requests)


def test_a_flaky_watch_ends_before_its_own_timeout() -> None:
    faults = Faults(FaultConfig("flaky", rate=0.0, seed=5, watch_cut=2.0))
    answers = asyncio.run(_serve(faults, [
        ("GET", "/api/v1/namespaces/a/pods?watch=true"),
        ("GET", "/api/v1/namespaces/a/pods?watch=true&timeoutSeconds=600"),
        ("GET", "/api/v1/namespaces/a/pods?watch=true&timeoutSeconds=0.5"),
        ("GET", "/api/v1/namespaces/a/pods")]))
    first, second, short, listed = (text for _, text in answers)
    assert 1.0 <= float(first) <= 3.0 and 1.0 <= float(second) <= 3.0
    assert short == "0.5" and listed == "-"  # a shorter timeout and a list are left alone
    assert faults.counts == {"watch-cut": 2}

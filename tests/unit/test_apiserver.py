"""meshgate.apiserver.Availability on a scripted wire: what it retries, for how long, and
the one message it ends with. The real-socket behaviour (a server that stops, restarts,
or accepts and never answers) is in tests/integration/test_api_retries.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import urllib3

from meshgate.apiserver import ApiServerUnreachable, Availability

HOST = "https://127.0.0.1:6443"


@dataclass
class Response:
    status: int


class Wire:
    """Answers from a script: an int is a status, an exception is raised."""

    def __init__(self, *script: int | Exception) -> None:
        self.script = list(script)
        self.sent: list[tuple[str, str, Any]] = []
        self.now = 1000.0

    def send(self, method: str, url: str, *_: Any, _request_timeout: Any = None,
             **__: Any) -> Response:
        self.sent.append((method, url, _request_timeout))
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return Response(step)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def refused() -> urllib3.exceptions.HTTPError:
    return urllib3.exceptions.MaxRetryError(
        None, "/api", urllib3.exceptions.NewConnectionError(None, "[Errno 111] Connection refused"))


def timed_out() -> urllib3.exceptions.HTTPError:
    return urllib3.exceptions.ReadTimeoutError(None, "/api", "Read timed out. (read timeout=30)")


def availability(wire: Wire, budget: float = 30.0) -> Availability:
    return Availability(HOST, wire.send, budget=budget, clock=wire.clock, sleep=wire.sleep)


def test_every_call_gets_a_timeout_unless_it_names_one() -> None:
    wire = Wire(200, 200)
    a = availability(wire)
    a.request("GET", f"{HOST}/version")
    a.request("GET", f"{HOST}/api", _request_timeout=5)
    assert [t for _, _, t in wire.sent] == [Availability.DEFAULT_TIMEOUT, 5]


def test_a_server_that_never_answered_fails_at_once() -> None:
    """A wrong address or a stopped cluster: kubectl says so at once, so does the suite."""
    wire = Wire(refused())
    with pytest.raises(ApiServerUnreachable) as err:
        availability(wire).request("GET", f"{HOST}/version")
    assert len(wire.sent) == 1
    assert str(err.value) == (
        f"cannot reach the API server at {HOST}: it refused the connection (GET /version) and "
        "has not answered this run: is the cluster running and the kubeconfig's server "
        "address right?")
    assert err.value.final


def test_a_restart_shorter_than_the_budget_is_ridden_out() -> None:
    wire = Wire(200, refused(), refused(), timed_out(), 201)
    a = availability(wire)
    a.request("GET", f"{HOST}/version")
    assert a.request("PATCH", f"{HOST}/api/v1/namespaces/x/pods/y").status == 201
    assert len(wire.sent) == 5 and wire.now - 1000.0 == pytest.approx(0.2 + 0.4 + 0.8)
    assert a.last is not None and (a.last.status, a.last.method) == (201, "PATCH")


def test_a_server_gone_for_good_ends_within_the_budget_naming_it_and_its_last_answer(
        ) -> None:
    wire = Wire(200, *[refused()] * 50)
    a = availability(wire, budget=10.0)
    a.request("GET", f"{HOST}/api/v1/namespaces/x/pods")
    with pytest.raises(ApiServerUnreachable) as err:
        a.request("GET", f"{HOST}/api/v1/namespaces/x/pods/y")
    assert wire.now - 1000.0 <= 10.0
    message = str(err.value)
    assert message.startswith(f"the API server at {HOST} refused the connection "
                              "(GET /api/v1/namespaces/x/pods/y; not answering for ")
    assert "it last answered 200 to GET /api/v1/namespaces/x/pods at " in message
    # Once gone, the next call tries once: the remaining steps fail in seconds, not budgets.
    sent = len(wire.sent)
    with pytest.raises(ApiServerUnreachable):
        a.request("GET", f"{HOST}/version")
    assert len(wire.sent) == sent + 1


def test_an_answer_after_an_outage_restores_the_budget() -> None:
    wire = Wire(200, refused(), refused(), refused(), 200, refused(), 200)
    a = availability(wire, budget=1.0)
    a.request("GET", f"{HOST}/version")
    with pytest.raises(ApiServerUnreachable):
        a.request("GET", f"{HOST}/version")  # refused three times: 0.2 + 0.4 s, then gone
    assert len(wire.sent) == 4
    a.request("GET", f"{HOST}/version")  # back: tried once, answered
    a.request("GET", f"{HOST}/version")  # refused, then retried within the budget
    assert len(wire.sent) == 7


@pytest.mark.parametrize("exc, says", [
    (refused(), "refused the connection"),
    (timed_out(), "accepted the connection but did not answer in time"),
    (urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104,
                                      "Connection reset by peer")),
     "closed the connection without answering"),
])
def test_the_message_says_what_the_wire_did(exc: Exception, says: str) -> None:
    with pytest.raises(ApiServerUnreachable, match=says):
        availability(Wire(exc)).request("GET", f"{HOST}/version")

"""localmesh's API faults (localmesh/api/faults.py): which requests they touch, the
seeded schedule, the Status bodies, the counters; the exec credential plugin's tokens
(localmesh/credentials.py); and the shape options that choose them."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest

from localmesh import credentials
from localmesh.api.faults import (
    STORAGE_TIMEOUT,
    THROTTLED,
    UNAVAILABLE,
    FaultConfig,
    FaultSchedule,
    request_kind,
)
from localmesh.shape import Shape, ShapeError, add_arguments, from_arguments


@pytest.mark.parametrize(("method", "path", "query", "kind"), [
    ("GET", "/readyz", {}, "exempt"),
    ("GET", "/metrics", {}, "exempt"),
    ("GET", "/api/v1/namespaces/default/pods", {}, "read"),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "true"}, "watch"),
    ("GET", "/api/v1/watch/namespaces/default/pods", {}, "watch"),
    ("GET", "/apis/apps/v1/deployments", {"watch": "1"}, "watch"),
    ("POST", "/api/v1/namespaces/default/configmaps", {}, "write"),
    ("PATCH", "/apis/apps/v1/namespaces/a/deployments/b", {}, "write"),
    ("DELETE", "/api/v1/namespaces/a", {}, "write"),
    ("GET", "/api/v1/namespaces/a/pods/p/exec", {}, "long-running"),
    ("POST", "/api/v1/namespaces/a/pods/p/portforward", {}, "long-running"),
    ("GET", "/api/v1/namespaces/a/pods/p/log", {}, "long-running"),
    ("GET", "/api/v1/namespaces/a/services/s:80/proxy/stats", {}, "long-running"),
    ("PUT", "/api/v1/namespaces/a/finalize", {}, "write"),
    # A pod named like a subresource is an ordinary object.
    ("GET", "/api/v1/namespaces/a/pods/exec", {}, "read"),
    ("GET", "/version", {}, "read"),
])
def test_requests_are_told_apart_as_the_api_server_does(method: str, path: str,
                                                        query: dict[str, str],
                                                        kind: str) -> None:
    assert request_kind(method, path, query) == kind


def _draws(schedule: FaultSchedule, kind: str, n: int) -> list[str | None]:
    return [f.name if (f := schedule.fault(kind)) else None for _ in range(n)]


def test_the_same_seed_gives_the_same_faults() -> None:
    config = FaultConfig("flaky", rate=0.3, seed=42)
    first = _draws(FaultSchedule(config), "read", 200)
    assert first == _draws(FaultSchedule(config), "read", 200)
    assert first != _draws(FaultSchedule(FaultConfig("flaky", rate=0.3, seed=43)), "read", 200)


def test_the_rate_is_the_share_of_requests_faulted() -> None:
    schedule = FaultSchedule(FaultConfig("flaky", rate=0.1, seed=7))
    faulted = sum(1 for f in _draws(schedule, "read", 10_000) if f)
    # Binomial(10000, 0.1): the standard deviation is 30; 5 of them either side.
    assert 850 <= faulted <= 1150, faulted
    assert set(schedule.counts) == {THROTTLED.name, STORAGE_TIMEOUT.name, UNAVAILABLE.name}
    assert sum(schedule.counts.values()) == faulted
    never = FaultSchedule(FaultConfig("flaky", rate=0.0, seed=7))
    assert not any(_draws(never, "write", 1000))
    always = FaultSchedule(FaultConfig("flaky", rate=1.0, seed=7))
    assert all(_draws(always, "write", 1000))


def test_writes_meet_only_faults_that_say_they_were_not_applied() -> None:
    schedule = FaultSchedule(FaultConfig("flaky", rate=1.0, seed=3))
    assert set(_draws(schedule, "write", 500)) == {THROTTLED.name, STORAGE_TIMEOUT.name}


@pytest.mark.parametrize("kind", ["exempt", "long-running"])
def test_probes_and_long_running_requests_are_never_faulted(kind: str) -> None:
    schedule = FaultSchedule(FaultConfig("flaky", rate=1.0, seed=3))
    assert not any(_draws(schedule, kind, 100))
    assert schedule.latency("exempt") == 0.0


@pytest.mark.parametrize("profile", ["none", "restart", "token-expiry", "outage"])
def test_only_flaky_answers_for_the_server(profile: str) -> None:
    schedule = FaultSchedule(FaultConfig(profile, rate=1.0, seed=3))
    assert not any(_draws(schedule, "read", 100))
    assert schedule.latency("read") == 0.0 and schedule.watch_timeout() is None


def test_watches_are_cut_after_about_the_configured_time() -> None:
    schedule = FaultSchedule(FaultConfig("flaky", watch_cut=4.0, seed=1))
    cuts = [schedule.watch_timeout() or 0.0 for _ in range(200)]
    assert min(cuts) >= 2.0 and max(cuts) <= 6.0 and max(cuts) - min(cuts) > 1.0


def test_a_fault_is_a_status_with_retry_after_as_kube_apiserver_writes_it() -> None:
    resp = THROTTLED.response()
    assert resp.status == 429 and resp.headers["Retry-After"] == "1"
    assert resp.text is not None
    assert json.loads(resp.text) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Too many requests, please try again later.", "reason": "TooManyRequests",
        "code": 429, "details": {"retryAfterSeconds": 1}}
    assert STORAGE_TIMEOUT.response().status == 500
    assert UNAVAILABLE.response().status == 503


# -- the exec credential plugin's tokens --------------------------------------------------
KEY = b"k" * 32


def test_a_minted_token_is_valid_until_it_expires() -> None:
    token, expires = credentials.mint(KEY, 60, now=1000.0)
    assert expires == 1060.0 and credentials.is_token(token)
    assert credentials.check(KEY, token, 1059.0, 60) == "valid"
    assert credentials.check(KEY, token, 1060.0, 60) == "expired"


def test_a_token_from_another_key_or_tampered_with_or_too_long_lived_is_invalid() -> None:
    token, _ = credentials.mint(KEY, 60, now=1000.0)
    assert credentials.check(b"x" * 32, token, 1000.0, 60) == "invalid"
    parts = token.split(".")
    longer = ".".join([parts[0], "99999999999", *parts[2:]])
    assert credentials.check(KEY, longer, 1000.0, 60) == "invalid"
    far, _ = credentials.mint(KEY, 3600, now=1000.0)
    assert credentials.check(KEY, far, 1000.0, 60) == "invalid"
    assert credentials.check(KEY, "not-a-token", 1000.0, 60) == "invalid"


def test_the_plugin_prints_an_exec_credential(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "credential-key"
    written = credentials.write_key(key)
    assert key.stat().st_mode & 0o077 == 0
    user = credentials.kubeconfig_user(key, 30)["exec"]
    assert user["apiVersion"] == credentials.API_VERSION
    assert user["interactiveMode"] == "Never"
    assert user["args"][:2] == ["-m", "localmesh.credentials"]
    assert credentials.main(user["args"][2:]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["apiVersion"] == "client.authentication.k8s.io/v1"
    assert doc["kind"] == "ExecCredential"
    assert doc["status"]["expirationTimestamp"].endswith("Z")
    assert credentials.check(written, doc["status"]["token"], time.time(), 30) == "valid"


def test_the_plugin_without_its_key_says_so(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert credentials.main(["--key-file", str(tmp_path / "gone")]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert "cannot read the key file" in out.err and "localmesh status" in out.err


# -- the shape options --------------------------------------------------------------------
def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("argv", [
    ("--api-faults", "flaky", "--api-fault-rate", "0.25", "--api-fault-seed", "9",
     "--api-watch-cut", "2"),
    ("--api-faults", "restart", "--api-restart-every", "4", "--api-restart-down", "1"),
    ("--api-faults", "token-expiry", "--api-token-ttl", "5"),
    ("--api-faults", "outage", "--api-outage-after", "12"),
])
def test_every_profile_boots_and_round_trips(argv: tuple[str, ...]) -> None:
    shape = from_arguments(_parse(*argv))
    assert from_arguments(_parse(*shape.argv())) == shape
    assert shape.faults().profile == argv[1]
    assert shape.describe().startswith(f"mesh sidecar, flavor kubernetes, API faults {argv[1]}")


def test_a_flaky_shape_gets_a_seed_that_the_banner_shows() -> None:
    shape = Shape(api_faults="flaky").seeded()
    assert shape.api_fault_seed is not None
    assert f"seed {shape.api_fault_seed}" in shape.describe()
    assert shape.seeded() == shape and Shape().seeded() == Shape()


@pytest.mark.parametrize(("argv", "says"), [
    (("--api-fault-rate", "1.5"), "--api-fault-rate 1.5 is not a share between 0 and 1"),
    (("--api-token-ttl", "0"), "--api-token-ttl 0 is not a positive number of seconds"),
    (("--api-restart-every", "2", "--api-restart-down", "3"),
     "--api-restart-down 3 must be shorter than --api-restart-every 2"),
    (("--api-outage-after", "-1"), "--api-outage-after -1 is negative"),
])
def test_impossible_fault_rates_are_refused_with_one_message(argv: tuple[str, ...],
                                                             says: str) -> None:
    with pytest.raises(ShapeError, match=says):
        from_arguments(_parse(*argv))

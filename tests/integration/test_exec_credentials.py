"""meshgate.exec_credentials: a kubeconfig's exec credential plugin runs once per token,
again shortly before the token expires or when asked after a 401, and a failing plugin is
one message with what it said — with a real plugin process (a small script)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from meshgate.cluster import ClusterError
from meshgate.exec_credentials import ExecCredentials, for_kubeconfig

PLUGIN = """\
import json, sys, time
from datetime import datetime, timezone
runs = {runs!r}
n = int(open(runs).read()) + 1 if __import__("os").path.exists(runs) else 1
open(runs, "w").write(str(n))
if {fail!r}:
    sys.stderr.write("the identity provider said no")
    sys.exit(1)
exp = datetime.fromtimestamp({expires}, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
json.dump({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
           "status": {{"token": f"token-{{n}}", "expirationTimestamp": exp}}}}, sys.stdout)
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _plugin(tmp_path: Path, *, expires: float, fail: bool = False) -> dict:
    script = tmp_path / "plugin.py"
    script.write_text(PLUGIN.format(runs=str(tmp_path / "runs"), fail=fail, expires=expires))
    return {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
            "args": [str(script)], "interactiveMode": "Never"}


def _runs(tmp_path: Path) -> int:
    return int((tmp_path / "runs").read_text())


def test_a_token_is_kept_until_shortly_before_it_expires(tmp_path: Path) -> None:
    clock = Clock()
    creds = ExecCredentials(_plugin(tmp_path, expires=clock.now + 60), None, clock=clock)
    assert creds.header() == "Bearer token-1"
    clock.now += 50
    assert creds.header() == "Bearer token-1" and _runs(tmp_path) == 1
    clock.now += 5  # within a tenth of its life of the expiry: run the plugin again
    assert creds.header() == "Bearer token-2" and _runs(tmp_path) == 2


def test_a_refused_token_is_replaced_at_once(tmp_path: Path) -> None:
    clock = Clock()
    creds = ExecCredentials(_plugin(tmp_path, expires=clock.now + 3600), None, clock=clock)
    assert creds.header() == "Bearer token-1"
    assert creds.refresh() == "Bearer token-2"
    assert creds.header() == "Bearer token-2" and creds.runs == 2


def test_a_failing_plugin_is_one_message_with_what_it_said(tmp_path: Path) -> None:
    creds = ExecCredentials(_plugin(tmp_path, expires=0, fail=True), None)
    with pytest.raises(ClusterError) as err:
        creds.header()
    message = str(err.value)
    assert message.startswith(f"the kubeconfig's exec credential plugin {sys.executable} "
                              "failed: ")
    assert "the identity provider said no" in message


def _kubeconfig(tmp_path: Path, user: dict) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


def test_only_a_kubeconfig_with_an_exec_user_gets_refreshing_credentials(
        tmp_path: Path) -> None:
    assert for_kubeconfig(str(_kubeconfig(tmp_path, {"token": "t"})), None) is None
    exec_user = {"exec": _plugin(tmp_path, expires=4_000_000_000)}
    creds = for_kubeconfig(str(_kubeconfig(tmp_path, exec_user)), None)
    assert creds is not None and creds.header() == "Bearer token-1"

"""deploy/canary-upgrade.sh without a cluster: shellcheck-clean, and each thing it cannot
do refused before it touches anything, with one message and its exit status (2 wrong
usage, 1 otherwise). The upgrade itself: tests/localmesh/test_revisions.py and
tests/e2e/test_canary_upgrade.py."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support import REPO

SCRIPT = REPO / "deploy" / "canary-upgrade.sh"


def run_script(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    return subprocess.run([str(SCRIPT), *args], env={**base, **env}, capture_output=True,
                          text=True, timeout=30)


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason="shellcheck is not installed (Debian package shellcheck)")
def test_the_script_is_shellcheck_clean() -> None:
    r = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


@pytest.mark.parametrize(("args", "env", "status", "says"), [
    ((), {}, 2, "canary-upgrade.sh REVISION [VERSION]"),
    (("1-2x",), {}, 1, "no namespace to upgrade: set MESHGATE_NAMESPACE"),
    (("default",), {"MESHGATE_NAMESPACE": "a"}, 1, "not 'default'"),
    (("Canary_1",), {"MESHGATE_NAMESPACE": "a"}, 1, "is not a DNS label"),
    (("1-2x", "latest"), {"MESHGATE_NAMESPACE": "a"}, 1, "is not an Istio version"),
    (("1-2x",), {"MESHGATE_NAMESPACE": "a", "CANARY_TIMEOUT": "soon"}, 1, "not a number"),
    (("1-2x",), {"MESHGATE_NAMESPACE": "a", "KUBECTL": "no-such-kubectl"}, 1,
     "no-such-kubectl is not on the PATH"),
], ids=["usage", "no-namespace", "default", "bad-revision", "bad-version", "bad-timeout",
        "no-kubectl"])
def test_the_script_refuses_what_it_cannot_do_with_one_message(
        args: tuple[str, ...], env: dict[str, str], status: int, says: str) -> None:
    r = run_script(*args, **env)
    assert r.returncode == status, r.stdout + r.stderr
    assert says in r.stderr

"""The workloads image for real: built offline (images/build.sh), run by podman as
OpenShift's restricted SCC runs a pod, driven through testcontainers over podman's
Docker-compatible socket, and the k3s target's container handling up to its image pull.

Containers are removed by the IDs these tests got back; the podman service is stopped by
its PID (tests/support.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localmesh.kubelet import podman
from meshgate.image_smoke import OPENSHIFT_USER, SMOKE_LABEL, Addresses, program_env, run_checks
from meshgate.targets.base import TargetError
from meshgate.targets.k3s import DEFAULT_IMAGE, K3sTarget
from tests.support import (
    child_env,
    needs_podman,
    podman_out,
    podman_service,
    workloads_image,
)

pytestmark = [needs_podman, pytest.mark.timeout(900)]  # a first build takes a minute or two


@pytest.fixture(scope="module")
def image() -> str:
    return workloads_image()


@pytest.fixture(scope="module")
def docker_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """testcontainers' view of podman: DOCKER_HOST on the service's socket, Ryuk off (its
    image cannot be pulled here; the tests remove their containers themselves), and the
    engine reached as the Docker host: this machine has a /.dockerenv, from which
    testcontainers would otherwise guess it runs inside a container and ask for a gateway
    address (TESTCONTAINERS_CONNECTION_MODE, its documented override)."""
    with podman_service(tmp_path_factory.mktemp("podman")) as url, \
            pytest.MonkeyPatch.context() as env:
        env.setenv("DOCKER_HOST", url)
        env.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
        env.setenv("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
        yield url


def test_the_image_serves_as_an_arbitrary_uid_with_group_0_and_a_read_only_root(
        image: str) -> None:
    at = Addresses.draw()
    ids: list[str] = []
    t0 = time.monotonic()
    try:
        for program in ("membersrvc", "vp0", "composer"):
            env = [f for k, v in program_env(program, at).items() for f in ("--env", f"{k}={v}")]
            ids.append(podman_out(
                "run", "--detach", "--pull", "never", "--network", "host",
                *podman.ulimit_flags(), "--user", OPENSHIFT_USER,
                "--read-only", "--read-only-tmpfs=false",
                "--cap-drop", "ALL", "--security-opt", "no-new-privileges", *env,
                image, program).strip())
        checks = run_checks(at, timeout=30)
        print(f"three containers started and serving in {time.monotonic() - t0:.2f}s")
        assert all(c.ok for c in checks), [vars(c) for c in checks] + [
            podman_out("logs", i) for i in ids]
        who = podman_out("exec", ids[0], "id").strip()
        assert who.startswith("uid=1000650000(") and " gid=0(" in who, who
        r = subprocess.run(podman.command("exec", ids[0], "touch", "/app/x"),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "Read-only file system" in r.stderr, r
        assert "Read-only file system" not in "".join(podman_out("logs", i) for i in ids)
    finally:
        if ids:
            podman_out("rm", "--force", "--time", "0", *ids)


def test_testcontainers_smoke_tests_the_image_through_podmans_socket(
        image: str, docker_host: str) -> None:
    from meshgate.image_smoke import smoke

    report = smoke(image, timeout=30)
    assert report.ok, "\n".join(report.lines())
    assert report.user == OPENSHIFT_USER and len(report.checks) == 3
    assert podman_out("ps", "--all", "--quiet", "--filter", f"label={SMOKE_LABEL}") == ""


def test_meshgate_smoke_image_says_what_it_checked(image: str, docker_host: str) -> None:
    r = subprocess.run([sys.executable, "-m", "meshgate", "smoke-image", "--image", image],
                       env=child_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok   composer: GET /login" in r.stdout and "passed:" in r.stdout


def test_the_k3s_target_stops_where_the_k3s_image_would_be_pulled(
        docker_host: str, tmp_path: Path) -> None:
    # istioctl and kubectl only need to be found: the target stops before running them.
    target = K3sTarget(tmp_path, environ={}, which=lambda tool: f"/usr/bin/{tool}")
    with pytest.raises(TargetError) as failed:
        target.start()
    said = str(failed.value)
    assert said.startswith(f"--target k3s cannot get the k3s image {DEFAULT_IMAGE}: "), said
    assert "load it into the engine first" in said and "\n" not in said
    assert podman_out("ps", "--all", "--quiet", "--filter", f"ancestor={DEFAULT_IMAGE}") == ""


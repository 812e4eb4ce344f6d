"""The suite on a mesh of another shape says what it cannot check, rather than fail
obscurely: auto mTLS turned off (the @mtls scenarios are skipped, saying so) and a cluster
without the Gateway API (the @gateway-api example is skipped, saying so) — the rest of the
gate still passes there."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from localmesh.cli import Handle
from meshgate.cluster import Cluster
from tests.support import REPO, boot_localmesh, child_env, needs_prometheus

pytestmark = needs_prometheus


@pytest.fixture(scope="module")
def other_shape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handle]:
    """A mesh whose mesh config turns auto mTLS off and which serves no Gateway API."""
    with boot_localmesh(tmp_path_factory.mktemp("shape"), mesh=True) as handle:
        cluster = Cluster(handle.kubeconfig)
        istio = cluster.get("v1", "ConfigMap", "istio", "istio-system")
        assert istio is not None, "localmesh installs the mesh config (ConfigMap istio)"
        mesh = yaml.safe_load(istio["data"]["mesh"])
        mesh["enableAutoMtls"] = False
        cluster.patch_merge("v1", "ConfigMap", "istio", "istio-system",
                            {"data": {"mesh": yaml.safe_dump(mesh)}})
        for crd in cluster.list("apiextensions.k8s.io/v1", "CustomResourceDefinition"):
            if crd["spec"]["group"] == "gateway.networking.k8s.io":
                cluster.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                               crd["metadata"]["name"], None)
        yield handle


def test_what_the_mesh_does_not_have_is_skipped_with_the_reason(other_shape: Handle,
                                                                tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "meshgate", "run", "--target", "kubeconfig", "--kubeconfig",
         str(other_shape.kubeconfig), "--", "-p", "no:cacheprovider", "--no-html-report",
         f"--artifacts={tmp_path}", "-rs", "-m", "mtls or gateway-api or smoke"],
        cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "not on this cluster: auto mTLS is off in this mesh" in out
    assert "not on this cluster: the cluster does not serve the Gateway API" in out
    assert " passed" in out  # the smoke scenarios that need neither still ran

"""Bad input: each gives one clear message that names what was wrong and what to do,
exits non-zero, and leaves nothing half-applied.

The suite is run as a user runs it (``pytest steps`` in a subprocess) against localmesh
instances booted here; the checks look at the exit code, the message, and the cluster.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from localmesh.cli import Handle
from meshgate import manifests
from meshgate.cluster import Cluster, ClusterError
from tests.support import REPO, boot_localmesh, child_env, poll, unused_port


def suite(*args: str, tmp: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run the acceptance suite as a user would; bounded in time."""
    cmd = [sys.executable, "-m", "pytest", "steps", "-p", "no:cacheprovider", "-q",
           "--no-html-report", f"--artifacts={tmp / 'artifacts'}", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=child_env(MESHGATE_TIMEOUT_DEPLOY="60"))


def message(r: subprocess.CompletedProcess) -> str:
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handle]:
    """A cluster without Istio."""
    with boot_localmesh(tmp_path_factory.mktemp("bare"), mesh=False) as handle:
        yield handle


@pytest.fixture(scope="module")
def meshed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handle]:
    with boot_localmesh(tmp_path_factory.mktemp("meshed"), mesh=True) as handle:
        yield handle


def copy_manifests(tmp: Path) -> Path:
    out = tmp / "manifests"
    shutil.copytree(REPO / "manifests", out)
    return out


def test_malformed_yaml_in_a_manifest(tmp_path: Path, meshed: Handle) -> None:
    d = copy_manifests(tmp_path)
    (d / "vp0.yaml").write_text((d / "vp0.yaml").read_text().replace(
        "kind: Deployment", "kind: Deployment\n  bad: [unclosed", 1))
    r = suite("--manifests", str(d), "--kubeconfig", str(meshed.kubeconfig), tmp=tmp_path)
    assert r.returncode == 4, message(r)
    assert "vp0.yaml is not valid YAML at line" in message(r)
    assert "Traceback" not in message(r)
    # Nothing was applied: the check ran before any namespace existed.
    names = [n["metadata"]["name"] for n in Cluster(meshed.kubeconfig).list("v1", "Namespace")]
    assert not [n for n in names if n.startswith("mg-")]


def test_unknown_kind_stops_before_anything_is_applied(tmp_path: Path, meshed: Handle) -> None:
    d = copy_manifests(tmp_path)
    with (d / "composer.yaml").open("a") as f:
        f.write("\n---\napiVersion: example.com/v1\nkind: Frobnicator\nmetadata:\n  name: x\n")
    r = suite("--manifests", str(d), "--kubeconfig", str(meshed.kubeconfig), "--keep=always",
              "-k", "composer and route", tmp=tmp_path)
    assert r.returncode == 3, message(r)
    assert "does not serve Frobnicator (example.com/v1)" in message(r)
    cluster = Cluster(meshed.kubeconfig)
    kept = [n["metadata"]["name"] for n in cluster.list("v1", "Namespace")
            if n["metadata"]["name"].startswith("mg-")]
    assert kept, "the namespace should be kept (--keep=always) to show it is empty"
    for ns in kept:
        assert cluster.list("apps/v1", "Deployment", ns) == []
        assert cluster.list("v1", "Service", ns) == []
        cluster.delete("v1", "Namespace", ns, None)


def test_virtual_service_without_istio_crds(bare: Handle) -> None:
    cluster = Cluster(bare.kubeconfig)
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vs"}}, None)
    vs = manifests.Manifest(Path("overlay.yaml"), ({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "x"}, "spec": {"hosts": ["vp0"]}},))
    with pytest.raises(ClusterError, match=r"does not serve VirtualService "
                                           r"\(networking.istio.io/v1\): install the CRDs"):
        manifests.apply(cluster, vs, "vs")


def test_kubeconfig_that_does_not_exist(tmp_path: Path) -> None:
    r = suite("--target", "kubeconfig", "--kubeconfig", str(tmp_path / "nope"), tmp=tmp_path)
    assert r.returncode == 4, message(r)
    assert f"kubeconfig {tmp_path / 'nope'} does not exist" in message(r)


def test_file_that_is_not_a_kubeconfig(tmp_path: Path) -> None:
    bad = tmp_path / "config"
    bad.write_text("hello: [world\n")
    r = suite("--target", "kubeconfig", "--kubeconfig", str(bad), tmp=tmp_path)
    assert r.returncode == 4, message(r)
    assert "is not a kubeconfig" in message(r) or "cannot use kubeconfig" in message(r)
    assert "Traceback" not in message(r)


def _kubeconfig_variant(src: Path, dest: Path, **changes: str) -> Path:
    doc = yaml.safe_load(src.read_text())
    if "server" in changes:
        doc["clusters"][0]["cluster"]["server"] = changes["server"]
    if "token" in changes:
        doc["users"][0]["user"]["token"] = changes["token"]
    dest.write_text(yaml.safe_dump(doc))
    return dest


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_unreachable_api_server(tmp_path: Path, bare: Handle, workers: list[str]) -> None:
    port = unused_port()
    kc = _kubeconfig_variant(bare.kubeconfig, tmp_path / "kc",
                             server=f"https://127.0.0.1:{port}")
    r = suite("--target", "kubeconfig", "--kubeconfig", str(kc), *workers, tmp=tmp_path)
    assert r.returncode == 3, message(r)
    # One message, also under xdist: the controller asks before the workers start.
    assert message(r).count(f"cannot reach the API server at https://127.0.0.1:{port}") \
        == 1, message(r)
    assert "INTERNALERROR" not in message(r) and "Traceback" not in message(r), message(r)


def test_wrong_token(tmp_path: Path, bare: Handle) -> None:
    kc = _kubeconfig_variant(bare.kubeconfig, tmp_path / "kc", token="not-the-token")
    r = suite("--target", "kubeconfig", "--kubeconfig", str(kc), tmp=tmp_path)
    assert r.returncode == 3, message(r)
    assert "refused the credentials" in message(r) and "401" in message(r)
    assert "not-the-token" not in message(r)


def test_istio_not_installed(tmp_path: Path, bare: Handle) -> None:
    r = suite("--target", "kubeconfig", "--kubeconfig", str(bare.kubeconfig), tmp=tmp_path)
    assert r.returncode == 3, message(r)
    assert "Istio is not installed in this cluster" in message(r)
    # The run deleted its namespace; Kubernetes removes a namespace asynchronously (it is
    # Terminating until the namespace controller has emptied it), so wait, bounded.
    cluster = Cluster(bare.kubeconfig)

    def no_leftovers() -> bool:
        leftovers = [n["metadata"]["name"] for n in cluster.list("v1", "Namespace")
                     if n["metadata"]["name"].startswith("mg-")]
        assert leftovers == [], f"the run's namespaces are still there: {leftovers}"
        return True

    poll(no_leftovers, timeout=15, what="the run's namespaces gone")


def test_an_ambient_data_plane_without_ztunnel(tmp_path: Path, meshed: Handle) -> None:
    """The sidecar mesh runs no ztunnel: ``--data-plane ambient`` stops at once with one
    message (nothing would capture the pods), and leaves no namespace behind."""
    r = suite("--target", "kubeconfig", "--kubeconfig", str(meshed.kubeconfig),
              "--data-plane", "ambient", tmp=tmp_path, timeout=120)
    assert r.returncode == 3, message(r)
    assert "--data-plane ambient needs Istio's ambient mode" in message(r)
    assert "istioctl install --set profile=ambient" in message(r)
    cluster = Cluster(meshed.kubeconfig)
    assert [n["metadata"]["name"] for n in cluster.list("v1", "Namespace")
            if n["metadata"]["name"].startswith("mg-") and
            not (n.get("status") or {}).get("phase") == "Terminating"] == []


def test_image_localmesh_cannot_run(tmp_path: Path, meshed: Handle) -> None:
    d = copy_manifests(tmp_path)
    (d / "membersrvc.yaml").write_text((d / "membersrvc.yaml").read_text().replace(
        "ghcr.io/meshgate/workloads:0.1.0", "registry.example.com/team/payments:1.0"))
    r = suite("--manifests", str(d), "--kubeconfig", str(meshed.kubeconfig),
              "-k", "composer and route", tmp=tmp_path)
    assert r.returncode == 3, message(r)
    text = message(r)
    assert "membersrvc cannot become Ready" in text
    assert "ErrImagePull" in text and "image catalogue" in text


def test_localmesh_port_already_taken(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "localmesh", "up", "--no-mesh",
                            "--state-dir", str(tmp_path / "lm"), "--port", str(port)],
                           capture_output=True, text=True, timeout=60, cwd=REPO,
                           env=child_env())
    assert r.returncode == 1
    assert f"127.0.0.1:{port} is already in use" in r.stderr
    assert "choose another --port" in r.stderr
    status = subprocess.run([sys.executable, "-m", "localmesh", "status", "--state-dir",
                             str(tmp_path / "lm")], capture_output=True, text=True, timeout=30,
                            cwd=REPO, env=child_env())
    assert "not running" in status.stdout


def test_misspelt_target(tmp_path: Path) -> None:
    r = suite("--target", "lcoal", tmp=tmp_path)
    assert r.returncode == 4, message(r)
    assert "unknown target 'lcoal' (did you mean 'local'?)" in message(r)
    assert "local, kubeconfig, kind, k3s" in message(r)


@pytest.fixture(scope="module")
def addons_removed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handle]:
    """A mesh whose addons the two tests below remove, Kiali first, then Prometheus."""
    with boot_localmesh(tmp_path_factory.mktemp("addons"), mesh=True) as handle:
        yield handle


def _remove_addon(handle: Handle, name: str) -> None:
    cluster = Cluster(handle.kubeconfig)
    cluster.delete("v1", "Service", name, "istio-system")
    cluster.delete("apps/v1", "Deployment", name, "istio-system")


def test_kiali_absent_falls_back_and_says_so(tmp_path: Path, addons_removed: Handle) -> None:
    _remove_addon(addons_removed, "kiali")
    r = suite("--kubeconfig", str(addons_removed.kubeconfig), "-k", "service_graph", "-rA",
              "-s", tmp=tmp_path)
    assert r.returncode == 0, message(r)
    assert "Kiali is not installed; the graph comes from the servicegraph addon" in message(r)


def test_prometheus_absent(tmp_path: Path, addons_removed: Handle) -> None:
    _remove_addon(addons_removed, "prometheus")
    r = suite("--kubeconfig", str(addons_removed.kubeconfig), "-k",
              "counted_in_prometheus and composer", tmp=tmp_path)
    assert r.returncode == 1, message(r)
    text = message(r)
    assert "no telemetry backend: there is no prometheus Service in istio-system" in text
    assert "install Istio's Prometheus addon" in text


@pytest.mark.parametrize("form", ["spaced", "joined"])
def test_meshgate_run_takes_a_manifests_folder_in_both_forms(tmp_path: Path, meshed: Handle,
                                                             form: str) -> None:
    """`meshgate run --manifests DIR -m routes --timeout-routes 5` runs the routes scenarios
    on the manifests in DIR, the same as with `=`."""
    d = copy_manifests(tmp_path)
    docs = list(yaml.safe_load_all((d / "composer.yaml").read_text()))
    for doc in docs:
        if doc["kind"] == "Deployment":
            doc["metadata"].setdefault("labels", {})["meshgate-test"] = form
    (d / "composer.yaml").write_text(yaml.safe_dump_all(docs))
    run_id = f"mfst{form}"
    given = ["--manifests", str(d)] if form == "spaced" else [f"--manifests={d}"]
    r = subprocess.run(
        [sys.executable, "-m", "meshgate", "run", "--kubeconfig", str(meshed.kubeconfig),
         *given, "-m", "routes", "--timeout-routes", "5", "--keep=always", "--run-id", run_id,
         "-p", "no:cacheprovider", "--no-html-report", f"--artifacts={tmp_path / 'a'}"],
        cwd=REPO, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, message(r)[-3000:]
    assert "8 passed" in message(r), message(r)[-3000:]
    cluster = Cluster(meshed.kubeconfig)
    (ns,) = [n["metadata"]["name"] for n in cluster.list(
        "v1", "Namespace", label_selector=f"meshgate.io/run={run_id}")]
    composer = cluster.get("apps/v1", "Deployment", "composer", ns)
    assert composer is not None and composer["metadata"]["labels"]["meshgate-test"] == form
    cluster.delete("v1", "Namespace", ns, None)

"""localmesh's podman runtime, the parts computed without podman: the ``podman run``
command line a pod's container becomes, the environment it gets, its volumes' modes and
the record of an instance's containers; and the pure parts of the image smoke test and
of the k3s target's image check."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from localmesh.kubelet import podman
from localmesh.kubelet.containers import (
    ImageConfig,
    container_name,
    for_container,
    mount_flags,
    run_argv,
    security_flags,
    share_volumes,
)
from localmesh.kubelet.environment import ConfigError
from localmesh.shape import Shape, ShapeError
from meshgate.image_smoke import Addresses, program_env
from meshgate.targets.k3s import pull_failure

IMAGE = ImageConfig("ghcr.io/meshgate/workloads:0.1.0", "sha256:abc", "10001:10001")


def _pod(spec: dict | None = None, **pod_spec: object) -> dict:
    return {"metadata": {"name": "vp0-abc", "namespace": "demo", "uid": "u-1"},
            "spec": {"containers": [spec or {"name": "vp0"}], **pod_spec}}


def _argv(spec: dict, pod: dict | None = None, env: dict | None = None,
          volumes: dict[str, Path] | None = None) -> list[str]:
    return run_argv(name="lm11-demo-vp0-abc-vp0-0", image=IMAGE, pod=pod or _pod(spec),
                    spec=spec, env=env or {}, volumes=volumes or {},
                    cidfile=Path("/state/containers/x.cid"), labels={"k": "v"})


def test_a_container_runs_on_the_host_network_pulling_nothing_and_logging_to_its_file(
        ) -> None:
    argv = _argv({"name": "vp0", "args": ["vp0"]})
    joined = " ".join(argv)
    for flags in ("run --rm --pull never --network host --log-driver passthrough",
                  "--name lm11-demo-vp0-abc-vp0-0 --cidfile /state/containers/x.cid",
                  "--hostname vp0-abc", "--label k=v"):
        assert flags in joined
    assert argv[-2:] == [IMAGE.ref, "vp0"]  # args replace the image's CMD only
    assert "--entrypoint" not in argv and "--ulimit" in argv


def test_command_replaces_the_entrypoint_and_variables_expand() -> None:
    spec = {"name": "vp0", "command": ["python", "-m", "workloads"],
            "args": ["$(PROGRAM)", "$$(PROGRAM)"]}
    argv = _argv(spec, env={"PROGRAM": "vp0"})
    assert argv[argv.index("--entrypoint") + 1] == '["python", "-m", "workloads"]'
    assert argv[-2:] == ["vp0", "$(PROGRAM)"]


def test_environment_values_stay_off_the_command_line() -> None:
    """A secret in the environment never shows in `ps`: podman takes it from its own
    environment (``--env NAME``); only variables podman itself reads go inline."""
    argv = _argv({"name": "vp0"}, env={"CORE_SECURITY_ENROLLSECRET": "s3cr3t",
                                       "PATH": "/opt/bin:/usr/bin"})
    assert "s3cr3t" not in " ".join(argv)
    assert "CORE_SECURITY_ENROLLSECRET" in argv and "PATH=/opt/bin:/usr/bin" in argv


def test_openshifts_restricted_user_and_a_read_only_root() -> None:
    spec = {"name": "vp0", "securityContext": {
        "runAsUser": 1000650000, "runAsGroup": 0, "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}
    flags = security_flags({"securityContext": {"runAsNonRoot": True, "fsGroup": 1000650000,
                                                "supplementalGroups": [5]}}, spec, "10001")
    assert flags == ["--user", "1000650000:0", "--group-add", "5", "--group-add", "1000650000",
                     "--read-only", "--read-only-tmpfs=false",
                     "--security-opt", "no-new-privileges", "--cap-drop", "ALL"]


def test_the_containers_security_context_wins_over_the_pods() -> None:
    flags = security_flags({"securityContext": {"runAsUser": 5, "runAsGroup": 6}},
                           {"securityContext": {"runAsUser": 7}}, "")
    assert flags[:2] == ["--user", "7:6"]
    assert security_flags({}, {"securityContext": {"runAsGroup": 0}}, "10001:10001")[:2] == \
        ["--user", "10001:0"]
    assert security_flags({}, {}, "10001") == []  # the image's USER stands


@pytest.mark.parametrize(("pod_sc", "image_user", "says"), [
    ({"runAsNonRoot": True}, "", "image will run as root"),
    ({"runAsNonRoot": True}, "0:0", "image will run as root"),
    ({"runAsNonRoot": True, "runAsUser": 0}, "10001", "image will run as root"),
    ({"runAsNonRoot": True}, "app", r"non-numeric user \(app\), cannot verify user is non-root"),
])
def test_run_as_non_root_is_checked_against_the_image_as_the_kubelet_does(
        pod_sc: dict, image_user: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        security_flags({"securityContext": pod_sc}, {"name": "c"}, image_user)


def test_volumes_are_bind_mounted_and_the_apis_volumes_read_only(tmp_path: Path) -> None:
    pod_spec = {"volumes": [{"name": "cfg", "configMap": {"name": "c"}},
                            {"name": "scratch", "emptyDir": {}}]}
    spec = {"name": "c", "volumeMounts": [
        {"name": "cfg", "mountPath": "/etc/cfg"},
        {"name": "scratch", "mountPath": "/tmp"},
        {"name": "scratch", "mountPath": "/data", "subPath": "d", "readOnly": True}]}
    vols = {"cfg": tmp_path / "cfg", "scratch": tmp_path / "scratch"}
    assert mount_flags(pod_spec, spec, vols) == [
        "--volume", f"{tmp_path}/cfg:/etc/cfg:ro", "--volume", f"{tmp_path}/scratch:/tmp",
        "--volume", f"{tmp_path}/scratch/d:/data:ro"]
    assert (tmp_path / "scratch" / "d").is_dir()  # a missing subPath directory is made


def test_volumes_get_the_modes_a_kubelet_gives_them(tmp_path: Path) -> None:
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "token").write_text("t")
    os.chmod(tmp_path / "tok" / "token", 0o600)
    (tmp_path / "scratch").mkdir(mode=0o700)
    share_volumes({"volumes": [{"name": "tok", "secret": {"secretName": "s"}},
                               {"name": "scratch", "emptyDir": {}}]},
                  {"tok": tmp_path / "tok", "scratch": tmp_path / "scratch"})
    assert (tmp_path / "tok" / "token").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "scratch").stat().st_mode & 0o777 == 0o777


def test_the_environment_drops_what_is_for_a_local_program_only() -> None:
    process = {"PATH": "/host/bin", "HOME": "/state/pods/x", "PYTHONPATH": "/repo",
               "LOCALMESH_MOUNTS": "{}", "LOCALMESH_MOUNT_ETC_CFG": "/x",
               "BIND_ADDRESS": "127.11.1.7", "HTTP_PROXY": "http://127.11.65.7:15001",
               "LANG": "C.UTF-8", "MEMBERSRVC_ADDRESS": "membersrvc:7054"}
    assert for_container(process, {"LANG": "C.UTF-8"}) == {
        "BIND_ADDRESS": "127.11.1.7", "HTTP_PROXY": "http://127.11.65.7:15001",
        "LANG": "C.UTF-8", "MEMBERSRVC_ADDRESS": "membersrvc:7054"}


def test_container_names_are_unique_per_instance_and_valid() -> None:
    pod = _pod()
    assert container_name(11, pod, {"name": "vp0"}, 2) == "lm11-demo-vp0-abc-vp0-2"


def test_the_registry_removes_only_what_a_dead_localmesh_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(podman, "binary", lambda: None)  # nothing to run podman with
    registry = podman.ContainerRegistry(tmp_path)
    registry.record("mine")
    registry.cidfile("mine").write_text("abc123\n")
    (tmp_path / "dead").write_text("999999999")
    (tmp_path / "alive").write_text(str(os.getppid()))
    assert registry.container_id("mine") == "abc123"
    assert registry.reap() == ["dead"]
    assert sorted(registry.entries()) == ["alive", "mine"]
    assert registry.reap(own=True) == ["mine"]
    assert not registry.cidfile("mine").exists()


def test_ulimits_are_this_process_own_hard_limits() -> None:
    limits = podman.ulimits()
    assert limits["nproc"][0] == limits["nproc"][1] > 0
    assert podman.ulimit_flags()[:1] == ["--ulimit"]


def test_runtime_podman_is_refused_where_podman_cannot_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(podman, "binary", lambda: None)
    with pytest.raises(ShapeError, match="--runtime podman cannot run containers here: "
                                         "podman is not installed"):
        Shape(runtime="podman").check()


def test_the_smoke_test_wires_each_program_to_its_peers() -> None:
    at = Addresses.draw(lambda lo, hi: 7)
    assert at == Addresses("127.251.7.1", "127.251.7.2", "127.251.7.3")
    assert program_env("membersrvc", at) == {"BIND_ADDRESS": "127.251.7.3"}
    composer = program_env("composer", at)
    assert composer["PEER_REST_URL"] == "http://127.251.7.2:7050"
    assert composer["MEMBERSRVC_ADDRESS"] == "127.251.7.3:7054"


def test_a_k3s_image_that_cannot_be_pulled_is_one_line_saying_what_to_do() -> None:
    said = pull_failure("rancher/k3s:v1", "initializing source docker://rancher/k3s:v1: "
                        "no such host\nmore")
    assert "\n" not in said and "no such host" in said and "podman load -i" in said

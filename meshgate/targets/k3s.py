"""``--target k3s``: k3s in a container (testcontainers' K3SContainer), then the same install.

Lighter than kind where only a Docker engine is at hand: one privileged container runs a
whole cluster. start() starts ``rancher/k3s`` with the ingress gateway's node ports bound
on 127.0.0.1 (the same numbers as kind's mappings, so meshgate.ingress finds the NodePort
the same way), writes its kubeconfig into the state folder, runs meshgate.istio_install's
plan (Istio, Prometheus and Kiali, the IngressClass), builds the workloads image and
imports it into k3s' containerd (``docker save`` → ``docker cp`` → ``k3s ctr images
import``); stop() removes the container.

The container's settings (:func:`container_spec`) and every command are pure functions,
unit-tested without Docker; :class:`K3sTarget` executes them. Without a Docker engine, or
without kubectl and istioctl (or helm), the target is unavailable and the scenarios skip
with the reason; so do they without the Python packages of meshgate's ``containers`` extra
(testcontainers, docker), which only this target needs. Environment: ``MESHGATE_K3S_IMAGE``
plus the ``MESHGATE_ISTIO_*`` variables of the kind target (docs/targets.md).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshgate.istio_install import (
    GATEWAY_NODE_PORTS,
    WORKLOADS_IMAGE,
    Command,
    Executor,
    InstallOptions,
    Kube,
    install_plan,
    overlay_document,
    required_tools,
    workloads_image_build,
)
from meshgate.targets.base import Provided, TargetError, TargetUnavailable

REPO = Path(__file__).resolve().parents[2]
WORKLOADS_CONTEXT = REPO / "workloads"
DEFAULT_IMAGE = "rancher/k3s:v1.33.4-k3s1"
API_PORT = 6443
IMAGE_TAR_IN_NODE = "/tmp/meshgate-workloads.tar"
# The Python packages only this target needs, from meshgate's `containers` extra.
EXTRA_MODULES = ("testcontainers", "docker")
INSTALL_EXTRA = "pip install -e '.[containers]' in the suite's virtualenv"


@dataclass(frozen=True)
class K3sSpec:
    """How the k3s container is started (what K3SContainer is configured with).

    Privileged mode and the tmpfs mounts k3s needs are K3SContainer's own settings
    (testcontainers' k3s module sets them), not ours to choose.
    """

    image: str
    command: str
    bind_ports: dict[int, tuple[str, int]]  # container port → (host address, host port)
    cgroup_mount: bool = True


def container_spec(environ: Mapping[str, str],
                   node_ports: Mapping[str, int] | None = None) -> K3sSpec:
    """The container for this run: the image, k3s' server flags, the port bindings.

    Traefik is disabled (Istio's gateway serves the Ingress); the gateway's node ports
    are bound to 127.0.0.1 only.
    """
    ports = dict(node_ports or GATEWAY_NODE_PORTS)
    return K3sSpec(
        image=(environ.get("MESHGATE_K3S_IMAGE") or DEFAULT_IMAGE).strip(),
        command="server --disable traefik --tls-san=127.0.0.1 --tls-san=localhost",
        # build_container adds --tls-san=<the address Docker publishes ports on>
        bind_ports={port: ("127.0.0.1", port) for port in sorted(ports.values())},
    )


def missing_modules(find: Callable[[str], object] = importlib.util.find_spec) -> list[str]:
    """The `containers` extra's top-level modules that are not installed."""
    return [name for name in EXTRA_MODULES if find(name) is None]


def build_container(spec: K3sSpec) -> Any:
    """A K3SContainer configured from the spec (talks to Docker: not for unit tests)."""
    try:
        from testcontainers.community.k3s import K3SContainer
    except ImportError as exc:
        raise TargetUnavailable(f"--target k3s needs testcontainers' k3s module ({exc}): "
                                f"{INSTALL_EXTRA}, or use --target local") from exc

    container = K3SContainer(image=spec.image, enable_cgroup_mount=spec.cgroup_mount)
    container.with_command(f"{spec.command} --tls-san={container.get_container_host_ip()}")
    for port, host in spec.bind_ports.items():
        # with_bind_ports takes a host port only (testcontainers 4.15 parses it as one, and
        # an (address, port) pair fails there); the ports map it fills goes to docker-py's
        # run(), which binds an (address, port) pair on that address: 127.0.0.1 only.
        container.ports[str(port)] = host  # type: ignore[assignment, unused-ignore]
    return container


def pull_failure(image: str, said: str) -> str:
    """The one message for a k3s image the engine has not got and cannot pull."""
    first = (said.strip().splitlines() or ["no answer"])[0]
    return (f"--target k3s cannot get the k3s image {image}: the container engine does not "
            f"have it and pulling it failed ({first}); load it into the engine first "
            "(`docker load -i FILE` or `podman load -i FILE`), or set MESHGATE_K3S_IMAGE to "
            "an image the engine has, or use --target local")


def _ensure_image(image: str) -> None:
    """The image in the engine's store, pulled when missing; TargetError saying what to do
    when it cannot be pulled (no registry reachable). Talks to Docker: not for unit tests."""
    import docker
    from docker.errors import APIError, ImageNotFound

    client = docker.from_env()
    try:
        client.images.get(image)
        return
    except ImageNotFound:
        pass
    _echo(f"pulling {image}")
    try:
        client.images.pull(image)
    except APIError as exc:
        raise TargetError(pull_failure(image, str(exc.explanation or exc))) from None


def kubeconfig_for_host(raw: str, host: str, port: int) -> str:
    """k3s' kubeconfig with its server pointed at the port Docker mapped on this machine."""
    doc = yaml.safe_load(raw) or {}
    for entry in doc.get("clusters") or []:
        cluster = entry.get("cluster") or {}
        if "server" in cluster:
            cluster["server"] = re.sub(r"https://[^/]+", f"https://{host}:{port}",
                                       cluster["server"], count=1)
    return yaml.safe_dump(doc, sort_keys=False)


def image_import_commands(container_id: str, tar_path: Path,
                          image: str = WORKLOADS_IMAGE) -> list[Command]:
    """Copy a locally built image into k3s' containerd (k3s has no `kind load`)."""
    return [
        Command(("docker", "save", "-o", str(tar_path), image),
                f"save {image} to {tar_path}", timeout=600),
        Command(("docker", "cp", str(tar_path), f"{container_id}:{IMAGE_TAR_IN_NODE}"),
                "copy the workloads image into the k3s container", timeout=600),
        Command(("docker", "exec", container_id, "k3s", "ctr", "-n", "k8s.io", "images",
                 "import", IMAGE_TAR_IN_NODE),
                f"import {image} into k3s' containerd", timeout=600),
    ]


def missing_tools(options: InstallOptions | None = None,
                  which: Callable[[str], str | None] = shutil.which) -> list[str]:
    needed = ("docker", *required_tools(options or InstallOptions()))
    return [tool for tool in dict.fromkeys(needed) if which(tool) is None]


def _docker_answers() -> str | None:
    """None when a Docker engine answers, else why not (one line)."""
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine here"
        return f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def _echo(message: str) -> None:
    print(f"meshgate: k3s: {message}", file=sys.stderr, flush=True)


@dataclass
class K3sTarget:
    """Starts the container, then executes the install plan; stop() removes it."""

    state_dir: Path
    name: str = "k3s"
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    which: Callable[[str], str | None] = shutil.which
    executor: Executor | None = None
    docker_check: Callable[[], str | None] = _docker_answers
    image_check: Callable[[str], None] = _ensure_image
    modules_check: Callable[[], list[str]] = missing_modules
    _container: Any = field(default=None, repr=False)

    @property
    def owns_cluster(self) -> bool:
        """Every run starts its own k3s container."""
        return True

    def start(self) -> Provided:
        missing_python = self.modules_check()
        if missing_python:
            raise TargetUnavailable(
                f"--target k3s needs the Python packages {', '.join(missing_python)} "
                f"(meshgate's `containers` extra): {INSTALL_EXTRA}, or use --target local")
        problem = self.docker_check()
        if problem is not None:
            raise TargetUnavailable(
                "--target k3s needs a Docker engine for testcontainers' K3SContainer, and "
                f"none answers here ({problem}); use --target local or --target kubeconfig")
        options = InstallOptions.from_environ(self.environ, self.which("istioctl"))
        missing = missing_tools(options, self.which)
        if missing:
            raise TargetUnavailable(f"--target k3s needs {', '.join(missing)} on the PATH; "
                                    "install them or use --target local")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        run = self.executor or Executor(log=self.state_dir / "k3s.log", echo=_echo)
        spec = container_spec(self.environ, options.node_ports)
        configured = build_container(spec)
        self.image_check(spec.image)
        _echo(f"starting {spec.image}")
        try:
            container = configured.start()
        except Exception as exc:  # Docker's errors are many; say which
            raise TargetError(f"cannot start k3s ({spec.image}): {exc.__class__.__name__}: "
                              f"{exc}") from exc
        self._container = container
        try:
            kubeconfig = self.state_dir / "k3s.kubeconfig"
            host = container.get_container_host_ip()
            port = int(container.get_exposed_port(API_PORT))
            kubeconfig.write_text(kubeconfig_for_host(container.config_yaml(), host, port),
                                  encoding="utf-8")
            overlay = self.state_dir / ("gateway-values.yaml" if options.installer == "helm"
                                        else "istio-operator.yaml")
            overlay.write_text(yaml.safe_dump(overlay_document(options), sort_keys=False),
                               encoding="utf-8")
            run.run_all(install_plan(Kube(kubeconfig), options, overlay))
            run.run(workloads_image_build(WORKLOADS_CONTEXT))
            cid = container.get_wrapped_container().id
            run.run_all(image_import_commands(cid, self.state_dir / "workloads.tar"))
        except Exception:
            self.stop()
            raise
        url = f"http://127.0.0.1:{options.node_ports['http2']}"
        os.environ["MESHGATE_INGRESS_URL"] = url
        return Provided(kubeconfig, None, f"k3s in a container ({spec.image}, API "
                                          f"{host}:{port}, ingress {url})")

    def stop(self) -> None:
        container, self._container = self._container, None
        keep = (self.environ.get("MESHGATE_KEEP_CLUSTER") or "").lower() in ("1", "true", "yes")
        if container is None or keep:
            return
        try:
            container.stop()
        except Exception as exc:  # noqa: BLE001 - report, never mask the run's result
            print(f"meshgate: k3s: could not remove the container: {exc}", file=sys.stderr)

"""``--target kind``: a new kind cluster with Istio, its addons and the workloads image.

start() runs, in order: ``kind create cluster --config deploy/kind.yaml --name
meshgate-<run id>`` (its kubeconfig in the state folder, never the user's), the Istio
install of meshgate.istio_install (istioctl or Helm, Prometheus and Kiali, the IngressClass
``istio``), ``docker build -t ghcr.io/meshgate/workloads:0.1.0 workloads/`` and ``kind load
docker-image``; stop() deletes the cluster. The plan is computed by :func:`plan` without
running anything, so tests check the exact commands; :class:`KindTarget` only executes it.

Needs Docker (a running engine), kind, kubectl and istioctl (or helm) on the PATH; where
one is missing the target is unavailable and the scenarios skip with that reason.

Environment: ``MESHGATE_ISTIO_VERSION`` (checked against istioctl; picks the addons'
release and the Helm chart version), ``MESHGATE_ISTIO_INSTALLER`` (istioctl|helm),
``MESHGATE_KIND_CLUSTER`` (reuse this existing cluster: neither created nor deleted),
``MESHGATE_KIND_NODE_IMAGE`` (kindest/node image), ``MESHGATE_KEEP_CLUSTER=1`` (do not
delete it at the end), ``MESHGATE_SKIP_INSTALL=1`` (the reused cluster already has Istio
and the image). See docs/targets.md.
"""

from __future__ import annotations

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
    WORKLOADS_IMAGE,
    Command,
    Executor,
    InstallOptions,
    Kube,
    docker_ping,
    install_plan,
    overlay_document,
    parse_istioctl_version,
    required_tools,
    workloads_image_build,
)
from meshgate.targets.base import Provided, TargetError, TargetUnavailable

REPO = Path(__file__).resolve().parents[2]
KIND_CONFIG = REPO / "deploy" / "kind.yaml"
WORKLOADS_CONTEXT = REPO / "workloads"
CLUSTER_PREFIX = "meshgate-"
MAX_NAME = 40  # kind names containers <name>-control-plane; keep them readable


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def cluster_name(run_id: str) -> str:
    """``meshgate-<run id>``, made a valid kind cluster name (lower-case DNS label)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", run_id.lower()).strip("-") or "run"
    return (CLUSTER_PREFIX + slug)[:MAX_NAME].rstrip("-")


def load_kind_config(path: Path = KIND_CONFIG) -> dict[str, Any]:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise TargetUnavailable(f"--target kind needs its cluster config {path}, which cannot "
                                f"be read ({exc.strerror}): run from a meshgate checkout") from exc


def host_port_mappings(config: Mapping[str, Any]) -> dict[int, tuple[str, int]]:
    """containerPort → (listenAddress, hostPort) of the control-plane's extraPortMappings."""
    out: dict[int, tuple[str, int]] = {}
    for node in config.get("nodes") or []:
        if node.get("role", "control-plane") != "control-plane":
            continue
        for mapping in node.get("extraPortMappings") or []:
            out[int(mapping["containerPort"])] = (
                str(mapping.get("listenAddress", "0.0.0.0")),
                int(mapping.get("hostPort", mapping["containerPort"])),
            )
    return out


def create_command(name: str, config: Path, kubeconfig: Path,
                   node_image: str | None = None) -> Command:
    argv = ["kind", "create", "cluster", "--name", name, "--config", str(config),
            "--kubeconfig", str(kubeconfig), "--wait", "180s"]
    if node_image:
        argv += ["--image", node_image]
    return Command(tuple(argv), f"create the kind cluster {name}", timeout=600)


def kubeconfig_command(name: str) -> Command:
    return Command(("kind", "get", "kubeconfig", "--name", name),
                   f"read the kubeconfig of the kind cluster {name}", timeout=60)


def load_image_command(name: str, image: str = WORKLOADS_IMAGE) -> Command:
    return Command(("kind", "load", "docker-image", image, "--name", name),
                   f"load {image} into the kind cluster {name}", timeout=600)


def delete_command(name: str, kubeconfig: Path) -> Command:
    return Command(("kind", "delete", "cluster", "--name", name, "--kubeconfig",
                    str(kubeconfig)), f"delete the kind cluster {name}", timeout=300)


@dataclass
class KindPlan:
    """Everything start() and stop() will run, computed without running anything."""

    name: str
    kubeconfig: Path
    context: str
    overlay: Path
    overlay_document: dict[str, Any]
    options: InstallOptions
    reuse: bool
    create: Command | None
    install: list[Command]
    image: list[Command]
    delete: Command | None
    ingress_url: str | None

    def commands(self) -> list[Command]:
        return [*([self.create] if self.create else []), *self.install, *self.image]


def plan(state_dir: Path, environ: Mapping[str, str], *, istioctl: str | None = None,
         config_path: Path = KIND_CONFIG, context_dir: Path = WORKLOADS_CONTEXT) -> KindPlan:
    """The kind target's commands for this run (pure: reads files, runs nothing)."""
    reuse_name = (environ.get("MESHGATE_KIND_CLUSTER") or "").strip()
    run_id = environ.get("MESHGATE_RUN_ID") or "run"
    name = reuse_name or cluster_name(run_id)
    kubeconfig = state_dir / f"kind-{name}.kubeconfig"
    options = InstallOptions.from_environ(environ, istioctl)
    overlay = state_dir / ("gateway-values.yaml" if options.installer == "helm"
                           else "istio-operator.yaml")
    kube = Kube(kubeconfig, f"kind-{name}")
    skip_install = _truthy(environ.get("MESHGATE_SKIP_INSTALL"))
    http2 = host_port_mappings(load_kind_config(config_path)).get(options.node_ports["http2"])
    return KindPlan(
        name=name,
        kubeconfig=kubeconfig,
        context=f"kind-{name}",
        overlay=overlay,
        overlay_document=overlay_document(options),
        options=options,
        reuse=bool(reuse_name),
        create=None if reuse_name else create_command(
            name, config_path, kubeconfig, environ.get("MESHGATE_KIND_NODE_IMAGE") or None),
        install=[] if skip_install else install_plan(kube, options, overlay),
        image=[] if skip_install else [workloads_image_build(context_dir),
                                       load_image_command(name)],
        delete=None if reuse_name or _truthy(environ.get("MESHGATE_KEEP_CLUSTER"))
        else delete_command(name, kubeconfig),
        ingress_url=(f"http://{'127.0.0.1' if http2[0] in ('0.0.0.0', '') else http2[0]}"
                     f":{http2[1]}") if http2 else None,
    )


def missing_tools(options: InstallOptions | None = None,
                  which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """The tools --target kind needs that are not on the PATH."""
    needed = ("docker", "kind", *required_tools(options or InstallOptions()))
    return [tool for tool in dict.fromkeys(needed) if which(tool) is None]


def _echo(message: str) -> None:
    print(f"meshgate: kind: {message}", file=sys.stderr, flush=True)


@dataclass
class KindTarget:
    """The thin executor of :func:`plan`."""

    state_dir: Path
    name: str = "kind"
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    which: Callable[[str], str | None] = shutil.which
    executor: Executor | None = None
    _plan: KindPlan | None = field(default=None, repr=False)
    _created: bool = field(default=False, repr=False)

    @property
    def owns_cluster(self) -> bool:
        """A cluster named by MESHGATE_KIND_CLUSTER is reused: someone else's."""
        return not (self.environ.get("MESHGATE_KIND_CLUSTER") or "").strip()

    def _executor(self) -> Executor:
        if self.executor is None:
            self.executor = Executor(log=self.state_dir / "kind.log", echo=_echo)
        return self.executor

    def start(self) -> Provided:
        options = InstallOptions.from_environ(self.environ, self.which("istioctl"))
        missing = missing_tools(options, self.which)
        if missing:
            raise TargetUnavailable(
                f"--target kind needs {', '.join(missing)} on the PATH (and a running Docker "
                "engine); install them or use --target local")
        run = self._executor()
        ping = run.run(docker_ping(), check=False)
        if ping.returncode != 0:
            said = (ping.stderr or ping.stdout or "").strip().splitlines()
            raise TargetUnavailable(
                "--target kind needs a running Docker engine and `docker info` got no answer"
                f" ({said[-1] if said else 'no output'}); start Docker or use --target local")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        the_plan = plan(self.state_dir, self.environ, istioctl=self.which("istioctl"))
        self._plan = the_plan
        if options.installer == "istioctl" and options.version and the_plan.install:
            self._check_istioctl(run, options.version)
        if the_plan.reuse:
            out = run.run(kubeconfig_command(the_plan.name))
            the_plan.kubeconfig.write_text(out.stdout, encoding="utf-8")
        else:
            run.run(the_plan.create)  # type: ignore[arg-type]
            self._created = True
        try:
            the_plan.overlay.write_text(yaml.safe_dump(the_plan.overlay_document,
                                                       sort_keys=False), encoding="utf-8")
            run.run_all(the_plan.install)
            run.run_all(the_plan.image)
        except TargetError:
            self.stop()
            raise
        if the_plan.ingress_url:
            # meshgate.ingress finds the NodePort on 127.0.0.1 itself; the variable tells
            # people and other tools where the gateway is.
            os.environ["MESHGATE_INGRESS_URL"] = the_plan.ingress_url
        how = "reused" if the_plan.reuse else "created"
        version = f"Istio {options.version}" if options.version else "Istio"
        return Provided(the_plan.kubeconfig, the_plan.context,
                        f"kind cluster {the_plan.name} ({how}, {version} via "
                        f"{options.installer}, ingress {the_plan.ingress_url or 'unmapped'})")

    def _check_istioctl(self, run: Executor, wanted: str) -> None:
        out = run.run(Command(("istioctl", "version", "--remote=false"),
                              "read istioctl's version", timeout=60), check=False)
        have = parse_istioctl_version(out.stdout + out.stderr)
        if have is not None and have != wanted:
            raise TargetError(f"istioctl on the PATH is {have} but MESHGATE_ISTIO_VERSION="
                              f"{wanted}: put istioctl {wanted} first on the PATH, or unset "
                              "MESHGATE_ISTIO_VERSION")

    def stop(self) -> None:
        the_plan = self._plan
        if the_plan is None or the_plan.delete is None or not self._created:
            return
        self._created = False
        try:
            self._executor().run(the_plan.delete)
        except TargetError as exc:
            print(f"meshgate: kind: {exc}; delete it with `kind delete cluster --name "
                  f"{the_plan.name}`", file=sys.stderr)

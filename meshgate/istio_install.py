"""What a fresh cluster needs before the suite can run, as commands: Istio, its addons, the
``istio`` IngressClass and the workloads image.

The kind and k3s targets create an empty cluster and then run the same sequence. Every
command is built here by a pure function (argv, why, stdin) so the sequence is unit-tested
without Docker, kind or istioctl; :class:`Executor` is the thin part that runs them, logs
each one and turns a failure into a :class:`~meshgate.targets.TargetError` that says which
step failed and shows the tail of its output.

Choices, and why:

- ``istioctl install --set profile=demo`` by default (what the nightly workflow installs
  with), Helm charts with ``MESHGATE_ISTIO_INSTALLER=helm``. The ``demo`` profile has the
  ingress gateway and access logging on (the telemetry feature greps the access log).
- The gateway Service is a NodePort on fixed ports (http2 → 30080) so that kind's
  ``extraPortMappings`` (deploy/kind.yaml) and the k3s container's port bindings put it
  on 127.0.0.1 at the same number — where meshgate.ingress looks for a NodePort.
- Addons (Prometheus, Kiali) come from Istio's ``samples/addons`` of the same release:
  the local copy beside istioctl when istioctl was unpacked from Istio's release archive,
  otherwise the release branch on GitHub.
- Istio does not create the IngressClass ``istio`` that the suite's Ingress names, so it is
  applied here (cluster-scoped) once for the whole cluster.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshgate import children
from meshgate.targets.base import TargetError

__all__ = [
    "ADDONS",
    "GATEWAY_NODE_PORTS",
    "ISTIO_NAMESPACE",
    "WORKLOADS_IMAGE",
    "Command",
    "Executor",
    "InstallOptions",
    "Kube",
    "addon_source",
    "addons_dir_for",
    "apply_object",
    "gateway_helm_values",
    "ingress_class",
    "install_plan",
    "istio_operator",
    "parse_istioctl_version",
    "required_tools",
    "workloads_image_build",
]

ISTIO_NAMESPACE = "istio-system"
WORKLOADS_IMAGE = "ghcr.io/meshgate/workloads:0.1.0"
ADDONS = ("prometheus", "kiali")
# The ingress gateway's Service ports, as NodePorts at fixed numbers (see the docstring).
GATEWAY_PORTS = (  # name, port, targetPort (istioctl's gateway listens on 8080/8443)
    ("status-port", 15021, 15021),
    ("http2", 80, 8080),
    ("https", 443, 8443),
)
GATEWAY_NODE_PORTS = {"status-port": 30021, "http2": 30080, "https": 30443}
HELM_REPO = "https://istio-release.storage.googleapis.com/charts"
ADDONS_URL = "https://raw.githubusercontent.com/istio/istio/{branch}/samples/addons/{name}.yaml"
ROLLOUT_TIMEOUT = "300s"


@dataclass(frozen=True)
class Kube:
    """How the command-line tools reach the new cluster (never the user's default)."""

    kubeconfig: Path
    context: str | None = None

    def flags(self, context_flag: str = "--context") -> list[str]:
        out = ["--kubeconfig", str(self.kubeconfig)]
        if self.context:
            out += [context_flag, self.context]
        return out


@dataclass(frozen=True)
class Command:
    """One command of a target's setup: what to run and why (shown when it fails)."""

    argv: tuple[str, ...]
    why: str
    stdin: str | None = None
    timeout: float = 600.0

    def shell(self) -> str:
        return shlex.join(self.argv)


@dataclass(frozen=True)
class InstallOptions:
    """What to install; :meth:`from_environ` reads the ``MESHGATE_*`` variables."""

    version: str | None = None  # MESHGATE_ISTIO_VERSION; None = whatever istioctl is
    installer: str = "istioctl"  # MESHGATE_ISTIO_INSTALLER: istioctl or helm
    profile: str = "demo"
    addons: tuple[str, ...] = ADDONS
    samples_dir: Path | None = None  # a local samples/addons folder
    node_ports: Mapping[str, int] = field(default_factory=lambda: dict(GATEWAY_NODE_PORTS))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None,
                     istioctl: str | None = None) -> InstallOptions:
        env = os.environ if environ is None else environ
        installer = (env.get("MESHGATE_ISTIO_INSTALLER") or "istioctl").strip().lower()
        if installer not in ("istioctl", "helm"):
            raise TargetError(f"MESHGATE_ISTIO_INSTALLER={installer!r} is not an installer: "
                              "use istioctl (default) or helm")
        addons = tuple(a.strip() for a in (env.get("MESHGATE_ISTIO_ADDONS") or
                                            ",".join(ADDONS)).split(",") if a.strip())
        return cls(
            version=(env.get("MESHGATE_ISTIO_VERSION") or "").strip() or None,
            installer=installer,
            addons=addons,
            samples_dir=addons_dir_for(istioctl) if installer == "istioctl" else None,
        )


def required_tools(options: InstallOptions) -> tuple[str, ...]:
    """The command-line tools the install needs on the PATH."""
    return ("kubectl", "istioctl") if options.installer == "istioctl" else ("kubectl", "helm")


# --------------------------------------------------------------------------- versions


def parse_istioctl_version(output: str) -> str | None:
    """The client version from ``istioctl version --remote=false`` (any release's format)."""
    match = re.search(r"client version:\s*v?(\d+\.\d+\.\d+[\w.+-]*)", output, re.I)
    if match is None:
        match = re.search(r"\bv?(\d+\.\d+\.\d+[\w.+-]*)", output)
    return match.group(1) if match else None


def release_branch(version: str | None) -> str:
    """Istio's git branch of a release (``1.27.3`` → ``release-1.27``; unknown → master)."""
    match = re.match(r"(\d+)\.(\d+)", version or "")
    return f"release-{match.group(1)}.{match.group(2)}" if match else "master"


def addons_dir_for(istioctl: str | None) -> Path | None:
    """``samples/addons`` of the Istio release archive istioctl was unpacked from, if any.

    ``curl -sL https://istio.io/downloadIstio | sh -`` unpacks ``istio-<v>/bin/istioctl``
    next to ``istio-<v>/samples/addons``: the addons that match that istioctl exactly.
    """
    if not istioctl:
        return None
    candidate = Path(istioctl).resolve().parent.parent / "samples" / "addons"
    return candidate if candidate.is_dir() else None


def addon_source(name: str, options: InstallOptions) -> str:
    """Where ``kubectl apply -f`` reads an addon from: the local copy, else GitHub."""
    if options.samples_dir is not None and (options.samples_dir / f"{name}.yaml").is_file():
        return str(options.samples_dir / f"{name}.yaml")
    return ADDONS_URL.format(branch=release_branch(options.version), name=name)


# --------------------------------------------------------------------------- objects


def _service_ports(options: InstallOptions, *, helm: bool) -> list[dict[str, Any]]:
    ports = []
    for name, port, target in GATEWAY_PORTS:
        entry: dict[str, Any] = {"name": name, "port": port,
                                 "targetPort": port if helm and name != "status-port"
                                 else target, "protocol": "TCP"}
        if name in options.node_ports:
            entry["nodePort"] = options.node_ports[name]
        ports.append(entry)
    return ports


def istio_operator(options: InstallOptions) -> dict[str, Any]:
    """The IstioOperator overlay for ``istioctl install -f``: access log on, the ingress
    gateway's Service a NodePort on the fixed ports."""
    return {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        "metadata": {"name": "meshgate", "namespace": ISTIO_NAMESPACE},
        "spec": {
            "profile": options.profile,
            "meshConfig": {"accessLogFile": "/dev/stdout"},
            "components": {
                "ingressGateways": [{
                    "name": "istio-ingressgateway",
                    "enabled": True,
                    "k8s": {"service": {"type": "NodePort",
                                        "ports": _service_ports(options, helm=False)}},
                }],
            },
        },
    }


def gateway_helm_values(options: InstallOptions) -> dict[str, Any]:
    """Values for Istio's ``gateway`` chart (its pods listen on the Service ports)."""
    return {"service": {"type": "NodePort", "ports": _service_ports(options, helm=True)}}


def ingress_class() -> dict[str, Any]:
    """The IngressClass ``istio`` (Istio serves only Ingresses of its class; it does not
    create the class itself)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": "istio"},
        "spec": {"controller": "istio.io/ingress-controller"},
    }


# --------------------------------------------------------------------------- commands


def apply_object(kube: Kube, obj: Mapping[str, Any], why: str) -> Command:
    """``kubectl apply -f -`` with the object on stdin."""
    return Command(("kubectl", *kube.flags(), "apply", "-f", "-"), why,
                   stdin=yaml.safe_dump(dict(obj), sort_keys=False), timeout=120)


def _istioctl_install(kube: Kube, options: InstallOptions, overlay: Path) -> list[Command]:
    version = f" {options.version}" if options.version else ""
    return [Command(
        ("istioctl", "install", *kube.flags(), "--set", f"profile={options.profile}",
         "-f", str(overlay), "-y"),
        f"install Istio{version} with istioctl ({options.profile} profile)", timeout=900,
    )]


def _helm_install(kube: Kube, options: InstallOptions, values: Path) -> list[Command]:
    flags = kube.flags("--kube-context")
    pinned = ("--version", options.version) if options.version else ()
    ns = ("-n", ISTIO_NAMESPACE)
    return [
        Command(("helm", "repo", "add", "istio", HELM_REPO, "--force-update"),
                "add Istio's Helm repository", timeout=120),
        Command(("helm", "upgrade", "--install", "istio-base", "istio/base", *flags, *ns,
                 "--create-namespace", *pinned, "--wait"),
                "install Istio's CRDs (chart istio/base)", timeout=600),
        Command(("helm", "upgrade", "--install", "istiod", "istio/istiod", *flags, *ns,
                 *pinned, "--set", f"profile={options.profile}",
                 "--set", "meshConfig.accessLogFile=/dev/stdout", "--wait"),
                "install istiod (chart istio/istiod)", timeout=900),
        Command(("helm", "upgrade", "--install", "istio-ingressgateway", "istio/gateway",
                 *flags, *ns, *pinned, "-f", str(values), "--wait"),
                "install the ingress gateway (chart istio/gateway)", timeout=900),
    ]


def install_plan(kube: Kube, options: InstallOptions, overlay: Path) -> list[Command]:
    """Every command that installs Istio, the addons and the IngressClass, in order.

    ``overlay`` is where the caller wrote :func:`istio_operator` (istioctl) or
    :func:`gateway_helm_values` (Helm) as YAML.
    """
    if options.installer == "helm":
        commands = _helm_install(kube, options, overlay)
    else:
        commands = _istioctl_install(kube, options, overlay)
    for name in options.addons:
        commands.append(Command(
            ("kubectl", *kube.flags(), "apply", "-f", addon_source(name, options)),
            f"install the {name} addon from Istio's samples", timeout=300,
        ))
    for deployment in ("istiod", "istio-ingressgateway", *options.addons):
        commands.append(Command(
            ("kubectl", *kube.flags(), "-n", ISTIO_NAMESPACE, "rollout", "status",
             f"deployment/{deployment}", f"--timeout={ROLLOUT_TIMEOUT}"),
            f"wait for {ISTIO_NAMESPACE}/{deployment} to be ready", timeout=330,
        ))
    commands.append(apply_object(kube, ingress_class(), "create the IngressClass istio"))
    return commands


def overlay_document(options: InstallOptions) -> dict[str, Any]:
    """What to write to the ``overlay`` file of :func:`install_plan`."""
    if options.installer == "helm":
        return gateway_helm_values(options)
    return istio_operator(options)


def workloads_image_build(context: Path, image: str = WORKLOADS_IMAGE) -> Command:
    """``docker build`` of the composer/vp0/membersrvc image from workloads/."""
    return Command(("docker", "build", "-t", image, str(context)),
                   f"build the workloads image {image}", timeout=900)


def docker_ping() -> Command:
    """Is a Docker engine answering? (the docker CLI alone is not enough)."""
    return Command(("docker", "info", "--format", "{{.ServerVersion}}"),
                   "ask the Docker engine for its version", timeout=20)


# --------------------------------------------------------------------------- executing


def _tail(text: str, lines: int = 15) -> str:
    kept = [line for line in (text or "").strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


@dataclass
class Executor:
    """Runs commands one at a time; logs each; raises TargetError on the first failure.

    ``echo`` receives a one-line progress message per command (the targets print them
    to stderr, since creating a cluster takes minutes); ``log`` receives the commands and
    their whole output.
    """

    log: Path | None = None
    echo: Callable[[str], None] | None = None
    environ: Mapping[str, str] | None = None
    # Signals reach the commands (meshgate.children): a cancelled run tells `kind
    # create cluster` to stop instead of leaving it half done.
    runner: Callable[..., subprocess.CompletedProcess[str]] = children.run_captured

    def run(self, command: Command, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        if self.echo is not None:
            self.echo(command.why)
        started = time.monotonic()
        try:
            result = self.runner(
                list(command.argv), input=command.stdin, capture_output=True, text=True,
                timeout=command.timeout, env=dict(self.environ) if self.environ else None,
            )
        except FileNotFoundError as exc:
            raise TargetError(f"cannot {command.why}: {command.argv[0]} is not on the PATH") \
                from exc
        except subprocess.TimeoutExpired as exc:
            self._log(command, None, f"timed out after {command.timeout:.0f}s", started)
            raise TargetError(f"cannot {command.why}: `{command.shell()}` did not finish in "
                              f"{command.timeout:.0f}s") from exc
        self._log(command, result.returncode, (result.stdout or "") + (result.stderr or ""),
                  started)
        if check and result.returncode != 0:
            where = f" (full log: {self.log})" if self.log else ""
            raise TargetError(
                f"cannot {command.why}: `{command.shell()}` exited with {result.returncode}"
                f"{where}:\n{_tail(result.stderr or result.stdout)}")
        return result

    def run_all(self, commands: Sequence[Command]) -> None:
        for command in commands:
            self.run(command)

    def _log(self, command: Command, code: int | None, output: str, started: float) -> None:
        if self.log is None:
            return
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a", encoding="utf-8") as out:
            out.write(f"$ {command.shell()}\n# {command.why}: exit {code} in "
                      f"{time.monotonic() - started:.1f}s\n{output.rstrip()}\n\n")

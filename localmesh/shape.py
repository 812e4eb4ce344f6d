"""The shape of cluster a localmesh boots: which mesh, which platform flavor, which faults.

Users gate the meshes they run, and those come in shapes: Istio with sidecars (today's
default), ambient mode, a Mixer-era Istio; Kubernetes or OpenShift (with its Service Mesh
2 or 3); a healthy or a struggling API server; a small or a large mesh; pods as processes
or as containers. Each shape is chosen here, at boot, by flags that compose, and each is a
set of rooms (reconcilers over the one store) that ``Instance`` assembles — a new shape is
new rooms and an entry here, not branches through the existing ones.

A shape that is not built yet is refused at once with one message, never half-booted.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

MESHES = ("sidecar", "ambient", "mixer", "none")
FLAVORS = ("kubernetes", "openshift")
OSSM_VERSIONS = ("2", "3")
API_FAULTS = ("none", "flaky", "restart", "token-expiry", "outage")
RUNTIMES = ("process", "podman")
# The shapes localmesh can boot today; the others are refused with IMPLEMENTED's message.
IMPLEMENTED = {"mesh": ("sidecar", "mixer", "none"), "flavor": ("kubernetes", "openshift"),
               "api_faults": ("none",), "runtime": ("process", "podman")}


class ShapeError(ValueError):
    """A shape localmesh cannot boot (the message says which flag and what it can)."""


@dataclass(frozen=True)
class Shape:
    mesh: str = "sidecar"
    flavor: str = "kubernetes"
    ossm: str = "3"
    api_faults: str = "none"
    synthetic_services: int = 0
    runtime: str = "process"

    @property
    def with_mesh(self) -> bool:
        return self.mesh != "none"

    def check(self) -> Shape:
        """This shape, or ShapeError naming the first flag localmesh cannot honour."""
        for flag, value in (("mesh", self.mesh), ("flavor", self.flavor),
                            ("api_faults", self.api_faults), ("runtime", self.runtime)):
            if value not in IMPLEMENTED[flag]:
                option = "--" + flag.replace("_", "-")
                raise ShapeError(f"{option} {value} is not built into this localmesh yet; it "
                                 f"boots {option} {' or '.join(IMPLEMENTED[flag])}")
        if self.flavor == "openshift" and self.mesh == "mixer":
            raise ShapeError("--flavor openshift with --mesh mixer is not built into this "
                             "localmesh yet (OpenShift Service Mesh 1.x); it boots --flavor "
                             "openshift with --mesh sidecar or none")
        if self.runtime == "podman":
            from localmesh.kubelet.podman import unusable

            problem = unusable()
            if problem is not None:
                raise ShapeError(f"--runtime podman cannot run containers here: {problem}")
        if self.synthetic_services < 0:
            raise ShapeError(f"--synthetic-services {self.synthetic_services} is negative")
        return self

    def argv(self) -> list[str]:
        """The ``localmesh serve`` options that recreate this shape."""
        defaults = Shape()
        out: list[str] = []
        for key, value in asdict(self).items():
            if value != getattr(defaults, key):
                out += [f"--{key.replace('_', '-')}", str(value)]
        return out

    def describe(self) -> str:
        parts = [f"mesh {self.mesh}", f"flavor {self.flavor}"]
        if self.flavor == "openshift":
            parts.append(f"OpenShift Service Mesh {self.ossm}")
        if self.api_faults != "none":
            parts.append(f"API faults {self.api_faults}")
        if self.synthetic_services:
            parts.append(f"{self.synthetic_services} synthetic services")
        if self.runtime != "process":
            parts.append(f"runtime {self.runtime}")
        return ", ".join(parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The shape's options, shared by ``localmesh up`` and ``localmesh serve``."""
    parser.add_argument("--mesh", choices=MESHES, default="sidecar",
                        help="the mesh: Istio with sidecars (default), ambient (ztunnel and "
                             "waypoints), mixer (an Istio 1.4-style mesh with Mixer), none "
                             "(Kubernetes only)")
    parser.add_argument("--no-mesh", action="store_const", const="none", dest="mesh",
                        help="the same as --mesh none")
    parser.add_argument("--flavor", choices=FLAVORS, default="kubernetes",
                        help="the platform: Kubernetes (default) or OpenShift (Routes and "
                             "their router, Projects, SCCs, OpenShift Service Mesh)")
    parser.add_argument("--ossm", choices=OSSM_VERSIONS, default="3",
                        help="OpenShift Service Mesh's version with --flavor openshift "
                             "(default 3)")
    parser.add_argument("--api-faults", choices=API_FAULTS, default="none",
                        help="an API server that throttles and drops watches (flaky), "
                             "restarts, expires tokens, or stops answering (outage)")
    parser.add_argument("--synthetic-services", type=int, default=0, metavar="N",
                        help="N extra Services with endpoints and no processes: a large mesh")
    parser.add_argument("--runtime", choices=RUNTIMES, default="process",
                        help="run pods as processes (default) or, where their images are in "
                             "podman's store, as containers")


def from_arguments(args: argparse.Namespace) -> Shape:
    return Shape(args.mesh, args.flavor, args.ossm, args.api_faults,
                 args.synthetic_services, args.runtime).check()

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
import random
from dataclasses import asdict, dataclass, replace

from localmesh.api.faults import FaultConfig

MESHES = ("sidecar", "ambient", "mixer", "none")
FLAVORS = ("kubernetes", "openshift")
OSSM_VERSIONS = ("2", "3")
API_FAULTS = ("none", "flaky", "restart", "token-expiry", "outage")
RUNTIMES = ("process", "podman")
# The shapes localmesh can boot today; the others are refused with IMPLEMENTED's message.
IMPLEMENTED = {"mesh": ("sidecar", "ambient", "mixer", "none"),
               "flavor": ("kubernetes", "openshift"), "api_faults": API_FAULTS,
               "runtime": ("process", "podman")}


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
    # The API faults' rates (localmesh/api/faults.py FaultConfig; used by their profile).
    api_fault_rate: float = 0.1
    api_fault_seed: int | None = None
    api_watch_cut: float = 5.0
    api_restart_every: float = 15.0
    api_restart_down: float = 2.0
    api_token_ttl: float = 60.0
    api_outage_after: int = 0

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
        if self.flavor == "openshift" and self.mesh in ("mixer", "ambient"):
            which = "OpenShift Service Mesh 1.x" if self.mesh == "mixer" else \
                "OpenShift Service Mesh 3's ambient mode: IstioCNI and ZTunnel resources"
            raise ShapeError(f"--flavor openshift with --mesh {self.mesh} is not built into "
                             f"this localmesh yet ({which}); it boots --flavor openshift with "
                             "--mesh sidecar or none")
        if self.runtime == "podman":
            from localmesh.kubelet.podman import unusable

            problem = unusable()
            if problem is not None:
                raise ShapeError(f"--runtime podman cannot run containers here: {problem}")
        if self.synthetic_services < 0:
            raise ShapeError(f"--synthetic-services {self.synthetic_services} is negative")
        if not 0.0 <= self.api_fault_rate <= 1.0:
            raise ShapeError(f"--api-fault-rate {self.api_fault_rate:g} is not a share "
                             "between 0 and 1 (0.1: one request in ten)")
        for option, seconds in (("--api-watch-cut", self.api_watch_cut),
                                ("--api-restart-every", self.api_restart_every),
                                ("--api-restart-down", self.api_restart_down),
                                ("--api-token-ttl", self.api_token_ttl)):
            if not seconds > 0:
                raise ShapeError(f"{option} {seconds:g} is not a positive number of seconds")
        if self.api_restart_down >= self.api_restart_every:
            raise ShapeError(f"--api-restart-down {self.api_restart_down:g} must be shorter "
                             f"than --api-restart-every {self.api_restart_every:g}, or the "
                             "API server never answers (that is --api-faults outage)")
        if self.api_outage_after < 0:
            raise ShapeError(f"--api-outage-after {self.api_outage_after} is negative")
        return self

    def seeded(self) -> Shape:
        """This shape with its fault schedule's seed fixed (a random one if none was
        given), so that the banner and the server agree and a run can be replayed."""
        if self.api_fault_seed is not None or self.api_faults != "flaky":
            return self
        return replace(self, api_fault_seed=random.SystemRandom().randrange(1 << 31))

    def faults(self) -> FaultConfig:
        return FaultConfig(self.api_faults, self.api_fault_rate, self.api_fault_seed,
                           self.api_watch_cut, self.api_restart_every, self.api_restart_down,
                           self.api_token_ttl, self.api_outage_after)

    def argv(self) -> list[str]:
        """The ``localmesh serve`` options that recreate this shape."""
        defaults = Shape()
        out: list[str] = []
        for key, value in asdict(self).items():
            if value != getattr(defaults, key) and value is not None:
                out += [f"--{key.replace('_', '-')}", str(value)]
        return out

    def describe(self) -> str:
        parts = [f"mesh {self.mesh}", f"flavor {self.flavor}"]
        if self.flavor == "openshift":
            parts.append(f"OpenShift Service Mesh {self.ossm}")
        if self.api_faults != "none":
            parts.append(self.faults().describe())
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
    faults = FaultConfig()
    parser.add_argument("--api-fault-rate", type=float, default=faults.rate, metavar="SHARE",
                        help="flaky: the share of requests answered 429, 500 or 503 "
                             f"(default {faults.rate:g})")
    parser.add_argument("--api-fault-seed", type=int, default=None, metavar="N",
                        help="flaky: the seed of the fault schedule, to replay a run "
                             "(default: a random one, shown in the banner)")
    parser.add_argument("--api-watch-cut", type=float, default=faults.watch_cut,
                        metavar="SECONDS", help="flaky: watches end after about this long "
                                                f"(default {faults.watch_cut:g})")
    parser.add_argument("--api-restart-every", type=float, default=faults.restart_every,
                        metavar="SECONDS", help="restart: how often the API server restarts "
                                                f"(default {faults.restart_every:g})")
    parser.add_argument("--api-restart-down", type=float, default=faults.restart_down,
                        metavar="SECONDS", help="restart: how long it refuses connections "
                                                f"each time (default {faults.restart_down:g})")
    parser.add_argument("--api-token-ttl", type=float, default=faults.token_ttl,
                        metavar="SECONDS", help="token-expiry: the lifetime of the exec "
                                                f"plugin's tokens (default {faults.token_ttl:g})")
    parser.add_argument("--api-outage-after", type=int, default=faults.outage_after,
                        metavar="N", help="outage: client requests answered before the API "
                                          f"server stops for good (default "
                                          f"{faults.outage_after})")
    parser.add_argument("--synthetic-services", type=int, default=0, metavar="N",
                        help="N extra Services with endpoints and no processes: a large mesh")
    parser.add_argument("--runtime", choices=RUNTIMES, default="process",
                        help="run pods as processes (default) or, where their images are in "
                             "podman's store, as containers")


def from_arguments(args: argparse.Namespace) -> Shape:
    return Shape(args.mesh, args.flavor, args.ossm, args.api_faults,
                 args.synthetic_services, args.runtime, args.api_fault_rate,
                 args.api_fault_seed, args.api_watch_cut, args.api_restart_every,
                 args.api_restart_down, args.api_token_ttl, args.api_outage_after).check()

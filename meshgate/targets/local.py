"""The embedded target: boots localmesh, or reuses one named by ``--kubeconfig``.

This is the one place in meshgate allowed to import ``localmesh`` (docs/architecture.md,
"the one rule"): it starts the embedded cluster and hands the suite its kubeconfig.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshgate.targets.base import Provided, TargetError


@dataclass
class LocalTarget:
    state_dir: Path
    kubeconfig: str | None = None
    name: str = "local"
    # The localmesh shape to boot (localmesh.shape.Shape's fields), e.g.
    # {"synthetic_services": 2000} for ``meshgate bench --mesh-sizes``, {"mesh": "ambient"}
    # for Istio's ambient profile (ztunnel, istio-cni, waypoints; injection still there).
    shape: dict[str, Any] = field(default_factory=dict)
    _handle: object | None = field(default=None, repr=False)
    _tmp: Path | None = field(default=None, repr=False)

    @property
    def owns_cluster(self) -> bool:
        """Booted by this run unless ``--kubeconfig`` names a running localmesh to reuse,
        which may be a developer's or another run's."""
        return not self.kubeconfig

    def start(self) -> Provided:
        if self.kubeconfig:
            path = Path(self.kubeconfig)
            if not path.is_file():
                raise TargetError(f"--kubeconfig {path} does not exist: start localmesh with "
                                  "`localmesh up` and pass the kubeconfig it prints, or omit "
                                  "--kubeconfig to boot one")
            return Provided(path, None, f"localmesh (reused, {path})")
        from localmesh.cli import LaunchError, launch
        from localmesh.shape import Shape, ShapeError

        # The instance's state (kubeconfig, keys, pod directories) lives in a temporary
        # folder removed at stop; failure bundles copy what a reviewer needs first.
        self._tmp = Path(tempfile.mkdtemp(prefix="meshgate-localmesh-"))
        try:
            # A large mesh takes longer to boot: 30 ms more per synthetic Service.
            services = int(self.shape.get("synthetic_services") or 0)
            handle = launch(self._tmp, tied=True, shape=Shape(**self.shape),
                            timeout=60.0 + 0.03 * services)
        except (LaunchError, ShapeError) as exc:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise TargetError(f"cannot boot localmesh: {exc}") from exc
        self._handle = handle
        # Its shape's flags, as ``localmesh serve`` would take them (none for the default).
        flags = "".join(f" {a}" for a in Shape(**self.shape).argv())
        return Provided(handle.kubeconfig, None, f"localmesh{flags} (booted in "
                                                 f"{handle.boot_seconds:.2f}s, {handle.server})")

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.stop()  # type: ignore[attr-defined]
            self._handle = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def injected_faults(self) -> dict[str, int]:
        """The faults the booted localmesh's API server injected (--api-faults), by fault,
        from its /metrics; empty when it cannot be read."""
        from localmesh.api.faults import parse_metrics
        from meshgate.cluster import Cluster, ClusterError

        kubeconfig = getattr(self._handle, "kubeconfig", None)
        if kubeconfig is None:
            return {}
        try:
            status, body = Cluster(kubeconfig).raw_get("/metrics")
        except ClusterError:
            return {}
        return parse_metrics(body.decode(errors="replace")) if status == 200 else {}

    @property
    def boot_seconds(self) -> float | None:
        return getattr(self._handle, "boot_seconds", None)

    @property
    def pid(self) -> int | None:
        """The booted localmesh's PID (its process tree is the cluster's memory)."""
        return getattr(self._handle, "pid", None)


def boot_detached(state_dir: Path) -> Provided:
    """A localmesh that outlives this process, in ``state_dir``: for a change gated in two
    jobs (``meshgate run --phase before`` boots it, ``--phase after`` stops it)."""
    from localmesh.cli import LaunchError, launch

    try:
        handle = launch(state_dir, tied=False)
    except LaunchError as exc:
        raise TargetError(f"cannot boot localmesh: {exc}") from exc
    return Provided(handle.kubeconfig, None,
                    f"localmesh (booted in {handle.boot_seconds:.2f}s, {handle.server})")


def stop_detached(state_dir: Path) -> bool:
    """Stop the localmesh of ``state_dir`` (by the PID it recorded) and remove what it left;
    False when none was running."""
    from localmesh.cli import clean_up, current, stop_pid

    info = current(state_dir)
    if info is not None:
        stop_pid(int(info["pid"]))
    clean_up(state_dir)
    return info is not None

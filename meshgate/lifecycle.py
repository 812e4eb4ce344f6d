"""One run of the suite, from its target's start to its stop: the one owner of the run.

A :class:`Run` holds what a run decides once and every process of it must agree on: its
id, its profile, the target and the cluster the target provides, the namespaces of its
workers, the warm-up that deploys into them early, and what must happen before the
cluster goes away. The pytest plugin ``fixtures.plugins.lifecycle`` creates one per
process: the controller's (or the only process's) starts and stops the target; each
xdist worker's is attached to the cluster the controller started, from the data
:meth:`Run.worker_input` hands xdist — nothing travels through environment variables.

Stopping is idempotent and ordered: cleanups that need the cluster (the warm-up's
namespaces) run first, then the target is stopped (which, for a cluster the run created,
removes it). ``--keep`` decides which namespaces survive; the run says which it kept.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from meshgate import ingress, namespaces, rollout
from meshgate.apiserver import Answer
from meshgate.cluster import Cluster, ClusterError
from meshgate.manifests import MANIFEST_DIR
from meshgate.mesh import MeshInfo, discover
from meshgate.profiles import Profile
from meshgate.targets import Provided, Target, TargetError, TargetUnavailable, make
from meshgate.waiting import Convergence, Timeouts, Waits

KEEP_POLICIES = ("always", "on-failure", "never")
DATA_PLANE_CHOICES = ("auto", "sidecar", "ambient", "waypoint", "mixed")
ENV_DATA_PLANE = "MESHGATE_DATA_PLANE"
# How long the end of a run waits, in all, for a warm-up that is still running.
WARMUP_GRACE_SECONDS = 2.0
WARMUP_DEPLOY_TIMEOUT = 120.0


@dataclass(frozen=True)
class Settings:
    """What the command line decided for the run (the same in every process)."""

    target: str
    kubeconfig: str | None
    context: str | None
    artifacts: Path
    keep: str
    run_id: str
    profile: Profile
    manifests: Path = MANIFEST_DIR
    # The data plane of the run's namespaces (--data-plane): auto, sidecar, ambient,
    # waypoint (ambient through a waypoint) or mixed (the workers' namespaces alternate
    # sidecar and ambient).
    data_plane: str = "auto"

    def state_dir(self) -> Path:
        return self.state_dir_of(self.artifacts)

    @staticmethod
    def state_dir_of(artifacts: Path) -> Path:
        """Where a target keeps its state (kind's logs, a cluster's kubeconfig)."""
        return artifacts.resolve() / "localmesh"


@dataclass
class Warmup:
    """The controller deploys each worker's workloads while pytest collects and xdist
    starts its workers: deploying is mostly waiting for pods, and collection and worker
    start-up are mostly CPU in other processes. The workers' Background step still applies
    the same manifests (a no-op) and waits for readiness, so what a scenario checks is
    unchanged."""

    namespaces: list[str]
    log: Convergence = field(default_factory=Convergence)
    thread: threading.Thread | None = None
    join_by: float | None = None

    def wait(self) -> None:
        """Normally the warm-up finished long ago; after an interrupt it may still be
        waiting for pods. It is a daemon thread: the namespaces and the cluster go anyway,
        so the run waits for it at most ``WARMUP_GRACE_SECONDS`` in all."""
        if self.thread is None:
            return
        if self.join_by is None:
            self.join_by = time.monotonic() + WARMUP_GRACE_SECONDS
        self.thread.join(timeout=max(0.0, self.join_by - time.monotonic()))


class Run:
    """The run's target, cluster, namespaces and stop, owned in one place."""

    def __init__(self, settings: Settings, *, controller: bool = True,
                 target: Target | None = None) -> None:
        self.settings = settings
        self.controller = controller
        self._target = target
        self.provided: Provided | None = None
        self.unavailable: str | None = None
        self.description: str | None = None
        self.failed = False
        self.warmup: Warmup | None = None
        self.kept: list[str] = []
        self._cluster: Cluster | None = None
        self._mesh: MeshInfo | None = None
        self._cleanups: list[Callable[[bool], None]] = []
        self._lock = threading.Lock()
        self._stopped = False
        # The API server's answer to the controller (meshgate.apiserver.Answer), handed
        # to the workers.
        self.answered: Answer | None = None

    # -- start ------------------------------------------------------------------------
    @property
    def target(self) -> Target:
        if self._target is None:
            self._target = make(self.settings.target, kubeconfig=self.settings.kubeconfig,
                                context=self.settings.context,
                                state_dir=self.settings.state_dir(),
                                data_plane=self.settings.data_plane)
        return self._target

    @property
    def started(self) -> bool:
        return self.provided is not None

    def start(self) -> None:
        """Start the target once (the controller only). A target that cannot exist here
        is remembered as unavailable (the scenarios skip with the reason); one that fails
        raises TargetError."""
        if not self.controller or self.started or self.unavailable:
            return
        try:
            self.provided = self.target.start()
        except TargetUnavailable as exc:
            self.unavailable = str(exc)
            return
        self.description = self.provided.description
        print(f"meshgate: target {self.description}", file=sys.stderr)

    def reach(self) -> None:
        """Ask the API server once, before the workers start (the controller only): once
        it has answered this run, each worker's client rides out a restart from its own
        first request. An API server that does not answer raises ClusterError here, with
        the one message (meshgate.apiserver), rather than in every worker."""
        if not self.controller or not self.started or self.unavailable:
            return
        cluster = self.cluster()
        cluster.server_version()
        self.answered = cluster.availability.last

    def worker_input(self) -> dict[str, str]:
        """What an xdist worker needs to reach the cluster the controller started."""
        out = {"meshgate_run_id": self.settings.run_id}
        if self.provided is not None:
            out["meshgate_kubeconfig"] = str(self.provided.kubeconfig)
            if self.provided.context:
                out["meshgate_context"] = self.provided.context
            out["meshgate_target"] = self.provided.description
        if self.unavailable:
            out["meshgate_unavailable"] = self.unavailable
        if self.answered is not None:
            out["meshgate_answered"] = self.answered.to_json()
        return out

    def attach(self, data: dict[str, str]) -> None:
        """A worker's run: the cluster the controller started (never started or stopped
        here)."""
        if data.get("meshgate_kubeconfig"):
            self.provided = Provided(Path(data["meshgate_kubeconfig"]),
                                     data.get("meshgate_context"),
                                     data.get("meshgate_target", ""))
            self.description = self.provided.description
        self.unavailable = data.get("meshgate_unavailable")
        self.answered = Answer.from_json(data.get("meshgate_answered", ""))

    # -- the cluster --------------------------------------------------------------------
    def cluster(self) -> Cluster:
        """The cluster the target provides (started on first use in the controller)."""
        if self._cluster is None:
            self.start()
            if self.unavailable:
                raise TargetUnavailable(self.unavailable)
            if self.provided is None:
                raise TargetError("no cluster: under xdist, pass --target so the controller "
                                  "starts one")
            self._cluster = self._client()
        return self._cluster

    def _client(self) -> Cluster:
        assert self.provided is not None
        cluster = Cluster(self.provided.kubeconfig, self.provided.context,
                          run_id=self.settings.run_id)
        if self.answered is not None:
            cluster.availability.assume_answered(self.answered)
        return cluster

    def mesh(self) -> MeshInfo:
        if self._mesh is None:
            self._mesh = discover(self.cluster())
        return self._mesh

    def namespace_for(self, worker: str) -> str:
        return namespaces.namespace_name(self.settings.run_id, worker)

    def data_plane_for(self, worker: str, mesh: MeshInfo) -> str:
        """The data plane a worker's namespace is labelled for: as ``--data-plane``
        says; ``auto`` is ambient where the mesh runs ztunnel, else sidecars; ``mixed``
        alternates by worker (gw0 sidecar, gw1 ambient, …)."""
        chosen = self.settings.data_plane
        if chosen == "auto":
            return "ambient" if mesh.ambient else "sidecar"
        if chosen == "mixed":
            index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
            return ("sidecar", "ambient")[index % 2] if mesh.ambient else "sidecar"
        return chosen

    def data_plane_refusal(self, mesh: MeshInfo) -> str | None:
        """Why the run cannot have the data plane ``--data-plane`` asks for on this mesh
        (ambient or a waypoint where no ztunnel runs: nothing would capture the pods, and
        every scenario would wait for them), else None."""
        chosen = self.settings.data_plane
        if chosen not in ("ambient", "waypoint") or mesh.ambient:
            return None
        return (f"--data-plane {chosen} needs Istio's ambient mode, and this mesh runs no "
                f"ztunnel (no DaemonSet ztunnel in {mesh.namespace}): install Istio with the "
                "ambient profile (istioctl install --set profile=ambient), or run with "
                "--data-plane sidecar or auto")

    @property
    def cluster_writes(self) -> bool:
        """Whether the run may write outside its own namespaces: not in the gate profile."""
        return self.settings.profile.name != "gate"

    # -- warm-up ------------------------------------------------------------------------
    def warm_up(self, workers: list[str]) -> None:
        """Start deploying each worker's workloads in the background (controller only)."""
        if not self.controller or self.provided is None or self.warmup is not None:
            return
        try:
            # A client of its own: the kubernetes client's discovery cache is not safe to
            # share between threads (a concurrent refresh empties it under a reader).
            cluster = self._client()
        except ClusterError:
            return  # the run itself reports an unusable cluster
        warm = Warmup([self.namespace_for(w) for w in workers])
        waits = Waits(Timeouts.from_sources({"deploy": WARMUP_DEPLOY_TIMEOUT}), warm.log)

        def deploy(ns: str, worker: str, mesh: MeshInfo) -> None:
            try:
                namespaces.create(cluster, ns, self.settings.run_id, mesh=mesh,
                                  data_plane=self.data_plane_for(worker, mesh))
                rollout.deploy_blockchain(cluster, ns, waits, cluster_writes=self.cluster_writes,
                                          directory=self.settings.manifests,
                                          host=ingress.scenario_host(ns, mesh.host_domain))
            except Exception:  # noqa: BLE001 - the Background step reports what went wrong
                pass

        def run() -> None:
            try:
                mesh = discover(cluster)
            except Exception:  # noqa: BLE001 - the session reports it with its own message
                return
            if mesh.istio_version is None or self.data_plane_refusal(mesh):
                return  # the session stops with its own message
            threads = [threading.Thread(target=deploy, args=(ns, w, mesh), daemon=True)
                       for ns, w in zip(warm.namespaces, workers, strict=True)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=WARMUP_DEPLOY_TIMEOUT + 60)

        warm.thread = threading.Thread(target=run, name="meshgate-warmup", daemon=True)
        warm.thread.start()
        self.warmup = warm
        self.before_stop(self._remove_warm_namespaces)

    def _remove_warm_namespaces(self, failed: bool) -> None:
        """The workers delete their own namespaces; this catches those of a worker that
        was killed, or never started, under the same ``--keep`` policy."""
        assert self.warmup is not None
        self.warmup.wait()
        for ns in self.warmup.namespaces:
            self.release_namespace(ns, failed)

    # -- namespaces ---------------------------------------------------------------------
    def keeps(self, failed: bool) -> bool:
        keep = self.settings.keep
        return keep == "always" or (keep == "on-failure" and failed)

    def release_namespace(self, name: str, failed: bool) -> bool:
        """Delete one of the run's namespaces, or keep it under ``--keep`` (and say so);
        True when it was deleted."""
        if self.keeps(failed):
            with self._lock:
                if name not in self.kept:
                    self.kept.append(name)
            return False
        try:
            return namespaces.delete(self.cluster(), name, mesh=self.mesh())
        except (ClusterError, TargetError):
            return False  # already gone, or the cluster is going away

    # -- stop ---------------------------------------------------------------------------
    def before_stop(self, cleanup: Callable[[bool], None]) -> None:
        """Run ``cleanup(failed)`` while the cluster is still up, before the run stops it."""
        self._cleanups.append(cleanup)

    def stop(self) -> None:
        """Run the cleanups, then stop the target this process started (idempotent)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        for cleanup in self._cleanups:
            try:
                cleanup(self.failed)
            except Exception as exc:  # noqa: BLE001 - a cleanup must not keep the target up
                print(f"meshgate: cleanup before stopping the target failed: {exc}",
                      file=sys.stderr)
        if self.warmup is not None:
            # The warm-up's waits are part of what the mesh needed: the bench's overhead
            # ratio and the reports count them (convergence-*.json beside the workers').
            out = self.settings.artifacts.resolve()
            out.mkdir(parents=True, exist_ok=True)
            (out / "convergence-warmup.json").write_text(
                json.dumps(self.warmup.log.as_dicts(), indent=1))
        if self.kept:
            print(f"meshgate: kept namespace{'s' if len(self.kept) > 1 else ''} "
                  f"{', '.join(self.kept)} (--keep={self.settings.keep})", file=sys.stderr)
        if self.controller and self.started:
            self.target.stop()
        if self.controller:
            # Discovery caches of this run's workers, including one killed before its own
            # cleanup ran (every process of the run has ended by now).
            pattern = f"{Cluster.DISCOVERY_PREFIX}{self.settings.run_id}-*"
            for leftover in Path(tempfile.gettempdir()).glob(pattern):
                shutil.rmtree(leftover, ignore_errors=True)

    # -- what the run says about itself ---------------------------------------------------
    def header(self) -> list[str]:
        target = self.description or (f"unavailable: {self.unavailable}" if self.unavailable
                                      else f"{self.settings.target} (not started yet)")
        lines = [f"meshgate: run {self.settings.run_id}, target {target}",
                 f"meshgate: {self.settings.profile.header()}"]
        found = self.mesh_found()
        if found is not None:
            lines.append(f"meshgate: {found.describe()}")
        return lines

    def mesh_found(self, *, discover_now: bool = True) -> MeshInfo | None:
        """The mesh, discovered now (``discover_now``) where the cluster is there already
        (the header names the platform and the mesh); None where it is not, or cannot be
        read yet — the session's own fixtures then say why."""
        if not self.started or not discover_now:
            return self._mesh
        try:
            return self.mesh()
        except (ClusterError, TargetError):
            return None

    def record(self) -> dict[str, object]:
        """The run's identity for ``run.json`` and the reports."""
        profile = self.settings.profile
        out: dict[str, object] = {
            "run_id": self.settings.run_id, "target": self.settings.target,
            "target_description": self.description, "unavailable": self.unavailable,
            "owns_cluster": profile.owns_cluster, "profile": profile.name,
            "profile_reason": profile.reason, "cluster_faults": profile.cluster_faults,
            "keep": self.settings.keep, "kept_namespaces": list(self.kept),
            "pid": os.getpid(),
        }
        if self._mesh is not None:
            out["mesh"] = self._mesh.describe()
            out["platform"] = self._mesh.platform.describe()
            out["istio_version"] = self._mesh.istio_version
        return out

"""What one scenario has seen and done: its one typed home.

A scenario's steps share a :class:`Scenario`: the cluster and mesh it runs on, its
namespace, the run's waits, and what its steps did (the workloads deployed, the requests
sent, the fault injected). It also builds, once, the clients of each area — the ingress
gateway, the telemetry backend, the service graph — whose checks the steps call. Those
clients remember what they read (queries, graphs, probes), which is what the failure
bundle and the report show; nothing is passed between steps through untyped keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from meshgate import ingress, manifests, rollout
from meshgate.chaos import Fault
from meshgate.cluster import Cluster
from meshgate.mesh import MeshInfo
from meshgate.rollout import Deployed
from meshgate.servicegraph import Graph
from meshgate.telemetry import Query, QueryBackend, Telemetry, backend, no_backend_reason
from meshgate.waiting import Waits


@dataclass
class Sent:
    """Requests a When step sent, and the counters just before them."""

    path: str
    count: int
    answers: list[ingress.Answer]
    baselines: dict[str, float]


@dataclass
class Scenario:
    cluster: Cluster
    mesh: MeshInfo
    namespace: str
    waits: Waits
    manifests: Path = manifests.MANIFEST_DIR
    # Whether the run may write outside its namespaces (the IngressClass): not in the
    # gate profile.
    cluster_writes: bool = False
    deployed: dict[str, Deployed] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    fault: Fault | None = None
    replaced: dict[str, list[str]] = field(default_factory=dict)
    access_log: list[str] = field(default_factory=list)
    _ingress: ingress.Ingress | None = field(default=None, repr=False)
    _prometheus: QueryBackend | None = field(default=None, repr=False)
    _graph: Graph | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return ingress.scenario_host(self.namespace)

    @property
    def ingress(self) -> ingress.Ingress:
        """The ingress gateway's client; its entry point is found on first use."""
        if self._ingress is None:
            entry = ingress.entry_point(self.cluster, self.mesh.ingress_gateway)
            self._ingress = ingress.Ingress(entry, self.host, self.waits)
        return self._ingress

    @property
    def prometheus(self) -> QueryBackend | None:
        """The telemetry backend, or None where the mesh has none."""
        if self._prometheus is None:
            self._prometheus = backend(self.cluster, self.mesh)
        return self._prometheus

    @property
    def telemetry(self) -> Telemetry:
        """The telemetry checks; a mesh they cannot check fails here with the reason."""
        reason = self.mesh.unsupported_reason()
        if reason:
            raise AssertionError(f"unsupported mesh: {reason}")
        prom = self.prometheus
        if prom is None:
            raise AssertionError(no_backend_reason(self.mesh))
        return Telemetry(self.cluster, prom, self.namespace, self.waits)

    @property
    def graph(self) -> Graph:
        if self._graph is None:
            self._graph = Graph(self.cluster, self.mesh, self.prometheus, self.namespace,
                                self.waits)
        return self._graph

    @property
    def queries(self) -> list[Query]:
        """The telemetry backend's queries so far (for the failure bundle)."""
        return self._prometheus.queries if self._prometheus is not None else []

    @property
    def graph_read(self) -> Graph | None:
        """The graph client if a step used it (for the report and the bundle)."""
        return self._graph

    def deploy_blockchain(self) -> dict[str, Deployed]:
        """composer, vp0, membersrvc and their Ingress, Ready with sidecars (once per
        namespace and process; later calls confirm readiness)."""
        self.deployed.update(rollout.deploy_blockchain(
            self.cluster, self.namespace, self.waits, cluster_writes=self.cluster_writes,
            directory=self.manifests))
        return self.deployed

    def deploy(self, names: list[str]) -> dict[str, Deployed]:
        """Only the named workloads, Ready with sidecars."""
        self.deployed.update(rollout.deploy(self.cluster, self.namespace, names, self.waits,
                                            directory=self.manifests))
        return self.deployed

    def pod(self, workload: str) -> str:
        """One pod of ``workload``; its absence is the failure."""
        pod = self.pod_of(workload)
        if pod is None:
            raise AssertionError(f"no pod of {workload} in {self.namespace}; look at "
                                 f"`kubectl get pods -n {self.namespace} -l app={workload}`")
        return pod

    def pod_of(self, workload: str) -> str | None:
        """One pod of a deployed workload (its sidecar answers for the service)."""
        deployed = self.deployed.get(workload)
        if deployed is not None and deployed.pods:
            return deployed.pods[0]
        pods = manifests.pods_of(self.cluster, self.namespace, workload)
        return pods[0]["metadata"]["name"] if pods else None

    def send(self, path: str, count: int) -> Sent:
        """Send ``count`` requests to ``path`` through the ingress, after recording the
        counters they will raise (where the mesh has a telemetry backend); every request
        must answer 200."""
        baselines: dict[str, float] = {}
        if self.prometheus is not None and self.mesh.unsupported_reason() is None:
            pods = {name: pod for name in self.deployed if (pod := self.pod_of(name))}
            baselines = self.telemetry.baselines(pods)
        sent = Sent(path, count, [], baselines)
        self.sent.append(sent)
        sent.answers = self.ingress.expect_ok(path, count)
        return sent

    def last_sent(self) -> Sent:
        if not self.sent:
            raise AssertionError("no traffic was sent in this scenario (a When step is "
                                 "missing)")
        return self.sent[-1]

    def expect_requests_counted(self, service: str, count: int, code: int) -> float:
        """The last requests sent are counted for ``service`` in the telemetry backend."""
        sent = self.last_sent()
        return self.telemetry.expect_requests_counted(
            service, code=code, count=count, baseline=sent.baselines.get(service, 0.0),
            sent_to=sent.path, pod=self.pod_of(service))

    def evidence(self) -> dict[str, object]:
        """What the scenario did and saw, for its failure bundle."""
        out: dict[str, object] = {"namespace": self.namespace, "host": self.host}
        if self._ingress is not None:
            out["via"] = self._ingress.entry.how
            out["requests"] = self._ingress.sent
            out["ingress"] = self._ingress.probes
        if self.fault is not None:
            out["fault"] = self.fault
        if self.replaced:
            out["replaced"] = self.replaced
        if self.access_log:
            out["access_log"] = self.access_log
        if self._graph is not None and self._graph.observed is not None:
            out["graph_source"] = self._graph.observed.note or self._graph.observed.source_name
        return out

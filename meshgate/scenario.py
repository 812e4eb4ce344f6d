"""What one scenario has seen and done: its one typed home.

A scenario's steps share a :class:`Scenario`: the cluster and mesh it runs on, its
namespace, the run's waits, and what its steps did (the workloads deployed, the requests
sent, the fault injected). It also builds, once, the clients of each area — the ingress
gateway, the telemetry backend, the service graph — whose checks the steps call. Those
clients remember what they read (queries, graphs, probes), which is what the failure
bundle and the report show; nothing is passed between steps through untyped keys.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from meshgate import (
    ambient,
    children,
    disruption,
    gateway_api,
    ingress,
    manifests,
    mixer,
    rollout,
    routes,
    security,
    sidecars,
)
from meshgate.chaos import Fault
from meshgate.cluster import Cluster
from meshgate.ingress import EntryPoint
from meshgate.live_traffic import LiveTraffic
from meshgate.mesh import GATEWAY_API, DataPlane, MeshInfo, NotOnThisCluster, data_plane
from meshgate.rollout import Deployed
from meshgate.servicegraph import Graph
from meshgate.telemetry import (
    Baselines,
    Query,
    QueryBackend,
    Telemetry,
    backend,
    no_backend_reason,
)
from meshgate.waiting import Waits

GATEWAY_API_OVERLAY = "overlays/gateway-api.yaml"
# The ways the workloads' ingress paths can be served, as the feature files name them, and
# the overlay of the manifests folder that declares each (None: the Background's Ingress).
INGRESS_KINDS: dict[str, str | None] = {
    "a Kubernetes Ingress": None,
    "an Istio Gateway and VirtualService": "overlays/istio-gateway.yaml",
    "a Gateway API Gateway and HTTPRoute": GATEWAY_API_OVERLAY,
}


@dataclass
class Sent:
    """Requests a When step sent, and the counters just before them."""

    path: str
    count: int
    answers: list[ingress.Answer]
    baselines: Baselines
    at: float = 0.0  # Unix time just before the first request
    # Bytes the destination ztunnels had received per service (ambient namespaces), and
    # the requests the namespace's waypoint had counted.
    tcp: ambient.PeerBaselines = field(default_factory=dict)
    waypoint: ambient.PeerBaselines = field(default_factory=dict)


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
    # Objects this scenario applied for itself (policies): removed when it ends, because
    # the namespace's later scenarios must not run under them.
    temporary: list[dict] = field(default_factory=list)
    callers: dict[str, security.Requests] = field(default_factory=dict)
    traffic: LiveTraffic | None = None
    change_output: str = ""
    # What the data-plane-dependent checks read (the sidecar's routes, ztunnel's view, a
    # waypoint), one line each, for the report.
    checked: list[str] = field(default_factory=list)
    _data_plane: DataPlane | None = field(default=None, repr=False)
    _ingress: ingress.Ingress | None = field(default=None, repr=False)
    _prometheus: QueryBackend | None = field(default=None, repr=False)
    _graph: Graph | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return ingress.scenario_host(self.namespace, self.mesh.host_domain)

    @property
    def data_plane(self) -> DataPlane:
        """The namespace's data plane, read once from its labels (meshgate.mesh)."""
        if self._data_plane is None:
            self._data_plane = data_plane(self.cluster, self.namespace)
        return self._data_plane

    @property
    def data_plane_seen(self) -> str | None:
        """The data plane, if a step has read it (for the report)."""
        return self._data_plane.describe() if self._data_plane is not None else None

    def require_sidecars(self, what: str) -> None:
        """A check of sidecars needs a namespace with sidecars: in an ambient one the
        scenario is skipped, saying so (elsewhere the check runs, and says what it
        found)."""
        plane = self.data_plane
        if plane.ambient:
            raise NotOnThisCluster(f"{what} needs sidecars; namespace {self.namespace} is in "
                                   f"the {plane.describe()} data plane")

    def expect_in_mesh(self, workload: str) -> list[str]:
        """Every pod of ``workload`` Ready in the namespace's data plane: injected with
        an istio-proxy sidecar, or captured by ztunnel without one (ambient)."""
        if self.data_plane.ambient:
            pods = ambient.expect_enrolled_and_ready(self.cluster, self.namespace, workload)
            self.checked.append(f"{workload}: Ready, captured by ztunnel ({ambient.REDIRECTION})"
                                ", no sidecar")
            return pods
        self.require_sidecars("an injected sidecar")
        self.checked.append(f"{workload}: Ready with an injected istio-proxy")
        return sidecars.expect_injected_and_ready(self.cluster, self.namespace, workload)

    def expect_data_plane_route(self, client: str, service: str, port: int) -> str:
        """``client``'s data plane routes ``service:port``: its sidecar's route table; on
        ambient, the waypoint's config where the namespace has one, else the ztunnel of
        ``client``'s node; says which it checked."""
        plane = self.data_plane
        if not plane.ambient:
            self.require_sidecars("a sidecar's route table")
            routes.expect_sidecar_route(self.cluster, self.namespace, client, service, port,
                                        self.waits)
            note = f"the sidecar of {client} routes {service}:{port}"
        elif plane.waypoint:
            found = ambient.expect_waypoint_route(self.cluster, self.namespace,
                                                  plane.waypoint, service, port, self.waits)
            note = f"the waypoint {plane.waypoint} routes {service}:{port} ({found})"
        else:
            found_z = ambient.expect_ztunnel_route(self.cluster, self.mesh, self.namespace,
                                                   client, service, port, self.waits)
            note = f"ztunnel of {client}'s node: {found_z.describe()}"
        self.checked.append(note)
        return note

    @property
    def ingress(self) -> ingress.Ingress:
        """The ingress gateway's client; its entry point is found on first use."""
        if self._ingress is None:
            self._ingress = ingress.Ingress(self.entry_for(self.host), self.host, self.waits)
        return self._ingress

    def entry_for(self, host: str) -> EntryPoint:
        """How requests for ``host`` reach the ingress gateway (ingress.entry_for)."""
        return ingress.entry_for(self.cluster, self.mesh, host, self.namespace)

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
            directory=self.manifests, host=self.host))
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
        baselines = Baselines()
        if self.prometheus is not None and self.mesh.unsupported_reason() is None:
            pods = {name: pod for name in self.deployed if (pod := self.pod_of(name))}
            baselines = self.telemetry.baselines(pods)
        sent = Sent(path, count, [], baselines, time.time())
        if self.prometheus is not None and self.data_plane.ambient:
            sent.tcp = ambient.tcp_baselines(self.prometheus, self.namespace)
            if self.data_plane.waypoint:
                sent.waypoint = ambient.waypoint_baselines(self.prometheus, self.namespace)
        self.sent.append(sent)
        sent.answers = self.ingress.expect_ok(path, count)
        return sent

    def last_sent(self) -> Sent:
        if not self.sent:
            raise AssertionError("no traffic was sent in this scenario (a When step is "
                                 "missing)")
        return self.sent[-1]

    def expect_requests_counted(self, service: str, count: int, code: int,
                                labels: dict[str, str] | None = None) -> float:
        """The last requests sent are counted for ``service`` (with ``labels``) in the
        telemetry backend."""
        sent = self.last_sent()
        plane = self.data_plane
        if plane.ambient:
            telemetry = self.telemetry
            # The caller's identity is where its HBONE ends: at the destination's ztunnel,
            # or at the waypoint (the destination's ztunnel then sees the waypoint's).
            peer = ambient.peer_of(labels)
            direct = {} if plane.waypoint else peer
            got = ambient.expect_connections_counted(
                telemetry.prometheus, self.namespace, service,
                ambient.baseline(sent.tcp, service, direct), self.waits, sent.path, direct)
            self.checked.append(f"the destination ztunnel counts connections to {service}"
                                f"{_from(direct)} ({got:g} bytes received)")
            if plane.waypoint:
                counted = ambient.expect_waypoint_requests(
                    telemetry.prometheus, self.namespace, service, code=code, count=count,
                    baseline=ambient.baseline(sent.waypoint, service, peer), waits=self.waits,
                    sent_to=sent.path, peer=peer)
                self.checked.append(f"the waypoint {plane.waypoint} counts {counted:g} "
                                    f"requests to {service}{_from(peer)}")
            return got
        return self.telemetry.expect_requests_counted(
            service, code=code, count=count, baselines=sent.baselines, sent_to=sent.path,
            pod=self.pod_of(service), labels=labels)

    def expect_mixer_logged(self, service: str, code: int) -> list[dict]:
        """The last requests sent appear in the mixer's access log (Mixer-era meshes; the
        seed's ``oc logs istio-mixer | grep composer``)."""
        sent = self.last_sent()
        wanted = mixer.Wanted(self.namespace, service, sent.path, code, sent.at)
        found = mixer.expect_logged(self.cluster, self.mesh, wanted, sent.count, self.waits)
        self.access_log = [json.dumps(e, sort_keys=True) for e in found[-3:]]
        return found

    def expect_mixer_counted(self, service: str, count: int, code: int) -> float:
        """The last requests sent are counted by Mixer's Prometheus adapter (scraped as
        job ``istio-mesh``)."""
        mixer.require_mixer(self.mesh)
        return self.expect_requests_counted(service, count, code,
                                            labels={"job": mixer.METRICS_JOB})

    def apply_for_scenario(self, obj: dict) -> dict:
        """Apply ``obj`` in the scenario's namespace until the scenario ends."""
        applied = self.cluster.apply(obj, self.namespace)
        self.temporary.append(obj)
        return applied

    def remove(self, kind: str) -> list[str]:
        """Delete the scenario's temporary objects of ``kind``; their names."""
        gone = [o for o in self.temporary if o["kind"] == kind]
        if not gone:
            raise AssertionError(f"this scenario applied no {kind} to remove")
        for obj in gone:
            self.cluster.delete(obj["apiVersion"], kind, obj["metadata"]["name"],
                                self.namespace)
            self.temporary.remove(obj)
        return [o["metadata"]["name"] for o in gone]

    def clean_up(self) -> None:
        """Stop its traffic, remove what the scenario applied for itself (newest first)."""
        if self.traffic is not None:
            self.traffic.stop()
        while self.temporary:
            obj = self.temporary.pop()
            self.cluster.delete(obj["apiVersion"], obj["kind"], obj["metadata"]["name"],
                                self.namespace)

    def caller(self, name: str, *, in_mesh: bool) -> security.Requests:
        """A pod to make requests from, deployed once per namespace and kept: inside the
        mesh (a sidecar, its own identity) or outside it."""
        found = self.callers.get(name)
        if found is not None:
            return found
        who = security.Caller(name, in_mesh)
        manifests.apply_objects(self.cluster, who.objects(), self.namespace)
        ready = rollout.wait_ready(self.cluster, self.namespace, [name], self.waits,
                                   sidecar=in_mesh)
        found = security.Requests(self.cluster, self.namespace, ready[name].pods[0], who)
        self.callers[name] = found
        return found

    def use_ingress(self, kind: str) -> str:
        """Serve the workloads' ingress paths through ``kind`` (a key of
        :data:`INGRESS_KINDS`) from now on in this scenario; says how it is reached.

        The Kubernetes Ingress is what the Background deployed. An Istio Gateway and
        VirtualService get the namespace's own host on the shared ingress gateway (beside
        the Ingress's); a Gateway API Gateway gets Istio's deployment of its own. Both are
        removed when the scenario ends."""
        if kind not in INGRESS_KINDS:
            raise AssertionError(f"unknown ingress kind {kind!r}: {', '.join(INGRESS_KINDS)}")
        overlay = INGRESS_KINDS[kind]
        if overlay is None:
            return self.ingress.entry.how
        if overlay == GATEWAY_API_OVERLAY:
            if not self.mesh.gateway_api:
                raise NotOnThisCluster("the cluster does not serve the Gateway API "
                                       f"({GATEWAY_API} Gateway): install its standard "
                                       "CRDs to check ingress through it")
            if not self.mesh.gateway_class:
                raise NotOnThisCluster("there is no GatewayClass istio: Istio's Gateway API "
                                       "support is not installed")
        objects = manifests.load(self.manifests / overlay).objects
        host = ingress.variant_host("istio", self.host)
        for obj in objects:
            self.apply_for_scenario(ingress.isolate(obj, host))
        if overlay == GATEWAY_API_OVERLAY:
            gateways = [o for o in objects if o["kind"] == "Gateway"]
            for gw in gateways:
                gateway_api.expect_programmed(self.cluster, self.namespace,
                                              gw["metadata"]["name"], self.waits)
            for route in (o for o in objects if o["kind"] in ("HTTPRoute", "GRPCRoute")):
                gateway_api.expect_route_accepted(self.cluster, self.namespace,
                                                  route["kind"], route["metadata"]["name"],
                                                  self.waits)
            where = gateway_api.deployment_of(self.namespace, gateways[0]["metadata"]["name"])
            self._ingress = ingress.Ingress(ingress.entry_point(self.cluster, where),
                                            self.host, self.waits)
        else:
            entry = self.entry_for(host) if self.mesh.openshift else self.ingress.entry
            self._ingress = ingress.Ingress(entry, host, self.waits)
        return self._ingress.entry.how

    def require_mtls(self) -> None:
        """Mutual TLS checks need auto mTLS: without it the mesh's own hops are plaintext
        (a STRICT policy would cut them), so those scenarios say so and are skipped."""
        if not self.mesh.auto_mtls:
            raise NotOnThisCluster(f"auto mTLS is off in this mesh (enableAutoMtls: false in "
                                   f"the mesh config of {self.mesh.namespace}/istio): its "
                                   "hops are plaintext unless a DestinationRule asks for mTLS")

    def require_mutual_tls(self, mode: str) -> dict:
        """A PeerAuthentication of ``mode`` for the namespace, until the scenario ends."""
        if mode == "STRICT":
            self.require_mtls()
        return self.apply_for_scenario(security.peer_authentication(mode))

    def principal_labels(self, caller: str) -> dict[str, str]:
        """The labels the receiving sidecar reports for ``caller`` over mutual TLS:
        ``the ingress gateway``, or a workload of the namespace (its own service account,
        named after it, as the manifests give every workload)."""
        self.require_mtls()
        if caller == "the ingress gateway":
            gateway = self.mesh.ingress_gateway
            if gateway.service_account is None:
                raise AssertionError(f"no ingress gateway pod in {gateway.namespace}: its "
                                     "identity (service account) is unknown")
            return security.mtls_labels(self.mesh, gateway.namespace,
                                        gateway.service_account, gateway.service)
        return security.mtls_labels(self.mesh, self.namespace, caller, caller)

    def expect_from_caller(self, name: str, service: str, outcome: str) -> security.Answer:
        """A request from the caller ``name`` (deployed before) to ``service``'s first port
        is ``outcome``: served, refused (no HTTP answer) or denied (RBAC's 403)."""
        check = security.OUTCOMES.get(outcome)
        if check is None:
            raise AssertionError(f"unknown outcome {outcome!r}: {', '.join(security.OUTCOMES)}")
        requests = self.callers.get(name)
        if requests is None:
            raise AssertionError(f"no client {name!r} was deployed in this scenario (a Given "
                                 "step is missing)")
        svc = self.cluster.get("v1", "Service", service, self.namespace) or {}
        ports = (svc.get("spec") or {}).get("ports") or []
        if not ports:
            raise AssertionError(f"no Service {service} with a port in {self.namespace}")
        url = security.service_url(self.cluster, self.namespace, service, ports[0]["port"],
                                   "/", by_address=not requests.caller.in_mesh)
        return requests.expect(url, outcome, check, self.waits)

    def start_traffic(self, artifacts: Path) -> LiveTraffic:
        """Requests through the ingress (new and kept connections to the workloads' paths)
        from now until the scenario checks what they saw; recorded under ``artifacts``."""
        if self.traffic is not None:
            raise AssertionError("traffic already flows in this scenario")
        out = artifacts / "traffic" / f"{self.namespace}-{time.time_ns()}.jsonl"
        entry = self.ingress.entry
        self.traffic = LiveTraffic.start(entry.base_url, self.host, out,
                                         server_name=entry.server_name, ca_pem=entry.ca_pem)
        return self.traffic

    def run_change(self, argv: list[str], timeout: float) -> str:
        """Run a change command as ``meshgate change`` does (KUBECONFIG and
        MESHGATE_NAMESPACE in its environment), bounded; its output; a failure is the
        scenario's."""
        kubeconfig = self.cluster.kubeconfig or os.environ.get("KUBECONFIG", "")
        env = {**os.environ, "KUBECONFIG": str(kubeconfig),
               "MESHGATE_NAMESPACE": self.namespace, "MESHGATE_NAMESPACES": self.namespace}
        status, self.change_output, timed_out = children.communicate(argv, env=env,
                                                                     timeout=timeout)
        if status != 0 or timed_out:
            raise AssertionError(f"the change `{' '.join(argv)}` "
                                 + (f"did not finish in {timeout:g}s" if timed_out
                                    else f"exited with {status}")
                                 + f"; its output ends: {self.change_output[-1500:]}")
        return self.change_output

    def traffic_flows(self) -> list[disruption.FlowStats]:
        if self.traffic is None:
            raise AssertionError("no traffic flowed in this scenario (a Given step is missing)")
        return self.traffic.flows()

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
        if self.temporary:
            out["applied_for_the_scenario"] = [f"{o['kind']}/{o['metadata']['name']}"
                                               for o in self.temporary]
        for name, requests in self.callers.items():
            out[f"requests_from_{name}"] = [a.describe() for a in requests.answers]
        if self.traffic is not None:
            out["traffic_record"] = str(self.traffic.out)
        if self.change_output:
            out["change_output"] = self.change_output[-5000:]
        if self._data_plane is not None:
            out["data_plane"] = self._data_plane.describe()
        if self.checked:
            out["checked"] = list(self.checked)
        if self._graph is not None and self._graph.observed is not None:
            out["graph_source"] = self._graph.observed.note or self._graph.observed.source_name
        return out


def _from(peer: dict[str, str]) -> str:
    """`` from <principal> over <policy>`` for a check that named its caller."""
    if not peer:
        return ""
    return (f" from {peer.get('source_principal', 'any caller')} over "
            f"{peer.get('connection_security_policy', 'any security policy')}")

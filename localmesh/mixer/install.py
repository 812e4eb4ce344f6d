"""Installs an Istio 1.4-style mesh with Mixer (``localmesh up --mesh mixer``), as the
1.4 ``demo`` profile left a cluster, with the names a client then sees.

In ``istio-system`` (istio/istio 1.4 ``manifests/``, ``install/kubernetes/helm``):

- ``istio-pilot`` (Deployment and Service: ``grpc-xds`` 15010, ``https-xds`` 15011,
  ``http-legacy-discovery`` 8080, ``http-monitoring`` 15014; container ``discovery``,
  image ``istio/pilot:1.4.10``): localmesh's istiod in process behind it (as for the
  default mesh), serving 1.4's sidecars; its CA is on 15012 (see injection.py);
- ``istio-telemetry`` (Service ``grpc-mixer`` 9091, ``grpc-mixer-mtls`` 15004,
  ``http-monitoring`` 15014, ``prometheus`` 42422; Deployment labelled ``istio: mixer``,
  ``istio-mixer-type: telemetry``, container ``mixer``) and ``istio-policy`` (the same
  program, ``http-policy-monitoring`` 15014): Mixer, localmesh/mixer/server.py;
- the mesh config: ``mixerReportServer:
  istio-telemetry.istio-system.svc.cluster.local:9091`` (sidecars report there,
  xds.py), ``mixerCheckServer`` and ``disablePolicyChecks: true``, auto mTLS off (1.4's
  default); the ``config.istio.io`` CRDs and the default telemetry objects (config.py);
- ``istio-ingressgateway`` (LoadBalancer, ports 80 → 8080 and 443 → 8443, ``status-port``
  15020) with a 1.4 proxy;
- the addons: ``prometheus`` (port 9090, the 1.4 scrape jobs, config.py), ``kiali``
  (20001) and ``servicegraph`` (8088, which Istio 1.1 last shipped) reading Mixer's
  ``istio_requests_total`` from Prometheus.

Sidecars are injected as 1.4 injected them (injection.py). Not here: Galley, Citadel (the
CA is istio-pilot's), the sidecar injector's own Deployment (the injector is an admission
step), Grafana and tracing.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from localmesh.api.objects import ObjectAPI
from localmesh.api.server import Route
from localmesh.api.status import ApiError
from localmesh.istio import meshconfig
from localmesh.istio.injector import PROXY_MOUNTS, Injector, proxy_volumes
from localmesh.istio.istiod import Istiod
from localmesh.istio.mesh import ISTIO_CRDS, crd
from localmesh.istio.names import ISTIO_NAMESPACE as NS
from localmesh.istio.security.ca import MeshCA
from localmesh.istio.security.ca_server import TokenReview
from localmesh.istio.security.rootcert import RootCertPublisher
from localmesh.mixer import config
from localmesh.mixer.injection import PILOT, PROXY_IMAGE, VERSION, MixerEraInjection

SD_PATH = "/localmesh/v1/prometheus-targets/istio-1.4"
TELEMETRY = f"istio-telemetry.{NS}.svc.cluster.local:9091"


def _deployment(name: str, labels: dict, containers: list[dict], *, service_account: str,
                annotations: dict | None = None, volumes: list | None = None) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS,
                         "labels": {**labels, "release": "istio"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {
                         "labels": dict(labels),
                         "annotations": {"sidecar.istio.io/inject": "false",
                                         **(annotations or {})}},
                         "spec": {"serviceAccountName": service_account,
                                  "containers": containers, "volumes": volumes or [],
                                  "terminationGracePeriodSeconds": 2}}}}


def _service(name: str, selector: dict, ports: list[tuple[str, int, int]],
             type_: str = "ClusterIP") -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS,
                         "labels": {**selector, "release": "istio"}},
            "spec": {"type": type_, "selector": dict(selector),
                     "ports": [{"name": n, "port": p, "targetPort": t}
                               for n, p, t in ports]}}


def _mixer(kind: str) -> dict:
    labels = {"app": kind, "istio": "mixer", "istio-mixer-type": kind}
    container = {
        "name": "mixer", "image": f"docker.io/istio/mixer:{VERSION}",
        "args": ["--monitoringPort=15014", "--address", "unix:///sock/mixer.socket",
                 "--log_output_level=default:info", "--configStoreURL=mk://default",
                 f"--configDefaultNamespace={NS}", "--useAdapterCRDs=false",
                 "--useTemplateCRDs=false", "--trace_zipkin_url=http://zipkin."
                                            f"{NS}:9411/api/v1/spans"],
        "env": [{"name": "GODEBUG", "value": "gctrace=1"},
                {"name": "GOMAXPROCS", "value": "6"}],
        "ports": [{"containerPort": 9091}, {"containerPort": 15014},
                  {"containerPort": 42422}],
        "livenessProbe": {"httpGet": {"path": "/version", "port": 15014},
                          "initialDelaySeconds": 5, "periodSeconds": 5},
        "readinessProbe": {"httpGet": {"path": "/version", "port": 15014},
                           "periodSeconds": 2}}
    return _deployment(f"istio-{kind}", labels, [container],
                       service_account="istio-mixer-service-account")


class MixerMesh:
    """The Mixer-era mesh of one instance (the sidecar mesh's ``Mesh``, for 1.4)."""

    def __init__(self, api: ObjectAPI, istiod_address: str, sd_base: str,
                 token_review: TokenReview) -> None:
        self.api = api
        self.address = istiod_address
        self.sd_base = sd_base
        self.ca = MeshCA.self_signed()
        self.istiod = Istiod(api, istiod_address, self.ca, token_review,
                             host=f"{PILOT}.svc")
        self.root_certs = RootCertPublisher(api, self.ca.root_pem)

    def proxy_config(self) -> dict:
        return {"discoveryAddress": f"{PILOT}.svc:15010", "proxyAdminPort": 15000,
                "statusPort": 15020, "controlPlaneAuthPolicy": "NONE",
                "serviceCluster": "istio-proxy", "drainDuration": "1s",
                "proxyMetadata": {"ECC_SIGNATURE_ALGORITHM": "ECDSA"}}

    def mesh(self) -> dict:
        """1.4's mesh config, with localmesh's defaultConfig (the injector reads it)."""
        mesh = meshconfig.default_mesh(self.proxy_config())
        mesh.update({"enableAutoMtls": False, "disablePolicyChecks": True,
                     "mixerReportServer": TELEMETRY,
                     "mixerCheckServer": f"istio-policy.{NS}.svc.cluster.local:9091",
                     "reportBatchMaxEntries": 100, "reportBatchMaxTime": "1s",
                     "ingressService": "istio-ingressgateway",
                     "ingressControllerMode": "STRICT", "ingressClass": "istio"})
        mesh.pop("extensionProviders", None)
        mesh.pop("enablePrometheusMerge", None)
        return mesh

    def sd_routes(self) -> list[Route]:
        """Prometheus's discovery of the 1.4 jobs, on localmesh's discovery server."""
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(config.targets(self.api.store,
                                                    request.match_info["job"]))
        return [("GET", f"{SD_PATH}/{{job}}", handler)]

    def _create(self, obj: dict) -> None:
        try:
            self.api.create(self.api.rt(obj["apiVersion"], obj["kind"]),
                            obj["metadata"].get("namespace", ""), obj)
        except ApiError as exc:
            if exc.code != 409:
                raise

    async def install(self) -> None:
        await self.istiod.start()
        self._create({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": NS, "labels": {"istio-injection": "disabled"}}})
        for spec in ISTIO_CRDS:
            self._create(crd(*spec))
        for body in config.crds():
            self._create(body)
        for sa in ("default", "istio-pilot-service-account", "istio-mixer-service-account",
                   "istio-ingressgateway-service-account", "prometheus", "kiali"):
            self._create({"apiVersion": "v1", "kind": "ServiceAccount",
                          "metadata": {"name": sa, "namespace": NS}})
        self._create(self.ca.secret())
        self._create(meshconfig.configmap(self.mesh()))
        self.root_certs.start()
        for obj in config.telemetry_objects():
            self._create(obj)
        pilot = {"app": "pilot", "istio": "pilot"}
        self._create(_service("istio-pilot", pilot, [
            ("grpc-xds", 15010, 15010), ("https-xds", 15011, 15011),
            ("https-dns", 15012, 15012), ("http-legacy-discovery", 8080, 8080),
            ("http-monitoring", 15014, 15014)]))
        self._create(_service("istio-telemetry", {"istio": "mixer",
                                                  "istio-mixer-type": "telemetry"}, [
            ("grpc-mixer", 9091, 9091), ("grpc-mixer-mtls", 15004, 15004),
            ("http-monitoring", 15014, 15014), ("prometheus", 42422, 42422)]))
        self._create(_service("istio-policy", {"istio": "mixer", "istio-mixer-type": "policy"},
                              [("grpc-mixer", 9091, 9091), ("grpc-mixer-mtls", 15004, 15004),
                               ("http-policy-monitoring", 15014, 15014)]))
        gateway = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
        self._create(_service("istio-ingressgateway", gateway, [
            ("status-port", 15020, 15020), ("http2", 80, 8080), ("https", 443, 8443)],
            "LoadBalancer"))
        for name, port in (("prometheus", 9090), ("kiali", 20001), ("servicegraph", 8088)):
            self._create(_service(name, {"app": name}, [(f"http-{name}" if name ==
                                                         "prometheus" else "http", port,
                                                         port)]))
        self._create({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "prometheus", "namespace": NS,
                                   "labels": {"app": "prometheus"}},
                      "data": {"prometheus.yml": config.prometheus_config(self.sd_base)}})
        self._create(_deployment("istio-pilot", pilot, [{
            "name": "discovery", "image": f"docker.io/istio/pilot:{VERSION}",
            "args": ["discovery", "--monitoringAddr=:15014",
                     "--log_output_level=default:info", "--domain", "cluster.local",
                     "--secureGrpcAddr", "", "--keepaliveMaxServerConnectionAge", "30m"],
            "env": [{"name": "ISTIOD_UPSTREAM", "value": self.address}],
            "ports": [{"containerPort": p} for p in (8080, 15010, 15012, 15014)],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 15014},
                               "periodSeconds": 3, "timeoutSeconds": 5}}],
            service_account="istio-pilot-service-account"))
        self._create(_mixer("telemetry"))
        self._create(_mixer("policy"))
        self._create(self._gateway(gateway))
        self._create(_deployment("prometheus", {"app": "prometheus"}, [{
            "name": "prometheus", "image": "docker.io/prom/prometheus:v2.12.0",
            "args": ["--storage.tsdb.retention.time=6h",
                     "--config.file=$(LOCALMESH_MOUNT_ETC_PROMETHEUS)/prometheus.yml",
                     "--storage.tsdb.path=$(LOCALMESH_MOUNT_DATA)",
                     "--web.listen-address=$(BIND_ADDRESS):9090", "--log.level=warn"],
            "ports": [{"containerPort": 9090, "name": "http"}],
            "readinessProbe": {"httpGet": {"path": "/-/ready", "port": 9090},
                               "periodSeconds": 5, "timeoutSeconds": 4},
            "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/prometheus"},
                             {"name": "storage-volume", "mountPath": "/data"}]}],
            service_account="prometheus",
            volumes=[{"name": "config-volume", "configMap": {"name": "prometheus"}},
                     {"name": "storage-volume", "emptyDir": {}}]))
        for name, image, port, health in (
                ("kiali", "quay.io/kiali/kiali:v1.9", 20001, "/kiali/healthz"),
                ("servicegraph", "docker.io/istio/servicegraph:1.1.0", 8088, "/healthz")):
            self._create(_deployment(name, {"app": name}, [{
                "name": name, "image": image,
                "env": [{"name": "PORT", "value": str(port)},
                        {"name": "PROMETHEUS_URL", "value":
                            "http://$(PROMETHEUS_SERVICE_HOST):$(PROMETHEUS_SERVICE_PORT)"},
                        *([{"name": "ISTIO_NAMESPACE", "value": NS}] if name == "kiali"
                          else [])],
                "ports": [{"containerPort": port, "name": "http"}],
                "readinessProbe": {"httpGet": {"path": health, "port": port},
                                   "periodSeconds": 5}}],
                service_account="kiali" if name == "kiali" else "default"))
        self.api.admission.add_mutator(("", "pods"), Injector(self.proxy_config(),
                                                              MixerEraInjection()))

    def _gateway(self, labels: dict) -> dict:
        env = {"POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
               "POD_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
               "INSTANCE_IP": {"fieldRef": {"fieldPath": "status.podIP"}},
               "SERVICE_ACCOUNT": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}}
        plain = {"PROXY_CONFIG": json.dumps(self.proxy_config()),
                 "ISTIO_META_WORKLOAD_NAME": "istio-ingressgateway",
                 "ISTIO_META_OWNER": f"kubernetes://apis/apps/v1/namespaces/{NS}/deployments/"
                                     "istio-ingressgateway",
                 "ISTIO_META_ROUTER_MODE": "sni-dnat", "ISTIO_META_CLUSTER_ID": "Kubernetes",
                 "ISTIO_META_APP": "istio-ingressgateway",
                 "ISTIO_META_CANONICAL_SERVICE": "istio-ingressgateway",
                 "PILOT_CERT_PROVIDER": "istiod", "CA_ADDR": f"{PILOT}.svc:15012",
                 "TRUST_DOMAIN": "cluster.local", "SDS_ENABLED": "false"}
        container = {
            "name": "istio-proxy", "image": PROXY_IMAGE,
            "args": ["proxy", "router", "--domain", "$(POD_NAMESPACE).svc.cluster.local",
                     "--log_output_level=default:info", "--drainDuration", "45s",
                     "--parentShutdownDuration", "1m0s", "--connectTimeout", "10s",
                     "--serviceCluster", "istio-ingressgateway", "--proxyLogLevel=warning",
                     "--proxyComponentLogLevel=misc:error", "--proxyAdminPort", "15000",
                     "--statusPort", "15020", "--controlPlaneAuthPolicy", "NONE",
                     "--discoveryAddress", f"{PILOT}:15010"],
            "env": [*({"name": k, "valueFrom": v} for k, v in env.items()),
                    *({"name": k, "value": v} for k, v in plain.items())],
            "ports": [{"containerPort": 15020}, {"containerPort": 8080},
                      {"containerPort": 8443}, {"containerPort": 15090, "protocol": "TCP",
                                                "name": "http-envoy-prom"}],
            "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15020},
                               "periodSeconds": 2, "timeoutSeconds": 3},
            "volumeMounts": [{"name": n, "mountPath": m} for n, m in PROXY_MOUNTS]}
        return _deployment("istio-ingressgateway", labels, [container],
                           service_account="istio-ingressgateway-service-account",
                           volumes=proxy_volumes())

    async def wait_ready(self, timeout: float = 30.0) -> list[str]:
        deadline = time.monotonic() + timeout
        pending: list[str] = []
        while time.monotonic() < deadline:
            pending = [d["metadata"]["name"] for d in self.api.store.list(("apps",
                                                                          "deployments"), NS)
                       if (d.get("status") or {}).get("availableReplicas", 0) <
                       d["spec"].get("replicas", 1)]
            if not pending:
                return []
            await asyncio.sleep(0.02)
        return pending

    async def uninstall(self) -> None:
        await self.root_certs.stop()
        await self.istiod.stop()

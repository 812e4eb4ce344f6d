"""Installs the mesh into a localmesh instance, as ``istioctl install --set profile=demo``
plus Istio's ``samples/addons`` would on a real cluster.

Everything is created through the object API, so it is visible to clients exactly as on a
real cluster: the ``istio-system`` namespace; Istio's CRDs; Deployments, pods and Services
for ``istiod``, ``istio-ingressgateway`` (a LoadBalancer Service in front of a real Envoy
in router mode) and the addons ``prometheus`` (Debian's real Prometheus, scraping every
second), ``kiali`` (20001) and ``servicegraph`` (8088); the Gateway API's standard-channel
CRDs with the ``istio`` GatewayClass (localmesh/istio/gatewayapi/). istiod's logic runs in
this process (see istiod.py); its pod forwards to it. The injector joins the admission
chain.

Revisions, as a real install has them (revisions.py, webhooks.py): the default revision's
istiod Deployment and Service labelled ``istio.io/rev: default``, its injector's
MutatingWebhookConfiguration ``istio-sidecar-injector`` and ConfigMap
``istio-sidecar-injector`` (whose selectors and values decide injection), and a reconciler
that brings up one more istiod for every ``istiod-<rev>`` Deployment applied later. The
ingress gateway is an injected gateway, as the gateway chart deploys it (``image: auto``,
``inject.istio.io/templates: gateway``): its proxy is completed by whichever revision's
webhook selects its pod, so a restart after the ``default`` tag moved, or an
``istio.io/rev`` label on its pod template, moves it to another revision (istio.io
"Installing Gateways", in-place upgrade).

Security, as a real install has it: the mesh CA's root in Secret ``istio-ca-secret``,
published as ConfigMap ``istio-ca-root-cert`` in every namespace (security/rootcert.py);
the mesh config in ConfigMap ``istio`` (meshconfig.py); the ingress gateway running as
ServiceAccount ``istio-ingressgateway-service-account`` with the gateway chart's token and
root-certificate volumes, so it gets its workload certificate like any sidecar.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time

import yaml

from localmesh.api.objects import ObjectAPI
from localmesh.api.status import ApiError
from localmesh.controllers.base import Reconciler
from localmesh.istio import meshconfig, webhooks
from localmesh.istio.gatewayapi import crds as gatewayapi_crds
from localmesh.istio.gatewayapi.deployment import GatewayDeployments
from localmesh.istio.gatewayapi.status import GatewayStatus
from localmesh.istio.inject_server import InjectionWebhook
from localmesh.istio.injector import (
    GATEWAY_TEMPLATE,
    ISTIO_VERSION,
    PROXY_HUB,
    TEMPLATES_ANNOTATION,
    Injector,
    Platform,
    inject_gateway,
    revision_of,
)
from localmesh.istio.istiod import Istiod
from localmesh.istio.names import ISTIO_NAMESPACE, ISTIOD_HOST
from localmesh.istio.revisions import ControlPlanes
from localmesh.istio.security.ca import MeshCA
from localmesh.istio.security.ca_server import TokenReview
from localmesh.istio.security.rootcert import RootCertPublisher

NS = ISTIO_NAMESPACE
GATEWAY_SA = "istio-ingressgateway-service-account"  # the gateway chart's ServiceAccount
SCRAPE_INTERVAL = "1s"
# How often Prometheus polls localmesh for targets. The list is kept up to date by the
# service controller, so a poll is cheap; a short interval keeps a new pod from missing
# the discovery manager's next 5 s batch by up to a whole interval.
SD_REFRESH = "250ms"

ISTIO_CRDS = [
    ("networking.istio.io", "VirtualService", "virtualservices", ["vs"], True),
    ("networking.istio.io", "Gateway", "gateways", ["gw"], True),
    ("networking.istio.io", "DestinationRule", "destinationrules", ["dr"], True),
    ("networking.istio.io", "ServiceEntry", "serviceentries", ["se"], True),
    ("networking.istio.io", "Sidecar", "sidecars", [], True),
    ("networking.istio.io", "EnvoyFilter", "envoyfilters", [], True),
    ("telemetry.istio.io", "Telemetry", "telemetries", ["telemetry"], True),
    ("security.istio.io", "PeerAuthentication", "peerauthentications", ["pa"], True),
    ("security.istio.io", "AuthorizationPolicy", "authorizationpolicies", ["ap"], True),
]


def crd(group: str, kind: str, plural: str, short: list[str], namespaced: bool,
        versions: tuple[str, ...] = ("v1", "v1beta1", "v1alpha3")) -> dict:
    """A CRD with preserve-unknown-fields schemas, served in Istio's API versions."""
    if group == "telemetry.istio.io":
        versions = ("v1", "v1alpha1")
    if group == "security.istio.io":
        versions = ("v1", "v1beta1")
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields":
                                  True}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}", "labels": {"app": "istio-pilot",
                                                             "release": "istio"}},
        "spec": {"group": group, "scope": "Namespaced" if namespaced else "Cluster",
                 "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                           "listKind": f"{kind}List", "shortNames": short,
                           "categories": ["istio-io", group.split(".")[0] + "-istio-io"]},
                 "versions": [{"name": v, "served": True, "storage": i == 0,
                               "schema": schema, "subresources": {"status": {}}}
                              for i, v in enumerate(versions)]},
    }


def _deployment(name: str, labels: dict, container: dict, *, annotations: dict | None = None,
                volumes: list | None = None, service_account: str = "default") -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": dict(labels)},
        "spec": {"replicas": 1, "selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": {"labels": dict(labels),
                                           "annotations": annotations or {}},
                              "spec": {"containers": [container],
                                       "serviceAccountName": service_account,
                                       "volumes": volumes or [],
                                       "terminationGracePeriodSeconds": 2}}},
    }


def _service(name: str, labels: dict, ports: list[dict], type_: str = "ClusterIP") -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS, "labels": dict(labels)},
            "spec": {"type": type_, "selector": dict(labels), "ports": ports}}


def injector_configmap(revision: str, version: str) -> dict:
    """ConfigMap ``istio-sidecar-injector[-<rev>]`` (the chart's
    istiod-injector-configmap.yaml): ``values`` (the proxy image's hub and tag) and
    ``config`` (the policy); localmesh's templates are its own (injector.py)."""
    suffix = "" if revision == webhooks.DEFAULT else f"-{revision}"
    values = {"global": {"hub": PROXY_HUB, "tag": version, "istioNamespace": NS},
              "revision": "" if revision == webhooks.DEFAULT else revision}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"istio-sidecar-injector{suffix}", "namespace": NS,
                         "labels": {"istio.io/rev": revision, "release": "istio",
                                    "operator.istio.io/component": "Pilot"}},
            "data": {"values": json.dumps(values, sort_keys=True),
                     "config": "policy: enabled\ndefaultTemplates: [sidecar]\n"}}


def prometheus_config(sd_url: str) -> str:
    """Istio's addon scrape config (samples/addons/prometheus.yaml, job kubernetes-pods),
    with discovery through http_sd_configs since Debian's build lacks kubernetes_sd."""
    return yaml.safe_dump({
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL,
                   "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [{
            "job_name": "kubernetes-pods",
            "http_sd_configs": [{"url": sd_url, "refresh_interval": SD_REFRESH}],
            "relabel_configs": [
                {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
            ],
        }],
    }, sort_keys=False)


class Mesh:
    """The mesh of one localmesh instance.

    ``istiod_address`` is the loopback address the in-process istiod serves on (its pod
    forwards there); ``prometheus_sd_url`` is localmesh's discovery endpoint that
    Prometheus polls for its targets (localmesh/controllers/serviceproxy.py);
    ``injection`` a platform's own injection rules and template (OpenShift's).
    """

    def __init__(self, api: ObjectAPI, istiod_address: str, prometheus_sd_url: str,
                 token_review: TokenReview, injection: Platform | None = None) -> None:
        self.api = api
        self.injection = injection
        self.address = istiod_address
        self.prometheus_sd_url = prometheus_sd_url
        # istiod's self-signed CA; ``token_review`` checks the callers' ServiceAccount
        # tokens (the API server's authenticator).
        self.ca = MeshCA.self_signed()
        self.istiod = Istiod(api, istiod_address, self.ca, token_review)
        self.root_certs = RootCertPublisher(api, self.ca.root_pem)
        self.gateway_api: list[Reconciler] = []
        # The default revision is this istiod; revisions applied later get their own.
        self.injector = Injector(self.proxy_config(), injection)
        self.istiod.webhook_routes = InjectionWebhook(api, self.injector,
                                                      webhooks.DEFAULT).routes()
        self.revisions = ControlPlanes(api, self.ca, token_review, self.istiod, self.injector)
        self._gateway_pod: dict = {}

    def proxy_config(self) -> dict:
        """meshConfig.defaultConfig, as the injector passes it in PROXY_CONFIG.

        ``proxyMetadata.ECC_SIGNATURE_ALGORITHM: ECDSA`` is Istio's option for P-256
        workload keys (``--set meshConfig.defaultConfig.proxyMetadata…``); localmesh's
        install sets it because generating Istio's default RSA 2048 key in Python put
        200–400 ms on every proxy's start (it waits for its certificate) on a busy
        machine. Remove it from ConfigMap ``istio`` for RSA keys in pods injected later.
        """
        return {"discoveryAddress": f"{ISTIOD_HOST}:15010", "proxyAdminPort": 15000,
                "statusPort": 15020, "controlPlaneAuthPolicy": "NONE",
                "serviceCluster": "istio-proxy", "drainDuration": "1s",
                "terminationDrainDuration": "1s",
                "proxyMetadata": {"ECC_SIGNATURE_ALGORITHM": "ECDSA"}}

    def _create(self, obj: dict) -> None:
        api = self.api
        rt = api.rt(obj["apiVersion"], obj["kind"])
        try:
            api.create(rt, obj["metadata"].get("namespace", ""), obj)
        except ApiError as exc:
            if exc.code != 409:
                raise

    async def install(self) -> None:
        """Create the control plane and the addons; then pods are injected from now on."""
        await self.istiod.start()
        self._create({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": NS, "labels": {"topology.istio.io/network": ""}}})
        for spec in ISTIO_CRDS:
            self._create(crd(*spec))
        # The Gateway API's standard channel: a cluster the suite meets has it beside Istio.
        for body in gatewayapi_crds.definitions():
            self._create(body)
        for key in gatewayapi_crds.KEYS:
            self.api.admission.add_mutator(key, gatewayapi_crds.apply_defaults)
        for sa in ("default", "istiod", GATEWAY_SA):
            self._create({"apiVersion": "v1", "kind": "ServiceAccount",
                          "metadata": {"name": sa, "namespace": NS}})
        self._create(self.ca.secret())
        self._create(meshconfig.configmap(meshconfig.default_mesh(self.proxy_config())))
        self.root_certs.start()
        # The injector's webhook configuration and values (the istiod chart's
        # mutatingwebhook.yaml and istiod-injector-configmap.yaml); injection follows them
        # from the first pod on, as the API server calls the webhook once it exists.
        webhooks.serve_kind(self.api.registry)
        self._create(injector_configmap(webhooks.DEFAULT, ISTIO_VERSION))
        self._create(webhooks.revision_configuration(webhooks.DEFAULT))
        self.api.admission.add_mutator(("", "pods"), self.injector)
        # The injector answers Istio's injection webhooks in process: the API server's
        # webhook plugin leaves them to it (localmesh/webhooks.py), so a pod is injected
        # once, by the revision those webhooks select, and istiod's /inject is not called.
        self.api.admission.answered_in_process.append(webhooks.answered_by_injector)
        self.api.admission.add_mutator(("", "pods"), self.revisions.admit)
        self.revisions.start()
        # Services first: pods started later get their service environment variables.
        pilot = {"app": "istiod", "istio": "pilot"}
        self._create({"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": "istiod", "namespace": NS,
                                   "labels": {**pilot, "istio.io/rev": webhooks.DEFAULT}},
                      "spec": {"type": "ClusterIP", "selector": pilot, "ports": [
                          {"name": "grpc-xds", "port": 15010, "targetPort": 15010},
                          {"name": "https-dns", "port": 15012, "targetPort": 15012},
                          {"name": "https-webhook", "port": 443, "targetPort": 15017},
                          {"name": "http-monitoring", "port": 15014, "targetPort": 15014}]}})
        self._create(_service("istio-ingressgateway",
                              {"app": "istio-ingressgateway", "istio": "ingressgateway"}, [
                                  {"name": "status-port", "port": 15021, "targetPort": 15021},
                                  {"name": "http2", "port": 80, "targetPort": 8080},
                                  {"name": "https", "port": 443, "targetPort": 8443}],
                              "LoadBalancer"))
        self._create(_service("prometheus", {"app": "prometheus"},
                              [{"name": "http", "port": 9090, "targetPort": 9090}]))
        self._create(_service("kiali", {"app": "kiali"},
                              [{"name": "http", "port": 20001, "targetPort": 20001},
                               {"name": "http-metrics", "port": 9090, "targetPort": 9090}]))
        self._create(_service("servicegraph", {"app": "servicegraph"},
                              [{"name": "http", "port": 8088, "targetPort": 8088}]))
        self._create({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "prometheus", "namespace": NS,
                                   "labels": {"app": "prometheus"}},
                      "data": {"prometheus.yml": prometheus_config(self.prometheus_sd_url)}})
        istiod = _deployment("istiod", {**pilot, "istio.io/rev": webhooks.DEFAULT}, {
            "name": "discovery", "image": f"docker.io/istio/pilot:{ISTIO_VERSION}",
            "args": ["discovery", "--monitoringAddr=:15014", "--log_output_level=default:info"],
            "env": [{"name": "ISTIOD_UPSTREAM", "value": self.address},
                    {"name": "PILOT_ENABLE_ANALYSIS", "value": "false"}],
            "ports": [{"containerPort": 15010, "name": "grpc-xds"},
                      {"containerPort": 15012, "name": "tls-xds"},
                      {"containerPort": 15014, "name": "http-monitoring"},
                      {"containerPort": 15017, "name": "https-webhooks"}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 15014},
                               "periodSeconds": 3, "timeoutSeconds": 5}},
            annotations={"prometheus.io/scrape": "true", "prometheus.io/port": "15014",
                         "sidecar.istio.io/inject": "false"}, service_account="istiod")
        # The chart labels istiod's pods out of injection (its own webhooks select
        # pods labelled istio.io/rev).
        istiod["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] = "false"
        self._create(istiod)
        gw_labels = {"app": "istio-ingressgateway", "istio": "ingressgateway",
                     "service.istio.io/canonical-name": "istio-ingressgateway",
                     "service.istio.io/canonical-revision": "latest"}
        # The gateway chart's Deployment: ``image: auto`` and the ``gateway`` injection
        # template, so the revision whose webhook selects the pod completes its proxy
        # (image, PROXY_CONFIG, CA_ADDR, the security volumes).
        ingress = _deployment("istio-ingressgateway", gw_labels, {
            "name": "istio-proxy", "image": "auto",
            "args": ["proxy", "router", "--domain", "$(POD_NAMESPACE).svc.cluster.local",
                     "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error",
                     "--log_output_level=default:info"],
            "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {
                    "fieldPath": "metadata.namespace"}}},
                {"name": "INSTANCE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "ISTIO_META_WORKLOAD_NAME", "value": "istio-ingressgateway"},
                {"name": "ISTIO_META_OWNER", "value": f"kubernetes://apis/apps/v1/namespaces/"
                                                      f"{NS}/deployments/istio-ingressgateway"},
                {"name": "ISTIO_META_APP", "value": "istio-ingressgateway"},
                {"name": "ISTIO_META_CANONICAL_SERVICE", "value": "istio-ingressgateway"},
                {"name": "ISTIO_META_CANONICAL_REVISION", "value": "latest"},
                {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
                {"name": "ISTIO_META_ROUTER_MODE", "value": "standard"},
                {"name": "SERVICE_ACCOUNT", "valueFrom": {"fieldRef": {
                    "fieldPath": "spec.serviceAccountName"}}},
                {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
                {"name": "TRUST_DOMAIN", "value": "cluster.local"},
            ],
            "ports": [{"containerPort": 15021, "name": "status-port"},
                      {"containerPort": 8080, "name": "http2"},
                      {"containerPort": 8443, "name": "https"},
                      {"containerPort": 15090, "name": "http-envoy-prom"}],
            "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021},
                               "periodSeconds": 2, "timeoutSeconds": 3}},
            annotations={"prometheus.io/scrape": "true", "prometheus.io/port": "15020",
                         "prometheus.io/path": "/stats/prometheus",
                         TEMPLATES_ANNOTATION: GATEWAY_TEMPLATE},
            service_account=GATEWAY_SA)
        ingress["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] = "true"
        self._gateway_pod = ingress["spec"]["template"]
        self._create(ingress)
        # Istio's Gateway API controllers: the status istiod writes and its automated
        # deployments of Gateways, whose pods reuse this gateway's container (and so its
        # security volumes and environment: each gets its own workload certificate).
        self.gateway_api = [GatewayStatus(self.api),
                            GatewayDeployments(self.api, self.gateway_pod_template)]
        for controller in self.gateway_api:
            controller.start()
        self._create(_deployment("prometheus", {"app": "prometheus"}, {
            "name": "prometheus-server", "image": "docker.io/prom/prometheus:v2.42.0",
            "args": ["--config.file=$(LOCALMESH_MOUNT_ETC_CONFIG)/prometheus.yml",
                     "--storage.tsdb.path=$(LOCALMESH_MOUNT_DATA)",
                     "--storage.tsdb.retention.time=1h", "--web.enable-lifecycle",
                     "--web.listen-address=$(BIND_ADDRESS):9090", "--log.level=warn"],
            "ports": [{"containerPort": 9090, "name": "http"}],
            "readinessProbe": {"httpGet": {"path": "/-/ready", "port": 9090},
                               "periodSeconds": 5, "timeoutSeconds": 4},
            "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/config"},
                             {"name": "storage-volume", "mountPath": "/data"}]},
            annotations={"sidecar.istio.io/inject": "false"},
            volumes=[{"name": "config-volume", "configMap": {"name": "prometheus"}},
                     {"name": "storage-volume", "emptyDir": {}}]))
        for name, image, port in (("kiali", "quay.io/kiali/kiali:v2.17", 20001),
                                  ("servicegraph", "docker.io/istio/servicegraph:1.1.0", 8088)):
            self._create(_deployment(name, {"app": name}, {
                "name": name, "image": image,
                "env": [{"name": "PORT", "value": str(port)},
                        {"name": "PROMETHEUS_URL",
                         "value": "http://$(PROMETHEUS_SERVICE_HOST):$(PROMETHEUS_SERVICE_PORT)"},
                        # Kiali's istio_namespace setting (in the addon's ConfigMap upstream).
                        *([{"name": "ISTIO_NAMESPACE", "value": NS}] if name == "kiali"
                          else [])],
                "ports": [{"containerPort": port, "name": "http"}],
                "readinessProbe": {"httpGet": {"path": "/kiali/healthz" if name == "kiali"
                                               else "/healthz", "port": port},
                                   "periodSeconds": 5}},
                annotations={"sidecar.istio.io/inject": "false"}))

    def gateway_pod_template(self) -> dict:
        """The gateway's pod template as the default revision (the one the ``default``
        tag points to) renders it for a Gateway API gateway (its automated deployment)."""
        store = self.api.store
        revision = revision_of(store, webhooks.default_revision(store))
        pod = copy.deepcopy(self._gateway_pod)
        inject_gateway(pod, self.injector.proxy_config_of(store, revision), revision)
        return pod

    async def wait_ready(self, timeout: float = 30.0) -> list[str]:
        """Wait until every control-plane Deployment is available; return those that are
        not."""
        store = self.api.store
        deadline = time.monotonic() + timeout
        pending: list[str] = []
        while time.monotonic() < deadline:
            pending = []
            for d in store.list(("apps", "deployments"), NS):
                st = d.get("status") or {}
                if st.get("availableReplicas", 0) < d["spec"].get("replicas", 1):
                    pending.append(d["metadata"]["name"])
            if not pending:
                return []
            await asyncio.sleep(0.02)
        return pending

    async def uninstall(self) -> None:
        for controller in self.gateway_api:
            await controller.stop()
        await self.revisions.stop()
        await self.root_certs.stop()
        await self.istiod.stop()

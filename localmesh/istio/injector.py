"""The sidecar injector, as a mutating admission step (Istio's webhook, in process).

Selection follows istio/istio's mutatingwebhook.yaml and pkg/kube/inject/inject.go: the
namespace label ``istio-injection=enabled`` or ``istio.io/rev=<rev>``; a pod label
``sidecar.istio.io/inject=false`` opts out, ``=true`` opts in from an unlabelled namespace;
the pod annotation of the same name is honoured only inside a selected namespace.

The result matches Istio's native-sidecar injection (the default since 1.27 on Kubernetes
1.33, which localmesh reports): ``istio-init`` and ``istio-proxy`` as init containers, the
latter with ``restartPolicy: Always``; the ``sidecar.istio.io/status`` annotation; the
``prometheus.io/*`` annotations rewritten to the merged metrics on 15020, with the app's
own in ``ISTIO_PROMETHEUS_ANNOTATIONS`` (``applyPrometheusMerge``); and the canonical
service labels; the security volumes of Istio's template (``istio-token``, a projected
ServiceAccount token for the ``istio-ca`` audience; ``istiod-ca-cert``, the namespace's
``istio-ca-root-cert``; ``workload-socket``, where pilot-agent serves SDS); and the
``proxy.istio.io/config`` annotation's ProxyConfig merged over the mesh's
``defaultConfig``, its ``proxyMetadata`` as environment variables of ``istio-proxy``
(how ``SECRET_TTL`` and friends reach pilot-agent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

import yaml

from localmesh.admission import container_defaults
from localmesh.api.objects import ObjectAPI
from localmesh.istio import meshconfig
from localmesh.istio.names import ISTIO_NAMESPACE, ISTIOD_HOST
from localmesh.resources import ResourceType

PROXY_IMAGE = "docker.io/istio/proxyv2:1.28.0"
ISTIO_VERSION = "1.28.0"


PROXY_CONFIG_ANNOTATION = "proxy.istio.io/config"
# istio-proxy's mounts, in the order of Istio's template (golden/istio/injected-pod.yaml).
PROXY_MOUNTS = (
    ("workload-socket", "/var/run/secrets/workload-spiffe-uds"),
    ("credential-socket", "/var/run/secrets/credential-uds"),
    ("workload-certs", "/var/run/secrets/workload-spiffe-credentials"),
    ("istiod-ca-cert", "/var/run/secrets/istio"),
    ("istio-ca-crl", "/var/run/secrets/istio/crl"),
    ("istio-data", "/var/lib/istio/data"),
    ("istio-envoy", "/etc/istio/proxy"),
    ("istio-token", "/var/run/secrets/tokens"),
    ("istio-podinfo", "/etc/istio/pod"),
)


def proxy_volumes() -> list[dict]:
    """The volumes Istio's template adds (also the gateway's, see mesh.py)."""
    return [
        {"name": "workload-socket", "emptyDir": {}},
        {"name": "credential-socket", "emptyDir": {}},
        {"name": "workload-certs", "emptyDir": {}},
        {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
        {"name": "istio-data", "emptyDir": {}},
        {"name": "istio-podinfo", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]}},
        {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}},
        {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}},
        {"name": "istio-ca-crl", "configMap": {"name": "istio-ca-crl", "optional": True}},
    ]


def merged_proxy_config(default: dict, annotation: str | None) -> dict:
    """The mesh's ``defaultConfig`` with the pod's ``proxy.istio.io/config`` (YAML or JSON)
    over it; ``proxyMetadata`` merged key by key, as Istio's injector merges them."""
    try:
        pod_config = yaml.safe_load(annotation) if annotation else {}
    except yaml.YAMLError:
        pod_config = {}
    if not isinstance(pod_config, dict):
        pod_config = {}
    merged = {**default, **pod_config}
    merged["proxyMetadata"] = {**(default.get("proxyMetadata") or {}),
                               **(pod_config.get("proxyMetadata") or {})}
    if not merged["proxyMetadata"]:
        merged.pop("proxyMetadata")
    return merged


def _selected(ns: dict, pod: dict) -> bool:
    ns_labels = ns.get("metadata", {}).get("labels") or {}
    labels = pod["metadata"].get("labels") or {}
    annotations = pod["metadata"].get("annotations") or {}
    if labels.get("sidecar.istio.io/inject") == "false":
        return False
    if ns_labels.get("istio-injection") == "disabled":
        return False
    if ns_labels.get("istio-injection") == "enabled" or (
            ns_labels.get("istio.io/rev") and "istio-injection" not in ns_labels):
        return annotations.get("sidecar.istio.io/inject") != "false"
    return labels.get("sidecar.istio.io/inject") == "true"


def _owner_workload(pod: dict) -> tuple[str, str]:
    """Workload name and kind as Istio derives them (ReplicaSet → Deployment)."""
    meta = pod["metadata"]
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "ReplicaSet":
            labels = meta.get("labels") or {}
            h = labels.get("pod-template-hash")
            name = ref["name"]
            if h and name.endswith("-" + h):
                name = name[: -len(h) - 1]
            return name, "Deployment"
        return ref.get("name", meta.get("name", "")), ref.get("kind", "Pod")
    return meta.get("name") or meta.get("generateName", "").rstrip("-"), "Pod"


class Platform(Protocol):
    """A platform's own injection (OpenShift's, localmesh/openshift/injection.py): which
    pods it selects (None: Istio's rules) and how it changes the injected template."""

    def selected(self, namespace: dict, pod: dict) -> bool | None: ...

    def tailor(self, namespace: dict, pod: dict) -> None: ...


@dataclass(frozen=True)
class Injector:
    """The mutating admission step for Pods. The proxy config it passes in
    ``PROXY_CONFIG`` is the mesh config's current ``defaultConfig`` (ConfigMap ``istio``),
    else ``proxy_config``, the installer's."""

    proxy_config: dict
    platform: Platform | None = None

    def __call__(self, api: ObjectAPI, rt: ResourceType, pod: dict, old: dict | None) -> None:
        if old is not None:
            return
        current = meshconfig.default_config(api.store.get(
            ("", "configmaps"), ISTIO_NAMESPACE, meshconfig.NAME))
        inject(api, pod, current or self.proxy_config, self.platform)


def inject(api: ObjectAPI, pod: dict, proxy_config: dict,
           platform: Platform | None = None) -> None:
    """Inject the sidecar into a new pod, if Istio's (or the platform's) selection rules
    pick it."""
    spec = pod.get("spec") or {}
    meta = pod.setdefault("metadata", {})
    names = [c.get("name") for c in (spec.get("containers") or []) +
             (spec.get("initContainers") or [])]
    if "istio-proxy" in names:
        return
    ns = api.store.get(("", "namespaces"), "", meta.get("namespace", "default")) or {}
    chosen = platform.selected(ns, pod) if platform is not None else None
    if not (_selected(ns, pod) if chosen is None else chosen):
        return
    labels = meta.setdefault("labels", {})
    annotations = meta.setdefault("annotations", {})
    app_containers = [c["name"] for c in spec.get("containers") or []]
    workload, kind = _owner_workload(pod)
    canonical = labels.get("service.istio.io/canonical-name") or labels.get(
        "app.kubernetes.io/name") or labels.get("app") or workload
    revision = labels.get("service.istio.io/canonical-revision") or labels.get(
        "app.kubernetes.io/version") or labels.get("version") or "latest"
    labels["security.istio.io/tlsMode"] = "istio"
    labels["service.istio.io/canonical-name"] = canonical
    labels["service.istio.io/canonical-revision"] = revision
    app_prom = {k.split("/", 1)[1]: v for k, v in annotations.items()
                if k.startswith("prometheus.io/")}
    proxy_config = merged_proxy_config(proxy_config, annotations.get(PROXY_CONFIG_ANNOTATION))
    pod_ports = [
        {"name": p.get("name", ""), "containerPort": p["containerPort"],
         "protocol": p.get("protocol", "TCP")}
        for c in spec.get("containers") or [] for p in c.get("ports") or []
    ]
    env = [
        {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
        {"name": "CA_ADDR", "value": f"{ISTIOD_HOST}:15012"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                        "fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                             "fieldPath": "metadata.namespace"}}},
        {"name": "INSTANCE_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                           "fieldPath": "status.podIP"}}},
        {"name": "SERVICE_ACCOUNT", "valueFrom": {"fieldRef": {
            "apiVersion": "v1", "fieldPath": "spec.serviceAccountName"}}},
        {"name": "HOST_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                       "fieldPath": "status.hostIP"}}},
        {"name": "ISTIO_CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource":
                                                                       "limits.cpu"}}},
        {"name": "PROXY_CONFIG", "value": json.dumps(proxy_config)},
        {"name": "ISTIO_META_POD_PORTS", "value": json.dumps(pod_ports)},
        {"name": "ISTIO_META_APP_CONTAINERS", "value": ",".join(app_containers)},
        {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
        {"name": "ISTIO_META_NODE_NAME", "valueFrom": {"fieldRef": {
            "apiVersion": "v1", "fieldPath": "spec.nodeName"}}},
        {"name": "ISTIO_META_INTERCEPTION_MODE", "value": "REDIRECT"},
        {"name": "ISTIO_META_WORKLOAD_NAME", "value": workload},
        {"name": "ISTIO_META_OWNER", "value":
            f"kubernetes://apis/apps/v1/namespaces/{meta.get('namespace')}/"
            f"{kind.lower()}s/{workload}"},
        {"name": "ISTIO_META_MESH_ID", "value": "cluster.local"},
        {"name": "TRUST_DOMAIN", "value": "cluster.local"},
        {"name": "ISTIO_META_APP", "value": labels.get("app", "")},
        {"name": "ISTIO_META_VERSION", "value": labels.get("version", "")},
        {"name": "ISTIO_META_CANONICAL_SERVICE", "value": canonical},
        {"name": "ISTIO_META_CANONICAL_REVISION", "value": revision},
    ]
    if app_prom:
        env.append({"name": "ISTIO_PROMETHEUS_ANNOTATIONS", "value": json.dumps(app_prom)})
    env += [{"name": str(k), "value": str(v)}
            for k, v in sorted((proxy_config.get("proxyMetadata") or {}).items())]
    init = {
        "name": "istio-init", "image": PROXY_IMAGE,
        "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m",
                 "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020",
                 "--log_output_level=default:info"],
        "resources": {"requests": {"cpu": "10m", "memory": "40Mi"}},
        "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"],
                                             "drop": ["ALL"]},
                            "runAsUser": 0, "runAsNonRoot": False, "privileged": False},
    }
    proxy = {
        "name": "istio-proxy", "image": PROXY_IMAGE, "restartPolicy": "Always",
        "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local",
                 "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error",
                 "--log_output_level=default:info"],
        "env": env,
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021},
                           "periodSeconds": 15, "timeoutSeconds": 3, "failureThreshold": 4},
        "startupProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021},
                         "periodSeconds": 1, "timeoutSeconds": 3, "failureThreshold": 600},
        "resources": {"requests": {"cpu": "10m", "memory": "40Mi"}},
        "securityContext": {"runAsUser": 1337, "runAsGroup": 1337, "runAsNonRoot": True,
                            "readOnlyRootFilesystem": True, "privileged": False,
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": n, "mountPath": m} for n, m in PROXY_MOUNTS],
    }
    container_defaults(init)
    container_defaults(proxy)
    spec["initContainers"] = [init, proxy, *(spec.get("initContainers") or [])]
    spec.setdefault("volumes", [])
    spec["volumes"] += proxy_volumes()
    annotations["sidecar.istio.io/status"] = json.dumps({
        "initContainers": ["istio-init", "istio-proxy"], "containers": None,
        "volumes": [v["name"] for v in proxy_volumes()], "imagePullSecrets": None,
        "revision": "default"}, separators=(",", ":"))
    annotations["istio.io/rev"] = "default"
    if app_containers:
        annotations.setdefault("kubectl.kubernetes.io/default-container", app_containers[0])
        annotations.setdefault("kubectl.kubernetes.io/default-logs-container",
                               app_containers[0])
    annotations["prometheus.io/port"] = "15020"
    annotations["prometheus.io/path"] = "/stats/prometheus"
    annotations["prometheus.io/scrape"] = "true"
    if platform is not None:
        platform.tailor(ns, pod)

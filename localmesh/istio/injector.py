"""The sidecar injector, as a mutating admission step (Istio's webhook, in process).

Which revision injects a pod is decided as on a real cluster, by the
MutatingWebhookConfigurations the API server would call (webhooks.py: Istio's
``istio-sidecar-injector[-<rev>]`` and ``istio-revision-tag-<tag>`` configurations with
their namespace and object selectors); the revision is that of the istiod Service the
webhook calls. Istio's injector then applies its own rules (pkg/kube/inject/inject.go
``injectRequired``): the pod label ``sidecar.istio.io/inject`` (or, without the label, the
annotation) ``false`` opts out, ``true`` opts in, and otherwise the revision's policy
(``config`` in ConfigMap ``istio-sidecar-injector[-<rev>]``, ``enabled`` by default)
decides; a pod already injected is left alone.

The result matches Istio's native-sidecar injection (the default since 1.27 on Kubernetes
1.33, which localmesh reports): ``istio-init`` and ``istio-proxy`` as init containers, the
latter with ``restartPolicy: Always``; the ``sidecar.istio.io/status`` annotation, whose
``revision`` and the ``istio.io/rev`` annotation name the injecting revision; the proxy
image of that revision's version (``values`` in its injector ConfigMap:
``global.hub``/``global.tag``, else its istiod's image tag), ``CA_ADDR`` and
``discoveryAddress`` at its istiod (``istiod-<rev>.istio-system.svc``); the
``prometheus.io/*`` annotations rewritten to the merged metrics on 15020, with the app's
own in ``ISTIO_PROMETHEUS_ANNOTATIONS`` (``applyPrometheusMerge``); and the canonical
service labels; the security volumes of Istio's template (``istio-token``, a projected
ServiceAccount token for the ``istio-ca`` audience; ``istiod-ca-cert``, the namespace's
``istio-ca-root-cert``; ``workload-socket``, where pilot-agent serves SDS); and the
``proxy.istio.io/config`` annotation's ProxyConfig merged over the revision's mesh
``defaultConfig`` (ConfigMap ``istio[-<rev>]``), its ``proxyMetadata`` as environment
variables of ``istio-proxy`` (how ``SECRET_TTL`` and friends reach pilot-agent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

import yaml

from localmesh.admission import container_defaults
from localmesh.api.objects import ObjectAPI
from localmesh.istio import meshconfig, webhooks
from localmesh.istio.names import ISTIO_NAMESPACE
from localmesh.resources import ResourceType
from localmesh.store import Store

ISTIO_VERSION = "1.28.0"
PROXY_HUB = "docker.io/istio"
PROXY_IMAGE = f"{PROXY_HUB}/proxyv2:{ISTIO_VERSION}"


PROXY_CONFIG_ANNOTATION = "proxy.istio.io/config"
TEMPLATES_ANNOTATION = "inject.istio.io/templates"
GATEWAY_TEMPLATE = "gateway"
# Never injected, whatever the webhooks select (inject.go IgnoredNamespaces).
IGNORED_NAMESPACES = ("kube-system", "kube-public")
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


def inject_required(pod: dict, policy: str = "enabled") -> bool:
    """Istio's ``injectRequired`` for a pod its webhook was called for: the
    ``sidecar.istio.io/inject`` label (preferred) or annotation, else the policy."""
    meta = pod.get("metadata") or {}
    choice = (meta.get("annotations") or {}).get("sidecar.istio.io/inject", "")
    if "sidecar.istio.io/inject" in (meta.get("labels") or {}):
        choice = meta["labels"]["sidecar.istio.io/inject"]
    if choice in ("true", "false"):
        return choice == "true"
    return policy == "enabled"


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
class Revision:
    """What a control plane revision injects: its name, its version (the proxy image's
    tag and what the proxy reports), its istiod's host and its injection policy."""

    name: str = webhooks.DEFAULT
    version: str = ISTIO_VERSION
    hub: str = PROXY_HUB
    policy: str = "enabled"

    @property
    def istiod_host(self) -> str:
        return f"{webhooks.service_name(self.name)}.{ISTIO_NAMESPACE}.svc"

    @property
    def image(self) -> str:
        return f"{self.hub}/proxyv2:{self.version}"


def _image_tag(image: str) -> str | None:
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def revision_of(store: Store, name: str) -> Revision:
    """A revision as its install describes it: ``values`` (global hub and tag) and
    ``config`` (policy) of ConfigMap ``istio-sidecar-injector[-<rev>]``; else the tag of
    its istiod Deployment's image; else the installer's version."""
    suffix = "" if name == webhooks.DEFAULT else f"-{name}"
    cm = store.get(("", "configmaps"), ISTIO_NAMESPACE, f"istio-sidecar-injector{suffix}")
    data = (cm or {}).get("data") or {}
    try:
        values = json.loads(data.get("values") or "{}")
        config = yaml.safe_load(data.get("config") or "") or {}
    except (ValueError, yaml.YAMLError):
        values, config = {}, {}
    glob = (values.get("global") or {}) if isinstance(values, dict) else {}
    version = str(glob.get("tag") or "")
    if not version:
        deploy = store.get(("apps", "deployments"), ISTIO_NAMESPACE,
                           webhooks.service_name(name)) or {}
        for c in ((deploy.get("spec") or {}).get("template") or {}).get(
                "spec", {}).get("containers") or []:
            version = version or _image_tag(c.get("image", "")) or ""
    policy = config.get("policy") if isinstance(config, dict) else None
    return Revision(name, version or ISTIO_VERSION, str(glob.get("hub") or PROXY_HUB),
                    str(policy or "enabled"))


@dataclass(frozen=True)
class Injector:
    """The mutating admission step for Pods: the webhook the API server would call
    (webhooks.py) picks the revision; the proxy config is that revision's mesh config's
    ``defaultConfig`` (ConfigMap ``istio[-<rev>]``), else ``proxy_config`` (the
    installer's) pointed at the revision's istiod."""

    proxy_config: dict
    platform: Platform | None = None

    def __call__(self, api: ObjectAPI, rt: ResourceType, pod: dict, old: dict | None) -> None:
        if old is not None:
            return
        meta = pod.get("metadata") or {}
        if "sidecar.istio.io/status" in (meta.get("annotations") or {}):
            return  # already injected: Istio's injector leaves it
        if meta.get("namespace") in IGNORED_NAMESPACES or \
                (pod.get("spec") or {}).get("hostNetwork"):
            return
        ns = api.store.get(("", "namespaces"), "", meta.get("namespace", "default")) or {}
        # A platform's own selection first (OpenShift Service Mesh 2's member namespaces
        # and pod annotation); None leaves it to the webhooks, as on upstream Istio.
        chosen = self.platform.selected(ns, pod) if self.platform is not None else None
        if chosen is False:
            return
        if chosen is None:
            call = webhooks.injector_call(api.store, ns, pod)
            if call is None:
                return
            revision = revision_of(api.store, webhooks.revision_of_service(api.store, call))
            if not inject_required(pod, revision.policy):
                return
        else:
            revision = revision_of(api.store, webhooks.default_revision(api.store))
        config = self.proxy_config_of(api.store, revision)
        if (meta.get("annotations") or {}).get(TEMPLATES_ANNOTATION) == GATEWAY_TEMPLATE:
            inject_gateway(pod, config, revision)
        else:
            inject(api, pod, config, revision, self.platform)

    def proxy_config_of(self, store: Store, revision: Revision) -> dict:
        """The ``defaultConfig`` of the revision's mesh config (ConfigMap
        ``istio[-<rev>]``), else the installer's pointed at the revision's istiod."""
        suffix = "" if revision.name == webhooks.DEFAULT else f"-{revision.name}"
        current = meshconfig.default_config(store.get(
            ("", "configmaps"), ISTIO_NAMESPACE, meshconfig.NAME + suffix))
        if current is None and revision.name == webhooks.DEFAULT:
            current = self.proxy_config  # the installer's points at its own pilot already
        elif current is None:
            current = {**self.proxy_config,
                       "discoveryAddress": f"{revision.istiod_host}:15010"}
        return current


def inject_gateway(pod: dict, proxy_config: dict, revision: Revision) -> None:
    """Istio's ``gateway`` injection template (what the gateway chart's pods ask for with
    ``inject.istio.io/templates: gateway`` and ``image: auto``): the pod's own
    ``istio-proxy`` container completed for the revision — its image, ``PROXY_CONFIG``
    and ``CA_ADDR``, the proxy's volumes — with no init container and no interception.
    Also renders a pod template (the Gateway API's automated deployments)."""
    meta = pod.setdefault("metadata", {})
    spec = pod.setdefault("spec", {})
    annotations = meta.setdefault("annotations", {})
    config = merged_proxy_config(proxy_config, annotations.get(PROXY_CONFIG_ANNOTATION))
    for c in spec.get("containers") or []:
        if c.get("name") != "istio-proxy":
            continue
        c["image"] = revision.image
        c["env"] = [e for e in c.get("env") or [] if e.get("name") not in (
            "PROXY_CONFIG", "CA_ADDR")] + [
            {"name": "CA_ADDR", "value": f"{revision.istiod_host}:15012"},
            {"name": "PROXY_CONFIG", "value": json.dumps(config)}]
        mounts = c.setdefault("volumeMounts", [])
        mounts += [{"name": n, "mountPath": m} for n, m in PROXY_MOUNTS
                   if not any(x.get("name") == n for x in mounts)]
    volumes = spec.setdefault("volumes", [])
    volumes += [v for v in proxy_volumes() if not any(x.get("name") == v["name"]
                                                      for x in volumes)]
    annotations["sidecar.istio.io/status"] = json.dumps({
        "initContainers": None, "containers": ["istio-proxy"],
        "volumes": [v["name"] for v in proxy_volumes()], "imagePullSecrets": None,
        "revision": revision.name}, separators=(",", ":"))
    annotations["istio.io/rev"] = revision.name


def inject(api: ObjectAPI, pod: dict, proxy_config: dict,
           revision: Revision | None = None, platform: Platform | None = None) -> None:
    """Inject ``revision``'s sidecar into a new pod (its webhook, or the platform, chose
    it already); the platform then tailors the result."""
    revision = revision or Revision()
    spec = pod.get("spec") or {}
    meta = pod.setdefault("metadata", {})
    names = [c.get("name") for c in (spec.get("containers") or []) +
             (spec.get("initContainers") or [])]
    if "istio-proxy" in names:
        return
    labels = meta.setdefault("labels", {})
    annotations = meta.setdefault("annotations", {})
    app_containers = [c["name"] for c in spec.get("containers") or []]
    workload, kind = _owner_workload(pod)
    canonical = labels.get("service.istio.io/canonical-name") or labels.get(
        "app.kubernetes.io/name") or labels.get("app") or workload
    canonical_revision = labels.get("service.istio.io/canonical-revision") or labels.get(
        "app.kubernetes.io/version") or labels.get("version") or "latest"
    labels["security.istio.io/tlsMode"] = "istio"
    labels["service.istio.io/canonical-name"] = canonical
    labels["service.istio.io/canonical-revision"] = canonical_revision
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
        {"name": "CA_ADDR", "value": f"{revision.istiod_host}:15012"},
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
        {"name": "ISTIO_META_CANONICAL_REVISION", "value": canonical_revision},
    ]
    if app_prom:
        env.append({"name": "ISTIO_PROMETHEUS_ANNOTATIONS", "value": json.dumps(app_prom)})
    env += [{"name": str(k), "value": str(v)}
            for k, v in sorted((proxy_config.get("proxyMetadata") or {}).items())]
    init = {
        "name": "istio-init", "image": revision.image,
        "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m",
                 "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020",
                 "--log_output_level=default:info"],
        "resources": {"requests": {"cpu": "10m", "memory": "40Mi"}},
        "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"],
                                             "drop": ["ALL"]},
                            "runAsUser": 0, "runAsNonRoot": False, "privileged": False},
    }
    proxy = {
        "name": "istio-proxy", "image": revision.image, "restartPolicy": "Always",
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
        "revision": revision.name}, separators=(",", ":"))
    # The template's annotation (Istio's injector sets no pod label istio.io/rev).
    annotations["istio.io/rev"] = revision.name
    if app_containers:
        annotations.setdefault("kubectl.kubernetes.io/default-container", app_containers[0])
        annotations.setdefault("kubectl.kubernetes.io/default-logs-container",
                               app_containers[0])
    annotations["prometheus.io/port"] = "15020"
    annotations["prometheus.io/path"] = "/stats/prometheus"
    annotations["prometheus.io/scrape"] = "true"
    if platform is not None:
        platform.tailor(api.store.get(("", "namespaces"), "",
                                      meta.get("namespace", "default")) or {}, pod)

"""Sidecar injection as Istio 1.4 did it: the injector's platform for the Mixer mesh.

Istio 1.4's webhook (``install/kubernetes/helm/istio/charts/sidecarInjectorWebhook``,
policy ``enabled``) injected pods of namespaces labelled ``istio-injection=enabled``,
unless the pod's annotation ``sidecar.istio.io/inject`` said ``"false"``; there were no
revisions and no pod label. Its template added the privileged ``istio-init``
(``istio-iptables -p 15001 -z 15006 -u 1337 -m REDIRECT …``) as an init container and
``istio-proxy`` as an ordinary container after the app's (native sidecars came with 1.27),
both from ``proxyv2:1.4.10``, with the status annotation ``{"version": …,
"initContainers": ["istio-init"], "containers": ["istio-proxy"], "volumes": […],
"imagePullSecrets": null}``, the proxy's readiness on ``:15020/healthz/ready`` and
``--discoveryAddress istio-pilot.istio-system:15010``. It wrote no ``prometheus.io``
annotations (Prometheus's ``envoy-stats`` job found the proxies by their
``http-envoy-prom`` port).

Where localmesh differs: ``istio-iptables`` is the first argument of the image's
entrypoint (1.4: its ``command``); the proxy keeps the security volumes and environment of
Istio ≥ 1.5's template (the workload certificate comes from istio-pilot's CA port 15012,
``CA_ADDR``, where 1.4 mounted Citadel's ``istio.<sa>`` Secret at ``/etc/certs``), and
pilot-agent reads its discovery address from ``PROXY_CONFIG`` (the arguments are 1.4's
and informational).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

VERSION = "1.4.10"
PROXY_IMAGE = f"docker.io/istio/proxyv2:{VERSION}"
PILOT = "istio-pilot.istio-system"


def _ports(pod: dict) -> str:
    return ",".join(str(p["containerPort"]) for c in pod["spec"].get("containers") or []
                    if c.get("name") != "istio-proxy" for p in c.get("ports") or [])


@dataclass(frozen=True)
class MixerEraInjection:
    """Selection and template of Istio 1.4's injector."""

    def selected(self, namespace: dict, pod: dict) -> bool | None:
        labels = (namespace.get("metadata") or {}).get("labels") or {}
        if labels.get("istio-injection") != "enabled":
            return False
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        return annotations.get("sidecar.istio.io/inject") != "false"

    def tailor(self, namespace: dict, pod: dict) -> None:
        spec, meta = pod["spec"], pod["metadata"]
        inits = spec.get("initContainers") or []
        proxy = next(c for c in inits if c.get("name") == "istio-proxy")
        spec["initContainers"] = [c for c in inits if c.get("name") != "istio-proxy"]
        for c in spec["initContainers"]:
            if c.get("name") == "istio-init":
                c["image"] = PROXY_IMAGE
                c["args"] = ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337",
                             "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15020"]
        proxy.pop("restartPolicy", None)
        proxy.pop("startupProbe", None)
        proxy["image"] = PROXY_IMAGE
        proxy["args"] = [
            "proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local",
            "--configPath", "/etc/istio/proxy", "--binaryPath", "/usr/local/bin/envoy",
            "--serviceCluster", f"{(meta.get('labels') or {}).get('app', 'istio-proxy')}."
                                "$(POD_NAMESPACE)",
            "--drainDuration", "45s", "--parentShutdownDuration", "1m0s",
            "--discoveryAddress", f"{PILOT}:15010", "--zipkinAddress",
            "zipkin.istio-system:9411", "--proxyLogLevel=warning",
            "--proxyComponentLogLevel=misc:error", "--connectTimeout", "10s",
            "--proxyAdminPort", "15000", "--concurrency", "2", "--controlPlaneAuthPolicy",
            "NONE", "--dnsRefreshRate", "300s", "--statusPort", "15020",
            "--applicationPorts", _ports(pod), "--trust-domain=cluster.local"]
        env = [e for e in proxy.get("env") or [] if e.get("name") != "CA_ADDR"]
        env += [{"name": "CA_ADDR", "value": f"{PILOT}.svc:15012"},
                {"name": "ISTIO_META_CONFIG_NAMESPACE", "valueFrom": {"fieldRef": {
                    "fieldPath": "metadata.namespace"}}},
                {"name": "SDS_ENABLED", "value": "false"},
                {"name": "ISTIO_METAJSON_LABELS",
                 "value": json.dumps(meta.get("labels") or {}, sort_keys=True)},
                {"name": "ISTIO_META_INCLUDE_INBOUND_PORTS", "value": _ports(pod)}]
        proxy["env"] = env
        proxy["readinessProbe"] = {
            "httpGet": {"path": "/healthz/ready", "port": 15020, "scheme": "HTTP"},
            "initialDelaySeconds": 1, "periodSeconds": 2, "failureThreshold": 30,
            "timeoutSeconds": 1, "successThreshold": 1}
        spec["containers"] = [*(spec.get("containers") or []), proxy]
        annotations = meta.setdefault("annotations", {})
        for key in ("istio.io/rev", "kubectl.kubernetes.io/default-container",
                    "kubectl.kubernetes.io/default-logs-container", "prometheus.io/port",
                    "prometheus.io/path", "prometheus.io/scrape"):
            annotations.pop(key, None)
        for e in env:
            if e.get("name") == "ISTIO_PROMETHEUS_ANNOTATIONS":
                annotations.update({f"prometheus.io/{k}": v
                                    for k, v in json.loads(e["value"]).items()})
        volumes = [v["name"] for v in spec.get("volumes") or []
                   if v["name"] in {m["name"] for m in proxy.get("volumeMounts") or []}]
        template = hashlib.sha256(json.dumps(proxy, sort_keys=True).encode()).hexdigest()
        annotations["sidecar.istio.io/status"] = json.dumps({
            "version": template, "initContainers": ["istio-init"],
            "containers": ["istio-proxy"], "volumes": volumes, "imagePullSecrets": None},
            separators=(",", ":"))

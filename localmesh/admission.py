"""Built-in admission: defaulting and validation of the built-in kinds.

Defaults follow the ones the real API server applies (k8s.io/kubernetes
``pkg/apis/*/v1/defaults.go``) for the fields clients read back: a Pod's restartPolicy and
container defaults, a Service's clusterIP, type and targetPort, a Deployment's strategy and
replicas, a Namespace's finalizer and phase. Validation rejects what the suite's bad-input
tests need rejected, with the field named, and nothing is stored. The RBAC kinds' own
defaults and validation are in localmesh/api/rbac/validation.py; :func:`install` puts
them in the chain too.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass

from localmesh.api import status
from localmesh.api.objects import ObjectAPI
from localmesh.api.rbac import RBAC_KEYS
from localmesh.api.rbac.validation import default_rbac, validate_rbac
from localmesh.resources import ResourceType

Causes = list[tuple[str, str, str]]

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class ServiceAllocation:
    """Where a new Service's ClusterIP and NodePorts come from.

    kube-apiserver allocates them in the Service registry
    (k8s.io/kubernetes ``pkg/registry/core/service/ipallocator`` and ``portallocator``);
    localmesh allocates them while defaulting, from the instance's loopback block
    (localmesh/network.py).
    """

    cluster_ip: Callable[[], str]
    node_port: Callable[[], int]


def container_defaults(c: dict) -> None:
    """``SetDefaults_Container`` and its probes' defaults (also used for injected ones)."""
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = c.get("image", "")
    tag = image.rsplit("/", 1)[-1]
    c.setdefault("imagePullPolicy",
                 "Always" if (":" not in tag or tag.endswith(":latest")) else "IfNotPresent")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        pr = c.get(probe)
        if isinstance(pr, dict):
            pr.setdefault("timeoutSeconds", 1)
            pr.setdefault("periodSeconds", 10)
            pr.setdefault("successThreshold", 1)
            pr.setdefault("failureThreshold", 3)
            if "httpGet" in pr:
                pr["httpGet"].setdefault("path", "/")
                pr["httpGet"].setdefault("scheme", "HTTP")


def pod_spec_defaults(spec: dict) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for c in spec.get("containers") or []:
        container_defaults(c)
    for c in spec.get("initContainers") or []:
        container_defaults(c)


class Defaults:
    """Mutating step: apply the defaults of the built-in kinds."""

    def __init__(self, allocation: ServiceAllocation) -> None:
        self.allocation = allocation

    def __call__(self, api: ObjectAPI, rt: ResourceType, obj: dict,
                 old: dict | None) -> None:
        _default_object(rt, obj, old, self.allocation)


def _default_object(rt: ResourceType, obj: dict, old: dict | None,
                    allocation: ServiceAllocation) -> None:
    meta = obj.setdefault("metadata", {})
    spec = obj.setdefault("spec", {}) if rt.kind not in (
        "ConfigMap", "Secret", "Endpoints", "Event", "ServiceAccount", "EndpointSlice",
        "ClusterRole", "Role", "RoleBinding", "ClusterRoleBinding", "StorageClass",
        "PriorityClass", "RuntimeClass", "ControllerRevision", "PodTemplate",
        "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration") \
        and not rt.custom else None
    if rt.key == ("", "secrets"):
        # The API server folds write-only stringData into data (base64), as upstream.
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
        obj.setdefault("type", "Opaque")
    if rt.key == ("", "pods") and spec is not None:
        # The scheduler's one decision on a single-node cluster.
        spec.setdefault("nodeName", "localmesh")
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
    if rt.key == ("", "namespaces"):
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
        assert spec is not None
        spec.setdefault("finalizers", ["kubernetes"])
        if old is None:
            obj["status"] = {"phase": "Active"}
    elif rt.key == ("", "pods") and spec is not None:
        pod_spec_defaults(spec)
        if old is None:
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif rt.key == ("", "services") and spec is not None:
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
        if old is not None:
            for keep in ("clusterIP", "clusterIPs"):
                if keep in old.get("spec", {}):
                    spec[keep] = old["spec"][keep]
            old_ports = {(p.get("port"), p.get("protocol")): p for p in
                         old.get("spec", {}).get("ports") or []}
            for p in spec.get("ports") or []:
                prev = old_ports.get((p.get("port"), p.get("protocol")))
                if prev and "nodePort" in prev and "nodePort" not in p:
                    p["nodePort"] = prev["nodePort"]
        if spec.get("clusterIP") != "None" and not spec.get("clusterIP"):
            ip = allocation.cluster_ip()
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
            for p in spec.get("ports") or []:
                if "nodePort" not in p:
                    p["nodePort"] = allocation.node_port()
        if spec["type"] == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        if old is None:
            obj.setdefault("status", {"loadBalancer": {}})
    elif rt.key in (("apps", "deployments"), ("apps", "replicasets")) and spec is not None:
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        if rt.key == ("apps", "deployments"):
            spec.setdefault("progressDeadlineSeconds", 600)
            strat = spec.setdefault("strategy", {"type": "RollingUpdate"})
            if strat.get("type", "RollingUpdate") == "RollingUpdate":
                strat["type"] = "RollingUpdate"
                strat.setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})
        tmpl = spec.setdefault("template", {})
        pod_spec_defaults(tmpl.setdefault("spec", {}))
        if old is None:
            obj.setdefault("status", {})


def validate_objects(api: ObjectAPI, rt: ResourceType, obj: dict, old: dict | None) -> Causes:
    """Validating step: reject what a real API server rejects, naming the field."""
    causes: Causes = []
    meta = obj.get("metadata", {})
    name = meta.get("name", "")
    pattern = DNS1123_LABEL if rt.key in (("", "namespaces"), ("", "services")) else \
        DNS1123_SUBDOMAIN
    if rt.key not in RBAC_KEYS and name and (not pattern.match(name) or len(name) > 253):
        causes.append(("metadata.name", "FieldValueInvalid",
                       f'Invalid value: "{name}": a lowercase RFC 1123 '
                       f'{"label" if pattern is DNS1123_LABEL else "subdomain"} must consist '
                       "of lower case alphanumeric characters, '-' or '.', and must start and "
                       "end with an alphanumeric character"))
    for k, v in (meta.get("labels") or {}).items():
        if not isinstance(v, str) or not LABEL_VALUE.match(v) or len(v) > 63:
            causes.append(("metadata.labels", "FieldValueInvalid",
                           f'Invalid value: "{v}": a valid label value for {k} must be an '
                           "empty string or consist of alphanumeric characters, '-', '_' or "
                           "'.'"))
    spec = obj.get("spec") or {}
    if rt.key == ("", "pods"):
        causes += _validate_pod_spec(spec, "spec")
    elif rt.key in (("apps", "deployments"), ("apps", "replicasets")):
        sel = (spec.get("selector") or {}).get("matchLabels") or {}
        if not spec.get("selector"):
            causes.append(("spec.selector", "FieldValueRequired", "Required value"))
        tmpl_labels = (spec.get("template", {}).get("metadata") or {}).get("labels") or {}
        if sel and any(tmpl_labels.get(k) != v for k, v in sel.items()):
            causes.append(("spec.template.metadata.labels", "FieldValueInvalid",
                           f"Invalid value: {status.go_value(tmpl_labels)}: `selector` does not "
                           "match template "
                           "`labels`"))
        if isinstance(spec.get("replicas"), int) and spec["replicas"] < 0:
            causes.append(("spec.replicas", "FieldValueInvalid",
                           "Invalid value: must be greater than or equal to 0"))
        if old is not None and old.get("spec", {}).get("selector") != spec.get("selector"):
            causes.append(("spec.selector", "FieldValueInvalid",
                           "Invalid value: field is immutable"))
        causes += _validate_pod_spec(spec.get("template", {}).get("spec") or {},
                                     "spec.template.spec")
    elif rt.key == ("", "services"):
        ports = spec.get("ports") or []
        if not ports and spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None":
            causes.append(("spec.ports", "FieldValueRequired", "Required value"))
        seen = set()
        for i, p in enumerate(ports):
            port = p.get("port")
            if not isinstance(port, int) or not 0 < port < 65536:
                causes.append((f"spec.ports[{i}].port", "FieldValueInvalid",
                               f"Invalid value: {port}: must be between 1 and 65535, "
                               "inclusive"))
            if len(ports) > 1 and not p.get("name"):
                causes.append((f"spec.ports[{i}].name", "FieldValueRequired", "Required value"))
            if p.get("name") in seen:
                causes.append((f"spec.ports[{i}].name", "FieldValueDuplicate",
                               f'Duplicate value: "{p.get("name")}"'))
            seen.add(p.get("name"))
        if spec.get("type") not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
            causes.append(("spec.type", "FieldValueNotSupported",
                           f'Unsupported value: "{spec.get("type")}": supported values: '
                           '"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'))
    elif rt.key == ("", "configmaps"):
        for k in (obj.get("data") or {}):
            if not re.match(r"^[-._a-zA-Z0-9]+$", k):
                causes.append((f"data[{k}]", "FieldValueInvalid",
                               f'Invalid value: "{k}": a valid config key must consist of '
                               "alphanumeric characters, '-', '_' or '.'"))
    if rt.key in RBAC_KEYS:
        # RBAC objects' names are path segments ("system:discovery"), not DNS names.
        causes += path_segment_name_causes(name)
    return causes


def path_segment_name_causes(name: str) -> Causes:
    """``path.IsValidPathSegmentName``, the name rule of the RBAC kinds
    (``ValidateRBACName`` in k8s.io/kubernetes pkg/apis/rbac/validation): they may be named
    ``system:discovery``; only ``.``, ``..``, ``/`` and ``%`` are refused."""
    msgs = []
    if name in (".", ".."):
        msgs.append(f"may not be '{name}'")
    for bad in ("/", "%"):
        if bad in name:
            msgs.append(f"may not contain '{bad}'")
    return [("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {m}')
            for m in msgs]


def _validate_pod_spec(spec: dict, path: str) -> Causes:
    causes: Causes = []
    containers = spec.get("containers")
    if not containers:
        causes.append((f"{path}.containers", "FieldValueRequired", "Required value"))
        return causes
    names = set()
    for i, c in enumerate(containers):
        if not c.get("name"):
            causes.append((f"{path}.containers[{i}].name", "FieldValueRequired",
                           "Required value"))
        elif c["name"] in names:
            causes.append((f"{path}.containers[{i}].name", "FieldValueDuplicate",
                           f'Duplicate value: "{c["name"]}"'))
        names.add(c.get("name"))
        if not c.get("image"):
            causes.append((f"{path}.containers[{i}].image", "FieldValueRequired",
                           "Required value"))
        for j, p in enumerate(c.get("ports") or []):
            cp = p.get("containerPort")
            if not isinstance(cp, int) or not 0 < cp < 65536:
                causes.append((f"{path}.containers[{i}].ports[{j}].containerPort",
                               "FieldValueInvalid",
                               f"Invalid value: {cp}: must be between 1 and 65535, inclusive"))
    if spec.get("restartPolicy") not in (None, "Always", "OnFailure", "Never"):
        causes.append((f"{path}.restartPolicy", "FieldValueNotSupported",
                       f'Unsupported value: "{spec.get("restartPolicy")}"'))
    return causes


def install(api: ObjectAPI, allocation: ServiceAllocation) -> None:
    """The built-in kinds' steps of the admission chain: defaults, then validation."""
    api.admission.add_mutator("*", Defaults(allocation))
    api.admission.add_validator("*", validate_objects)
    for key in RBAC_KEYS:
        api.admission.add_mutator(key, default_rbac)
        api.admission.add_validator(key, validate_rbac)

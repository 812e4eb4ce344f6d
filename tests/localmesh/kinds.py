"""One minimal, valid manifest for each kind issue 13 added, and the columns kubectl prints
for it (the upstream printers' non-wide columns), for the tests that drive every kind
through every client."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool
    columns: tuple[str, ...]

    @property
    def resource(self) -> str:
        group = self.api_version.rsplit("/", 1)[0] if "/" in self.api_version else ""
        return f"{self.plural}.{group}" if group else self.plural


def _pod_spec(restart: str | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "busybox",
                                  "command": ["sh", "-c", "sleep 600"]}]}
    if restart:
        spec["restartPolicy"] = restart
    return spec


def _csr_request() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone")]))
           .sign(key, hashes.SHA256()))
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


KINDS: list[Kind] = [
    Kind("apps/v1", "DaemonSet", "daemonsets", True,
         ("NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR",
          "AGE")),
    Kind("apps/v1", "StatefulSet", "statefulsets", True, ("NAME", "READY", "AGE")),
    Kind("apps/v1", "ControllerRevision", "controllerrevisions", True,
         ("NAME", "CONTROLLER", "REVISION", "AGE")),
    Kind("batch/v1", "Job", "jobs", True, ("NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE")),
    Kind("batch/v1", "CronJob", "cronjobs", True,
         ("NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE")),
    Kind("v1", "ReplicationController", "replicationcontrollers", True,
         ("NAME", "DESIRED", "CURRENT", "READY", "AGE")),
    Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims", True,
         ("NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS",
          "VOLUMEATTRIBUTESCLASS", "AGE")),
    Kind("v1", "PersistentVolume", "persistentvolumes", False,
         ("NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM",
          "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE")),
    Kind("v1", "ResourceQuota", "resourcequotas", True, ("NAME", "AGE", "REQUEST", "LIMIT")),
    Kind("v1", "LimitRange", "limitranges", True, ("NAME", "CREATED AT")),
    Kind("v1", "PodTemplate", "podtemplates", True,
         ("NAME", "CONTAINERS", "IMAGES", "POD LABELS")),
    Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", True,
         ("NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE")),
    Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True,
         ("NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE")),
    Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", True,
         ("NAME", "POD-SELECTOR", "AGE")),
    Kind("apiregistration.k8s.io/v1", "APIService", "apiservices", False,
         ("NAME", "SERVICE", "AVAILABLE", "AGE")),
    Kind("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy",
         "validatingadmissionpolicies", False, ("NAME", "VALIDATIONS", "PARAMKIND", "AGE")),
    Kind("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding",
         "validatingadmissionpolicybindings", False, ("NAME", "POLICYNAME", "PARAMREF", "AGE")),
    Kind("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration",
         "mutatingwebhookconfigurations", False, ("NAME", "WEBHOOKS", "AGE")),
    Kind("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration",
         "validatingwebhookconfigurations", False, ("NAME", "WEBHOOKS", "AGE")),
    Kind("certificates.k8s.io/v1", "CertificateSigningRequest", "certificatesigningrequests",
         False, ("NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION")),
    Kind("scheduling.k8s.io/v1", "PriorityClass", "priorityclasses", False,
         ("NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY")),
    Kind("node.k8s.io/v1", "RuntimeClass", "runtimeclasses", False, ("NAME", "HANDLER", "AGE")),
    Kind("storage.k8s.io/v1", "StorageClass", "storageclasses", False,
         ("NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION",
          "AGE")),
]


def manifest(k: Kind, name: str) -> dict:
    """A valid object of kind ``k`` named ``name`` (nothing else depends on it)."""
    labels = {"app": name}
    template = {"metadata": {"labels": labels}, "spec": _pod_spec()}
    webhook = {"name": "hook.example.com", "admissionReviewVersions": ["v1"],
               "sideEffects": "None", "failurePolicy": "Ignore",
               "clientConfig": {"url": "https://127.0.0.1:1/never"},
               "rules": [{"apiGroups": ["example.com"], "apiVersions": ["v1"],
                          "operations": ["CREATE"], "resources": ["nothings"]}]}
    body: dict = {
        "DaemonSet": {"spec": {"selector": {"matchLabels": labels}, "template": template}},
        "StatefulSet": {"spec": {"serviceName": name, "replicas": 0,
                                 "selector": {"matchLabels": labels}, "template": template}},
        "ControllerRevision": {"data": {"spec": {}}, "revision": 1},
        "Job": {"spec": {"suspend": True, "template": {
            "metadata": {"labels": labels}, "spec": _pod_spec("Never")}}},
        "CronJob": {"spec": {"schedule": "0 0 1 1 *", "jobTemplate": {"spec": {"template": {
            "spec": _pod_spec("OnFailure")}}}}},
        "ReplicationController": {"spec": {"replicas": 0, "selector": labels,
                                           "template": template}},
        "PersistentVolumeClaim": {"spec": {"accessModes": ["ReadWriteOnce"],
                                           "resources": {"requests": {"storage": "1Mi"}}}},
        "PersistentVolume": {"spec": {"capacity": {"storage": "1Mi"},
                                      "accessModes": ["ReadWriteOnce"],
                                      "storageClassName": "manual",
                                      "hostPath": {"path": f"/tmp/{name}"}}},
        "ResourceQuota": {"spec": {"hard": {"configmaps": "100"}}},
        "LimitRange": {"spec": {"limits": [{"type": "Container",
                                            "max": {"memory": "64Gi"}}]}},
        "PodTemplate": {"template": template},
        "PodDisruptionBudget": {"spec": {"minAvailable": 1, "selector": {"matchLabels":
                                                                          labels}}},
        "HorizontalPodAutoscaler": {"spec": {"scaleTargetRef": {
            "apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1, "maxReplicas": 3}},
        "NetworkPolicy": {"spec": {"podSelector": {"matchLabels": labels},
                                   "policyTypes": ["Ingress"]}},
        "APIService": {"spec": {"group": f"{name}.example.com", "version": "v1",
                                "groupPriorityMinimum": 100, "versionPriority": 10,
                                "service": {"namespace": "default", "name": name},
                                "insecureSkipTLSVerify": True}},
        "ValidatingAdmissionPolicy": {"spec": {
            "matchConstraints": {"resourceRules": [{
                "apiGroups": ["example.com"], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["nothings"]}]},
            "validations": [{"expression": "true"}]}},
        "ValidatingAdmissionPolicyBinding": {"spec": {"policyName": name,
                                                      "validationActions": ["Deny"]}},
        "MutatingWebhookConfiguration": {"webhooks": [webhook]},
        "ValidatingWebhookConfiguration": {"webhooks": [webhook]},
        "CertificateSigningRequest": {"spec": {
            "request": _csr_request(), "signerName": "kubernetes.io/kube-apiserver-client",
            "usages": ["client auth"], "expirationSeconds": 86400}},
        "PriorityClass": {"value": 42, "description": "test"},
        "RuntimeClass": {"handler": "runc"},
        "StorageClass": {"provisioner": "example.com/none", "reclaimPolicy": "Retain"},
    }[k.kind]
    if k.kind == "APIService":
        name = f"v1.{name}.example.com"
    return {"apiVersion": k.api_version, "kind": k.kind,
            "metadata": {"name": name, "labels": labels}, **body}


def object_name(k: Kind, name: str) -> str:
    return f"v1.{name}.example.com" if k.kind == "APIService" else name

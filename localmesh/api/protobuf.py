"""Decoding the Kubernetes protobuf request bodies kubectl 1.32 and later send.

kubectl 1.32+ builds its typed clients with ``Content-Type:
application/vnd.kubernetes.protobuf`` (``kubectl create namespace|configmap|secret|
deployment|service|serviceaccount|role|…``), and client-go never retries such a request as
JSON: the 415 fallback of KEP-4222 covers CBOR only (client-go ``rest/client.go``,
``requestClientContentConfigProvider``), and the protobuf case is kubernetes/kubernetes#86253.
So localmesh decodes those bodies. The answer is JSON, which kubectl accepts (it sends
``Accept: application/vnd.kubernetes.protobuf,application/json``).

The wire format (k8s.io/apimachinery ``pkg/runtime/serializer/protobuf``): the 4-byte magic
``k8s\\x00``, then a ``runtime.Unknown`` {typeMeta=1 {apiVersion=1, kind=2}, raw=2,
contentEncoding=3, contentType=4} whose ``raw`` is the object message. Field numbers below
are those of k8s.io/api ``*/generated.proto``; they were checked against the bodies kubectl
1.33 sends (tests/localmesh/test_kubectl.py runs every ``kubectl create`` form through it).

The schema covers the kinds and fields kubectl's typed clients send, including the
authentication and authorization APIs (``kubectl create token``, ``kubectl auth whoami``,
``kubectl auth can-i``). ``SCHEMA`` and ``KINDS`` are constant tables: nothing adds to
them at run time. go-to-protobuf emits
every non-pointer field even when empty, so a field the schema does not know is ignored when
it carries only a zero value, and rejected with 415 (naming the message and field number)
when it carries data — a body is never half-understood silently.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from localmesh.api.status import ApiError

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

# A field: (json name, type, flags). Types: "string", "bytes" (base64 in JSON), "int",
# "bool", "map<string>" / "map<bytes>" / "map<Quantity>", or a message name. Flags:
# "r" repeated; "k" keep a zero value (a Go pointer field: replicas: 0 means something);
# "i" inline (an embedded Go struct whose fields JSON flattens into the parent).
Field = tuple[str, str, str]

SCHEMA: dict[str, dict[int, Field]] = {
    # -- k8s.io/apimachinery/pkg/apis/meta/v1 ----------------------------------------------
    "ObjectMeta": {
        1: ("name", "string", ""), 2: ("generateName", "string", ""),
        3: ("namespace", "string", ""), 4: ("selfLink", "string", ""),
        5: ("uid", "string", ""), 6: ("resourceVersion", "string", ""),
        7: ("generation", "int", ""), 8: ("creationTimestamp", "Time", ""),
        9: ("deletionTimestamp", "Time", ""), 10: ("deletionGracePeriodSeconds", "int", "k"),
        11: ("labels", "map<string>", ""), 12: ("annotations", "map<string>", ""),
        13: ("ownerReferences", "OwnerReference", "r"), 14: ("finalizers", "string", "r"),
        17: ("managedFields", "ManagedFieldsEntry", "r"),
    },
    "ManagedFieldsEntry": {
        1: ("manager", "string", ""), 2: ("operation", "string", ""),
        3: ("apiVersion", "string", ""), 4: ("time", "Time", ""),
        6: ("fieldsType", "string", ""), 7: ("fieldsV1", "FieldsV1", ""),
        8: ("subresource", "string", ""),
    },
    "OwnerReference": {
        1: ("kind", "string", ""), 3: ("name", "string", ""), 4: ("uid", "string", ""),
        5: ("apiVersion", "string", ""), 6: ("controller", "bool", "k"),
        7: ("blockOwnerDeletion", "bool", "k"),
    },
    "LabelSelector": {
        1: ("matchLabels", "map<string>", ""),
        2: ("matchExpressions", "LabelSelectorRequirement", "r"),
    },
    "LabelSelectorRequirement": {
        1: ("key", "string", ""), 2: ("operator", "string", ""), 3: ("values", "string", "r"),
    },
    "DeleteOptions": {
        1: ("gracePeriodSeconds", "int", "k"), 2: ("preconditions", "Preconditions", ""),
        3: ("orphanDependents", "bool", "k"), 4: ("propagationPolicy", "string", ""),
        5: ("dryRun", "string", "r"),
    },
    "Preconditions": {1: ("uid", "string", ""), 2: ("resourceVersion", "string", "")},
    # -- core/v1 ---------------------------------------------------------------------------
    "Namespace": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "NamespaceSpec", ""),
                  3: ("status", "NamespaceStatus", "")},
    "NamespaceSpec": {1: ("finalizers", "string", "r")},
    "NamespaceStatus": {1: ("phase", "string", "")},
    "ConfigMap": {1: ("metadata", "ObjectMeta", ""), 2: ("data", "map<string>", ""),
                  3: ("binaryData", "map<bytes>", ""), 4: ("immutable", "bool", "k")},
    "Secret": {1: ("metadata", "ObjectMeta", ""), 2: ("data", "map<bytes>", ""),
               3: ("type", "string", ""), 4: ("stringData", "map<string>", ""),
               5: ("immutable", "bool", "k")},
    "ServiceAccount": {1: ("metadata", "ObjectMeta", ""),
                       2: ("secrets", "ObjectReference", "r"),
                       3: ("imagePullSecrets", "LocalObjectReference", "r"),
                       4: ("automountServiceAccountToken", "bool", "k")},
    "ObjectReference": {1: ("kind", "string", ""), 2: ("namespace", "string", ""),
                        3: ("name", "string", ""), 4: ("uid", "string", ""),
                        5: ("apiVersion", "string", ""), 6: ("resourceVersion", "string", ""),
                        7: ("fieldPath", "string", "")},
    "LocalObjectReference": {1: ("name", "string", "")},
    "Service": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "ServiceSpec", ""),
                3: ("status", "ServiceStatus", "")},
    "ServiceSpec": {
        1: ("ports", "ServicePort", "r"), 2: ("selector", "map<string>", ""),
        3: ("clusterIP", "string", ""), 4: ("type", "string", ""),
        5: ("externalIPs", "string", "r"), 7: ("sessionAffinity", "string", ""),
        8: ("loadBalancerIP", "string", ""), 9: ("loadBalancerSourceRanges", "string", "r"),
        10: ("externalName", "string", ""), 11: ("externalTrafficPolicy", "string", ""),
        12: ("healthCheckNodePort", "int", ""), 13: ("publishNotReadyAddresses", "bool", ""),
        18: ("clusterIPs", "string", "r"),
    },
    "ServicePort": {1: ("name", "string", ""), 2: ("protocol", "string", ""),
                    3: ("port", "int", ""), 4: ("targetPort", "IntOrString", ""),
                    5: ("nodePort", "int", ""), 6: ("appProtocol", "string", "")},
    "ServiceStatus": {1: ("loadBalancer", "LoadBalancerStatus", "")},
    "LoadBalancerStatus": {1: ("ingress", "LoadBalancerIngress", "r")},
    "LoadBalancerIngress": {1: ("ip", "string", ""), 2: ("hostname", "string", "")},
    "Pod": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "PodSpec", ""),
            3: ("status", "PodStatus", "")},
    "PodStatus": {},
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "PodSpec", "")},
    "PodSpec": {
        1: ("volumes", "Volume", "r"), 2: ("containers", "Container", "r"),
        3: ("restartPolicy", "string", ""), 4: ("terminationGracePeriodSeconds", "int", "k"),
        5: ("activeDeadlineSeconds", "int", "k"), 6: ("dnsPolicy", "string", ""),
        7: ("nodeSelector", "map<string>", ""), 8: ("serviceAccountName", "string", ""),
        9: ("serviceAccount", "string", ""), 10: ("nodeName", "string", ""),
        11: ("hostNetwork", "bool", ""), 12: ("hostPID", "bool", ""), 13: ("hostIPC", "bool", ""),
        15: ("imagePullSecrets", "LocalObjectReference", "r"), 16: ("hostname", "string", ""),
        17: ("subdomain", "string", ""), 19: ("schedulerName", "string", ""),
        20: ("initContainers", "Container", "r"),
        21: ("automountServiceAccountToken", "bool", "k"),
        24: ("priorityClassName", "string", ""), 30: ("enableServiceLinks", "bool", "k"),
    },
    "Container": {
        1: ("name", "string", ""), 2: ("image", "string", ""), 3: ("command", "string", "r"),
        4: ("args", "string", "r"), 5: ("workingDir", "string", ""),
        6: ("ports", "ContainerPort", "r"), 7: ("env", "EnvVar", "r"),
        8: ("resources", "ResourceRequirements", ""), 9: ("volumeMounts", "VolumeMount", "r"),
        10: ("livenessProbe", "Probe", ""), 11: ("readinessProbe", "Probe", ""),
        13: ("terminationMessagePath", "string", ""), 14: ("imagePullPolicy", "string", ""),
        16: ("stdin", "bool", ""), 17: ("stdinOnce", "bool", ""), 18: ("tty", "bool", ""),
        19: ("envFrom", "EnvFromSource", "r"), 20: ("terminationMessagePolicy", "string", ""),
        22: ("startupProbe", "Probe", ""), 24: ("restartPolicy", "string", ""),
    },
    "ContainerPort": {1: ("name", "string", ""), 2: ("hostPort", "int", ""),
                      3: ("containerPort", "int", ""), 4: ("protocol", "string", ""),
                      5: ("hostIP", "string", "")},
    "EnvVar": {1: ("name", "string", ""), 2: ("value", "string", ""),
               3: ("valueFrom", "EnvVarSource", "")},
    "EnvVarSource": {1: ("fieldRef", "ObjectFieldSelector", ""),
                     2: ("resourceFieldRef", "ResourceFieldSelector", ""),
                     3: ("configMapKeyRef", "KeySelector", ""),
                     4: ("secretKeyRef", "KeySelector", "")},
    "ObjectFieldSelector": {1: ("apiVersion", "string", ""), 2: ("fieldPath", "string", "")},
    "ResourceFieldSelector": {1: ("containerName", "string", ""), 2: ("resource", "string", ""),
                              3: ("divisor", "Quantity", "")},
    "KeySelector": {1: ("", "LocalObjectReference", "i"), 2: ("key", "string", ""),
                    3: ("optional", "bool", "k")},
    "EnvFromSource": {1: ("prefix", "string", ""), 2: ("configMapRef", "RefSource", ""),
                      3: ("secretRef", "RefSource", "")},
    "RefSource": {1: ("", "LocalObjectReference", "i"), 2: ("optional", "bool", "k")},
    "ResourceRequirements": {1: ("limits", "map<Quantity>", ""),
                             2: ("requests", "map<Quantity>", "")},
    "VolumeMount": {1: ("name", "string", ""), 2: ("readOnly", "bool", ""),
                    3: ("mountPath", "string", ""), 4: ("subPath", "string", "")},
    "Volume": {1: ("name", "string", ""), 2: ("", "VolumeSource", "i")},
    "VolumeSource": {2: ("emptyDir", "EmptyDirVolumeSource", ""),
                     6: ("secret", "SecretVolumeSource", ""),
                     19: ("configMap", "ConfigMapVolumeSource", "")},
    "EmptyDirVolumeSource": {1: ("medium", "string", "")},
    "SecretVolumeSource": {1: ("secretName", "string", ""), 2: ("items", "KeyToPath", "r"),
                           3: ("defaultMode", "int", "k"), 4: ("optional", "bool", "k")},
    "ConfigMapVolumeSource": {1: ("", "LocalObjectReference", "i"),
                              2: ("items", "KeyToPath", "r"), 3: ("defaultMode", "int", "k"),
                              4: ("optional", "bool", "k")},
    "KeyToPath": {1: ("key", "string", ""), 2: ("path", "string", ""),
                  3: ("mode", "int", "k")},
    "Probe": {1: ("", "ProbeHandler", "i"), 2: ("initialDelaySeconds", "int", ""),
              3: ("timeoutSeconds", "int", ""), 4: ("periodSeconds", "int", ""),
              5: ("successThreshold", "int", ""), 6: ("failureThreshold", "int", "")},
    "ProbeHandler": {1: ("exec", "ExecAction", ""), 2: ("httpGet", "HTTPGetAction", ""),
                     3: ("tcpSocket", "TCPSocketAction", "")},
    "ExecAction": {1: ("command", "string", "r")},
    "HTTPGetAction": {1: ("path", "string", ""), 2: ("port", "IntOrString", ""),
                      3: ("host", "string", ""), 4: ("scheme", "string", "")},
    "TCPSocketAction": {1: ("port", "IntOrString", ""), 2: ("host", "string", "")},
    # -- apps/v1 ---------------------------------------------------------------------------
    "Deployment": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "DeploymentSpec", ""),
                   3: ("status", "DeploymentStatus", "")},
    "DeploymentSpec": {
        1: ("replicas", "int", "k"), 2: ("selector", "LabelSelector", ""),
        3: ("template", "PodTemplateSpec", ""), 4: ("strategy", "DeploymentStrategy", ""),
        5: ("minReadySeconds", "int", ""), 6: ("revisionHistoryLimit", "int", "k"),
        7: ("paused", "bool", ""), 9: ("progressDeadlineSeconds", "int", "k"),
    },
    "DeploymentStrategy": {1: ("type", "string", ""),
                           2: ("rollingUpdate", "RollingUpdateDeployment", "")},
    "RollingUpdateDeployment": {1: ("maxUnavailable", "IntOrString", ""),
                                2: ("maxSurge", "IntOrString", "")},
    "DeploymentStatus": {},
    # -- rbac.authorization.k8s.io/v1 ------------------------------------------------------
    "Role": {1: ("metadata", "ObjectMeta", ""), 2: ("rules", "PolicyRule", "r")},
    "ClusterRole": {1: ("metadata", "ObjectMeta", ""), 2: ("rules", "PolicyRule", "r"),
                    3: ("aggregationRule", "AggregationRule", "")},
    "AggregationRule": {1: ("clusterRoleSelectors", "LabelSelector", "r")},
    "PolicyRule": {1: ("verbs", "string", "r"), 2: ("apiGroups", "string", "r"),
                   3: ("resources", "string", "r"), 4: ("resourceNames", "string", "r"),
                   5: ("nonResourceURLs", "string", "r")},
    "RoleBinding": {1: ("metadata", "ObjectMeta", ""), 2: ("subjects", "Subject", "r"),
                    3: ("roleRef", "RoleRef", "")},
    "ClusterRoleBinding": {1: ("metadata", "ObjectMeta", ""), 2: ("subjects", "Subject", "r"),
                           3: ("roleRef", "RoleRef", "")},
    "Subject": {1: ("kind", "string", ""), 2: ("apiGroup", "string", ""),
                3: ("name", "string", ""), 4: ("namespace", "string", "")},
    "RoleRef": {1: ("apiGroup", "string", ""), 2: ("kind", "string", ""),
                3: ("name", "string", "")},
    # -- networking.k8s.io/v1 --------------------------------------------------------------
    "Ingress": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "IngressSpec", ""),
                3: ("status", "IngressStatus", "")},
    "IngressStatus": {1: ("loadBalancer", "LoadBalancerStatus", "")},
    "IngressSpec": {1: ("defaultBackend", "IngressBackend", ""), 2: ("tls", "IngressTLS", "r"),
                    3: ("rules", "IngressRule", "r"), 4: ("ingressClassName", "string", "k")},
    "IngressTLS": {1: ("hosts", "string", "r"), 2: ("secretName", "string", "")},
    "IngressRule": {1: ("host", "string", ""), 2: ("", "IngressRuleValue", "i")},
    "IngressRuleValue": {1: ("http", "HTTPIngressRuleValue", "")},
    "HTTPIngressRuleValue": {1: ("paths", "HTTPIngressPath", "r")},
    "HTTPIngressPath": {1: ("path", "string", ""), 2: ("backend", "IngressBackend", ""),
                        3: ("pathType", "string", "k")},
    "IngressBackend": {4: ("service", "IngressServiceBackend", "")},
    "IngressServiceBackend": {1: ("name", "string", ""), 2: ("port", "ServiceBackendPort", "")},
    "ServiceBackendPort": {1: ("name", "string", ""), 2: ("number", "int", "")},
    # -- authentication.k8s.io/v1 (`kubectl create token`, `kubectl auth whoami`) -----------
    # -- batch/v1, policy/v1, scheduling/v1, core quota (kubectl create job|cronjob|pdb|
    # priorityclass|quota) -------------------------------------------------------------
    "Job": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "JobSpec", ""),
            3: ("status", "JobStatus", "")},
    "JobStatus": {},
    "JobSpec": {
        1: ("parallelism", "int", "k"), 2: ("completions", "int", "k"),
        3: ("activeDeadlineSeconds", "int", "k"), 4: ("selector", "LabelSelector", ""),
        5: ("manualSelector", "bool", "k"), 6: ("template", "PodTemplateSpec", ""),
        7: ("backoffLimit", "int", "k"), 8: ("ttlSecondsAfterFinished", "int", "k"),
        9: ("completionMode", "string", ""), 10: ("suspend", "bool", "k"),
        14: ("podReplacementPolicy", "string", ""), 15: ("managedBy", "string", ""),
    },
    "JobTemplateSpec": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "JobSpec", "")},
    "CronJob": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "CronJobSpec", ""),
                3: ("status", "JobStatus", "")},
    "CronJobSpec": {
        1: ("schedule", "string", ""), 2: ("startingDeadlineSeconds", "int", "k"),
        3: ("concurrencyPolicy", "string", ""), 4: ("suspend", "bool", "k"),
        5: ("jobTemplate", "JobTemplateSpec", ""), 6: ("successfulJobsHistoryLimit", "int", "k"),
        7: ("failedJobsHistoryLimit", "int", "k"), 8: ("timeZone", "string", ""),
    },
    "PodDisruptionBudget": {1: ("metadata", "ObjectMeta", ""),
                            2: ("spec", "PodDisruptionBudgetSpec", ""),
                            3: ("status", "JobStatus", "")},
    "PodDisruptionBudgetSpec": {1: ("minAvailable", "IntOrString", ""),
                                2: ("selector", "LabelSelector", ""),
                                3: ("maxUnavailable", "IntOrString", ""),
                                4: ("unhealthyPodEvictionPolicy", "string", "")},
    "PriorityClass": {1: ("metadata", "ObjectMeta", ""), 2: ("value", "int", "k"),
                      3: ("globalDefault", "bool", ""), 4: ("description", "string", ""),
                      5: ("preemptionPolicy", "string", "")},
    "ResourceQuota": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "ResourceQuotaSpec", ""),
                      3: ("status", "JobStatus", "")},
    "ResourceQuotaSpec": {1: ("hard", "map<Quantity>", ""), 2: ("scopes", "string", "r")},
    "CertificateSigningRequest": {1: ("metadata", "ObjectMeta", ""),
                                  2: ("spec", "CertificateSigningRequestSpec", ""),
                                  3: ("status", "CertificateSigningRequestStatus", "")},
    "CertificateSigningRequestSpec": {
        1: ("request", "bytes", ""), 2: ("username", "string", ""), 3: ("uid", "string", ""),
        4: ("groups", "string", "r"), 5: ("usages", "string", "r"),
        7: ("signerName", "string", ""), 8: ("expirationSeconds", "int", "k")},
    "CertificateSigningRequestStatus": {
        1: ("conditions", "CertificateSigningRequestCondition", "r"),
        2: ("certificate", "bytes", "")},
    "CertificateSigningRequestCondition": {
        1: ("type", "string", ""), 2: ("reason", "string", ""), 3: ("message", "string", ""),
        4: ("lastUpdateTime", "Time", ""), 5: ("lastTransitionTime", "Time", ""),
        6: ("status", "string", "")},
    "TokenRequest": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "TokenRequestSpec", ""),
                     3: ("status", "TokenRequestStatus", "")},
    "TokenRequestSpec": {1: ("audiences", "string", "r"),
                         3: ("boundObjectRef", "BoundObjectReference", ""),
                         4: ("expirationSeconds", "int", "k")},
    "TokenRequestStatus": {1: ("token", "string", ""),
                           2: ("expirationTimestamp", "Time", "")},
    "BoundObjectReference": {1: ("kind", "string", ""), 2: ("apiVersion", "string", ""),
                             3: ("name", "string", ""), 4: ("uid", "string", "")},
    "SelfSubjectReview": {1: ("metadata", "ObjectMeta", ""),
                          2: ("status", "SelfSubjectReviewStatus", "")},
    "SelfSubjectReviewStatus": {1: ("userInfo", "UserInfo", "")},
    "UserInfo": {1: ("username", "string", ""), 2: ("uid", "string", ""),
                 3: ("groups", "string", "r")},
    # -- authorization.k8s.io/v1 (`kubectl auth can-i [--list]`) ---------------------------
    "SelfSubjectAccessReview": {1: ("metadata", "ObjectMeta", ""),
                                2: ("spec", "SelfSubjectAccessReviewSpec", ""),
                                3: ("status", "SubjectAccessReviewStatus", "")},
    "SelfSubjectAccessReviewSpec": {1: ("resourceAttributes", "ResourceAttributes", ""),
                                    2: ("nonResourceAttributes", "NonResourceAttributes", "")},
    "SubjectAccessReview": {1: ("metadata", "ObjectMeta", ""),
                            2: ("spec", "SubjectAccessReviewSpec", ""),
                            3: ("status", "SubjectAccessReviewStatus", "")},
    "SubjectAccessReviewSpec": {1: ("resourceAttributes", "ResourceAttributes", ""),
                                2: ("nonResourceAttributes", "NonResourceAttributes", ""),
                                3: ("user", "string", ""), 4: ("groups", "string", "r"),
                                6: ("uid", "string", "")},
    "ResourceAttributes": {1: ("namespace", "string", ""), 2: ("verb", "string", ""),
                           3: ("group", "string", ""), 4: ("version", "string", ""),
                           5: ("resource", "string", ""), 6: ("subresource", "string", ""),
                           7: ("name", "string", "")},
    "NonResourceAttributes": {1: ("path", "string", ""), 2: ("verb", "string", "")},
    "SubjectAccessReviewStatus": {1: ("allowed", "bool", ""), 2: ("reason", "string", ""),
                                  3: ("evaluationError", "string", ""),
                                  4: ("denied", "bool", "")},
    "SelfSubjectRulesReview": {1: ("metadata", "ObjectMeta", ""),
                               2: ("spec", "SelfSubjectRulesReviewSpec", ""),
                               3: ("status", "SubjectRulesReviewStatus", "")},
    "SelfSubjectRulesReviewSpec": {1: ("namespace", "string", "")},
    "SubjectRulesReviewStatus": {},
}

# apiVersion/kind → top-level message.
KINDS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "Namespace", ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret", ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Service"): "Service", ("v1", "Pod"): "Pod",
    ("apps/v1", "Deployment"): "Deployment",
    ("rbac.authorization.k8s.io/v1", "Role"): "Role",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "ClusterRole",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "ClusterRoleBinding",
    ("networking.k8s.io/v1", "Ingress"): "Ingress",
    ("batch/v1", "Job"): "Job", ("batch/v1", "CronJob"): "CronJob",
    ("policy/v1", "PodDisruptionBudget"): "PodDisruptionBudget",
    ("scheduling.k8s.io/v1", "PriorityClass"): "PriorityClass",
    ("v1", "ResourceQuota"): "ResourceQuota",
    ("certificates.k8s.io/v1", "CertificateSigningRequest"): "CertificateSigningRequest",
    ("meta.k8s.io/v1", "DeleteOptions"): "DeleteOptions",
    ("v1", "DeleteOptions"): "DeleteOptions",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SubjectAccessReview"): "SubjectAccessReview",
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): "SubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "SelfSubjectRulesReview",
}


def _unsupported(message: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType",
                    f"localmesh cannot decode this protobuf body: {message}; send it as "
                    "application/json (for kubectl: `kubectl create ... --dry-run=client -o "
                    "yaml | kubectl apply -f -`)")


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf):
            raise _unsupported("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, i


def _fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """The (field number, wire type, value) triples of one message."""
    out: list[tuple[int, int, int | bytes]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
            out.append((num, wt, v))
        elif wt == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise _unsupported("truncated field")
            out.append((num, wt, buf[i:i + n]))
            i += n
        elif wt == 1:
            out.append((num, wt, buf[i:i + 8]))
            i += 8
        elif wt == 5:
            out.append((num, wt, buf[i:i + 4]))
            i += 4
        else:
            raise _unsupported(f"wire type {wt}")
    return out


def _signed(v: int) -> int:
    """int32/int64 fields are two's complement varints (not zigzag)."""
    return v - (1 << 64) if v >= 1 << 63 else v


def _scalar(type_: str, wt: int, v: int | bytes) -> object:
    if type_ == "string":
        return v.decode() if isinstance(v, bytes) else str(v)
    if type_ == "bytes":
        return base64.b64encode(v if isinstance(v, bytes) else b"").decode()
    if type_ == "int":
        return _signed(v) if isinstance(v, int) else 0
    if type_ == "bool":
        return bool(v)
    raise _unsupported(f"type {type_}")


def _special(type_: str, buf: bytes) -> object:
    if type_ == "Time":
        f = {n: v for n, _, v in _fields(buf)}
        raw = f.get(1, 0)
        secs = _signed(raw) if isinstance(raw, int) else 0
        if not secs:
            return None
        return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if type_ == "IntOrString":
        f = {n: v for n, _, v in _fields(buf)}
        if f.get(1, 0) == 1:
            s = f.get(3, b"")
            return s.decode() if isinstance(s, bytes) else ""
        v = f.get(2, 0)
        return _signed(v) if isinstance(v, int) else 0
    if type_ == "Quantity":
        f = {n: v for n, _, v in _fields(buf)}
        s = f.get(1, b"")
        return s.decode() if isinstance(s, bytes) else ""
    if type_ == "FieldsV1":  # {Raw=1}: the field set's JSON
        f = {n: v for n, _, v in _fields(buf)}
        raw = f.get(1, b"")
        return json.loads(raw) if isinstance(raw, bytes) and raw else {}
    raise _unsupported(f"type {type_}")


def _is_zero(wt: int, v: int | bytes) -> bool:
    return (wt == 0 and v == 0) or (wt == 2 and v == b"")


def decode_message(name: str, buf: bytes) -> dict:
    """Decode one message into the dict its JSON form would be (omitempty applied)."""
    schema = SCHEMA[name]
    out: dict = {}
    for num, wt, v in _fields(buf):
        spec = schema.get(num)
        if spec is None:
            if _is_zero(wt, v):
                continue
            raise _unsupported(f"{name} field {num} is not known to localmesh")
        json_name, type_, flags = spec
        if type_.startswith("map<"):
            entry = {n: val for n, _, val in _fields(v if isinstance(v, bytes) else b"")}
            raw_key = entry.get(1, b"")
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            raw = entry.get(2, b"")
            inner = type_[4:-1]
            if inner == "string":
                val: object = raw.decode() if isinstance(raw, bytes) else ""
            elif inner == "bytes":
                val = base64.b64encode(raw if isinstance(raw, bytes) else b"").decode()
            else:
                val = _special(inner, raw if isinstance(raw, bytes) else b"")
            out.setdefault(json_name, {})[key] = val
            continue
        if type_ in ("string", "bytes", "int", "bool"):
            if "r" in flags and wt == 2 and type_ in ("int", "bool"):
                # A packed repeated scalar.
                assert isinstance(v, bytes)
                j = 0
                while j < len(v):
                    item, j = _varint(v, j)
                    out.setdefault(json_name, []).append(_scalar(type_, 0, item))
                continue
            value = _scalar(type_, wt, v)
            if "r" in flags:
                out.setdefault(json_name, []).append(value)
            elif value in ("", 0, False) and "k" not in flags:
                continue
            else:
                out[json_name] = value
            continue
        if not isinstance(v, bytes):
            raise _unsupported(f"{name} field {num} has wire type {wt}")
        if type_ in ("Time", "IntOrString", "Quantity", "FieldsV1"):
            value = _special(type_, v)
            if value is not None:
                if "r" in flags:
                    out.setdefault(json_name, []).append(value)
                else:
                    out[json_name] = value
            continue
        value = decode_message(type_, v)
        if "i" in flags:
            out.update(value)
        elif "r" in flags:
            out.setdefault(json_name, []).append(value)
        else:
            out[json_name] = value
    return out


def decode(body: bytes) -> dict:
    """A ``k8s\\0``-framed protobuf object → its JSON-shaped dict (with apiVersion/kind)."""
    if not body.startswith(MAGIC):
        raise _unsupported("the body does not start with the k8s protobuf magic number")
    envelope = {n: v for n, _, v in _fields(body[len(MAGIC):])}
    type_meta = {n: v for n, _, v in _fields(envelope.get(1, b""))}  # type: ignore[arg-type]
    api_version = type_meta.get(1, b"").decode()  # type: ignore[union-attr]
    kind = type_meta.get(2, b"").decode()  # type: ignore[union-attr]
    encoding = envelope.get(3, b"")
    if encoding:
        raise _unsupported(f"content encoding {encoding!r}")
    message = KINDS.get((api_version, kind))
    if message is None:
        raise _unsupported(f"{api_version}/{kind} is not a kind localmesh decodes from protobuf")
    raw = envelope.get(2, b"")
    obj = decode_message(message, raw if isinstance(raw, bytes) else b"")
    return {"apiVersion": api_version, "kind": kind, **obj}

"""Admission for the kinds issue 13 added: their defaults (``pkg/apis/*/v1/defaults.go``),
the validation clients meet first, and the admission plugins that read other objects —
DefaultStorageClass, Priority and RuntimeClass.

- Job: ``parallelism``/``completions`` 1 (completions stays unset for a work queue with
  parallelism), ``backoffLimit`` 6, ``completionMode`` NonIndexed, ``suspend`` false, the
  generated selector on ``batch.kubernetes.io/controller-uid`` and the template labels
  upstream adds; the template must say ``restartPolicy`` OnFailure or Never.
- CronJob: ``concurrencyPolicy`` Allow, ``suspend`` false, history limits 3 and 1; the
  schedule must parse.
- DaemonSet, StatefulSet: update strategies, ``podManagementPolicy`` OrderedReady,
  ``revisionHistoryLimit`` 10, the pod template's defaults; the selector must match.
- ReplicationController: the selector and labels default to the template's labels.
- PersistentVolumeClaim: the default StorageClass, ``volumeMode`` Filesystem, phase
  Pending; PersistentVolume: reclaim policy Retain, phase Available.
- Pod: ``priorityClassName`` resolved to ``priority`` (globalDefault for none);
  ``runtimeClassName`` must name a RuntimeClass.
"""

from __future__ import annotations

import uuid

from localmesh.admission import Causes, pod_spec_defaults
from localmesh.api import status
from localmesh.api.objects import ObjectAPI
from localmesh.api.schema import required_zeros
from localmesh.controllers import cron
from localmesh.resources import ResourceType

JOB_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")
NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


def _template_defaults(spec: dict, keep_restart_policy: bool = False) -> None:
    tmpl = spec.setdefault("template", {})
    pspec = tmpl.setdefault("spec", {})
    policy = pspec.get("restartPolicy")
    pod_spec_defaults(pspec)
    if keep_restart_policy:
        if policy is None:
            pspec.pop("restartPolicy", None)
        else:
            pspec["restartPolicy"] = policy


def _job_defaults(obj: dict, old: dict | None) -> None:
    spec = obj.setdefault("spec", {})
    meta = obj.setdefault("metadata", {})
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    _template_defaults(spec, keep_restart_policy=True)
    if old is None and not spec.get("manualSelector"):
        # The registry generates the uid before defaulting so the selector can name it.
        uid = meta.setdefault("uid", str(uuid.uuid4()))
        spec["selector"] = {"matchLabels": {JOB_LABELS[0]: uid}}
        labels = spec["template"].setdefault("metadata", {}).setdefault("labels", {})
        for key in JOB_LABELS:
            labels[key] = uid
        for key in NAME_LABELS:
            labels[key] = meta.get("name", "")
    if old is None:
        obj.setdefault("status", {})


def defaults(api: ObjectAPI, rt: ResourceType, obj: dict, old: dict | None) -> None:
    """Mutating step: the new kinds' defaults."""
    spec = obj.get("spec")
    key = rt.key
    if key == ("batch", "jobs"):
        _job_defaults(obj, old)
    elif key == ("batch", "cronjobs") and isinstance(spec, dict):
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        jspec = spec.setdefault("jobTemplate", {}).setdefault("spec", {})
        jspec.setdefault("backoffLimit", 6)
        jspec.setdefault("completionMode", "NonIndexed")
        _template_defaults(jspec, keep_restart_policy=True)
    elif key == ("apps", "daemonsets") and isinstance(spec, dict):
        strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy["type"] = "RollingUpdate"
            strategy.setdefault("rollingUpdate", {"maxUnavailable": 1, "maxSurge": 0})
        spec.setdefault("revisionHistoryLimit", 10)
        _template_defaults(spec)
        if old is None:
            obj.setdefault("status", {})
    elif key == ("apps", "statefulsets") and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy["type"] = "RollingUpdate"
            strategy.setdefault("rollingUpdate", {"partition": 0})
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("persistentVolumeClaimRetentionPolicy",
                        {"whenDeleted": "Retain", "whenScaled": "Retain"})
        for t in spec.get("volumeClaimTemplates") or []:
            tspec = t.setdefault("spec", {})
            tspec.setdefault("volumeMode", "Filesystem")
            t.setdefault("apiVersion", "v1")
            t.setdefault("kind", "PersistentVolumeClaim")
        _template_defaults(spec)
        if old is None:
            obj.setdefault("status", {"replicas": 0})
    elif key == ("", "replicationcontrollers") and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        if not obj.setdefault("metadata", {}).get("labels"):
            obj["metadata"]["labels"] = dict(labels)
        _template_defaults(spec)
        if old is None:
            obj.setdefault("status", {"replicas": 0})
    elif key == ("", "persistentvolumeclaims"):
        pvc_spec = obj.setdefault("spec", {})
        if old is None and pvc_spec.get("storageClassName") is None:
            default = _default_class(api)
            if default:
                pvc_spec["storageClassName"] = default
        pvc_spec.setdefault("volumeMode", "Filesystem")
        if old is None:
            obj["status"] = {"phase": "Pending"}
    elif key == ("", "persistentvolumes"):
        pv_spec = obj.setdefault("spec", {})
        pv_spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        pv_spec.setdefault("volumeMode", "Filesystem")
        if old is None:
            obj["status"] = {"phase": "Available"}
    elif key == ("", "pods") and old is None and isinstance(spec, dict):
        _priority(api, spec)
    else:
        _simple_defaults(key, obj)
    if old is None and key in ZERO_STATUS:
        # Status fields Go always writes (no omitempty), zero until a controller counts.
        status_schema = (api.schema(rt) or None) and api.schema(rt).field("status")  # type: ignore[union-attr]
        obj["status"] = {**required_zeros(status_schema), **(obj.get("status") or {})}


HPA_BEHAVIOR = {
    "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15}]},
    "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max", "policies": [
        {"type": "Percent", "value": 100, "periodSeconds": 15}]},
}
WEBHOOK_DEFAULTS = {"failurePolicy": "Fail", "matchPolicy": "Equivalent",
                    "namespaceSelector": {}, "objectSelector": {}, "timeoutSeconds": 10}


def _simple_defaults(key: tuple[str, str], obj: dict) -> None:
    """Field defaults of the kinds no controller of localmesh's needs to see first."""
    spec = obj.get("spec")
    if key == ("scheduling.k8s.io", "priorityclasses"):
        obj.setdefault("preemptionPolicy", "PreemptLowerPriority")
    elif key == ("storage.k8s.io", "storageclasses"):
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")
    elif key == ("autoscaling", "horizontalpodautoscalers") and isinstance(spec, dict):
        spec.setdefault("minReplicas", 1)
        if not spec.get("metrics"):
            spec["metrics"] = [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
        behavior = spec.setdefault("behavior", {})
        for direction, values in HPA_BEHAVIOR.items():
            behavior.setdefault(direction, {})
            for k, v in values.items():
                behavior[direction].setdefault(k, v)
    elif key == ("networking.k8s.io", "networkpolicies") and isinstance(spec, dict):
        if not spec.get("policyTypes"):
            spec["policyTypes"] = ["Ingress", *(["Egress"] if spec.get("egress") else [])]
    elif key == ("admissionregistration.k8s.io", "validatingadmissionpolicies") and \
            isinstance(spec, dict):
        spec.setdefault("failurePolicy", "Fail")
        match = spec.setdefault("matchConstraints", {})
        for k, v in (("matchPolicy", "Equivalent"), ("namespaceSelector", {}),
                     ("objectSelector", {})):
            match.setdefault(k, v)
        for rule in match.get("resourceRules") or []:
            rule.setdefault("scope", "*")
    elif key in (("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
                 ("admissionregistration.k8s.io", "validatingwebhookconfigurations")):
        for hook in obj.get("webhooks") or []:
            for k, v in WEBHOOK_DEFAULTS.items():
                hook.setdefault(k, v)
            if key[1].startswith("mutating"):
                hook.setdefault("reinvocationPolicy", "Never")
            for rule in hook.get("rules") or []:
                rule.setdefault("scope", "*")
    elif key == ("", "limitranges") and isinstance(spec, dict):
        for item in spec.get("limits") or []:
            if item.get("type") == "Container":
                default = item.setdefault("default", dict(item.get("max") or {}))
                item.setdefault("defaultRequest", dict(default))
                if not item["default"]:
                    item.pop("default")
                if not item["defaultRequest"]:
                    item.pop("defaultRequest")
    elif key == ("", "podtemplates"):
        pod_spec_defaults(obj.setdefault("template", {}).setdefault("spec", {}))


ZERO_STATUS = {("apps", "daemonsets"), ("apps", "statefulsets"),
               ("policy", "poddisruptionbudgets"), ("autoscaling", "horizontalpodautoscalers"),
               ("", "replicationcontrollers")}


def _default_class(api: ObjectAPI) -> str | None:
    for sc in api.store.scan(("storage.k8s.io", "storageclasses")):
        if (sc["metadata"].get("annotations") or {}).get(
                "storageclass.kubernetes.io/is-default-class") == "true":
            return str(sc["metadata"]["name"])
    return None


def _priority(api: ObjectAPI, spec: dict) -> None:
    """The Priority admission plugin: the class's value (the global default's for none)."""
    classes = api.store.scan(("scheduling.k8s.io", "priorityclasses"))
    name = spec.get("priorityClassName")
    chosen = next((c for c in classes if c["metadata"]["name"] == name), None) if name else \
        next((c for c in classes if c.get("globalDefault")), None)
    if chosen is not None:
        spec["priority"] = chosen.get("value", 0)
        spec.setdefault("preemptionPolicy", chosen.get("preemptionPolicy",
                                                       "PreemptLowerPriority"))
        if not name:
            spec["priorityClassName"] = chosen["metadata"]["name"]
    elif not name:
        spec.setdefault("priority", 0)


def validate(api: ObjectAPI, rt: ResourceType, obj: dict, old: dict | None) -> Causes:
    """Validating step: what the new kinds refuse, naming the field."""
    causes: Causes = []
    spec = obj.get("spec") or {}
    key = rt.key
    if key == ("batch", "jobs"):
        causes += _job_template(spec, "spec.template.spec.restartPolicy")
    elif key == ("batch", "cronjobs"):
        try:
            cron.parse(str(spec.get("schedule", "")))
        except cron.ScheduleError as exc:
            causes.append(("spec.schedule", "FieldValueInvalid",
                           f"Invalid value: {status.go_quote(str(spec.get('schedule', '')))}: "
                           f"{exc}"))
        causes += _job_template((spec.get("jobTemplate") or {}).get("spec") or {},
                                "spec.jobTemplate.spec.template.spec.restartPolicy")
    elif key in (("apps", "daemonsets"), ("apps", "statefulsets")):
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not spec.get("selector"):
            causes.append(("spec.selector", "FieldValueRequired", "Required value"))
        elif any(labels.get(k) != v for k, v in selector.items()):
            causes.append(("spec.template.metadata.labels", "FieldValueInvalid",
                           f"Invalid value: {status.go_value(labels)}: `selector` does not "
                           "match template `labels`"))
        if old is not None and (old.get("spec") or {}).get("selector") != spec.get("selector"):
            causes.append(("spec.selector", "FieldValueInvalid",
                           "Invalid value: field is immutable"))
    elif key == ("", "pods") and old is None and spec.get("runtimeClassName"):
        rc = api.store.get(("node.k8s.io", "runtimeclasses"), "", spec["runtimeClassName"])
        if rc is None:
            raise status.new_forbidden("pods", "", obj["metadata"].get("name", ""),
                                       f'pod rejected: RuntimeClass '
                                       f'"{spec["runtimeClassName"]}" not found')
    elif key == ("", "pods") and old is None and spec.get("priorityClassName") and \
            api.store.get(("scheduling.k8s.io", "priorityclasses"), "",
                          spec["priorityClassName"]) is None:
        raise status.new_forbidden("pods", "", obj["metadata"].get("name", ""),
                                   f'no PriorityClass with name '
                                   f'{spec["priorityClassName"]} was found')
    return causes


def _job_template(spec: dict, field: str) -> Causes:
    policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
    if policy is None:
        return [(field, "FieldValueRequired", 'Required value: valid values: "OnFailure", '
                                              '"Never"')]
    if policy not in ("OnFailure", "Never"):
        return [(field, "FieldValueNotSupported",
                 f'Unsupported value: {status.go_quote(policy)}: supported values: '
                 '"OnFailure", "Never"')]
    return []


def install(api: ObjectAPI) -> None:
    api.admission.add_mutator("*", defaults)
    api.admission.add_validator("*", validate)

"""Table columns of the kinds issue 13 added, after the upstream printers
(kubernetes ``pkg/printers/internalversion/printers.go``: printDaemonSet, printStatefulSet,
printJob, printCronJob, printReplicationController, printPersistentVolumeClaim,
printPersistentVolume, printResourceQuota, printLimitRange, printPodDisruptionBudget,
printHorizontalPodAutoscaler, printNetworkPolicy, printAPIService,
printValidatingAdmissionPolicy(Binding), printMutating/ValidatingWebhook,
printCertificateSigningRequest, printPriorityClass, printRuntimeClass, printStorageClass,
printControllerRevision, printPodTemplate). localmesh/api/tables.py holds the shared
helpers and the older kinds; a table module, so longer than most.
"""

from __future__ import annotations

from collections.abc import Callable

from localmesh.api.tables import (
    AGE,
    NAME,
    Column,
    Row,
    _age,
    _col,
    _containers,
    format_labels,
    format_selector,
    human_duration,
    parse_time,
    since,
)

_CONTAINERS = _col("Containers", priority=1, description="Names of each container in the "
                                                         "template.")
_IMAGES = _col("Images", priority=1, description="Images referenced by each container in the "
                                                 "template.")
_SELECTOR = _col("Selector", priority=1, description="Label selector for pods.")


def _name(o: dict) -> str:
    return str((o.get("metadata") or {}).get("name", ""))


def _tmpl_spec(spec: dict) -> dict:
    return (spec.get("template") or {}).get("spec") or {}


# -- apps ----------------------------------------------------------------------------------
DAEMONSET_COLUMNS = [
    NAME, _col("Desired", "integer", "The desired number of nodes that should be running the "
                                     "daemon pod."),
    _col("Current", "integer", "The number of nodes that are running at least 1 daemon pod."),
    _col("Ready", "integer", "The number of nodes that should be running the daemon pod and "
                             "have one or more of the daemon pod running and ready."),
    _col("Up-to-date", "integer", "The total number of nodes that are running updated daemon "
                                  "pod"),
    _col("Available", "integer", "The number of nodes that should be running the daemon pod "
                                 "and have one or more of the daemon pod running and "
                                 "available."),
    _col("Node Selector", description="NodeSelector is a selector which must be true for the "
                                      "pod to fit on a node."),
    AGE, _CONTAINERS, _IMAGES, _SELECTOR,
]


def _daemonset_row(o: dict) -> Row:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers(_tmpl_spec(spec))
    node_selector = _tmpl_spec(spec).get("nodeSelector")
    return [_name(o), st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0),
            st.get("numberReady", 0), st.get("updatedNumberScheduled", 0),
            st.get("numberAvailable", 0), format_labels(node_selector), _age(o), names,
            images, format_selector(spec.get("selector"))]


STATEFULSET_COLUMNS = [
    NAME, _col("Ready", description="Number of the pod with ready state"), AGE,
    _CONTAINERS, _IMAGES,
]


def _statefulset_row(o: dict) -> Row:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers(_tmpl_spec(spec))
    return [_name(o), f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}", _age(o),
            names, images]


CONTROLLERREVISION_COLUMNS = [
    NAME, _col("Controller", description="Controller of the object"),
    _col("Revision", "integer", "Revision of the ControllerRevision"), AGE,
]


def _controllerrevision_row(o: dict) -> Row:
    owner = next((r for r in (o.get("metadata") or {}).get("ownerReferences") or []
                  if r.get("controller")), None)
    controller = "<none>" if owner is None else \
        f"{owner.get('kind', '').lower()}.{owner.get('apiVersion', '').split('/')[0]}" \
        f"/{owner.get('name', '')}"
    return [_name(o), controller, o.get("revision", 0), _age(o)]


# -- batch ---------------------------------------------------------------------------------
JOB_COLUMNS = [
    NAME, _col("Status", description="Status of the job."),
    _col("Completions", description="The completion status of the job."),
    _col("Duration", description="Time required to complete the job."), AGE,
    _CONTAINERS, _IMAGES, _SELECTOR,
]


def _job_status(o: dict) -> str:
    conds = {c.get("type"): c.get("status") for c in (o.get("status") or {}).get(
        "conditions") or []}
    for kind in ("Complete", "Failed", "FailureTarget", "SuccessCriteriaMet", "Suspended"):
        if conds.get(kind) == "True":
            return kind
    if (o.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    return "Running"


def _job_row(o: dict) -> Row:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers(_tmpl_spec(spec))
    completions = spec.get("completions")
    parallelism = spec.get("parallelism", 1)
    if completions is not None:
        done = f"{st.get('succeeded', 0)}/{completions}"
    elif parallelism > 1:
        done = f"{st.get('succeeded', 0)}/1 of {parallelism}"
    else:
        done = f"{st.get('succeeded', 0)}/1"
    start, end = parse_time(st.get("startTime")), parse_time(st.get("completionTime"))
    if start is None:
        duration = ""
    elif end is None:
        duration = since(st.get("startTime"))
    else:
        duration = human_duration((end - start).total_seconds())
    return [_name(o), _job_status(o), done, duration, _age(o), names, images,
            format_selector(spec.get("selector"))]


CRONJOB_COLUMNS = [
    NAME, _col("Schedule", description="The schedule in Cron format, see "
                                       "https://en.wikipedia.org/wiki/Cron."),
    _col("Timezone", description="The time zone name for the given schedule."),
    _col("Suspend", "boolean", "This flag tells the controller to suspend subsequent "
                               "executions."),
    _col("Active", "integer", "A list of pointers to currently running jobs."),
    _col("Last Schedule", description="Information when was the last time the job was "
                                      "successfully scheduled."),
    AGE, _CONTAINERS, _IMAGES, _SELECTOR,
]


def _cronjob_row(o: dict) -> Row:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    jspec = (spec.get("jobTemplate") or {}).get("spec") or {}
    names, images = _containers(_tmpl_spec(jspec))
    last = st.get("lastScheduleTime")
    return [_name(o), spec.get("schedule", ""), spec.get("timeZone") or "<none>",
            bool(spec.get("suspend")), len(st.get("active") or []),
            since(last) if last else "<none>", _age(o), names, images,
            format_selector(jspec.get("selector"))]


# -- core ----------------------------------------------------------------------------------
RC_COLUMNS = [
    NAME, _col("Desired", "integer", "Number of desired pods."),
    _col("Current", "integer", "Number of actual replicas."),
    _col("Ready", "integer", "Number of ready replicas."), AGE, _CONTAINERS, _IMAGES,
    _SELECTOR,
]


def _rc_row(o: dict) -> Row:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers(_tmpl_spec(spec))
    selector = spec.get("selector") or {}
    return [_name(o), spec.get("replicas", 1), st.get("replicas", 0),
            st.get("readyReplicas", 0), _age(o), names, images, format_labels(selector)]


def _modes(modes: list[str] | None) -> str:
    short = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
             "ReadWriteOncePod": "RWOP"}
    return ",".join(short.get(m, m) for m in modes or [])


PVC_COLUMNS = [
    NAME, _col("Status", description="Status of the claim."),
    _col("Volume", description="Name of the volume bound to the claim."),
    _col("Capacity", description="Capacity of the volume."),
    _col("Access Modes", description="Access modes of the volume."),
    _col("StorageClass", description="StorageClass of the volume."),
    _col("VolumeAttributesClass", description="VolumeAttributesClass of the volume."),
    AGE, _col("VolumeMode", priority=1, description="Volume mode of the claim."),
]


def _pvc_row(o: dict) -> Row:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    bound = st.get("phase") == "Bound"
    return [_name(o), st.get("phase", "Pending"), spec.get("volumeName", ""),
            (st.get("capacity") or {}).get("storage", "") if bound else "",
            _modes(st.get("accessModes")) if bound else "",
            spec.get("storageClassName") or "", spec.get("volumeAttributesClassName") or
            "<unset>", _age(o), spec.get("volumeMode", "Filesystem")]


PV_COLUMNS = [
    NAME, _col("Capacity", description="Capacity of the volume."),
    _col("Access Modes", description="Access modes of the volume."),
    _col("Reclaim Policy", description="Reclaim policy of the volume."),
    _col("Status", description="Status of the volume."),
    _col("Claim", description="The claim bound to the volume."),
    _col("StorageClass", description="StorageClass of the volume."),
    _col("VolumeAttributesClass", description="VolumeAttributesClass of the volume."),
    _col("Reason", description="Reason for the status."), AGE,
    _col("VolumeMode", priority=1, description="Volume mode of the volume."),
]


def _pv_row(o: dict) -> Row:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    ref = spec.get("claimRef") or {}
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref.get("name") else ""
    return [_name(o), (spec.get("capacity") or {}).get("storage", ""),
            _modes(spec.get("accessModes")), spec.get("persistentVolumeReclaimPolicy", ""),
            st.get("phase", ""), claim, spec.get("storageClassName", ""),
            spec.get("volumeAttributesClassName") or "<unset>", st.get("reason", ""), _age(o),
            spec.get("volumeMode", "Filesystem")]


QUOTA_COLUMNS = [
    NAME, AGE, _col("Request", description="Request represents a minimum amount of cpu/memory "
                                           "that a container may consume."),
    _col("Limit", description="Limits control the maximum amount of cpu/memory that a "
                              "container may use independent of contention on the node."),
]


def _quota_row(o: dict) -> Row:
    st = o.get("status") or {}
    hard, used = st.get("hard") or {}, st.get("used") or {}
    requests: list[str] = []
    limits: list[str] = []
    for r in sorted(hard):
        text = f"{r}: {used.get(r, '0')}/{hard[r]}"
        (limits if r.startswith("limits.") else requests).append(text)
    return [_name(o), _age(o), ", ".join(requests), ", ".join(limits)]


CREATED_AT = _col("Created At", "date", "CreationTimestamp is a timestamp representing the "
                                        "server time when this object was created.")


def _created_at(o: dict) -> str:
    return str((o.get("metadata") or {}).get("creationTimestamp", ""))


LIMITRANGE_COLUMNS = [NAME, CREATED_AT]


def _created_row(o: dict) -> Row:
    return [_name(o), _created_at(o)]


PODTEMPLATE_COLUMNS = [
    NAME, _col("Containers", description="Names of each container in the template."),
    _col("Images", description="Images referenced by each container in the template."),
    _col("Pod Labels", description="The labels for the pod template."),
]


def _podtemplate_row(o: dict) -> Row:
    tmpl = o.get("template") or {}
    names, images = _containers(tmpl.get("spec") or {})
    return [_name(o), names, images, format_labels((tmpl.get("metadata") or {}).get("labels"))]


# -- policy, autoscaling, networking ---------------------------------------------------------
PDB_COLUMNS = [
    NAME, _col("Min Available", description="The minimum number of pods that must be "
                                            "available."),
    _col("Max Unavailable", description="The maximum number of pods that may be unavailable."),
    _col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted "
                                           "at this time."),
    AGE,
]


def _pdb_row(o: dict) -> Row:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    return [_name(o), str(spec["minAvailable"]) if "minAvailable" in spec else "N/A",
            str(spec["maxUnavailable"]) if "maxUnavailable" in spec else "N/A",
            st.get("disruptionsAllowed", 0), _age(o)]


HPA_COLUMNS = [
    NAME, _col("Reference", description="Reference to the target resource."),
    _col("Targets", description="The current and target values of the metrics."),
    _col("MinPods", description="The lower limit for the number of pods."),
    _col("MaxPods", "integer", "The upper limit for the number of pods."),
    _col("Replicas", "integer", "Current number of replicas."), AGE,
]


def _hpa_row(o: dict) -> Row:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    targets = []
    for m in spec.get("metrics") or [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]:
        res = m.get("resource") or {}
        target = res.get("target") or {}
        want = (f"{target['averageUtilization']}%" if "averageUtilization" in target else
                str(target.get("averageValue") or target.get("value") or ""))
        targets.append(f"{res.get('name', m.get('type', ''))}: <unknown>/{want}")
    return [_name(o), f"{ref.get('kind', '')}/{ref.get('name', '')}", ", ".join(targets),
            spec.get("minReplicas", 1), spec.get("maxReplicas", 0),
            st.get("currentReplicas", 0), _age(o)]


NETPOL_COLUMNS = [
    NAME, _col("Pod-Selector", description="Selects the pods to which this NetworkPolicy "
                                           "object applies."), AGE,
]


def _netpol_row(o: dict) -> Row:
    return [_name(o), format_selector((o.get("spec") or {}).get("podSelector")) or "<none>",
            _age(o)]


APISERVICE_COLUMNS = [
    NAME, _col("Service", description="The reference to the service that hosts this API "
                                      "endpoint."),
    _col("Available", description="Whether this service is available."), AGE,
]


def _apiservice_row(o: dict) -> Row:
    ref = (o.get("spec") or {}).get("service")
    service = "Local" if not ref else f"{ref.get('namespace', '')}/{ref.get('name', '')}"
    cond = next((c for c in (o.get("status") or {}).get("conditions") or []
                 if c.get("type") == "Available"), None)
    available = "Unknown" if cond is None else (
        "True" if cond.get("status") == "True" else f"False ({cond.get('reason', '')})")
    return [_name(o), service, available, _age(o)]


# -- admission, certificates, scheduling, node, storage ---------------------------------------
VAP_COLUMNS = [
    NAME, _col("Validations", "integer", "Validations indicates the number of validation "
                                         "rules."),
    _col("ParamKind", description="ParamKind specifies the kind of resources used to "
                                  "parameterize this policy."),
    AGE,
]


def _vap_row(o: dict) -> Row:
    spec = o.get("spec") or {}
    kind = spec.get("paramKind")
    param = f"{kind.get('apiVersion', '')}/{kind.get('kind', '')}" if kind else "<unset>"
    return [_name(o), len(spec.get("validations") or []), param, _age(o)]


VAPB_COLUMNS = [
    NAME, _col("PolicyName", description="PolicyName references a ValidatingAdmissionPolicy "
                                         "name."),
    _col("ParamRef", description="ParamRef specifies the parameter resource used to "
                                 "configure the admission control policy."), AGE,
]


def _vapb_row(o: dict) -> Row:
    spec = o.get("spec") or {}
    ref = spec.get("paramRef")
    param = "<unset>" if not ref else (
        f"{ref.get('namespace')}/{ref.get('name', '*')}" if ref.get("namespace")
        else str(ref.get("name", "*")))
    return [_name(o), spec.get("policyName", ""), param, _age(o)]


WEBHOOK_COLUMNS = [
    NAME, _col("Webhooks", "integer", "Webhooks indicates the number of webhooks."), AGE,
]


def _webhook_row(o: dict) -> Row:
    return [_name(o), len(o.get("webhooks") or []), _age(o)]


CSR_COLUMNS = [
    NAME, AGE, _col("SignerName", description="Name of the signer."),
    _col("Requestor", description="Name of the requestor"),
    _col("RequestedDuration", description="The requested duration."),
    _col("Condition", description="Condition of the request"),
]


def _csr_row(o: dict) -> Row:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    conds = [c.get("type", "") for c in st.get("conditions") or []
             if c.get("status", "True") == "True"]
    condition = ",".join(conds) if conds else "Pending"
    if st.get("certificate"):
        condition += ",Issued"
    seconds = spec.get("expirationSeconds")
    return [_name(o), _age(o), spec.get("signerName", ""), spec.get("username", ""),
            human_duration(seconds) if seconds else "<none>", condition]


PRIORITYCLASS_COLUMNS = [
    NAME, _col("Value", "integer", "The integer value of this priority class."),
    _col("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass "
                                      "should be considered as the default priority."),
    AGE, _col("PreemptionPolicy", description="PreemptionPolicy is the Policy for preempting "
                                              "pods with lower priority."),
]


def _priorityclass_row(o: dict) -> Row:
    return [_name(o), o.get("value", 0), bool(o.get("globalDefault")), _age(o),
            o.get("preemptionPolicy", "PreemptLowerPriority")]


RUNTIMECLASS_COLUMNS = [
    NAME, _col("Handler", description="Handler specifies the underlying runtime and "
                                      "configuration that the CRI implementation will use to "
                                      "handle pods of this class."), AGE,
]


def _runtimeclass_row(o: dict) -> Row:
    return [_name(o), o.get("handler", ""), _age(o)]


STORAGECLASS_COLUMNS = [
    NAME, _col("Provisioner", description="Indicates the type of the provisioner."),
    _col("ReclaimPolicy", description="Indicates the type of the reclaim policy."),
    _col("VolumeBindingMode", description="Indicates the type of the volume binding mode."),
    _col("AllowVolumeExpansion", "boolean", "Indicates whether the storage class allow "
                                            "volume expand."),
    AGE,
]


def _storageclass_row(o: dict) -> Row:
    name = _name(o)
    if ((o.get("metadata") or {}).get("annotations") or {}).get(
            "storageclass.kubernetes.io/is-default-class") == "true":
        name += " (default)"
    return [name, o.get("provisioner", ""), o.get("reclaimPolicy", "Delete"),
            o.get("volumeBindingMode", "Immediate"), bool(o.get("allowVolumeExpansion")),
            _age(o)]


PRINTERS: dict[tuple[str, str], tuple[list[Column], Callable[[dict], Row]]] = {
    ("apps", "daemonsets"): (DAEMONSET_COLUMNS, _daemonset_row),
    ("apps", "statefulsets"): (STATEFULSET_COLUMNS, _statefulset_row),
    ("apps", "controllerrevisions"): (CONTROLLERREVISION_COLUMNS, _controllerrevision_row),
    ("batch", "jobs"): (JOB_COLUMNS, _job_row),
    ("batch", "cronjobs"): (CRONJOB_COLUMNS, _cronjob_row),
    ("", "replicationcontrollers"): (RC_COLUMNS, _rc_row),
    ("", "persistentvolumeclaims"): (PVC_COLUMNS, _pvc_row),
    ("", "persistentvolumes"): (PV_COLUMNS, _pv_row),
    ("", "resourcequotas"): (QUOTA_COLUMNS, _quota_row),
    ("", "limitranges"): (LIMITRANGE_COLUMNS, _created_row),
    ("", "podtemplates"): (PODTEMPLATE_COLUMNS, _podtemplate_row),
    ("policy", "poddisruptionbudgets"): (PDB_COLUMNS, _pdb_row),
    ("autoscaling", "horizontalpodautoscalers"): (HPA_COLUMNS, _hpa_row),
    ("networking.k8s.io", "networkpolicies"): (NETPOL_COLUMNS, _netpol_row),
    ("apiregistration.k8s.io", "apiservices"): (APISERVICE_COLUMNS, _apiservice_row),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"): (VAP_COLUMNS, _vap_row),
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"):
        (VAPB_COLUMNS, _vapb_row),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"):
        (WEBHOOK_COLUMNS, _webhook_row),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"):
        (WEBHOOK_COLUMNS, _webhook_row),
    ("certificates.k8s.io", "certificatesigningrequests"): (CSR_COLUMNS, _csr_row),
    ("scheduling.k8s.io", "priorityclasses"): (PRIORITYCLASS_COLUMNS, _priorityclass_row),
    ("node.k8s.io", "runtimeclasses"): (RUNTIMECLASS_COLUMNS, _runtimeclass_row),
    ("storage.k8s.io", "storageclasses"): (STORAGECLASS_COLUMNS, _storageclass_row),
}

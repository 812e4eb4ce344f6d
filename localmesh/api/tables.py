"""Server-side printing: ``meta.k8s.io/v1`` Table responses, as ``kubectl get`` asks for them.

kubectl sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...`` and prints the
columns the server returns; without a Table it can only print NAME and AGE. The column
definitions and cell logic mirror the real API server's printers
(kubernetes ``pkg/printers/internalversion/printers.go``: printPod, printDeployment,
printReplicaSet, printService, printNamespace, printNode, printEndpoints, printConfigMap,
printSecret, printServiceAccount, printEvent). The server always renders the wide cells
(``GenerateOptions{Wide: true}`` in ``pkg/registry/core/*/storage``); columns with
``priority: 1`` are the ones kubectl shows only with ``-o wide``.

Custom resources use their CRD version's ``additionalPrinterColumns`` (JSONPath), with
NAME and AGE otherwise, as apiextensions-apiserver's ``tableconvertor`` does. Every other
kind gets NAME and AGE.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

Column = dict
Row = list[object]

_NAME_DESC = ("Name must be unique within a namespace. Is required when creating resources, "
              "although some resources may allow a client to request the generation of an "
              "appropriate name automatically. Name is primarily intended for creation "
              "idempotence and configuration definition. Cannot be updated. More info: "
              "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
_AGE_DESC = ("CreationTimestamp is a timestamp representing the server time when this object "
             "was created. It is not guaranteed to be set in happens-before order across "
             "separate operations. Clients may not set this value. It is represented in "
             "RFC3339 form and is in UTC.")


def _col(name: str, type_: str = "string", description: str = "", priority: int = 0,
         format_: str = "") -> Column:
    return {"name": name, "type": type_, "format": format_, "description": description,
            "priority": priority}


NAME = _col("Name", format_="name", description=_NAME_DESC)
AGE = _col("Age", description=_AGE_DESC)


def parse_time(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        return datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rem = s % 60
        return f"{minutes}m" if rem == 0 else f"{minutes}m{rem}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rem = minutes % 60
        return f"{hours}h" if rem == 0 else f"{hours}h{rem}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rem = hours % 24
        return f"{hours // 24}d" if rem == 0 else f"{hours // 24}d{rem}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def since(ts: str | None) -> str:
    """printers.go translateTimestampSince: ``<unknown>`` for a missing time."""
    t = parse_time(ts)
    if t is None:
        return "<unknown>"
    return human_duration((datetime.now(UTC) - t).total_seconds())


def _age(obj: dict) -> str:
    return since(obj.get("metadata", {}).get("creationTimestamp"))


def format_labels(labels: dict | None) -> str:
    """labels.FormatLabels: sorted ``k=v`` pairs, ``<none>`` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def format_selector(selector: dict | None) -> str:
    """metav1.LabelSelectorAsSelector(...).String(); ``<none>`` for an empty selector."""
    if not selector:
        return "<none>"
    reqs: list[tuple[str, str]] = []
    for k, v in (selector.get("matchLabels") or {}).items():
        reqs.append((k, f"{k}={v}"))
    for e in selector.get("matchExpressions") or []:
        key, op, vals = e.get("key", ""), e.get("operator", ""), sorted(e.get("values") or [])
        text = {"In": f"{key} in ({','.join(vals)})", "NotIn": f"{key} notin ({','.join(vals)})",
                "Exists": key, "DoesNotExist": f"!{key}"}.get(op, key)
        reqs.append((key, text))
    if not reqs:
        return "<none>"
    return ",".join(t for _, t in sorted(reqs))


def _containers(tmpl_spec: dict) -> tuple[str, str]:
    cs = tmpl_spec.get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


# -- pods ----------------------------------------------------------------------------------
POD_COLUMNS = [
    NAME,
    _col("Ready", description="The aggregate readiness state of this pod for accepting "
                              "traffic."),
    _col("Status", description="The aggregate status of the containers in this pod."),
    _col("Restarts", description="The number of times the containers in this pod have been "
                                 "restarted and when the last container in this pod has "
                                 "restarted."),
    AGE,
    _col("IP", priority=1, description="podIP address allocated to the pod."),
    _col("Node", priority=1, description="NodeName indicates in which node this pod is "
                                         "scheduled."),
    _col("Nominated Node", priority=1, description="nominatedNodeName is set only when this "
                                                   "pod preempts other pods on the node."),
    _col("Readiness Gates", priority=1, description="If specified, all readiness gates will "
                                                    "be evaluated for pod readiness."),
]


def _pod_row(pod: dict) -> Row:
    spec, st = pod.get("spec") or {}, pod.get("status") or {}
    meta = pod.get("metadata") or {}
    restarts = 0
    sidecar_restarts = 0
    total = len(spec.get("containers") or [])
    ready = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None
    phase = st.get("phase", "")
    reason = st.get("reason") or phase
    for c in st.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    inits = {c.get("name"): c for c in spec.get("initContainers") or []}
    total += sum(1 for c in inits.values() if c.get("restartPolicy") == "Always")

    def later(a: datetime | None, cs: dict) -> datetime | None:
        t = parse_time(((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
        if t is not None and (a is None or t > a):
            return t
        return a

    initializing = False
    n_inits = len(spec.get("initContainers") or [])
    for i, cs in enumerate(st.get("initContainerStatuses") or []):
        restarts += cs.get("restartCount", 0)
        last_restart = later(last_restart, cs)
        sidecar = (inits.get(cs.get("name")) or {}).get("restartPolicy") == "Always"
        if sidecar:
            sidecar_restarts += cs.get("restartCount", 0)
            last_sidecar_restart = later(last_sidecar_restart, cs)
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term is not None and term.get("exitCode") == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            if not term.get("reason"):
                reason = (f"Init:Signal:{term['signal']}" if term.get("signal")
                          else f"Init:ExitCode:{term.get('exitCode', 0)}")
            else:
                reason = "Init:" + term["reason"]
        elif wait is not None and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{n_inits}"
        initializing = True
        break
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True"
                      for c in st.get("conditions") or [])
    if not initializing or initialized:
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for cs in reversed(st.get("containerStatuses") or []):
            restarts += cs.get("restartCount", 0)
            last_restart = later(last_restart, cs)
            state = cs.get("state") or {}
            wait, term = state.get("waiting"), state.get("terminated")
            if wait is not None and wait.get("reason"):
                reason = wait["reason"]
            elif term is not None and term.get("reason"):
                reason = term["reason"]
            elif term is not None:
                reason = (f"Signal:{term['signal']}" if term.get("signal")
                          else f"ExitCode:{term.get('exitCode', 0)}")
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            has_ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in st.get("conditions") or [])
            reason = "Running" if has_ready else "NotReady"
    if meta.get("deletionTimestamp") and st.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        ago = human_duration((datetime.now(UTC) - last_restart).total_seconds())
        restarts_text = f"{restarts} ({ago} ago)"
    ips = st.get("podIPs") or []
    gates = spec.get("readinessGates") or []
    gates_text = "<none>"
    if gates:
        conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
        ok = sum(1 for g in gates if conds.get(g.get("conditionType")) == "True")
        gates_text = f"{ok}/{len(gates)}"
    return [meta.get("name", ""), f"{ready}/{total}", reason, restarts_text, _age(pod),
            ips[0].get("ip") if ips else "<none>", spec.get("nodeName") or "<none>",
            st.get("nominatedNodeName") or "<none>", gates_text]


def _pod_conditions(pod: dict) -> list[dict] | None:
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed",
                 "message": "The pod failed."}]
    return None


# -- workloads -----------------------------------------------------------------------------
DEPLOYMENT_COLUMNS = [
    NAME,
    _col("Ready", description="Number of the pod with ready state"),
    _col("Up-to-date", description="Total number of non-terminated pods targeted by this "
                                   "deployment that have the desired template spec."),
    _col("Available", description="Total number of available pods (ready for at least "
                                  "minReadySeconds) targeted by this deployment."),
    AGE,
    _col("Containers", priority=1, description="Names of each container in the template."),
    _col("Images", priority=1, description="Images referenced by each container in the "
                                           "template."),
    _col("Selector", priority=1, description="Label selector for pods. Existing ReplicaSets "
                                             "whose pods are selected by this will be the ones "
                                             "affected by this deployment."),
]


def _deployment_row(d: dict) -> Row:
    spec, st = d.get("spec") or {}, d.get("status") or {}
    names, images = _containers((spec.get("template") or {}).get("spec") or {})
    return [d["metadata"].get("name", ""),
            f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            st.get("updatedReplicas", 0), st.get("availableReplicas", 0), _age(d),
            names, images, format_selector(spec.get("selector"))]


REPLICASET_COLUMNS = [
    NAME,
    _col("Desired", "integer", "Number of desired pods."),
    _col("Current", "integer", "Number of actual replicas."),
    _col("Ready", "integer", "Number of ready replicas."),
    AGE,
    _col("Containers", priority=1, description="Names of each container in the template."),
    _col("Images", priority=1, description="Images referenced by each container in the "
                                           "template."),
    _col("Selector", priority=1, description="Selector is a label query over pods that should "
                                             "match the replica count."),
]


def _replicaset_row(rs: dict) -> Row:
    spec, st = rs.get("spec") or {}, rs.get("status") or {}
    names, images = _containers((spec.get("template") or {}).get("spec") or {})
    return [rs["metadata"].get("name", ""), spec.get("replicas", 1), st.get("replicas", 0),
            st.get("readyReplicas", 0), _age(rs), names, images,
            format_selector(spec.get("selector"))]


# -- services and networking ---------------------------------------------------------------
SERVICE_COLUMNS = [
    NAME,
    _col("Type", description="type determines how the Service is exposed."),
    _col("Cluster-IP", description="clusterIP is the IP address of the service."),
    _col("External-IP", description="externalIPs is a list of IP addresses for which nodes "
                                     "in the cluster will also accept traffic for this "
                                     "service."),
    _col("Port(s)", description="The list of ports that are exposed by this service."),
    AGE,
    _col("Selector", priority=1, description="Route service traffic to pods with label keys "
                                             "and values matching this selector."),
]


def _external_ip(svc: dict) -> str:
    spec = svc.get("spec") or {}
    typ = spec.get("type", "ClusterIP")
    ext = spec.get("externalIPs") or []
    if typ in ("ClusterIP", "NodePort"):
        return ",".join(ext) if ext else "<none>"
    if typ == "LoadBalancer":
        ingress = (((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])
        lbs = [i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or
               i.get("hostname")]
        if ext:
            return ",".join([*lbs, *ext])
        return ",".join(lbs) if lbs else "<pending>"
    if typ == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def _service_row(svc: dict) -> Row:
    spec = svc.get("spec") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    ports = []
    for p in spec.get("ports") or []:
        proto = p.get("protocol", "TCP")
        ports.append(f"{p.get('port')}:{p['nodePort']}/{proto}" if p.get("nodePort")
                     else f"{p.get('port')}/{proto}")
    return [svc["metadata"].get("name", ""), spec.get("type", "ClusterIP"),
            ips[0] if ips else "<none>", _external_ip(svc),
            ",".join(ports) if ports else "<none>", _age(svc),
            format_labels(spec.get("selector"))]


ENDPOINTS_COLUMNS = [NAME, _col("Endpoints", description="Endpoints of the service"), AGE]


def _endpoints_row(ep: dict) -> Row:
    """printers.go formatEndpoints: up to three ``ip:port``, then `` + N more...``."""
    pairs = []
    for sub in ep.get("subsets") or []:
        for addr in sub.get("addresses") or []:
            for p in sub.get("ports") or [{"port": None}]:
                pairs.append(f"{addr.get('ip')}:{p.get('port')}" if p.get("port") is not None
                             else addr.get("ip", ""))
    text = ",".join(pairs[:3]) if pairs else "<none>"
    if len(pairs) > 3:
        text += f" + {len(pairs) - 3} more..."
    return [ep["metadata"].get("name", ""), text, _age(ep)]


INGRESS_COLUMNS = [
    NAME, _col("Class", description="The name of the IngressClass resource."),
    _col("Hosts", description="Hosts that incoming requests are matched against before the "
                              "ingress rule"),
    _col("Address", description="Address is a list containing ingress points for the "
                                "load-balancer"),
    _col("Ports", description="Ports of TLS configurations that open"), AGE,
]


def _ingress_row(ing: dict) -> Row:
    spec = ing.get("spec") or {}
    hosts = [r.get("host") for r in spec.get("rules") or [] if r.get("host")]
    ingress = (((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])
    addrs = [i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or
             i.get("hostname")]
    return [ing["metadata"].get("name", ""), spec.get("ingressClassName") or "<none>",
            ",".join(hosts) if hosts else "*", ",".join(addrs),
            "80, 443" if spec.get("tls") else "80", _age(ing)]


# -- cluster and config --------------------------------------------------------------------
NAMESPACE_COLUMNS = [NAME, _col("Status", description="The status of the namespace"), AGE]


def _namespace_row(ns: dict) -> Row:
    return [ns["metadata"].get("name", ""), (ns.get("status") or {}).get("phase", ""), _age(ns)]


NODE_COLUMNS = [
    NAME, _col("Status", description="The status of the node"),
    _col("Roles", description="The roles of the node"), AGE,
    _col("Version", description="Kubelet Version reported by the node."),
    _col("Internal-IP", priority=1, description="List of addresses reachable to the node."),
    _col("External-IP", priority=1, description="List of addresses reachable to the node."),
    _col("OS-Image", priority=1, description="OS Image reported by the node."),
    _col("Kernel-Version", priority=1, description="Kernel Version reported by the node."),
    _col("Container-Runtime", priority=1, description="Container Runtime Version reported by "
                                                      "the node."),
]


def _node_row(node: dict) -> Row:
    st = node.get("status") or {}
    ready = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), None)
    status = "Unknown" if ready is None else ("Ready" if ready.get("status") == "True"
                                              else "NotReady")
    if (node.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    roles = sorted(k.split("/", 1)[1] for k in (node["metadata"].get("labels") or {})
                   if k.startswith("node-role.kubernetes.io/"))
    addrs = {a.get("type"): a.get("address") for a in st.get("addresses") or []}
    info = st.get("nodeInfo") or {}
    return [node["metadata"].get("name", ""), status, ",".join(roles) or "<none>", _age(node),
            info.get("kubeletVersion", ""), addrs.get("InternalIP", "<none>"),
            addrs.get("ExternalIP", "<none>"), info.get("osImage", "<unknown>"),
            info.get("kernelVersion", "<unknown>"), info.get("containerRuntimeVersion",
                                                             "<unknown>")]


CONFIGMAP_COLUMNS = [NAME, _col("Data", "integer", "Data contains the configuration data."),
                     AGE]


def _configmap_row(cm: dict) -> Row:
    return [cm["metadata"].get("name", ""),
            len(cm.get("data") or {}) + len(cm.get("binaryData") or {}), _age(cm)]


SECRET_COLUMNS = [NAME, _col("Type", description="The type of the secret"),
                  _col("Data", "integer", "The number of entries in data"), AGE]


def _secret_row(s: dict) -> Row:
    return [s["metadata"].get("name", ""), s.get("type", "Opaque"), len(s.get("data") or {}),
            _age(s)]


SERVICEACCOUNT_COLUMNS = [NAME, _col("Secrets", "integer", "Secrets is a list of the secrets "
                                                           "in the same namespace"), AGE]


def _serviceaccount_row(sa: dict) -> Row:
    return [sa["metadata"].get("name", ""), len(sa.get("secrets") or []), _age(sa)]


EVENT_COLUMNS = [
    _col("Last Seen", description="The time at which the most recent occurrence of this "
                                  "event was recorded."),
    _col("Type", description="Type of this event (Normal, Warning)"),
    _col("Reason", description="This should be a short, machine understandable string that "
                               "gives the reason for the transition into the object's current "
                               "status."),
    _col("Object", description="The object that this event is about."),
    _col("Subobject", priority=1, description="The field of the object the event is about."),
    _col("Source", priority=1, description="The component reporting this event."),
    _col("Message", description="A human-readable description of the status of this "
                                "operation."),
    _col("First Seen", priority=1, description="The time at which the event was first "
                                               "recorded."),
    _col("Count", priority=1, description="The number of times this event has occurred."),
    _col("Name", priority=1, format_="name", description=_NAME_DESC),
]


def _event_row(ev: dict) -> Row:
    inv = ev.get("involvedObject") or {}
    src = ev.get("source") or {}
    source = src.get("component", "")
    if src.get("host"):
        source = f"{source}, {src['host']}"
    last = ev.get("lastTimestamp") or ev.get("eventTime") or \
        ev.get("metadata", {}).get("creationTimestamp")
    first = ev.get("firstTimestamp") or last
    return [since(last), ev.get("type", ""), ev.get("reason", ""),
            f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}",
            inv.get("fieldPath", ""), source, str(ev.get("message", "")).strip(),
            since(first), ev.get("count", 1), ev["metadata"].get("name", "")]


CRD_COLUMNS = [NAME, _col("Created At", "date", _AGE_DESC)]


def _crd_row(crd: dict) -> Row:
    return [crd["metadata"].get("name", ""), crd["metadata"].get("creationTimestamp", "")]


def _generic_row(obj: dict) -> Row:
    return [obj.get("metadata", {}).get("name", ""), _age(obj)]


PRINTERS: dict[tuple[str, str], tuple[list[Column], Callable[[dict], Row]]] = {
    ("", "pods"): (POD_COLUMNS, _pod_row),
    ("apps", "deployments"): (DEPLOYMENT_COLUMNS, _deployment_row),
    ("apps", "replicasets"): (REPLICASET_COLUMNS, _replicaset_row),
    ("", "services"): (SERVICE_COLUMNS, _service_row),
    ("", "endpoints"): (ENDPOINTS_COLUMNS, _endpoints_row),
    ("networking.k8s.io", "ingresses"): (INGRESS_COLUMNS, _ingress_row),
    ("", "namespaces"): (NAMESPACE_COLUMNS, _namespace_row),
    ("", "nodes"): (NODE_COLUMNS, _node_row),
    ("", "configmaps"): (CONFIGMAP_COLUMNS, _configmap_row),
    ("", "secrets"): (SECRET_COLUMNS, _secret_row),
    ("", "serviceaccounts"): (SERVICEACCOUNT_COLUMNS, _serviceaccount_row),
    ("", "events"): (EVENT_COLUMNS, _event_row),
    ("apiextensions.k8s.io", "customresourcedefinitions"): (CRD_COLUMNS, _crd_row),
}


# -- custom resources: additionalPrinterColumns -----------------------------------------------
_FILTER = re.compile(r"^\[\?\(@\.([A-Za-z0-9_.]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]")
_INDEX = re.compile(r"^\[(\d+|\*)\]")


def jsonpath(obj: object, path: str) -> list[object]:
    """The subset of kubectl's JSONPath printer columns use: ``.a.b``, ``[0]``, ``[*]``
    and ``[?(@.type=="Ready")]``."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    cur: list[object] = [obj]
    rest = path
    while rest:
        if rest.startswith("."):
            m = re.match(r"^\.([A-Za-z0-9_\-/]+)", rest)
            if not m:
                return []
            key, rest = m.group(1), rest[m.end():]
            cur = [c.get(key) for c in cur if isinstance(c, dict) and key in c]
            continue
        m = _FILTER.match(rest)
        if m:
            fpath, want, rest = m.group(1), m.group(2), rest[m.end():]
            nxt: list[object] = []
            for c in cur:
                for item in c if isinstance(c, list) else []:
                    got = jsonpath(item, "." + fpath)
                    if got and str(got[0]) == want:
                        nxt.append(item)
            cur = nxt
            continue
        m = _INDEX.match(rest)
        if m:
            idx, rest = m.group(1), rest[m.end():]
            nxt = []
            for c in cur:
                if isinstance(c, list):
                    if idx == "*":
                        nxt.extend(c)
                    elif int(idx) < len(c):
                        nxt.append(c[int(idx)])
            cur = nxt
            continue
        return []
    return cur


def crd_columns(version: dict) -> tuple[list[Column], list[dict]]:
    specs = version.get("additionalPrinterColumns")
    if specs is None:
        # apiextensions v1 defaulting: an Age column on .metadata.creationTimestamp.
        specs = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    cols = [NAME] + [_col(s.get("name", ""), s.get("type", "string"),
                          s.get("description", ""), s.get("priority", 0), s.get("format", ""))
                     for s in specs]
    return cols, specs


def crd_row(obj: dict, specs: list[dict]) -> Row:
    row: Row = [obj.get("metadata", {}).get("name", "")]
    for s in specs:
        found = jsonpath(obj, s.get("jsonPath", ""))
        if not found or found[0] is None:
            row.append(None)
            continue
        value = found[0]
        if s.get("type") == "date":
            # apiextensions tableconvertor renders dates as an age.
            row.append(since(str(value)))
        elif isinstance(value, dict | list):
            import json

            row.append(json.dumps(value, separators=(",", ":")))
        else:
            row.append(value)
    return row


# -- the Table -----------------------------------------------------------------------------
def wants_table(accept: str) -> str | None:
    """The meta.k8s.io version of the Table the client asks for, if it asks for one."""
    for part in accept.split(","):
        params = dict(p.strip().split("=", 1) for p in part.split(";")[1:] if "=" in p)
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and \
                params.get("v") in ("v1", "v1beta1"):
            return params["v"]
    return None


def wants_partial_metadata(accept: str) -> str | None:
    """``as=PartialObjectMetadata`` / ``PartialObjectMetadataList`` (metadata-only clients)."""
    for part in accept.split(","):
        params = dict(p.strip().split("=", 1) for p in part.split(";")[1:] if "=" in p)
        if params.get("as") in ("PartialObjectMetadata", "PartialObjectMetadataList") and \
                params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            return params["v"]
    return None


def partial_metadata(obj: dict, version: str = "v1") -> dict:
    return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{version}",
            "metadata": obj.get("metadata", {})}


class Printer:
    """Columns and rows for one resource type."""

    def __init__(self, key: tuple[str, str], crd_version: dict | None = None,
                 more: dict[tuple[str, str], tuple[list[Column], Callable[[dict], Row]]]
                 | None = None) -> None:
        """``more``: printers of further kinds (localmesh/api/printers.py)."""
        self.crd_specs: list[dict] | None = None
        printers = {**PRINTERS, **(more or {})}
        if crd_version is not None:
            self.columns, self.crd_specs = crd_columns(crd_version)
            self._row: Callable[[dict], Row] = lambda o: crd_row(o, self.crd_specs or [])
        elif key in printers:
            self.columns, self._row = printers[key]
        else:
            self.columns, self._row = [NAME, AGE], _generic_row
        self.key = key

    def row(self, obj: dict, include: str, version: str) -> dict:
        out: dict = {"cells": self._row(obj)}
        if self.key == ("", "pods"):
            conds = _pod_conditions(obj)
            if conds:
                out["conditions"] = conds
        if include == "Object":
            out["object"] = obj
        elif include != "None":
            out["object"] = partial_metadata(obj, version)
        return out

    def table(self, objs: list[dict], meta: dict, include: str = "Metadata",
              version: str = "v1", columns: bool = True) -> dict:
        return {"kind": "Table", "apiVersion": f"meta.k8s.io/{version}", "metadata": meta,
                "columnDefinitions": self.columns if columns else None,
                "rows": [self.row(o, include, version) for o in objs]}

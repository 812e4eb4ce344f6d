"""SecurityContextConstraints: OpenShift's default SCCs and the pod admission that applies
them.

The admission is after openshift/apiserver-library-go ``pkg/securitycontextconstraints``
(``sccadmission/admission.go``, ``sccmatching``): on a pod's creation every SCC is tried
in order — highest ``priority`` first, then the most restrictive, then by name — and the
first one the requesting user *or the pod's ServiceAccount* may use (the SCC's
``users``/``groups``, or RBAC ``use`` on ``securitycontextconstraints/<name>`` in
``security.openshift.io``) and whose strategies accept the pod, once they have filled in
what it leaves unset, is applied: the pod gets its defaults and the annotation
``openshift.io/scc``. None fits: 403 with OpenShift's message, one entry per SCC —
``pods "x" is forbidden: unable to validate against any security context constraint:
[provider "anyuid": Forbidden: not usable by user or serviceaccount, provider
restricted-v2: .containers[0].runAsUser: Invalid value: 0: must be in the ranges:
[1000000000, 1000009999], …]``.

Pods created by controllers (a Deployment's ReplicaSet) are requested by the controller's
own identity, which may use no SCC: only the pod's ServiceAccount counts for them, as on
OpenShift — where every authenticated identity may use ``restricted-v2`` (ClusterRoleBinding
``system:openshift:scc:restricted-v2``) and ``anyuid`` needs ``oc adm policy add-scc-to-user
anyuid -z <sa>``. The cluster admin may use every SCC, so a pod it creates directly runs
under ``anyuid`` (priority 10) when that fits, as kubeadmin's do.

The namespace's ranges are its ``openshift.io/sa.scc.*`` annotations (projects.py). The
ordering by restrictiveness uses point values in the spirit of upstream's ``sccsort``
(privileged > host access > host paths > RunAsAny > non-root > range), enough to put the
default SCCs in OpenShift's order.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

from localmesh.api import authn
from localmesh.api.authn import UserInfo
from localmesh.api.objects import ObjectAPI
from localmesh.api.rbac.request_info import Attributes
from localmesh.api.status import ApiError
from localmesh.resources import ResourceType

GROUP = "security.openshift.io"
SCCS = (GROUP, "securitycontextconstraints")
NAMESPACES = ("", "namespaces")
ANNOTATION = "openshift.io/scc"
UID_RANGE = "openshift.io/sa.scc.uid-range"
SUPPLEMENTAL_GROUPS = "openshift.io/sa.scc.supplemental-groups"
MCS = "openshift.io/sa.scc.mcs"
# The in-process controllers' identity when they create pods (kube-controller-manager's).
CONTROLLER = UserInfo("system:serviceaccount:kube-system:replicaset-controller",
                      groups=("system:serviceaccounts", "system:serviceaccounts:kube-system",
                              "system:authenticated"))

_BASE_VOLUMES = ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                 "persistentVolumeClaim", "projected", "secret"]
_ADMINS = ["system:cluster-admins"]


def _scc(name: str, description: str, *, priority: int | None = None, user: str,
         selinux: str = "MustRunAs", fs_group: str = "MustRunAs", drop: list[str],
         allowed_caps: list[str] | None = None, escalation: bool = True,
         privileged: bool = False, host: bool = False, host_network: bool = False,
         volumes: list[str] | None = None, seccomp: list[str] | None = None,
         groups: list[str] | None = None, users: list[str] | None = None) -> dict:
    out = {
        "apiVersion": f"{GROUP}/v1", "kind": "SecurityContextConstraints",
        "metadata": {"name": name, "annotations": {
            "kubernetes.io/description": description,
            "include.release.openshift.io/self-managed-high-availability": "true",
            "release.openshift.io/create-only": "true"}},
        "allowHostDirVolumePlugin": host or "hostPath" in (volumes or []),
        "allowHostIPC": host, "allowHostNetwork": host or host_network,
        "allowHostPID": host, "allowHostPorts": host or host_network,
        "allowPrivilegeEscalation": escalation, "allowPrivilegedContainer": privileged,
        "allowedCapabilities": allowed_caps, "defaultAddCapabilities": None,
        "fsGroup": {"type": fs_group}, "groups": groups or [], "priority": priority,
        "readOnlyRootFilesystem": False, "requiredDropCapabilities": drop,
        "runAsUser": {"type": user}, "seLinuxContext": {"type": selinux},
        "supplementalGroups": {"type": "RunAsAny"}, "users": users or [],
        "volumes": volumes or _BASE_VOLUMES,
    }
    if seccomp:
        out["seccompProfiles"] = seccomp
    return out


def default_sccs() -> list[dict]:
    """The SCCs of a fresh OpenShift 4.18 cluster (those an application meets)."""
    v1_drop = ["KILL", "MKNOD", "SETUID", "SETGID"]
    runtime = ["runtime/default"]
    return [
        _scc("anyuid", "anyuid provides all features of the restricted SCC but allows users "
             "to run with any UID and any GID.", priority=10, user="RunAsAny",
             fs_group="RunAsAny", drop=["MKNOD"], groups=_ADMINS),
        _scc("hostaccess", "hostaccess allows access to all host namespaces but still "
             "requires pods to be run with a UID and SELinux context that are allocated to "
             "the namespace.", user="MustRunAsRange", drop=v1_drop, host=True,
             volumes=[*_BASE_VOLUMES, "hostPath"]),
        _scc("hostmount-anyuid", "hostmount-anyuid provides all the features of the "
             "restricted SCC but allows host mounts and any UID by a pod.", user="RunAsAny",
             fs_group="RunAsAny", drop=["MKNOD"], volumes=[*_BASE_VOLUMES, "hostPath",
                                                            "nfs"]),
        _scc("hostnetwork", "hostnetwork allows using host networking and host ports but "
             "still requires pods to be run with a UID and SELinux context that are "
             "allocated to the namespace.", user="MustRunAsRange", drop=v1_drop,
             host_network=True),
        _scc("hostnetwork-v2", "hostnetwork allows using host networking and host ports but "
             "still requires pods to be run with a UID and SELinux context that are "
             "allocated to the namespace.", user="MustRunAsRange", drop=["ALL"],
             allowed_caps=["NET_BIND_SERVICE"], escalation=False, host_network=True,
             seccomp=runtime),
        _scc("nonroot", "nonroot provides all features of the restricted SCC but allows "
             "users to run with any non-root UID.", user="MustRunAsNonRoot",
             fs_group="RunAsAny", drop=v1_drop),
        _scc("nonroot-v2", "nonroot provides all features of the restricted SCC but allows "
             "users to run with any non-root UID.", user="MustRunAsNonRoot",
             fs_group="RunAsAny", drop=["ALL"], allowed_caps=["NET_BIND_SERVICE"],
             escalation=False, seccomp=runtime),
        _scc("privileged", "privileged allows access to all privileged and host features "
             "and the ability to run as any user, any group, any fsGroup, and with any "
             "SELinux context.", user="RunAsAny", selinux="RunAsAny", fs_group="RunAsAny",
             drop=[], allowed_caps=["*"], privileged=True, host=True, volumes=["*"],
             seccomp=["*"], groups=["system:cluster-admins", "system:nodes",
                                    "system:masters"],
             users=["system:admin", "system:serviceaccount:openshift-infra:build-controller"]),
        _scc("restricted", "restricted denies access to all host features and requires "
             "pods to be run with a UID, and SELinux context that are allocated to the "
             "namespace.", user="MustRunAsRange", drop=v1_drop),
        _scc("restricted-v2", "restricted-v2 denies access to all host features and "
             "requires pods to be run with a UID, and SELinux context that are allocated to "
             "the namespace. This is the most restrictive SCC and it is used by default for "
             "authenticated users. On top of the legacy 'restricted' SCC, it also requires "
             "to drop ALL capabilities and does not allow privilege escalation binaries. It "
             "will also default the seccomp profile to runtime/default if unset, otherwise "
             "this seccomp profile is required.", user="MustRunAsRange", drop=["ALL"],
             allowed_caps=["NET_BIND_SERVICE"], escalation=False, seccomp=runtime),
    ]


def scc_role(name: str) -> dict:
    """``system:openshift:scc:<name>``: the ClusterRole ``oc adm policy add-scc-to-user``
    binds."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": f"system:openshift:scc:{name}"},
            "rules": [{"apiGroups": [GROUP], "resources": ["securitycontextconstraints"],
                       "resourceNames": [name], "verbs": ["use"]}]}


def restricted_v2_binding() -> dict:
    """Every authenticated identity may use restricted-v2 (OpenShift ≥ 4.11)."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:openshift:scc:restricted-v2"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "system:openshift:scc:restricted-v2"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                          "name": "system:authenticated"}]}


# -- the namespace's allocation ----------------------------------------------------------
@dataclass(frozen=True)
class Allocation:
    """A namespace's UID range, supplemental groups and SELinux level."""

    uid_min: int
    uid_max: int
    group_min: int
    group_max: int
    mcs: str

    @staticmethod
    def _range(value: str) -> tuple[int, int]:
        first, _, size = value.partition("/")
        return int(first), int(first) + int(size or 1) - 1

    @classmethod
    def of(cls, namespace: dict | None) -> Allocation | None:
        ann = ((namespace or {}).get("metadata") or {}).get("annotations") or {}
        try:
            uid = cls._range(ann[UID_RANGE])
            groups = cls._range(ann.get(SUPPLEMENTAL_GROUPS) or ann[UID_RANGE])
        except (KeyError, ValueError):
            return None
        return cls(uid[0], uid[1], groups[0], groups[1], ann.get(MCS, ""))


# -- strategies ----------------------------------------------------------------------------
def _points(scc: dict) -> int:
    """How permissive an SCC is: fewer points are tried first among equal priorities."""
    points = 0
    if scc.get("allowPrivilegedContainer"):
        points += 100000
    if scc.get("allowHostPID") or scc.get("allowHostIPC"):
        points += 20000
    if scc.get("allowHostNetwork") or scc.get("allowHostPorts"):
        points += 10000
    volumes = scc.get("volumes") or []
    if "*" in volumes or "hostPath" in volumes:
        points += 5000
    points += {"RunAsAny": 400, "MustRunAsNonRoot": 300, "MustRunAsRange": 200,
               "MustRunAs": 100}.get((scc.get("runAsUser") or {}).get("type", ""), 0)
    if (scc.get("seLinuxContext") or {}).get("type") == "RunAsAny":
        points += 50
    if "ALL" not in (scc.get("requiredDropCapabilities") or []):
        points += 5
    if scc.get("allowPrivilegeEscalation", True):
        points += 1
    return points


def ordered(sccs: list[dict]) -> list[dict]:
    """The order admission tries them in: priority, then restrictiveness, then name."""
    return sorted(sccs, key=lambda s: (-(s.get("priority") or 0), _points(s),
                                       s["metadata"]["name"]))


def _containers(spec: dict) -> list[tuple[str, int, dict]]:
    return [(kind, i, c) for kind in ("initContainers", "containers")
            for i, c in enumerate(spec.get(kind) or [])]


def _sc(container: dict) -> dict:
    return container.get("securityContext") or {}


def defaults(scc: dict, pod: dict, alloc: Allocation | None) -> None:
    """Fill in what the SCC's strategies decide and the pod left unset."""
    spec = pod.setdefault("spec", {})
    psc = spec.setdefault("securityContext", {})
    user = (scc.get("runAsUser") or {}).get("type")
    for _, _, c in _containers(spec):
        sc = c.setdefault("securityContext", {})
        if user == "MustRunAsRange" and alloc is not None and "runAsUser" not in sc and \
                "runAsUser" not in psc:
            sc["runAsUser"] = alloc.uid_min
        if user in ("MustRunAsRange", "MustRunAsNonRoot") and "runAsNonRoot" not in sc and \
                "runAsNonRoot" not in psc and (sc.get("runAsUser") or psc.get("runAsUser")
                                               or user == "MustRunAsNonRoot"):
            sc["runAsNonRoot"] = True
        drop = list(scc.get("requiredDropCapabilities") or [])
        if drop:
            caps = sc.setdefault("capabilities", {})
            caps["drop"] = [*(caps.get("drop") or []),
                            *(d for d in drop if d not in (caps.get("drop") or []))]
        if not scc.get("allowPrivilegeEscalation", True) and \
                "allowPrivilegeEscalation" not in sc:
            sc["allowPrivilegeEscalation"] = False
    if (scc.get("fsGroup") or {}).get("type") == "MustRunAs" and alloc is not None:
        psc.setdefault("fsGroup", alloc.group_min)
    if (scc.get("seLinuxContext") or {}).get("type") == "MustRunAs" and alloc and alloc.mcs:
        psc.setdefault("seLinuxOptions", {}).setdefault("level", alloc.mcs)
    if "runtime/default" in (scc.get("seccompProfiles") or []) and "seccompProfile" not in psc:
        psc["seccompProfile"] = {"type": "RuntimeDefault"}


def violations(scc: dict, pod: dict, alloc: Allocation | None) -> list[str]:
    """Why the SCC does not accept the (defaulted) pod, in OpenShift's words."""
    spec = pod.get("spec") or {}
    psc = spec.get("securityContext") or {}
    out: list[str] = []
    user = (scc.get("runAsUser") or {}).get("type")

    def uid_errors(field: str, uid: object) -> None:
        if uid is None:
            return
        if user == "MustRunAsRange":
            if alloc is None:
                out.append(f"{field}: Invalid value: {uid}: unable to find annotation "
                           f"{UID_RANGE}")
            elif not isinstance(uid, int) or not alloc.uid_min <= uid <= alloc.uid_max:
                out.append(f"{field}: Invalid value: {uid}: must be in the ranges: "
                           f"[{alloc.uid_min}, {alloc.uid_max}]")
        elif user == "MustRunAsNonRoot" and uid == 0:
            out.append(f"{field}: Invalid value: 0: running with the root UID is forbidden")

    uid_errors(".spec.securityContext.runAsUser", psc.get("runAsUser"))
    if (scc.get("fsGroup") or {}).get("type") == "MustRunAs" and alloc is not None and \
            psc.get("fsGroup") is not None and \
            not alloc.group_min <= psc["fsGroup"] <= alloc.group_max:
        out.append(f".spec.securityContext.fsGroup: Invalid value: []int64{{{psc['fsGroup']}}}"
                   f": {psc['fsGroup']} is not an allowed group")
    for flag, what in (("hostNetwork", "Host network"), ("hostPID", "Host PID"),
                       ("hostIPC", "Host IPC")):
        allowed = scc.get("allowHostNetwork" if flag == "hostNetwork" else
                          "allowHostPID" if flag == "hostPID" else "allowHostIPC")
        if spec.get(flag) and not allowed:
            out.append(f".spec.securityContext.{flag}: Invalid value: true: {what} is not "
                       "allowed to be used")
    volumes = scc.get("volumes") or []
    for i, vol in enumerate(spec.get("volumes") or []):
        kind = next((k for k in vol if k != "name"), "")
        if "*" not in volumes and kind not in volumes:
            out.append(f'spec.volumes[{i}]: Invalid value: "{kind}": {kind} volumes are not '
                       "allowed to be used")
    allowed_caps = scc.get("allowedCapabilities") or []
    for kind, i, c in _containers(spec):
        sc = _sc(c)
        where = f".{kind}[{i}]"
        uid_errors(f"{where}.runAsUser", sc.get("runAsUser"))
        if sc.get("privileged") and not scc.get("allowPrivilegedContainer"):
            out.append(f"{where}.privileged: Invalid value: true: Privileged containers are "
                       "not allowed")
        for cap in (sc.get("capabilities") or {}).get("add") or []:
            if "*" not in allowed_caps and cap not in allowed_caps:
                out.append(f'{where}.capabilities.add: Invalid value: "{cap}": capability may '
                           "not be added")
        if sc.get("allowPrivilegeEscalation") and not scc.get("allowPrivilegeEscalation",
                                                               True):
            out.append(f"{where}.allowPrivilegeEscalation: Invalid value: true: Allowing "
                       "privilege escalation for containers is not allowed")
        for port in c.get("ports") or []:
            if port.get("hostPort") and not scc.get("allowHostPorts"):
                out.append(f"{where}.hostPort: Invalid value: "
                           f"{port['hostPort']}: Host ports are not allowed to be used")
    return out


# -- admission -----------------------------------------------------------------------------
Authorize = Callable[[Attributes], object]


@dataclass
class SCCAdmission:
    """The mutating admission step for new pods (run after the sidecar injector, as
    OpenShift's SCC plugin runs after the mutating webhooks: an injected proxy is
    constrained too)."""

    authorize: Authorize

    def usable(self, scc: dict, who: UserInfo, namespace: str) -> bool:
        name = scc["metadata"]["name"]
        if who.name in (scc.get("users") or []) or \
                set(who.groups) & set(scc.get("groups") or []):
            return True
        attrs = Attributes(who, "use", True, api_group=GROUP, api_version="v1",
                           namespace=namespace, resource="securitycontextconstraints",
                           name=name)
        return bool(getattr(self.authorize(attrs), "allowed", False))

    def __call__(self, api: ObjectAPI, rt: ResourceType, pod: dict,
                 old: dict | None) -> None:
        if old is not None:
            return
        meta = pod.setdefault("metadata", {})
        ns_name = meta.get("namespace", "default")
        sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        requester = authn.current_user.get() or CONTROLLER
        service_account = UserInfo(authn.service_account_username(ns_name, sa),
                                   groups=authn.service_account_groups(ns_name))
        alloc = Allocation.of(api.store.get(NAMESPACES, "", ns_name))
        wanted = (meta.get("annotations") or {}).get("openshift.io/required-scc")
        errors: list[str] = []
        for scc in ordered(api.store.list(SCCS)):
            name = scc["metadata"]["name"]
            if wanted and name != wanted:
                continue
            if not (self.usable(scc, requester, ns_name)
                    or self.usable(scc, service_account, ns_name)):
                errors.append(f'provider "{name}": Forbidden: not usable by user or '
                              "serviceaccount")
                continue
            trial = copy.deepcopy(pod)
            defaults(scc, trial, alloc)
            found = violations(scc, trial, alloc)
            if found:
                errors.append(f"provider {name}: {', '.join(found)}")
                continue
            pod.clear()
            pod.update(trial)
            pod["metadata"].setdefault("annotations", {})[ANNOTATION] = name
            return
        shown = meta.get("generateName") or meta.get("name", "")
        raise ApiError(403, "Forbidden",
                       f'pods "{shown}" is forbidden: unable to validate against any '
                       f"security context constraint: [{', '.join(errors)}]",
                       kind="pods", name=shown)

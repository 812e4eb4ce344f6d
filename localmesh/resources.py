"""The resource registry: which kinds localmesh serves, and how discovery describes them.

Discovery documents (``/api/v1``, ``/apis/<group>/<version>``) are generated from this one
table so that what a client discovers is exactly what the handlers accept. Custom resources
join the table when a CustomResourceDefinition is stored, as on a real API server.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class ResourceType:
    """One REST resource (``pods``) of one group-version (``v1``)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = tuple(ALL_VERBS)
    singular: str = ""
    categories: tuple[str, ...] = ()
    list_kind: str = ""
    custom: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """Storage key: objects are stored once per group and plural, whatever version."""
        return (self.group, self.plural)

    def discovery(self) -> list[dict]:
        """APIResource entries for the group-version's resource list."""
        out = [
            {
                "name": self.plural,
                "singularName": self.singular or self.kind.lower(),
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": list(self.verbs),
                **({"shortNames": list(self.short_names)} if self.short_names else {}),
                **({"categories": list(self.categories)} if self.categories else {}),
            }
        ]
        for sub in self.subresources:
            verbs, kind, group, version = _subresource_shape(self, sub)
            entry = {
                "name": f"{self.plural}/{sub}",
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": kind,
                "verbs": verbs,
            }
            if group is not None:
                entry["group"] = group
                entry["version"] = version
            out.append(entry)
        return out


def _subresource_shape(rt: ResourceType, sub: str) -> tuple[list[str], str, str | None, str]:
    """Verbs and kind of a subresource, as the real API server reports them."""
    if sub == "status":
        return ["get", "patch", "update"], rt.kind, None, ""
    if sub == "scale":
        return ["get", "patch", "update"], "Scale", "autoscaling", "v1"
    if sub in ("exec", "portforward", "attach"):
        kind = {"exec": "PodExecOptions", "portforward": "PodPortForwardOptions"}.get(
            sub, "PodAttachOptions"
        )
        return ["create", "get"], kind, None, ""
    if sub == "log":
        return ["get"], "Pod", None, ""
    if sub == "proxy":
        kind = "PodProxyOptions" if rt.kind == "Pod" else "ServiceProxyOptions"
        return ["create", "delete", "get", "patch", "update"], kind, None, ""
    if sub == "finalize":
        return ["update"], rt.kind, None, ""
    if sub == "approval":
        return ["get", "patch", "update"], rt.kind, None, ""
    if sub == "eviction":
        return ["create"], "Eviction", "policy", "v1"
    if sub == "token":
        return ["create"], "TokenRequest", "authentication.k8s.io", "v1"
    return ["get"], rt.kind, None, ""


_CREATE = ("create",)

BUILTIN: list[ResourceType] = [
    ResourceType("", "v1", "namespaces", "Namespace", False, ("ns",), ("status", "finalize"),
                 verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    ResourceType("", "v1", "pods", "Pod", True, ("po",),
                 ("status", "log", "exec", "portforward", "proxy", "attach", "eviction"),
                 categories=("all",)),
    ResourceType("", "v1", "services", "Service", True, ("svc",), ("status", "proxy"),
                 verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update",
                        "watch"),
                 categories=("all",)),
    ResourceType("", "v1", "endpoints", "Endpoints", True, ("ep",), list_kind="EndpointsList"),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    ResourceType("", "v1", "secrets", "Secret", True),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",), ("token",)),
    ResourceType("", "v1", "events", "Event", True, ("ev",)),
    ResourceType("", "v1", "nodes", "Node", False, ("no",), ("status",)),
    ResourceType("apps", "v1", "deployments", "Deployment", True, ("deploy",),
                 ("status", "scale"), categories=("all",)),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), ("status", "scale"),
                 categories=("all",)),
    ResourceType("networking.k8s.io", "v1", "ingresses", "Ingress", True, ("ing",), ("status",)),
    ResourceType("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                 "CustomResourceDefinition", False, ("crd", "crds"), ("status",)),
    ResourceType("events.k8s.io", "v1", "events", "Event", True, ("ev",)),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding",
                 False),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
    # The rest of the built-in API (issue 13): workloads, storage, policy, admission.
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), ("status",),
                 categories=("all",)),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",),
                 ("status", "scale"), categories=("all",)),
    ResourceType("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    ResourceType("batch", "v1", "jobs", "Job", True, (), ("status",), categories=("all",)),
    ResourceType("batch", "v1", "cronjobs", "CronJob", True, ("cj",), ("status",),
                 categories=("all",)),
    ResourceType("", "v1", "replicationcontrollers", "ReplicationController", True, ("rc",),
                 ("status", "scale"), categories=("all",)),
    ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",),
                 ("status",)),
    ResourceType("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",),
                 ("status",)),
    ResourceType("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",), ("status",)),
    ResourceType("", "v1", "limitranges", "LimitRange", True, ("limits",)),
    ResourceType("", "v1", "podtemplates", "PodTemplate", True),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",),
                 ("status",)),
    ResourceType("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
                 True, ("hpa",), ("status",), categories=("all",)),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True,
                 ("netpol",)),
    ResourceType("apiregistration.k8s.io", "v1", "apiservices", "APIService", False, (),
                 ("status",)),
    ResourceType("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies",
                 "ValidatingAdmissionPolicy", False, (), ("status",)),
    ResourceType("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings",
                 "ValidatingAdmissionPolicyBinding", False),
    ResourceType("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
                 "MutatingWebhookConfiguration", False),
    ResourceType("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
                 "ValidatingWebhookConfiguration", False),
    ResourceType("certificates.k8s.io", "v1", "certificatesigningrequests",
                 "CertificateSigningRequest", False, ("csr",), ("status", "approval")),
    ResourceType("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False,
                 ("pc",)),
    ResourceType("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False),
    ResourceType("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ("sc",)),
    # Reviews: create-only, answered by localmesh/api/authn.py and api/rbac.py, never stored.
    ResourceType("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview",
                 False, verbs=_CREATE),
    ResourceType("authorization.k8s.io", "v1", "selfsubjectaccessreviews",
                 "SelfSubjectAccessReview", False, verbs=_CREATE),
    ResourceType("authorization.k8s.io", "v1", "selfsubjectrulesreviews",
                 "SelfSubjectRulesReview", False, verbs=_CREATE),
    ResourceType("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview",
                 False, verbs=_CREATE),
    ResourceType("authorization.k8s.io", "v1", "localsubjectaccessreviews",
                 "LocalSubjectAccessReview", True, verbs=_CREATE),
]


@dataclass
class Registry:
    """Lookup of resource types by group/version/plural and by kind."""

    types: list[ResourceType] = field(default_factory=lambda: list(BUILTIN))

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        for rt in self.types:
            if rt.group == group and rt.version == version and rt.plural == plural:
                return rt
        return None

    def by_key(self, key: tuple[str, str]) -> ResourceType | None:
        for rt in self.types:
            if rt.key == key:
                return rt
        return None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        for rt in self.types:
            if rt.api_version == api_version and rt.kind == kind:
                return rt
        return None

    def group_versions(self) -> dict[str, list[str]]:
        """Group → versions in preference order (first is preferred), groups in discovery
        order: the built-in ones as registered, then the CRDs' groups as kube-aggregator
        sorts their APIServices (all at priority 1000, then by the name
        ``<version>.<group>``). kubectl resolves a resource name two groups share to the
        first group: ``gateways`` is the Gateway API's before Istio's, as on a real
        cluster (istio/istio#44354)."""
        out: dict[str, list[str]] = {}
        custom: set[str] = set()
        for rt in self.types:
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
            if rt.custom:
                custom.add(rt.group)
        order = [g for g in out if g not in custom] + sorted(
            custom, key=lambda g: min(f"{v}.{g}" for v in out[g]))
        return {g: out[g] for g in order}

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self.types if rt.group == group and rt.version == version]

    def add_crd(self, crd: dict) -> list[ResourceType]:
        """Register the served versions of a CRD; returns the new types."""
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        added = []
        self.remove_crd(crd)
        for v in spec.get("versions", []):
            if not v.get("served", True):
                continue
            subs = tuple(
                s for s in ("status", "scale") if s in (v.get("subresources") or {})
            )
            rt = ResourceType(
                spec["group"], v["name"], names["plural"], names["kind"],
                spec.get("scope", "Namespaced") == "Namespaced",
                tuple(names.get("shortNames", [])), subs,
                singular=names.get("singular", ""),
                categories=tuple(names.get("categories", [])),
                list_kind=names.get("listKind", ""),
                custom=True,
            )
            self.types.append(rt)
            added.append(rt)
        return added

    def remove_crd(self, crd: dict) -> None:
        spec = crd.get("spec", {})
        plural = spec.get("names", {}).get("plural")
        self.types = [
            rt for rt in self.types
            if not (rt.custom and rt.group == spec.get("group") and rt.plural == plural)
        ]

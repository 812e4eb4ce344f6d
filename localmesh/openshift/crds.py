"""The CustomResourceDefinitions an OpenShift cluster with its Service Mesh serves.

On OpenShift 4, SecurityContextConstraints (``security.openshift.io``) and the cluster
configuration (``config.openshift.io``) are CRDs; OpenShift Service Mesh 2 adds Maistra's
(``maistra.io``, maistra/api ``core``/``v1``/``v2``) and 3 the Sail operator's
(``sailoperator.io``, istio-ecosystem/sail-operator ``api/v1``). Names, scopes, versions,
short names and printer columns follow those projects; the schemas are open
(``x-kubernetes-preserve-unknown-fields``), as elsewhere in localmesh. Routes and Projects
are not CRDs on OpenShift (openshift-apiserver serves them): see api.py.
"""

from __future__ import annotations

_AGE = {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"}


def _col(name: str, path: str, type_: str = "string", priority: int = 0) -> dict:
    out: dict[str, str | int] = {"name": name, "jsonPath": path, "type": type_}
    if priority:
        out["priority"] = priority
    return out


# (group, kind, plural, scope, versions (storage first), short names, categories, columns)
KINDS: list[tuple[str, str, str, str, tuple[str, ...], list[str], list[str], list[dict]]] = [
    # openshift/api security/v1 (oc get scc prints these columns).
    ("security.openshift.io", "SecurityContextConstraints", "securitycontextconstraints",
     "Cluster", ("v1",), ["scc"], [], [
         _col("Priv", ".allowPrivilegedContainer"),
         _col("Caps", ".allowedCapabilities"),
         _col("SELinux", ".seLinuxContext.type"),
         _col("RunAsUser", ".runAsUser.type"),
         _col("FSGroup", ".fsGroup.type"),
         _col("SupGroup", ".supplementalGroups.type"),
         _col("Priority", ".priority"),
         _col("ReadOnlyRootFS", ".readOnlyRootFilesystem"),
         _col("Volumes", ".volumes")]),
    # openshift/api config/v1: what `oc get clusterversion` and the ingress domain read.
    ("config.openshift.io", "ClusterVersion", "clusterversions", "Cluster", ("v1",), [], [], [
        _col("Version", ".status.history[?(@.state==\"Completed\")].version"),
        _col("Available", ".status.conditions[?(@.type==\"Available\")].status"),
        _col("Progressing", ".status.conditions[?(@.type==\"Progressing\")].status"),
        _col("Since", ".status.conditions[?(@.type==\"Progressing\")].lastTransitionTime",
             "date"),
        _col("Status", ".status.conditions[?(@.type==\"Progressing\")].message")]),
    ("config.openshift.io", "Ingress", "ingresses", "Cluster", ("v1",), [], [], [_AGE]),
    ("config.openshift.io", "Infrastructure", "infrastructures", "Cluster", ("v1",), [], [],
     [_AGE]),
    # maistra/api: ServiceMeshControlPlane v2 (v1 still served), the member roll and members.
    ("maistra.io", "ServiceMeshControlPlane", "servicemeshcontrolplanes", "Namespaced",
     ("v2", "v1"), ["smcp"], ["maistra-io"], [
         _col("Ready", ".status.annotations.readyComponentCount"),
         _col("Status", ".status.conditions[?(@.type==\"Ready\")].reason"),
         _col("Profiles", ".status.appliedSpec.profiles", priority=1),
         _col("Version", ".status.chartVersion"),
         _col("Age", ".metadata.creationTimestamp", "date")]),
    ("maistra.io", "ServiceMeshMemberRoll", "servicemeshmemberrolls", "Namespaced", ("v1",),
     ["smmr"], ["maistra-io"], [
         _col("Ready", ".status.annotations.configuredMemberCount"),
         _col("Status", ".status.conditions[?(@.type==\"Ready\")].reason"),
         _col("Age", ".metadata.creationTimestamp", "date"),
         _col("Members", ".status.members", priority=1)]),
    ("maistra.io", "ServiceMeshMember", "servicemeshmembers", "Namespaced", ("v1",),
     ["smm"], ["maistra-io"], [
         _col("Control Plane", ".status.annotations.controlPlaneRef"),
         _col("Ready", ".status.conditions[?(@.type==\"Ready\")].status"),
         _col("Age", ".metadata.creationTimestamp", "date")]),
    # istio-ecosystem/sail-operator api/v1 (kubebuilder printcolumns of istio_types.go and
    # istiorevision_types.go).
    ("sailoperator.io", "Istio", "istios", "Cluster", ("v1",), [], ["istio-io"], [
        _col("Namespace", ".spec.namespace"),
        _col("Profile", ".spec.values.profile"),
        _col("Revisions", ".status.revisions.total"),
        _col("Ready", ".status.revisions.ready"),
        _col("In use", ".status.revisions.inUse"),
        _col("Active Revision", ".status.activeRevisionName"),
        _col("Status", ".status.state"),
        _col("Version", ".spec.version"),
        _AGE]),
    ("sailoperator.io", "IstioRevision", "istiorevisions", "Cluster", ("v1",), ["istiorev"],
     ["istio-io"], [
         _col("Type", ".spec.type"),
         _col("Ready", ".status.conditions[?(@.type==\"Ready\")].status"),
         _col("Status", ".status.state"),
         _col("In use", ".status.conditions[?(@.type==\"InUse\")].status"),
         _col("Version", ".spec.version"),
         _AGE]),
    ("sailoperator.io", "IstioRevisionTag", "istiorevisiontags", "Cluster", ("v1",), [],
     ["istio-io"], [_col("Status", ".status.state"), _AGE]),
    ("sailoperator.io", "IstioCNI", "istiocnis", "Cluster", ("v1",), [], ["istio-io"], [
        _col("Namespace", ".spec.namespace"),
        _col("Profile", ".spec.values.profile"),
        _col("Ready", ".status.conditions[?(@.type==\"Ready\")].status"),
        _col("Status", ".status.state"),
        _col("Version", ".spec.version"),
        _AGE]),
]

PLATFORM_GROUPS = ("security.openshift.io", "config.openshift.io")
OSSM2_GROUPS = ("maistra.io",)
OSSM3_GROUPS = ("sailoperator.io",)


def definitions(groups: tuple[str, ...]) -> list[dict]:
    """The CRDs of ``groups``, in the order of :data:`KINDS`."""
    schema = {"openAPIV3Schema": {"type": "object",
                                  "x-kubernetes-preserve-unknown-fields": True}}
    out = []
    for group, kind, plural, scope, versions, short, categories, columns in KINDS:
        if group not in groups:
            continue
        names: dict = {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                       "singular": kind.lower()}
        if short:
            names["shortNames"] = short
        if categories:
            names["categories"] = categories
        out.append({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "names": names, "scope": scope, "versions": [
                {"name": v, "served": True, "storage": i == 0, "schema": schema,
                 "additionalPrinterColumns": columns,
                 "subresources": {} if kind == "SecurityContextConstraints"
                 else {"status": {}}}
                for i, v in enumerate(versions)]},
        })
    return out

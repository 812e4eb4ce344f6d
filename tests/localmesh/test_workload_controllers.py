"""The controllers of the kinds issue 13 added, observed through kubectl and the Python
client as a user observes them: Jobs complete (``kubectl wait --for=condition=complete``),
fail on their backoff limit or deadline and go after their TTL; StatefulSets start pods in
ordinal order with stable names and keep their claims' data; a DaemonSet runs one pod and
replaces it on a template change; quotas, limit ranges and admission policies refuse what
they must; PDB, HPA and CSR status."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client, watch

from tests.localmesh.conftest import Kubectl, Raw, busybox_pod, make_kubectl
from tests.support import poll


def _job(name: str, script: str, **spec: object) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "c", "image": "busybox", "command": ["sh", "-c", script]}]}},
                **spec}}


def _apply(k: Kubectl, ns: str, *docs: dict) -> str:
    return k("apply", "-n", ns, "-f", "-",
             input="\n---\n".join(json.dumps(d) for d in docs))


def test_job_completes_and_kubectl_waits(kubeconfig: Path, tmp_path: Path, ns: str) -> None:
    for version in ("1.27", "1.33"):
        k = make_kubectl(version, kubeconfig, tmp_path / version)
        name = f"done-{version.replace('.', '')}"
        _apply(k, ns, _job(name, "echo finished", completions=3, parallelism=2))
        out = k("wait", "-n", ns, f"job/{name}", "--for=condition=complete", "--timeout=60s",
                timeout=70)
        assert "condition met" in out
        job = k.json("get", "job", name, "-n", ns)
        assert job["status"]["succeeded"] == 3 and job["status"].get("active", 0) == 0
        assert {c["type"] for c in job["status"]["conditions"]} >= {"Complete",
                                                                     "SuccessCriteriaMet"}
        assert job["status"]["completionTime"] >= job["status"]["startTime"]
        pods = k.json("get", "pods", "-n", ns, "-l", f"job-name={name}")["items"]
        assert len(pods) == 3 and {p["status"]["phase"] for p in pods} == {"Succeeded"}
        row = k("get", "job", name, "-n", ns).splitlines()[1].split()
        assert row[1:3] == ["Complete", "3/3"]


def test_job_fails_on_backoff_limit_and_deadline(kubectl_new: Kubectl, ns: str) -> None:
    _apply(kubectl_new, ns, _job("broken", "exit 3", backoffLimit=1),
           _job("slow", "sleep 60", activeDeadlineSeconds=1))
    kubectl_new("wait", "-n", ns, "job/broken", "job/slow", "--for=condition=failed",
                "--timeout=60s", timeout=70)
    broken = kubectl_new.json("get", "job", "broken", "-n", ns)["status"]
    failed = next(c for c in broken["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded" and broken["failed"] == 2
    slow = kubectl_new.json("get", "job", "slow", "-n", ns)["status"]
    assert next(c for c in slow["conditions"] if c["type"] == "Failed")["reason"] == \
        "DeadlineExceeded"


def test_indexed_job_and_ttl(kubectl_new: Kubectl, ns: str, core: client.CoreV1Api) -> None:
    _apply(kubectl_new, ns, _job("idx", "echo $JOB_COMPLETION_INDEX", completions=3,
                                 parallelism=3, completionMode="Indexed"),
           _job("brief", "true", ttlSecondsAfterFinished=0))
    kubectl_new("wait", "-n", ns, "job/idx", "--for=condition=complete", "--timeout=60s",
                timeout=70)
    assert kubectl_new.json("get", "job", "idx", "-n", ns)["status"]["completedIndexes"] == "0-2"
    names = sorted(p.metadata.name.rsplit("-", 1)[0] for p in
                   core.list_namespaced_pod(ns, label_selector="job-name=idx").items)
    assert names == ["idx-0", "idx-1", "idx-2"]
    poll(lambda: kubectl_new.run("get", "job", "brief", "-n", ns, check=False).returncode != 0,
         what="the finished job gone after its TTL", timeout=30)


def test_statefulset_starts_in_order_and_keeps_data(kubectl_new: Kubectl, ns: str,
                                                    core: client.CoreV1Api) -> None:
    events: list[tuple[str, str, bool]] = []
    w = watch.Watch()
    stream = w.stream(core.list_namespaced_pod, ns, label_selector="app=db", timeout_seconds=60)
    _apply(kubectl_new, ns, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
        "spec": {"clusterIP": "None", "selector": {"app": "db"},
                 "ports": [{"port": 80, "name": "web"}]}}, {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"serviceName": "db", "replicas": 3, "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{
                     "name": "db", "image": "busybox", "command": ["sh", "-c", "sleep 600"],
                     "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                     "readinessProbe": {"exec": {"command": ["true"]},
                                        "periodSeconds": 1}}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                     "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Mi"}}}}]}})
    for ev in stream:
        pod = ev["object"]
        ready = any(c.type == "Ready" and c.status == "True"
                    for c in pod.status.conditions or [])
        events.append((ev["type"], pod.metadata.name, ready))
        if sum(1 for t, _, r in events if r and t == "MODIFIED") and all(
                any(n == f"db-{i}" and r for _, n, r in events) for i in range(3)):
            break
    w.stop()
    added = [n for t, n, _ in events if t == "ADDED"]
    assert added == ["db-0", "db-1", "db-2"]
    for i in (1, 2):  # each pod is created only after the one before it is Ready
        first_ready = next(j for j, (_, n, r) in enumerate(events) if n == f"db-{i - 1}" and r)
        assert events.index(("ADDED", f"db-{i}", False)) > first_ready
    pod = core.read_namespaced_pod("db-1", ns)
    assert (pod.spec.hostname, pod.spec.subdomain) == ("db-1", "db")
    endpoints = core.read_namespaced_endpoints("db", ns)
    assert {a.hostname for s in endpoints.subsets for a in s.addresses} == {"db-0", "db-1",
                                                                            "db-2"}
    claims = {c.metadata.name: c.status.phase
              for c in core.list_namespaced_persistent_volume_claim(ns).items}
    assert claims == {"data-db-0": "Bound", "data-db-1": "Bound", "data-db-2": "Bound"}
    kubectl_new("exec", "-n", ns, "db-1", "--", "sh", "-c", "echo kept > $LOCALMESH_MOUNT_DATA/f")
    old_uid = pod.metadata.uid
    core.delete_namespaced_pod("db-1", ns, grace_period_seconds=0)
    poll(lambda: core.read_namespaced_pod("db-1", ns).metadata.uid != old_uid and
         core.read_namespaced_pod("db-1", ns).status.phase == "Running",
         what="db-1 recreated", timeout=30)
    assert kubectl_new("exec", "-n", ns, "db-1", "--", "cat", "/data/f") == "kept\n"
    kubectl_new("scale", "-n", ns, "sts/db", "--replicas=1")
    poll(lambda: [p.metadata.name for p in core.list_namespaced_pod(
        ns, label_selector="app=db").items if not p.metadata.deletion_timestamp] == ["db-0"],
        what="scaled down to db-0", timeout=30)


def test_daemonset_runs_one_pod_and_rolls(kubectl_new: Kubectl, ns: str,
                                         core: client.CoreV1Api) -> None:
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
              "metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{
                  "name": "a", "image": "busybox", "command": ["sh", "-c", "sleep 600"]}]}}}}
    _apply(kubectl_new, ns, ds)
    kubectl_new("rollout", "status", "-n", ns, "ds/agent", "--timeout=60s", timeout=70)
    pods = core.list_namespaced_pod(ns, label_selector="app=agent").items
    assert len(pods) == 1 and pods[0].spec.node_name == "localmesh"
    first = pods[0].metadata.name
    ds["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    _apply(kubectl_new, ns, ds)
    kubectl_new("rollout", "status", "-n", ns, "ds/agent", "--timeout=60s", timeout=70)
    live = [p for p in core.list_namespaced_pod(ns, label_selector="app=agent").items
            if not p.metadata.deletion_timestamp]
    assert len(live) == 1 and live[0].metadata.name != first
    assert live[0].metadata.labels["v"] == "2"
    assert "2" in kubectl_new("rollout", "history", "-n", ns, "ds/agent")


def test_quota_and_limit_range(kubectl_new: Kubectl, ns: str, core: client.CoreV1Api) -> None:
    _apply(kubectl_new, ns, {"apiVersion": "v1", "kind": "LimitRange",
                             "metadata": {"name": "lr"}, "spec": {"limits": [{
                                 "type": "Container", "default": {"cpu": "200m"},
                                 "max": {"cpu": "1"}}]}},
           {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
            "spec": {"hard": {"pods": "1"}}})
    core.create_namespaced_pod(ns, busybox_pod("one", "sleep 600"))
    pod = core.read_namespaced_pod("one", ns)
    assert pod.spec.containers[0].resources.limits == {"cpu": "200m"}
    assert "LimitRanger plugin set" in pod.metadata.annotations["kubernetes.io/limit-ranger"]
    refused = kubectl_new.run("run", "two", "-n", ns, "--image=busybox", "--", "sleep", "1",
                              check=False)
    assert 'pods "two" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, ' \
           "limited: pods=1" in refused.stderr
    kubectl_new("delete", "resourcequota", "q", "-n", ns)
    big = busybox_pod("big", "sleep 1", container={"resources": {"limits": {"cpu": "2"}}})
    refused = kubectl_new.run("apply", "-n", ns, "-f", "-", input=json.dumps(big), check=False)
    assert "maximum cpu usage per Container is 1, but limit is 2" in refused.stderr
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "cm"},
             "spec": {"hard": {"configmaps": "5"}}}
    _apply(kubectl_new, ns, quota)
    poll(lambda: kubectl_new.json("get", "quota", "cm", "-n", ns).get("status", {}).get(
        "used", {}).get("configmaps") is not None, what="quota status")


def test_validating_admission_policy(kubectl_new: Kubectl, ns: str, raw: Raw) -> None:
    name = f"replicas-{ns[-5:]}"
    _apply(kubectl_new, ns, {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {"matchConstraints": {"resourceRules": [{
            "apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
            "resources": ["deployments"]}], "namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": ns}}},
            "validations": [{"expression": "object.spec.replicas <= 5"}]}}, {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"]}})
    try:
        refused = kubectl_new.run("create", "deployment", "big", "-n", ns, "--image=busybox",
                                  "--replicas=7", check=False)
        assert (f'deployments.apps "big" is forbidden: ValidatingAdmissionPolicy \'{name}\' '
                f"with binding '{name}' denied request: failed expression: "
                "object.spec.replicas <= 5") in refused.stderr
        resp = raw("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", body={
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "big"},
            "spec": {"replicas": 7, "selector": {"matchLabels": {"a": "b"}}, "template": {
                "metadata": {"labels": {"a": "b"}}, "spec": {"containers": [
                    {"name": "c", "image": "busybox"}]}}}})
        body = json.loads(resp.data)
        assert resp.status == 422 and body["reason"] == "Invalid"
        assert body["details"]["kind"] == "deployments"
        kubectl_new("create", "deployment", "small", "-n", ns, "--image=busybox",
                    "--replicas=0")
    finally:
        kubectl_new("delete", "validatingadmissionpolicybinding", name)
        kubectl_new("delete", "validatingadmissionpolicy", name)


def test_pdb_hpa_and_csr_status(kubectl_new: Kubectl, ns: str, core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(ns, busybox_pod("p", "sleep 600", labels={"app": "pdb"}))
    _apply(kubectl_new, ns, {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "b"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "pdb"}}}}, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"a": "d"}}, "template": {
            "metadata": {"labels": {"a": "d"}}, "spec": {"containers": [
                {"name": "c", "image": "busybox"}]}}}}, {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h"}, "spec": {"maxReplicas": 3, "scaleTargetRef": {
            "apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}}})
    poll(lambda: kubectl_new.json("get", "pdb", "b", "-n", ns).get("status", {}).get(
        "disruptionsAllowed") == 1, what="the PDB allowing one disruption", timeout=20)
    hpa = poll(lambda: kubectl_new.json("get", "hpa", "h", "-n", ns).get("status", {}).get(
        "conditions"), what="HPA conditions")
    assert {c["type"]: c["status"] for c in hpa} == {"AbleToScale": "True",
                                                   "ScalingActive": "False"}
    key = ec.generate_private_key(ec.SECP256R1())
    request = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "alice")])).sign(key, hashes.SHA256()))
    csr = f"alice-{ns[-5:]}"
    _apply(kubectl_new, ns, {
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": csr}, "spec": {
            "request": base64.b64encode(request.public_bytes(
                serialization.Encoding.PEM)).decode(),
            "signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth"]}})
    kubectl_new("certificate", "approve", csr)
    issued = poll(lambda: kubectl_new.json("get", "csr", csr).get("status", {}).get(
        "certificate"), what="the certificate issued")
    cert = x509.load_pem_x509_certificate(base64.b64decode(issued))
    assert cert.subject.rfc4514_string() == "CN=alice"
    assert "Approved,Issued" in kubectl_new("get", "csr", csr)
    assert kubectl_new.json("get", "csr", csr)["spec"]["username"] == "localmesh-admin"


def test_eviction_honours_the_disruption_budget(kubectl_new: Kubectl, ns: str,
                                                core: client.CoreV1Api) -> None:
    for name in ("e1", "e2"):
        core.create_namespaced_pod(ns, busybox_pod(name, "sleep 600", labels={"app": "ev"}))
    _apply(kubectl_new, ns, {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "keep1"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "ev"}}}})
    poll(lambda: kubectl_new.json("get", "pdb", "keep1", "-n", ns).get("status", {}).get(
        "disruptionsAllowed") == 1, what="one disruption allowed", timeout=20)
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction"}
    core.create_namespaced_pod_eviction("e1", ns, {**eviction, "metadata": {"name": "e1"}})
    with pytest.raises(client.ApiException) as refused:
        core.create_namespaced_pod_eviction("e2", ns, {**eviction, "metadata": {"name": "e2"}})
    assert refused.value.status == 429
    body = json.loads(refused.value.body)
    assert body["message"] == ("Cannot evict pod as it would violate the pod's disruption "
                               "budget.")
    assert body["details"]["causes"][0]["reason"] == "DisruptionBudget"
    assert not core.read_namespaced_pod("e2", ns).metadata.deletion_timestamp

"""Every kind issue 13 added, driven only by third-party clients: kubectl 1.27 and 1.33
(apply, a table with the upstream printers' columns, describe, label, watch, delete), the
official Python client's DynamicClient, lightkube and kr8s (create, list, get, patch,
watch, delete); discovery and OpenAPI list them all."""

from __future__ import annotations

import json
import select
import subprocess
import zlib
from pathlib import Path

import kr8s
import pytest
from kubernetes import client, dynamic
from lightkube import Client as LightClient
from lightkube import KubeConfig, codecs

from tests.localmesh.conftest import Kubectl, Raw, make_kubectl
from tests.localmesh.kinds import KINDS, Kind, manifest, object_name
from tests.support import poll

IDS = [k.kind for k in KINDS]


def _name(ns: str, k: Kind) -> str:
    """A name unique to the test (cluster-scoped kinds share one space)."""
    return f"k{zlib.crc32(f'{ns}/{k.kind}'.encode()):08x}"


def _namespace_args(k: Kind, ns: str) -> list[str]:
    return ["-n", ns] if k.namespaced else []


def test_discovery_and_openapi_list_every_kind(raw: Raw) -> None:
    for k in KINDS:
        gv = k.api_version
        path = f"/apis/{gv}" if "/" in gv else f"/api/{gv}"
        resources = {r["name"]: r for r in json.loads(raw("GET", path).data)["resources"]}
        assert resources[k.plural]["kind"] == k.kind
        assert resources[k.plural]["namespaced"] is k.namespaced
        openapi = json.loads(raw("GET", "/openapi/v3").data)["paths"]
        assert path.lstrip("/") in openapi


@pytest.mark.parametrize("version", ["1.27", "1.33"])
@pytest.mark.parametrize("k", KINDS, ids=IDS)
def test_kubectl_drives_every_kind(version: str, k: Kind, kubeconfig: Path, tmp_path: Path,
                                   ns: str) -> None:
    kubectl: Kubectl = make_kubectl(version, kubeconfig, tmp_path / "cache")
    name = _name(ns + version, k)
    obj = object_name(k, name)
    nsa = _namespace_args(k, ns)
    out = kubectl("apply", *nsa, "-f", "-",
                  input=json.dumps(manifest(k, name)))
    assert f"{obj} created" in out or f"{obj}\" created" in out or "created" in out, out
    table = kubectl("get", k.resource, obj, *nsa).splitlines()
    header = [c for c in table[0].split("  ") if c.strip()]
    assert [c.strip() for c in header] == list(k.columns), table[0]
    assert table[1].split()[0].startswith(obj)
    described = kubectl("describe", k.resource, obj, *nsa)
    assert obj in described
    kubectl("label", k.resource, obj, *nsa, "touched=yes")
    got = kubectl.json("get", k.resource, obj, *nsa)
    assert got["metadata"]["labels"]["touched"] == "yes"
    # kubectl's watch sees the next change (labelled until it does: the watch may start
    # after the first label).
    proc = subprocess.Popen(
        [kubectl.binary, "--kubeconfig", str(kubeconfig), "--cache-dir", str(kubectl.cache_dir),
         "get", k.resource, obj, *nsa, "--watch-only", "-o", "name",
         "--request-timeout=30s"], stdout=subprocess.PIPE, text=True)
    counter = iter(range(1000))

    def seen() -> bool:
        kubectl("label", k.resource, obj, *nsa, "--overwrite", f"touched=n{next(counter)}")
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        return bool(ready) and proc.stdout is not None and \
            proc.stdout.readline().strip().endswith(obj)

    try:
        poll(seen, what="kubectl's watch event", timeout=20, interval=0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "deleted" in kubectl("delete", k.resource, obj, *nsa, "--wait=false")


def _dynamic(api_client: client.ApiClient, tmp_path: Path) -> dynamic.DynamicClient:
    return dynamic.DynamicClient(api_client, cache_file=str(tmp_path / "discovery.json"))


@pytest.mark.parametrize("k", KINDS, ids=IDS)
def test_python_client_drives_every_kind(k: Kind, api_client: client.ApiClient,
                                         tmp_path: Path, ns: str) -> None:
    dyn = _dynamic(api_client, tmp_path)
    res = dyn.resources.get(api_version=k.api_version, kind=k.kind)
    name = _name(ns + "py", k)
    obj = object_name(k, name)
    kw = {"namespace": ns} if k.namespaced else {}
    created = res.create(body=manifest(k, name), **kw)
    assert created.metadata.name == obj
    listed = res.get(**kw)
    assert obj in [i.metadata.name for i in listed.items]
    rv = res.get(name=obj, **kw).metadata.resourceVersion
    res.patch(name=obj, body={"metadata": {"labels": {"touched": "yes"}}},
              content_type="application/merge-patch+json", **kw)
    events = list(res.watch(resource_version=rv, timeout=2, field_selector=f"metadata.name={obj}",
                            **kw))
    assert any(e["type"] == "MODIFIED" and e["object"].metadata.labels.touched == "yes"
               for e in events)
    res.delete(name=obj, **kw)


@pytest.mark.parametrize("k", KINDS, ids=IDS)
def test_lightkube_drives_every_kind(k: Kind, kubeconfig: Path, ns: str) -> None:
    lk = LightClient(KubeConfig.from_file(str(kubeconfig)), namespace=ns)
    name = _name(ns + "lk", k)
    obj = object_name(k, name)
    kw = {"namespace": ns} if k.namespaced else {}
    typed = codecs.from_dict(manifest(k, name))  # lightkube's own model of the kind
    resource = type(typed)
    created = lk.create(typed, **kw)
    assert created.metadata.name == obj
    assert obj in [o.metadata.name for o in lk.list(resource, **kw)]
    patched = lk.patch(resource, obj, {"metadata": {"labels": {"touched": "yes"}}}, **kw)
    assert patched.metadata.labels["touched"] == "yes"
    lk.delete(resource, obj, **kw)
    # The watch replays from the patched version: the deletion is its event.
    for op, seen in lk.watch(resource, fields={"metadata.name": obj},
                             resource_version=patched.metadata.resourceVersion, **kw):
        if op == "DELETED":
            assert seen.metadata.name == obj
            break


@pytest.mark.parametrize("k", KINDS, ids=IDS)
def test_kr8s_drives_every_kind(k: Kind, kubeconfig: Path, ns: str) -> None:
    api = kr8s.api(kubeconfig=str(kubeconfig), namespace=ns)
    name = _name(ns + "kr", k)
    obj = object_name(k, name)
    body = manifest(k, name)
    if k.namespaced:
        body["metadata"]["namespace"] = ns
    known = getattr(kr8s.objects, k.kind, None)
    cls = known if known is not None else kr8s.objects.new_class(
        kind=k.kind, version=k.api_version, namespaced=k.namespaced, asyncio=False,
        plural=k.plural)
    resource = cls(body, api=api)
    resource.create()
    kind = f"{k.plural}.{k.api_version}" if "/" in k.api_version else k.plural
    names = [o.name for o in api.get(kind, namespace=ns if k.namespaced else None)]
    assert obj in names
    resource.patch({"metadata": {"labels": {"touched": "yes"}}})
    resource.refresh()
    assert resource.labels["touched"] == "yes"
    since = resource.metadata.resourceVersion
    resource.delete()
    # The watch replays from the patched version: the deletion is its event.
    for event, seen in api.watch(kind, namespace=ns if k.namespaced else None,
                                 field_selector=f"metadata.name={obj}", since=since):
        if event == "DELETED":
            assert seen.name == obj
            break

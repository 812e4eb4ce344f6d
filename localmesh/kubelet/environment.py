"""What a container sees: its environment variables and its volumes on disk.

Env follows the Kubernetes rules: service link variables for the namespace's Services
(``<NAME>_SERVICE_HOST``...), then ``envFrom``, then ``env`` with ``$(VAR)`` expansion and
``valueFrom`` (fieldRef, resourceFieldRef, secretKeyRef, configMapKeyRef). Volumes
(configMap, secret, emptyDir, downwardAPI, projected) are materialised as files in the
pod's directory; a container finds a mount through ``LOCALMESH_MOUNT_<PATH>`` variables
and the ``LOCALMESH_MOUNTS`` JSON map (there is no mount namespace).
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from localmesh.store import Store

# TokenRequest as the kubelet makes it for a projected token: (namespace, service
# account, TokenRequest body) -> TokenRequest with status.token (localmesh/api/authn.py).
TokenIssuer = Callable[[str, str, dict], dict]


class ConfigError(Exception):
    """A reference the kubelet cannot resolve (CreateContainerConfigError)."""


def _svc_env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def service_links(store: Store, namespace: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for svc in store.scan(("", "services"), namespace):
        ip = svc.get("spec", {}).get("clusterIP")
        if not ip or ip == "None":
            continue
        base = _svc_env_name(svc["metadata"]["name"])
        ports = svc["spec"].get("ports") or []
        if not ports:
            continue
        out[f"{base}_SERVICE_HOST"] = ip
        out[f"{base}_SERVICE_PORT"] = str(ports[0]["port"])
        for p in ports:
            proto = p.get("protocol", "TCP")
            if p.get("name"):
                out[f"{base}_SERVICE_PORT_{_svc_env_name(p['name'])}"] = str(p["port"])
            key = f"{base}_PORT_{p['port']}_{proto}"
            out[key] = f"{proto.lower()}://{ip}:{p['port']}"
            out[f"{key}_PROTO"] = proto.lower()
            out[f"{key}_PORT"] = str(p["port"])
            out[f"{key}_ADDR"] = ip
        out[f"{base}_PORT"] = f"{ports[0].get('protocol', 'TCP').lower()}://{ip}:{ports[0]['port']}"
    return out


def _field_ref(pod: dict, path: str) -> str:
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return (pod["metadata"].get(m.group(1)) or {}).get(m.group(2), "")
    simple = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.uid": pod["metadata"]["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.podIP": pod.get("status", {}).get("podIP", ""),
        "status.podIPs": pod.get("status", {}).get("podIP", ""),
        "status.hostIP": pod.get("status", {}).get("hostIP", ""),
        "status.hostIPs": pod.get("status", {}).get("hostIP", ""),
    }
    if path not in simple:
        raise ConfigError(f"unsupported fieldRef path {path!r}")
    return simple[path]


def _key_ref(store: Store, ns: str, kind: str, ref: dict) -> str | None:
    name, key = ref.get("name"), ref.get("key")
    obj = (store.get(("", "secrets" if kind == "secret" else "configmaps"), ns, name)
           if name is not None else None)
    optional = ref.get("optional", False)
    if obj is None:
        if optional:
            return None
        raise ConfigError(f'{kind} "{name}" not found')
    if kind == "secret":
        data = obj.get("data") or {}
        if key in data:
            return base64.b64decode(data[key]).decode(errors="replace")
        string_data = obj.get("stringData") or {}
        if key in string_data:
            return string_data[key]
    else:
        if key in (obj.get("data") or {}):
            return obj["data"][key]
    if optional:
        return None
    raise ConfigError(f"couldn't find key {key} in {kind.capitalize()} {ns}/{name}")


_EXPAND = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def expand(value: str, env: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _EXPAND.sub(sub, value)


def expanded_command(spec: dict, env: dict[str, str]) -> dict:
    """The container spec with ``$(VAR)`` expanded in its ``command`` and ``args``, as the
    kubelet does before it starts the container (either runtime)."""
    out = dict(spec)
    for k in ("command", "args"):
        if out.get(k):
            out[k] = [expand(str(a), env) for a in out[k]]
    return out


def container_env(store: Store, pod: dict, container: dict) -> dict[str, str]:
    """The environment a container gets, in Kubernetes' precedence order."""
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    if pod["spec"].get("enableServiceLinks", True):
        env.update(service_links(store, ns))
    env["KUBERNETES_SERVICE_HOST"] = env.get("KUBERNETES_SERVICE_HOST", "")
    env.pop("KUBERNETES_SERVICE_HOST")
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        if "configMapRef" in src:
            ref = src["configMapRef"]
            cm = store.get(("", "configmaps"), ns, ref.get("name"))
            if cm is None:
                if not ref.get("optional"):
                    raise ConfigError(f'configmap "{ref.get("name")}" not found')
                continue
            for k, v in (cm.get("data") or {}).items():
                env[prefix + k] = v
        if "secretRef" in src:
            ref = src["secretRef"]
            sec = store.get(("", "secrets"), ns, ref.get("name"))
            if sec is None:
                if not ref.get("optional"):
                    raise ConfigError(f'secret "{ref.get("name")}" not found')
                continue
            for k, v in (sec.get("data") or {}).items():
                env[prefix + k] = base64.b64decode(v).decode(errors="replace")
    for e in container.get("env") or []:
        name = e["name"]
        if "value" in e:
            env[name] = expand(str(e["value"]), env)
            continue
        vf = e.get("valueFrom") or {}
        val: str | None = ""
        if "fieldRef" in vf:
            val = _field_ref(pod, vf["fieldRef"]["fieldPath"])
        elif "secretKeyRef" in vf:
            val = _key_ref(store, ns, "secret", vf["secretKeyRef"])
        elif "configMapKeyRef" in vf:
            val = _key_ref(store, ns, "configmap", vf["configMapKeyRef"])
        elif "resourceFieldRef" in vf:
            res = vf["resourceFieldRef"].get("resource", "")
            limits = (container.get("resources") or {}).get("limits") or {}
            val = str(limits.get(res.split(".", 1)[-1], "0"))
        if val is not None:
            env[name] = val
    return env


def _write(path: Path, content: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _projected_token(tokens: TokenIssuer | None, pod: dict, source: dict) -> bytes:
    """A projected ServiceAccount token: a TokenRequest bound to the pod, for the source's
    audience and lifetime, as the kubelet requests it (no refresh at 80 % of its life:
    the lifetimes asked for outlast localmesh's runs)."""
    if tokens is None:
        return b"localmesh-projected-token"
    meta = pod["metadata"]
    spec = {"expirationSeconds": int(source.get("expirationSeconds", 3600)),
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta["name"],
                               "uid": meta.get("uid", "")}}
    if source.get("audience"):
        spec["audiences"] = [source["audience"]]
    try:
        issued = tokens(meta["namespace"], pod["spec"].get("serviceAccountName", "default"),
                        {"spec": spec})
    except Exception as exc:  # an ApiError: the ServiceAccount or the pod is gone
        raise ConfigError(f"failed to fetch token: {exc}") from exc
    return issued["status"]["token"].encode()


def materialise_volumes(store: Store, pod: dict, pod_dir: Path,
                        tokens: TokenIssuer | None = None) -> dict[str, Path]:
    """Write each volume's files; returns volume name → directory. Projected
    ServiceAccount tokens come from ``tokens`` (the API server's TokenRequest)."""
    ns = pod["metadata"]["namespace"]
    out: dict[str, Path] = {}
    for vol in pod["spec"].get("volumes") or []:
        name = vol["name"]
        d = pod_dir / "volumes" / name
        d.mkdir(parents=True, exist_ok=True)
        out[name] = d
        if "configMap" in vol:
            src = vol["configMap"]
            cm = store.get(("", "configmaps"), ns, src.get("name"))
            if cm is None:
                if src.get("optional"):
                    continue
                raise ConfigError(f'configmap "{src.get("name")}" not found')
            items = src.get("items")
            data = cm.get("data") or {}
            for k, v in data.items():
                path = k
                if items:
                    match = next((i for i in items if i["key"] == k), None)
                    if match is None:
                        continue
                    path = match["path"]
                _write(d / path, v.encode())
        elif "secret" in vol:
            src = vol["secret"]
            sec = store.get(("", "secrets"), ns, src.get("secretName"))
            if sec is None:
                if src.get("optional"):
                    continue
                raise ConfigError(f'secret "{src.get("secretName")}" not found')
            for k, v in (sec.get("data") or {}).items():
                _write(d / k, base64.b64decode(v), 0o600)
        elif "downwardAPI" in vol:
            for item in vol["downwardAPI"].get("items") or []:
                if "fieldRef" in item:
                    fp = item["fieldRef"]["fieldPath"]
                    if fp in ("metadata.labels", "metadata.annotations"):
                        kv = pod["metadata"].get(fp.split(".")[1]) or {}
                        text = "\n".join(f'{k}="{v}"' for k, v in sorted(kv.items()))
                    else:
                        text = _field_ref(pod, fp)
                    _write(d / item["path"], text.encode())
        elif "persistentVolumeClaim" in vol:
            out[name] = claim_path(store, ns, vol["persistentVolumeClaim"].get("claimName"),
                                   pod_dir.parent.parent / "volumes")
        elif "projected" in vol:
            for source in vol["projected"].get("sources") or []:
                if "serviceAccountToken" in source:
                    sat = source["serviceAccountToken"]
                    _write(d / sat.get("path", "token"), _projected_token(tokens, pod, sat),
                           0o600)
                if "configMap" in source:
                    cm = store.get(("", "configmaps"), ns, source["configMap"].get("name"))
                    for k, v in ((cm or {}).get("data") or {}).items():
                        _write(d / k, v.encode())
    return out


def claim_path(store: Store, ns: str, claim: str | None, volumes_dir: Path) -> Path:
    """A PersistentVolumeClaim's directory: its bound volume's ``hostPath``, or the local
    provisioner's directory for the claim (localmesh/controllers/storage.py), which exists
    from the moment the claim does, so a pod never waits for the binding."""
    pvc = store.get(("", "persistentvolumeclaims"), ns, claim or "")
    if pvc is None:
        raise ConfigError(f'persistentvolumeclaim "{claim}" not found')
    volume = (pvc.get("spec") or {}).get("volumeName")
    pv = store.get(("", "persistentvolumes"), "", volume) if volume else None
    path = ((pv or {}).get("spec") or {}).get("hostPath", {}).get("path")
    target = Path(path) if path else volumes_dir / f"pvc-{pvc['metadata']['uid']}"
    target.mkdir(parents=True, exist_ok=True)
    return target


def mount_env(container: dict, volumes: dict[str, Path]) -> dict[str, str]:
    """Tell the program where its mounts are (no mount namespace on the host)."""
    mounts: dict[str, str] = {}
    for m in container.get("volumeMounts") or []:
        src = volumes.get(m["name"])
        if src is None:
            continue
        path = src / m["subPath"] if m.get("subPath") else src
        mounts[m["mountPath"]] = str(path)
    env = {"LOCALMESH_MOUNTS": json.dumps(mounts)}
    for mp, where in mounts.items():
        env["LOCALMESH_MOUNT_" + re.sub(r"[^A-Za-z0-9]", "_", mp).strip("_").upper()] = where
    return env

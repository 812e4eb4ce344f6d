"""Object semantics of the API server: what create, update, patch and delete *mean*.

This is the layer between the HTTP handlers and the store, matching the generic registry
of k8s.io/apiserver: it checks the object against the URL, runs admission (defaulting,
mutating webhooks such as the sidecar injector, validation) before anything is stored, and
implements graceful deletion, finalizers and ``generateName``. Controllers in the same
process call it directly, so they get exactly the same semantics as remote clients.
"""

from __future__ import annotations

import builtins
import contextvars
import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from localmesh.api import fieldmanager, status
from localmesh.api.schema import DEFINITIONS, Schema
from localmesh.api.status import ApiError
from localmesh.resources import Registry, ResourceType
from localmesh.store import Store, StoreError, now_rfc3339

Mutator = Callable[["ObjectAPI", ResourceType, dict, dict | None], None]
Validator = Callable[["ObjectAPI", ResourceType, dict, dict | None], list[tuple[str, str, str]]]
# A policy sees the operation (CREATE, UPDATE, DELETE), the object (None on DELETE) and the
# old object, after the validators: ValidatingAdmissionPolicy, validating webhooks.
Policy = Callable[["ObjectAPI", ResourceType, str, dict | None, dict | None], None]

# Warnings admission produced for the request being served (a policy's Warn action, a
# webhook's warnings); the REST layer sends them back as Warning headers.
admission_warnings: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "admission_warnings", default=None)


@dataclass
class Admission:
    """Mutating then validating admission, keyed by (group, plural) or ``*``."""

    mutators: dict[tuple[str, str] | str, list[Mutator]] = field(default_factory=dict)
    validators: dict[tuple[str, str] | str, list[Validator]] = field(default_factory=dict)
    policies: list[Policy] = field(default_factory=list)
    # The MutatingAdmissionWebhook plugin: after every built-in mutating step, as upstream
    # orders its plugins (localmesh/webhooks.py).
    mutating_webhooks: list[Mutator] = field(default_factory=list)
    # Webhooks that one of localmesh's own admission steps answers in process, given as
    # predicates over (webhook, resource type, operation): the API server's webhook plugin
    # (localmesh/webhooks.py) does not call them over the network, so each is answered
    # exactly once. Istio's injection webhooks are the one case (localmesh/istio/mesh.py).
    answered_in_process: list[Callable[[dict, ResourceType, str], bool]] = field(
        default_factory=list)

    def add_policy(self, fn: Policy) -> None:
        self.policies.append(fn)

    def add_mutator(self, key: tuple[str, str] | str, fn: Mutator) -> None:
        self.mutators.setdefault(key, []).append(fn)

    def add_validator(self, key: tuple[str, str] | str, fn: Validator) -> None:
        self.validators.setdefault(key, []).append(fn)


def _rand_suffix(n: int = 5) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(random.choice(alphabet) for _ in range(n))


class ObjectAPI:
    """Create/read/update/delete with the API server's semantics."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self.admission = Admission()
        self.on_delete_hooks: list[Callable[[ResourceType, dict], None]] = []

    # -- helpers -------------------------------------------------------------------------
    def schema(self, rt: ResourceType) -> Schema | None:
        """The kind's schema: Kubernetes' for a built-in kind, the CRD version's for a
        custom resource (localmesh/api/schema.py)."""
        if not rt.custom:
            return DEFINITIONS.kind(rt.group, rt.version, rt.kind)
        crd = self.store.get(("apiextensions.k8s.io", "customresourcedefinitions"), "",
                             f"{rt.plural}.{rt.group}")
        version = next((v for v in ((crd or {}).get("spec") or {}).get("versions") or []
                        if v.get("name") == rt.version), None)
        return DEFINITIONS.custom(version) if version else None

    def _track(self, rt: ResourceType, old: dict | None, obj: dict, managed_by: str | None,
               keep: bool, subresource: str = "") -> None:
        """managedFields: an update by ``managed_by`` is recorded; ``keep`` stores what an
        apply computed; a write by localmesh's own controllers keeps the live ones."""
        meta = obj.setdefault("metadata", {})
        if keep:
            return
        if managed_by:
            fieldmanager.record_update(self.schema(rt), old, obj, managed_by, rt.api_version,
                                       now_rfc3339(), subresource)
            return
        live = ((old or {}).get("metadata") or {}).get("managedFields")
        if live:
            meta["managedFields"] = live
        else:
            meta.pop("managedFields", None)

    def _check_namespace(self, rt: ResourceType, namespace: str, creating: bool) -> None:
        if not rt.namespaced:
            return
        ns = self.store.get(("", "namespaces"), "", namespace)
        if ns is None:
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                           kind="namespaces", name=namespace)
        if creating and ns.get("metadata", {}).get("deletionTimestamp"):
            raise ApiError(
                403, "Forbidden",
                f'{rt.plural} is forbidden: unable to create new content in namespace '
                f'{namespace} because it is being terminated',
                kind=rt.plural,
            )

    def _admit(self, rt: ResourceType, obj: dict, old: dict | None) -> None:
        for key in ("*", rt.key):
            for mutate in self.admission.mutators.get(key, []):
                mutate(self, rt, obj, old)
        for mutate in self.admission.mutating_webhooks:
            mutate(self, rt, obj, old)
        causes: list[tuple[str, str, str]] = []
        for key in ("*", rt.key):
            for validate in self.admission.validators.get(key, []):
                causes.extend(validate(self, rt, obj, old))
        if causes:
            raise status.invalid(rt.kind, obj.get("metadata", {}).get("name", ""), causes,
                                 rt.group)
        for policy in self.admission.policies:
            policy(self, rt, "CREATE" if old is None else "UPDATE", obj, old)

    def _wrap(self, rt: ResourceType, exc: StoreError, name: str) -> ApiError:
        if exc.reason == "AlreadyExists":
            return status.already_exists(rt.plural, name, rt.group)
        if exc.reason == "Conflict":
            return status.conflict(rt.plural, name, rt.group)
        if exc.reason == "NotFound":
            return status.not_found(rt.plural, name, rt.group)
        return ApiError(exc.code, exc.reason, exc.message)

    # -- verbs ---------------------------------------------------------------------------
    def get(self, rt: ResourceType, namespace: str, name: str) -> dict:
        obj = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        if obj is None:
            raise status.not_found(rt.plural, name, rt.group)
        return self._present(rt, obj)

    # `list` in this class's annotations from here on is this method, hence builtins.list.
    def list(self, rt: ResourceType, namespace: str | None) -> builtins.list[dict]:
        return [self._present(rt, o) for o in self.store.list(rt.key, namespace)]

    def _present(self, rt: ResourceType, obj: dict) -> dict:
        """Objects are stored once per group; present them in the requested version."""
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        return obj

    def create(self, rt: ResourceType, namespace: str, obj: dict, *,
               dry_run: bool = False, managed_by: str | None = None,
               keep_managed_fields: bool = False) -> dict:
        if not isinstance(obj, dict):
            raise status.bad_request("the body of the request was not a JSON object")
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise status.bad_request("metadata must be an object")
        want_version = obj.get("apiVersion")
        if want_version and want_version != rt.api_version:
            raise status.bad_request(
                f"the API version in the data ({want_version}) does not match the expected "
                f"API version ({rt.api_version})"
            )
        if obj.get("kind") and obj["kind"] != rt.kind:
            raise status.bad_request(
                f"the kind in the data ({obj['kind']}) does not match the expected kind "
                f"({rt.kind})"
            )
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        if rt.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise status.bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            meta["namespace"] = namespace or body_ns or "default"
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + _rand_suffix()
        if not meta.get("name"):
            raise status.invalid(rt.kind, "", [("metadata.name", "FieldValueRequired",
                                               "Required value: name or generateName is "
                                               "required")], rt.group)
        for drop in ("resourceVersion", "uid", "deletionTimestamp", "creationTimestamp"):
            meta.pop(drop, None)
        self._check_namespace(rt, meta.get("namespace", ""), creating=True)
        self._admit(rt, obj, None)
        self._track(rt, None, obj, managed_by, keep_managed_fields)
        if dry_run:
            existing = self.store.get(rt.key, meta.get("namespace", ""), meta["name"])
            if existing is not None:
                raise status.already_exists(rt.plural, meta["name"], rt.group)
            meta["creationTimestamp"] = now_rfc3339()
            return obj
        try:
            return self._present(rt, self.store.create(rt.key, obj))
        except StoreError as exc:
            raise self._wrap(rt, exc, meta["name"]) from exc

    def update(self, rt: ResourceType, namespace: str, name: str, obj: dict, *,
               subresource: str = "", dry_run: bool = False, check_version: bool = True,
               allow_create: bool = False, managed_by: str | None = None,
               keep_managed_fields: bool = False) -> dict:
        if not isinstance(obj, dict):
            raise status.bad_request("the body of the request was not a JSON object")
        ns = namespace if rt.namespaced else ""
        old = self.store.get(rt.key, ns, name)
        meta = obj.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise status.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the "
                f"URL ({name})"
            )
        meta["name"] = name
        if old is None:
            if allow_create and not subresource:
                return self.create(rt, namespace, obj, dry_run=dry_run, managed_by=managed_by,
                                   keep_managed_fields=keep_managed_fields)
            raise status.not_found(rt.plural, name, rt.group)
        obj = copy.deepcopy(obj)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj["metadata"]
        if rt.namespaced:
            meta["namespace"] = ns
        if subresource == "status":
            new = copy.deepcopy(old)
            new["status"] = obj.get("status", {})
            new["metadata"]["resourceVersion"] = meta.get("resourceVersion")
            if keep_managed_fields:
                new["metadata"]["managedFields"] = meta.get("managedFields")
            obj = new
            self._track(rt, old, obj, managed_by, keep_managed_fields, "status")
        elif subresource == "":
            # The main resource ignores status changes, as for every built-in kind with a
            # status subresource.
            if "status" in rt.subresources:
                if "status" in old:
                    obj["status"] = old["status"]
                else:
                    obj.pop("status", None)
            meta.setdefault("generation", old["metadata"].get("generation", 1))
            if _spec_of(obj) != _spec_of(old):
                meta["generation"] = old["metadata"].get("generation", 1) + 1
            else:
                meta["generation"] = old["metadata"].get("generation", 1)
            for keep in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                if keep in old["metadata"]:
                    meta[keep] = old["metadata"][keep]
            self._admit(rt, obj, old)
            self._track(rt, old, obj, managed_by, keep_managed_fields)
        if dry_run:
            return obj
        try:
            out = self.store.update(rt.key, obj, check_version=check_version)
        except StoreError as exc:
            raise self._wrap(rt, exc, name) from exc
        out = self._maybe_finish_deletion(rt, out)
        return self._present(rt, out)

    def _maybe_finish_deletion(self, rt: ResourceType, obj: dict) -> dict:
        """An object marked for deletion goes once its last finalizer is removed."""
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            if rt.key == ("", "namespaces") and obj.get("spec", {}).get("finalizers"):
                return obj
            if rt.key == ("", "pods") and meta.get("deletionGracePeriodSeconds", 0) > 0:
                return obj
            try:
                gone = self.store.delete(rt.key, meta.get("namespace", ""), meta["name"])
            except StoreError:
                return obj
            for hook in self.on_delete_hooks:
                hook(rt, gone)
            return gone
        return obj

    def delete(self, rt: ResourceType, namespace: str, name: str, *,
               propagation: str | None = None, grace: int | None = None,
               dry_run: bool = False, preconditions: dict | None = None) -> dict:
        ns = namespace if rt.namespaced else ""
        obj = self.store.get(rt.key, ns, name)
        if obj is None:
            raise status.not_found(rt.plural, name, rt.group)
        meta = obj["metadata"]
        if preconditions:
            if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
                raise status.conflict(rt.plural, name, rt.group)
            rv = preconditions.get("resourceVersion")
            if rv and rv != meta.get("resourceVersion"):
                raise status.conflict(rt.plural, name, rt.group)
        if not meta.get("deletionTimestamp"):
            for policy in self.admission.policies:
                policy(self, rt, "DELETE", None, obj)
        if dry_run:
            return self._present(rt, obj)
        if propagation is None:
            # Defaults of the real registry: ReplicaSets/Deployments cascade in background.
            propagation = "Background"
        finalizers = list(meta.get("finalizers") or [])
        if propagation == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if propagation == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        graceful = rt.key == ("", "pods")
        if rt.key == ("", "pods"):
            if grace is None:
                grace = obj.get("spec", {}).get("terminationGracePeriodSeconds", 30)
            if not obj.get("spec", {}).get("nodeName") or obj.get("status", {}).get(
                    "phase") in ("Succeeded", "Failed"):
                grace = 0
            graceful = grace > 0
        is_ns = rt.key == ("", "namespaces")
        if finalizers or graceful or is_ns:
            if meta.get("deletionTimestamp"):
                if rt.key == ("", "pods") and grace is not None and grace == 0:
                    meta["deletionGracePeriodSeconds"] = 0
                    meta["resourceVersion"] = None
                    out = self.store.update(rt.key, obj, check_version=False)
                    return self._present(rt, self._maybe_finish_deletion(rt, out))
                return self._present(rt, obj)
            meta["deletionTimestamp"] = now_rfc3339()
            meta["finalizers"] = finalizers
            if not finalizers:
                meta.pop("finalizers")
            if rt.key == ("", "pods"):
                meta["deletionGracePeriodSeconds"] = grace
            else:
                meta["deletionGracePeriodSeconds"] = 0
            if is_ns:
                obj.setdefault("status", {})["phase"] = "Terminating"
            out = self.store.update(rt.key, obj, check_version=False)
            return self._present(rt, self._maybe_finish_deletion(rt, out))
        try:
            gone = self.store.delete(rt.key, ns, name)
        except StoreError as exc:
            raise self._wrap(rt, exc, name) from exc
        for hook in self.on_delete_hooks:
            hook(rt, gone)
        return self._present(rt, gone)

    # -- conveniences for in-process controllers ------------------------------------------
    def rt(self, api_version: str, kind: str) -> ResourceType:
        found = self.registry.by_kind(api_version, kind)
        if found is None:
            raise KeyError(f"{api_version}/{kind}")
        return found

    def set_status(self, rt: ResourceType, obj: dict, new_status: dict) -> dict | None:
        """Write ``status`` if it changed; tolerate the object having gone."""
        if obj.get("status") == new_status:
            return obj
        body = copy.deepcopy(obj)
        body["status"] = new_status
        body["metadata"]["resourceVersion"] = None
        try:
            return self.update(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"],
                               body, subresource="status", check_version=False)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise


def _spec_of(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


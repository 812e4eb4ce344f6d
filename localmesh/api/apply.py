"""A server-side apply request (``PATCH`` with ``application/apply-patch+yaml``), as
k8s.io/apiserver's ``applyPatcher`` handles it: the options checked, the configuration
decoded and typed, then merged by localmesh/api/fieldmanager.py into the live object — or
into nothing, which creates it — with conflicts and ``force`` as upstream.
"""

from __future__ import annotations

from typing import Any

import yaml

from localmesh.api import fieldmanager, status
from localmesh.api.status import ApiError
from localmesh.resources import ResourceType
from localmesh.store import now_rfc3339


def check_options(query: Any, is_apply: bool) -> None:
    """``ValidatePatchOptions``: apply needs a fieldManager; only apply may force."""
    causes = []
    if is_apply and not query.get("fieldManager"):
        causes.append(("fieldManager", "FieldValueRequired",
                       "Required value: is required for apply patch"))
    if not is_apply and query.get("force") is not None:
        causes.append(("force", "FieldValueForbidden",
                       "Forbidden: may not be specified for non-apply patch"))
    if causes:
        raise status.invalid("PatchOptions", "", causes, "meta.k8s.io")


def decode(raw: bytes) -> dict:
    """The applied configuration: a YAML (or JSON) object."""
    try:
        config = yaml.safe_load(raw.decode() or "{}")
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise status.bad_request(f"error decoding patch: {exc}") from exc
    if not isinstance(config, dict):
        raise status.bad_request("error decoding patch: the applied configuration is not "
                                 "an object")
    return config


def applied(rt: ResourceType, schema: Any, live: dict | None, config: dict, *,
            namespace: str, name: str, manager: str, force: bool,
            subresource: str = "") -> dict:
    """The object after the apply, with its managedFields."""
    want = rt.api_version
    if config.get("apiVersion") and config["apiVersion"] != want:
        raise status.bad_request(
            "Incorrect version specified in apply patch. Specified patch version: "
            f"{config['apiVersion']}, expected: {want}")
    if (config.get("metadata") or {}).get("managedFields"):
        raise status.bad_request("metadata.managedFields must be nil")
    errors = fieldmanager.undeclared(schema, config)
    if errors:
        gvk = f"{rt.group}/{rt.version}, Kind={rt.kind}"
        nsname = f"{namespace if rt.namespaced else ''}/{name}"
        detail = errors[0] if len(errors) == 1 else "errors:\n" + "\n".join(
            f"  {e}" for e in errors)
        # Returned as a plain error upstream, which the API server answers as a 500 with
        # no reason (responsewriters.ErrorToAPIStatus).
        raise ApiError(500, "", f"failed to create typed patch object ({nsname}; {gvk}): "
                                f"{detail}")
    return fieldmanager.apply(schema, live, config, manager, api_version=want, force=force,
                              now=now_rfc3339(), subresource=subresource)

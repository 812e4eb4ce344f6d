"""ValidatingAdmissionPolicy: CEL validations bound to requests, evaluated at admission as
kube-apiserver's validating admission policy plugin does
(k8s.io/apiserver ``pkg/admission/plugin/policy/validating``), with ``cel-python``.

For each ValidatingAdmissionPolicyBinding whose policy matches a request — the policy's
``matchConstraints`` and the binding's ``matchResources`` (resource rules with API groups,
versions, operations and resources, ``excludeResourceRules``, ``namespaceSelector``,
``objectSelector``) and every ``matchConditions`` expression — the policy's ``variables``
are computed and each ``validations`` expression must be true. The expressions see
``object``, ``oldObject`` (null on create, and ``object`` null on delete), ``request``
(operation, userInfo, kind, resource, name, namespace, dryRun), ``params`` (the binding's
``paramRef`` object of the policy's ``paramKind``), ``namespaceObject`` and ``variables``.

A failed validation with the binding's ``Deny`` action refuses the request — 422 (or the
validation's ``reason``) with upstream's message ``<resource> "<name>" is forbidden:
ValidatingAdmissionPolicy '<p>' with binding '<b>' denied request: <message>`` and the
message as a cause — ``Warn`` adds a ``Warning`` header, ``Audit`` only logs. An expression
that errors is a denial under ``failurePolicy: Fail`` (the default) and ignored under
``Ignore``. Deletes are admitted too (``oldObject`` is the object being deleted).

Not evaluated (docs/localmesh.md): the ``authorizer`` variable, type checking (the
policy's status stays empty), and CEL libraries beyond cel-python's standard ones
(Kubernetes' ``quantity``, ``url``, ``ip``, ``cidr`` extensions).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from localmesh.api import status
from localmesh.api.authn import current_user
from localmesh.api.objects import ObjectAPI, admission_warnings
from localmesh.api.selectors import selector_matches
from localmesh.api.status import ApiError
from localmesh.resources import ResourceType

log = logging.getLogger("localmesh.admissionpolicy")

POLICIES = ("admissionregistration.k8s.io", "validatingadmissionpolicies")
BINDINGS = ("admissionregistration.k8s.io", "validatingadmissionpolicybindings")
REASON_CODES = {"Invalid": 422, "Forbidden": 403, "Unauthorized": 401,
                "RequestEntityTooLarge": 413}


class CelError(Exception):
    """A CEL expression that did not compile or evaluate."""


def _celpy() -> Any:
    """cel-python, imported on first use: most instances never evaluate a policy, and the
    import costs a tenth of localmesh's boot."""
    return importlib.import_module("celpy")


class Evaluator:
    """cel-python programs, compiled once per expression."""

    def __init__(self) -> None:
        self._env: Any = None
        self.programs: dict[str, Any] = {}

    @property
    def env(self) -> Any:
        if self._env is None:
            self._env = _celpy().Environment()
        return self._env

    def run(self, expression: str, activation: dict[str, Any]) -> Any:
        program = self.programs.get(expression)
        try:
            if program is None:
                program = self.env.program(self.env.compile(expression))
                self.programs[expression] = program
            result = program.evaluate(activation)
        except Exception as exc:
            raise CelError(str(exc)) from exc
        if isinstance(result, _celpy().CELEvalError):
            raise CelError(str(result))
        return result


def _cel(value: Any) -> Any:
    return _celpy().json_to_cel(value)


def _cel_map(values: dict[str, Any]) -> Any:
    types = _celpy().celtypes
    return types.MapType({types.StringType(k): v for k, v in values.items()})


def rule_matches(rule: dict, rt: ResourceType, operation: str, namespaced: bool) -> bool:
    """An admissionregistration RuleWithOperations (groups, versions, operations,
    resources, scope) against a request; shared with the webhooks (webhooks.py)."""
    def has(values: list[str] | None, item: str) -> bool:
        return bool(values) and ("*" in (values or []) or item in (values or []))

    resources = rule.get("resources") or []
    scope = rule.get("scope", "*")
    if (scope == "Namespaced" and not namespaced) or (scope == "Cluster" and namespaced):
        return False
    return (has(rule.get("apiGroups"), rt.group) and has(rule.get("apiVersions"), rt.version)
            and has(rule.get("operations"), operation)
            and ("*" in resources or rt.plural in resources or "*/*" in resources))


def _matches(match: dict | None, rt: ResourceType, operation: str, obj: dict | None,
             old: dict | None, namespace: dict | None) -> bool:
    if match is None:
        return True
    rules = match.get("resourceRules")
    if rules is not None and not any(rule_matches(r, rt, operation, rt.namespaced)
                                     for r in rules):
        return False
    if any(rule_matches(r, rt, operation, rt.namespaced)
           for r in match.get("excludeResourceRules") or []):
        return False
    subject = obj if obj is not None else old
    labels = ((subject or {}).get("metadata") or {}).get("labels") or {}
    if not selector_matches(match.get("objectSelector"), labels):
        return False
    if match.get("namespaceSelector"):
        ns_labels = labels if rt.key == ("", "namespaces") else \
            ((namespace or {}).get("metadata") or {}).get("labels") if namespace else None
        if ns_labels is None and rt.namespaced:
            return False
        if not selector_matches(match["namespaceSelector"], ns_labels or {}):
            return False
    return True


class PolicyAdmission:
    """The plugin: ``check`` runs for every write and delete (ObjectAPI's policy hook)."""

    def __init__(self) -> None:
        self.cel = Evaluator()

    def __call__(self, api: ObjectAPI, rt: ResourceType, operation: str, obj: dict | None,
                 old: dict | None) -> None:
        bindings = api.store.scan(BINDINGS)
        if not bindings or rt.key in (POLICIES, BINDINGS):
            return
        policies = {p["metadata"]["name"]: p for p in api.store.scan(POLICIES)}
        subject = obj if obj is not None else old or {}
        meta = subject.get("metadata") or {}
        ns_name = meta.get("namespace", "") if rt.namespaced else ""
        namespace = api.store.get(("", "namespaces"), "", ns_name) if ns_name else None
        for binding in bindings:
            policy = policies.get((binding.get("spec") or {}).get("policyName", ""))
            if policy is None:
                continue
            pspec, bspec = policy.get("spec") or {}, binding.get("spec") or {}
            if not (_matches(pspec.get("matchConstraints"), rt, operation, obj, old, namespace)
                    and _matches(bspec.get("matchResources"), rt, operation, obj, old,
                                 namespace)):
                continue
            self._evaluate(api, rt, operation, obj, old, namespace, policy, binding)

    def _evaluate(self, api: ObjectAPI, rt: ResourceType, operation: str, obj: dict | None,
                  old: dict | None, namespace: dict | None, policy: dict,
                  binding: dict) -> None:
        pspec, bspec = policy.get("spec") or {}, binding.get("spec") or {}
        subject = obj if obj is not None else old or {}
        meta = subject.get("metadata") or {}
        user = current_user.get()
        request = {
            "operation": operation,
            "userInfo": user.as_dict() if user is not None else {
                "username": "system:kube-controller-manager"},
            "kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
            "resource": {"group": rt.group, "version": rt.version, "resource": rt.plural},
            "name": meta.get("name", ""), "namespace": meta.get("namespace", ""),
            "dryRun": False,
        }
        activation: dict[str, Any] = {
            "object": _cel(obj), "oldObject": _cel(old), "request": _cel(request),
            "namespaceObject": _cel(namespace), "params": _cel(self._params(api, pspec,
                                                                              bspec))}
        fail = pspec.get("failurePolicy", "Fail") == "Fail"
        try:
            for cond in pspec.get("matchConditions") or []:
                if not bool(self.cel.run(cond.get("expression", "false"), activation)):
                    return
            variables: dict[str, Any] = {}
            for var in pspec.get("variables") or []:
                activation["variables"] = _cel_map(variables)
                variables[var["name"]] = self.cel.run(var.get("expression", "null"),
                                                      activation)
            activation["variables"] = _cel_map(variables)
            for v in pspec.get("validations") or []:
                expression = v.get("expression", "false")
                if bool(self.cel.run(expression, activation)):
                    continue
                message = v.get("message") or ""
                if v.get("messageExpression"):
                    try:
                        message = str(self.cel.run(v["messageExpression"], activation))
                    except CelError:
                        pass
                self._deny(rt, policy, binding, meta,
                           message or f"failed expression: {expression.strip()}",
                           v.get("reason") or "Invalid")
        except CelError as exc:
            if fail:
                self._deny(rt, policy, binding, meta,
                           f"expression resulted in error: {exc}", "Invalid")
            else:
                log.info("ValidatingAdmissionPolicy %s: %s (ignored)",
                         policy["metadata"]["name"], exc)

    @staticmethod
    def _params(api: ObjectAPI, pspec: dict, bspec: dict) -> dict | None:
        ref, kind = bspec.get("paramRef") or {}, pspec.get("paramKind") or {}
        if not ref.get("name") or not kind.get("kind"):
            return None
        rt = api.registry.by_kind(kind.get("apiVersion", ""), kind["kind"])
        if rt is None:
            return None
        return api.store.get(rt.key, ref.get("namespace", "") if rt.namespaced else "",
                             ref["name"])

    @staticmethod
    def _deny(rt: ResourceType, policy: dict, binding: dict, meta: dict, message: str,
              reason: str) -> None:
        text = (f"ValidatingAdmissionPolicy '{policy['metadata']['name']}' with binding "
                f"'{binding['metadata']['name']}' denied request: {message}")
        actions = (binding.get("spec") or {}).get("validationActions") or ["Deny"]
        if "Warn" in actions:
            found = admission_warnings.get()
            if found is not None:
                found.append(f"Validation failed for ValidatingAdmissionPolicy "
                             f"'{policy['metadata']['name']}' with binding "
                             f"'{binding['metadata']['name']}': {message}")
        if "Audit" in actions:
            log.info("audit: %s", text)
        if "Deny" not in actions:
            return
        name = meta.get("name", "")
        err = status.new_forbidden(rt.plural, rt.group, name, text)
        raise ApiError(REASON_CODES.get(reason, 422), reason, err.message, kind=rt.plural,
                       name=name, group=rt.group, causes=[{"message": text}],
                       with_details=True)


def install(api: ObjectAPI) -> None:
    api.admission.add_policy(PolicyAdmission())

"""RBAC rules: does a rule allow a request, and does one set of rules cover another.

k8s.io/kubernetes ``pkg/apis/rbac/v1/evaluation_helpers.go`` (``RuleAllows``),
``pkg/registry/rbac/validation/policy_comparator.go`` (``Covers``, ``BreakdownRule``,
``ruleCovers``) and ``pkg/apis/rbac/v1/helpers`` (``CompactString``, ``CompactRules``),
which the escalation check's message is made of.
"""

from __future__ import annotations

import json

from localmesh.api.rbac.request_info import Attributes


def verb_matches(rule: dict, verb: str) -> bool:
    verbs = rule.get("verbs") or []
    return "*" in verbs or verb in verbs


def rule_allows(attrs: Attributes, rule: dict) -> bool:
    """``rbac.RuleAllows``."""
    if not verb_matches(rule, attrs.verb):
        return False
    if attrs.resource_request:
        groups = rule.get("apiGroups") or []
        if "*" not in groups and attrs.api_group not in groups:
            return False
        combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource \
            else attrs.resource
        resources = rule.get("resources") or []
        if not ("*" in resources or combined in resources
                or (attrs.subresource and f"*/{attrs.subresource}" in resources)):
            return False
        names = rule.get("resourceNames") or []
        return not names or attrs.name in names
    for url in rule.get("nonResourceURLs") or []:
        if url == "*" or url == attrs.path or (url.endswith("*")
                                              and attrs.path.startswith(url[:-1])):
            return True
    return False


def breakdown(rule: dict) -> list[dict]:
    """``BreakdownRule``: one verb, group, resource and name per rule."""
    out = []
    names = rule.get("resourceNames") or []
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            for verb in rule.get("verbs") or []:
                if names:
                    out += [{"apiGroups": [group], "resources": [resource], "verbs": [verb],
                             "resourceNames": [n]} for n in names]
                else:
                    out.append({"apiGroups": [group], "resources": [resource], "verbs": [verb]})
    for url in rule.get("nonResourceURLs") or []:
        for verb in rule.get("verbs") or []:
            out.append({"nonResourceURLs": [url], "verbs": [verb]})
    return out


def _resource_covers(owner: list[str], wanted: list[str]) -> bool:
    if "*" in owner or all(w in owner for w in wanted):
        return True
    for w in wanted:
        if w in owner:
            continue
        if "/" not in w or f"*/{w.split('/', 1)[1]}" not in owner:
            return False
    return True


def _url_covers(owner: list[str], wanted: list[str]) -> bool:
    for w in wanted:
        if not any(o == w or (o.endswith("*") and w.startswith(o[:-1])) for o in owner):
            return False
    return True


def rule_covers(owner: dict, sub: dict) -> bool:
    """``ruleCovers`` of pkg/registry/rbac/validation/policy_comparator.go."""
    verbs, groups = owner.get("verbs") or [], owner.get("apiGroups") or []
    if not ("*" in verbs or all(v in verbs for v in sub.get("verbs") or [])):
        return False
    if not ("*" in groups or all(g in groups for g in sub.get("apiGroups") or [])):
        return False
    if not _resource_covers(owner.get("resources") or [], sub.get("resources") or []):
        return False
    if not _url_covers(owner.get("nonResourceURLs") or [], sub.get("nonResourceURLs") or []):
        return False
    owner_names, sub_names = owner.get("resourceNames") or [], sub.get("resourceNames") or []
    if not sub_names:
        return not owner_names
    return not owner_names or all(n in owner_names for n in sub_names)


def covers(owner_rules: list[dict], servant_rules: list[dict]) -> tuple[bool, list[dict]]:
    """``Covers``: every broken-down servant rule is covered by some owner rule."""
    missing = [sub for rule in servant_rules for sub in breakdown(rule)
               if not any(rule_covers(o, sub) for o in owner_rules)]
    return not missing, missing


def go_q(values: list[str]) -> str:
    """Go's ``%q`` of a []string: ``["a" "b"]``."""
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


def compact_string(rule: dict) -> str:
    """``rbacv1helpers.CompactString``."""
    parts = []
    for key, label in (("apiGroups", "APIGroups"), ("resources", "Resources"),
                       ("nonResourceURLs", "NonResourceURLs"),
                       ("resourceNames", "ResourceNames"), ("verbs", "Verbs")):
        if rule.get(key):
            parts.append(f"{label}:{go_q(rule[key])}")
    return "{" + ", ".join(parts) + "}"


def compact_rules(rules: list[dict]) -> list[dict]:
    """``CompactRules``: merge simple rules that differ only by verb."""
    out: list[dict] = []
    simple: dict[tuple[str, str], dict] = {}
    for r in rules:
        if len(r.get("apiGroups") or []) == 1 and len(r.get("resources") or []) == 1 \
                and not r.get("resourceNames") and not r.get("nonResourceURLs"):
            key = (r["apiGroups"][0], r["resources"][0])
            if key in simple:
                for v in r.get("verbs") or []:
                    if v not in simple[key]["verbs"]:
                        simple[key]["verbs"].append(v)
                continue
            simple[key] = {"apiGroups": [key[0]], "resources": [key[1]],
                           "verbs": list(r.get("verbs") or [])}
            out.append(simple[key])
        else:
            out.append(r)
    return out

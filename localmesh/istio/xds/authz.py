"""AuthorizationPolicy (``security.istio.io/v1``) → Envoy's RBAC filters, as Istio builds
them (istio/istio ``pilot/pkg/security/authz/builder/builder.go`` and ``authz/model``;
expected shapes in ``authz/builder/testdata/http/*-out.yaml``).

Which policies apply to a proxy: those of the root namespace without ``selector`` and
``targetRefs`` (mesh-wide), those of its namespace without either (namespace-wide), those
of its namespace whose ``selector.matchLabels`` match its labels, and those whose
``targetRefs`` name its Gateway API ``Gateway`` (same namespace) or ``GatewayClass``
(root namespace). ``targetRefs`` of kind ``Service`` attach to waypoints only (ambient),
so they select no sidecar, as in Istio. A policy selecting no workload changes nothing.

Per proxy one RBAC HTTP filter per action, in Istio's order: AUDIT (Envoy's ``LOG``),
DENY, ALLOW; CUSTOM policies need an extension provider, and with none configured (as
here) Istio generates a DENY for their rules (``getBadCustomDenyRules``), which this
does too. An ALLOW policy with no rules becomes a policy that never matches, so a
workload with ALLOW policies that match nothing is denied everything. A rule becomes the
Envoy policy ``ns[<ns>]-policy[<name>]-rule[<i>]``: one permission per ``to`` (with the
destination ``when`` keys), one principal per ``from`` (with the source ``when`` keys).
Policies annotated ``istio.io/dry-run: "true"`` go to ``shadow_rules``. Denied requests
get Envoy's own ``403`` with the body ``RBAC: access denied``.

Where localmesh differs: principals match the peer certificate with Envoy's
``authenticated`` principal (Istio ≤ 1.19 did so too; later Istio reads the same SPIFFE ID
from its own filter state, which a stock Envoy has not); ``request.auth.*`` keys and
``requestPrincipals`` match Istio's ``istio_authn`` metadata, which is never set because
RequestAuthentication (JWT) is not implemented, so they never match; path templates
(``{*}``, ``{**}``) and ``experimental.envoy.filters.*`` keys are not supported (such a
rule is skipped, as Istio skips a rule it cannot build).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from localmesh.istio.xds.model import MeshState, Proxy

RBAC_HTTP = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
RBAC_TCP = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
GATEWAY_CLASS_LABEL = "gateway.networking.k8s.io/gateway-class-name"
DRY_RUN = "istio.io/dry-run"
SPIFFE = "spiffe://"
MATCH_NEVER = {"permissions": [{"not_rule": {"any": True}}],
               "principals": [{"not_id": {"any": True}}]}


class RuleError(ValueError):
    """A value or key Istio's generator cannot turn into a matcher."""


# -- string matchers (authz/model/matcher) ------------------------------------------------
def string_matcher(v: str, prefix: str = "") -> dict:
    """``StringMatcherWithPrefix``: ``*`` any (``.+``), ``*x`` suffix, ``x*`` prefix."""
    if v == "*":
        return {"safe_regex": {"regex": ".+"}}
    if v.startswith("*"):
        return {"suffix": prefix + v[1:]}
    if v.endswith("*"):
        return {"prefix": prefix + v[:-1]}
    return {"exact": prefix + v}


def _regex(regex: str) -> dict:
    return {"safe_regex": {"regex": regex}}


def _header(name: str, v: str) -> dict:
    """``HeaderMatcher`` (:method and friends)."""
    if v == "*":
        return {"name": name, "present_match": True}
    if v.startswith("*"):
        return {"name": name, "suffix_match": v[1:]}
    if v.endswith("*"):
        return {"name": name, "prefix_match": v[:-1]}
    return {"name": name, "exact_match": v}


def _host(v: str) -> dict:
    """``HostMatcher``: :authority, case-insensitive."""
    if v == "*":
        return {"name": ":authority", "present_match": True}
    if v.startswith("*"):
        return {"name": ":authority", "string_match": {"suffix": v[1:], "ignore_case": True}}
    if v.endswith("*"):
        return {"name": ":authority", "string_match": {"prefix": v[:-1], "ignore_case": True}}
    return {"name": ":authority", "string_match": {"exact": v, "ignore_case": True}}


def _request_header(name: str, v: str) -> dict:
    """A ``request.headers[...]`` value, matched within a comma-separated header."""
    if v == "*":
        return {"name": name, "present_match": True}
    x = ".*".join(re.escape(part) for part in v.split("*"))
    return {"name": name, "safe_regex_match": {
        "regex": f"^{x}$|^{x},.*|.*,{x},.*|.*,{x}$"}}


def _cidr(v: str) -> dict:
    try:
        net = ipaddress.ip_network(v, strict=False)
    except ValueError as exc:
        raise RuleError(f"invalid IP address {v}") from exc
    return {"address_prefix": str(net.network_address), "prefix_len": net.prefixlen}


def _port(v: str) -> int:
    if not str(v).isdigit() or int(v) > 65535:
        raise RuleError(f"invalid port {v}")
    return int(v)


def _namespace(v: str) -> dict:
    return _regex(f".*/ns/{v.replace('*', '.*')}/.*")


def _authn_metadata(key: str, v: str) -> dict:
    """Istio's JWT result, which only RequestAuthentication would set (not implemented)."""
    return {"metadata": {"filter": "istio_authn", "path": [{"key": key}],
                         "value": {"string_match": string_matcher(v)}}}


# -- one key of a rule → principals or permissions ---------------------------------------
PRINCIPAL_KEYS: dict[str, Callable[[str], dict]] = {
    "source.principal": lambda v: {"authenticated": {"principal_name":
                                                     string_matcher(v, SPIFFE)}},
    "source.namespace": lambda v: {"authenticated": {"principal_name": _namespace(v)}},
    "source.ip": lambda v: {"direct_remote_ip": _cidr(v)},
    "remote.ip": lambda v: {"remote_ip": _cidr(v)},
    "request.auth.principal": lambda v: _authn_metadata("request.auth.principal", v),
    "request.auth.audiences": lambda v: _authn_metadata("request.auth.audiences", v),
    "request.auth.presenter": lambda v: _authn_metadata("request.auth.presenter", v),
}
PERMISSION_KEYS: dict[str, Callable[[str], dict]] = {
    "destination.port": lambda v: {"destination_port": _port(v)},
    "destination.ip": lambda v: {"destination_ip": _cidr(v)},
    "connection.sni": lambda v: {"requested_server_name": string_matcher(v)},
    ":method": lambda v: {"header": _header(":method", v)},
    ":authority": lambda v: {"header": _host(v)},
    "path": lambda v: {"url_path": {"path": string_matcher(v)}},
}
HTTP_ONLY = {":method", ":authority", "path", "request.headers", "request.auth.principal",
             "request.auth.audiences", "request.auth.presenter"}


def _generate(key: str, v: str, principal: bool) -> dict:
    if key.startswith("request.headers"):
        m = re.fullmatch(r"request\.headers\[(.+)\]", key)
        if not m:
            raise RuleError(f"invalid header key {key}")
        return {"header": _request_header(m.group(1), v)}
    if key.startswith("request.auth.claims"):
        return _authn_metadata("request.auth.claims", v)
    if key == "path" and ("{" in v or "}" in v):
        raise RuleError(f"path templates are not supported: {v}")
    table = PRINCIPAL_KEYS if principal else PERMISSION_KEYS
    return table[key](v)


def _key_matchers(key: str, values: list, not_values: list, principal: bool, for_tcp: bool,
                  action: str) -> list[dict]:
    """One key's ``or`` of values and ``not`` of the ``or`` of notValues (model.go)."""
    out = []
    for vals, negate in ((values, False), (not_values, True)):
        ors = []
        for v in vals:
            try:
                if for_tcp and (key in HTTP_ONLY or key.startswith(("request.",))):
                    raise RuleError(f"{key!r} is HTTP only")
                ors.append(_generate(key, str(v), principal))
            except RuleError:
                if action == "ALLOW":  # a smaller ALLOW: the rule is dropped
                    raise
                # a wider DENY/AUDIT: the value is ignored
        if ors:
            group: dict = {"or_ids": {"ids": ors}} if principal else \
                {"or_rules": {"rules": ors}}
            if negate:
                group = {"not_id": group} if principal else {"not_rule": group}
            out.append(group)
    return out


SOURCE_WHEN = ("source.ip", "remote.ip", "source.namespace", "source.principal",
               "request.auth.principal", "request.auth.audiences", "request.auth.presenter")
DEST_WHEN = ("destination.ip", "destination.port", "connection.sni")


def _policy(rule: dict, for_tcp: bool, action: str) -> dict:
    """One rule → an Envoy Policy (``authzmodel.New`` then ``Generate``)."""
    base_principal: list[tuple[str, list, list]] = []
    base_permission: list[tuple[str, list, list]] = []
    for when in rule.get("when") or []:
        key = when.get("key", "")
        entry = (key, when.get("values") or [], when.get("notValues") or [])
        if key in DEST_WHEN:
            base_permission.append(entry)
        elif key in SOURCE_WHEN or key.startswith(("request.headers", "request.auth.claims")):
            base_principal.append(entry)
        else:
            raise RuleError(f"unknown attribute {key}")
    principals = []
    for frm in rule.get("from") or [{}]:
        s = frm.get("source") or {}
        keys = [("source.principal", s.get("principals"), s.get("notPrincipals")),
                ("request.auth.principal", s.get("requestPrincipals"),
                 s.get("notRequestPrincipals")),
                ("source.namespace", s.get("namespaces"), s.get("notNamespaces")),
                ("remote.ip", s.get("remoteIpBlocks"), s.get("notRemoteIpBlocks")),
                ("source.ip", s.get("ipBlocks"), s.get("notIpBlocks"))]
        ands = [m for k, v, nv in keys + base_principal if v or nv
                for m in _key_matchers(k, v or [], nv or [], True, for_tcp, action)]
        principals.append({"and_ids": {"ids": ands or [{"any": True}]}})
    permissions = []
    for to in rule.get("to") or [{}]:
        o = to.get("operation") or {}
        keys = [(":authority", o.get("hosts"), o.get("notHosts")),
                (":method", o.get("methods"), o.get("notMethods")),
                ("path", o.get("paths"), o.get("notPaths")),
                ("destination.port", o.get("ports"), o.get("notPorts"))]
        ands = [m for k, v, nv in keys + base_permission if v or nv
                for m in _key_matchers(k, v or [], nv or [], False, for_tcp, action)]
        permissions.append({"and_rules": {"rules": ands or [{"any": True}]}})
    return {"permissions": permissions, "principals": principals}


# -- which policies apply ---------------------------------------------------------------
def applies(policy: dict, proxy: Proxy, root_namespace: str) -> bool:
    """Does a policy select this proxy?"""
    spec = policy.get("spec") or {}
    ns = policy["metadata"]["namespace"]
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    refs = spec.get("targetRefs") or ([spec["targetRef"]] if spec.get("targetRef") else [])
    if refs:
        for ref in refs:
            group, kind, name = ref.get("group", ""), ref.get("kind", ""), ref.get("name")
            if group != GATEWAY_GROUP:
                continue  # Service / ServiceEntry: waypoints only
            if kind == "Gateway" and ns == proxy.namespace and \
                    proxy.labels.get(GATEWAY_NAME_LABEL) == name:
                return True
            if kind == "GatewayClass" and ns == root_namespace and \
                    proxy.labels.get(GATEWAY_CLASS_LABEL) == name:
                return True
        return False
    if selector:
        return ns == proxy.namespace and all(proxy.labels.get(k) == v
                                             for k, v in selector.items())
    return ns in (proxy.namespace, root_namespace)


def _rules(policies: list[dict], action: str, for_tcp: bool) -> dict:
    """The RBAC ``rules``/``shadow_rules`` of one action (``Builder.build``)."""
    enforced: dict[str, dict] = {}
    shadow: dict[str, dict] = {}
    for p in policies:
        dry = str((p["metadata"].get("annotations") or {}).get(DRY_RUN, "")).lower() == "true"
        target = shadow if dry else enforced
        ns, name = p["metadata"]["namespace"], p["metadata"]["name"]
        rules = (p.get("spec") or {}).get("rules") or []
        for i, rule in enumerate(rules):
            try:
                target[f"ns[{ns}]-policy[{name}]-rule[{i}]"] = _policy(rule or {}, for_tcp,
                                                                      action)
            except RuleError:
                continue  # "skipped invalid rule"
        if not rules:
            target[f"ns[{ns}]-policy[{name}]-rule[0]"] = MATCH_NEVER
    envoy_action = {"AUDIT": "LOG", "CUSTOM": "DENY"}.get(action, action)
    out: dict = {}
    for key, policies_ in (("rules", enforced), ("shadow_rules", shadow)):
        if key == "rules" and not enforced and shadow:
            continue
        if key == "shadow_rules" and not shadow:
            continue
        body: dict = {"policies": dict(sorted(policies_.items()))}
        if envoy_action != "ALLOW":
            body["action"] = envoy_action
        out[key] = body
    prefix = {"ALLOW": "istio_dry_run_allow_", "DENY": "istio_dry_run_deny_"}.get(
        envoy_action)
    if shadow and prefix:
        out["shadow_rules_stat_prefix"] = prefix
    return out


def _by_action(state: MeshState, proxy: Proxy) -> list[tuple[str, list[dict]]]:
    root = state.mesh_config.root_namespace
    selected = sorted((p for p in state.authorization_policies
                       if applies(p, proxy, root)),
                      key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
    groups: dict[str, list[dict]] = {}
    for p in selected:
        action = str((p.get("spec") or {}).get("action") or "ALLOW").upper()
        groups.setdefault(action, []).append(p)
    # AUDIT, then DENY (CUSTOM without a provider denies), then ALLOW (builder.go).
    return [(a, groups[a]) for a in ("AUDIT", "CUSTOM", "DENY", "ALLOW") if a in groups]


def http_filters(state: MeshState, proxy: Proxy) -> list[dict]:
    """The ``envoy.filters.http.rbac`` filters of a proxy's HTTP connection managers."""
    return [{"name": "envoy.filters.http.rbac",
             "typed_config": {"@type": RBAC_HTTP, **_rules(policies, action, False)}}
            for action, policies in _by_action(state, proxy)]


def network_filters(state: MeshState, proxy: Proxy) -> list[dict]:
    """The ``envoy.filters.network.rbac`` filters of a proxy's TCP chains."""
    return [{"name": "envoy.filters.network.rbac",
             "typed_config": {"@type": RBAC_TCP, "stat_prefix": "tcp.",
                              **_rules(policies, action, True)}}
            for action, policies in _by_action(state, proxy)]

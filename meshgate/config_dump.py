"""Read Envoy admin config dumps: route entries, listener names and cluster names.

The suite checks "routes are registered" by reading what a sidecar's Envoy *actually holds*,
not what istiod meant to send. That comes to us as a config dump, and the same facts arrive
in several layouts depending on how the dump was taken:

* ``GET /config_dump`` (or ``?mask=...``): ``{"configs": [RoutesConfigDump, ...]}``, each
  element holding ``static_*``/``dynamic_*`` lists of wrapped resources;
* ``GET /config_dump?resource=dynamic_route_configs``: every element of ``configs`` is one
  unwrapped ``RoutesConfigDump.DynamicRouteConfig`` (likewise ``StaticRouteConfig``,
  ``ClustersConfigDump.DynamicCluster``, ``ListenersConfigDump.DynamicListener``, ...);
  with nothing to report Envoy answers ``{}``;
* ``istioctl proxy-config routes -o json``: a bare JSON list of ``RouteConfiguration``
  (and ``listeners``/``clusters`` likewise give bare lists of those resources);
* old dumps: Istio <= 1.6 wraps inner resources as ``envoy.api.v2.*``; early Envoy
  (admin ``v2alpha``, 2018) wrote ``configs`` as a map keyed by dump kind and listed
  listeners as ``dynamic_active_listeners``/``dynamic_warming_listeners``.

The readers below look at protobuf *field names*, which are the stable part of all of these,
and treat the ``@type`` strings (whose API version drifts) as decoration. Everything is
plain dicts and lists so that the same code serves a live cluster, localmesh and the golden
files kept for tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = [
    "ConfigDumpError",
    "RouteEntry",
    "cluster_names",
    "clusters",
    "find_route",
    "listener_names",
    "load_config_dump",
    "route_entries",
]

# RouteMatch's ``path_specifier`` oneof, in the order we report them. ``regex`` is the
# deprecated v2 field kept so that pre-1.6 dumps still say what they match on.
PATH_SPECIFIERS: tuple[str, ...] = (
    "prefix",
    "path",
    "safe_regex",
    "path_separated_prefix",
    "connect_matcher",
    "path_match_policy",
    "regex",
)

# RouteMatch fields that add a condition beyond the path. find_route describes a plain
# request (a host and a path, no special headers), so a route carrying any of these is not
# known to match it; see find_route.
_EXTRA_CONDITIONS: tuple[str, ...] = (
    "headers",
    "query_parameters",
    "grpc",
    "tls_context",
    "dynamic_metadata",
    "filter_state",
    "runtime_fraction",
)

_ROUTE_LISTS = ("static_route_configs", "dynamic_route_configs")
_CLUSTER_LISTS = ("static_clusters", "dynamic_active_clusters", "dynamic_warming_clusters")
# Lists of {"listener": {...}} wrappers: v3's static listeners, and early admin v2alpha's
# dynamic listeners split by state (later dumps use "dynamic_listeners", handled apart).
_WRAPPED_LISTENER_LISTS = (
    "static_listeners",
    "dynamic_active_listeners",
    "dynamic_warming_listeners",
    "dynamic_draining_listeners",
)
# The states of a v3 DynamicListener that hold a listener Envoy has accepted. error_state
# only describes a rejected update, so a listener seen only there does not exist.
_LISTENER_STATES = ("active_state", "warming_state", "draining_state")

_ROUTE_KEYS = frozenset({"virtual_hosts", "vhds", "validate_clusters", "request_headers_to_add"})
_LISTENER_KEYS = frozenset(
    {"address", "filter_chains", "listener_filters", "default_filter_chain", "internal_listener"}
)
_CLUSTER_KEYS = frozenset(
    {"connect_timeout", "eds_cluster_config", "load_assignment", "lb_policy", "cluster_type"}
)

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigDumpError(ValueError):
    """The input is not a config dump we can read; the message says what is wrong and where.

    A ValueError so that callers who only care about "bad input" need not import it.
    """


@dataclass(frozen=True)
class RouteEntry:
    """One route of one virtual host, flattened so that assertions read as one sentence.

    "A vhost whose domains include X routes path P to cluster C" needs the route config,
    the vhost, its domains, the route's path match and its target together; Envoy nests
    them four levels deep. ``match`` holds only the path specifier (``{KEY: VALUE}``), and
    ``cluster`` is the single cluster, the sorted weighted-cluster names, or None when the
    route has no fixed target (redirect, direct response, ``cluster_header``, ...).

    ``route_match`` keeps the dump's whole RouteMatch (case sensitivity, header and query
    conditions) for find_route; it takes no part in equality or hashing so that entries
    built by hand compare equal to parsed ones.
    """

    route_config: str
    virtual_host: str
    domains: tuple[str, ...]
    match: dict[str, Any] = field(hash=False)
    cluster: str | list[str] | None = field(hash=False)
    name: str | None = None
    route_match: dict[str, Any] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    def to_json(self) -> dict[str, Any]:
        """The entry as printed by ``meshgate routes --json`` (README.md's stable shape)."""
        cluster = list(self.cluster) if isinstance(self.cluster, list) else self.cluster
        return {
            "route_config": self.route_config,
            "virtual_host": self.virtual_host,
            "domains": list(self.domains),
            "match": dict(self.match),
            "cluster": cluster,
        }


# --------------------------------------------------------------------------- loading


def load_config_dump(text: str) -> dict[str, Any] | list[Any]:
    """Parse dump text (JSON first, YAML as fallback) and check it has a dump's shape.

    JSON goes first because that is what Envoy and istioctl write and it is much faster;
    YAML covers ``-o yaml`` output and hand-written fixtures. The shape check happens here
    so that a wrong file (a Kiali graph, a pod manifest) fails at load time with a message
    naming what was found, rather than as an empty route list later.
    """
    if not text.strip():
        raise ConfigDumpError("empty input: expected an Envoy config dump (JSON or YAML)")
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError as json_error:
        try:
            doc = yaml.load(text, Loader=_YAML_LOADER)
        except (yaml.YAMLError, UnicodeError) as yaml_error:
            if text.lstrip()[:1] in ("{", "["):
                raise ConfigDumpError(
                    f"not valid JSON: {json_error.msg} at line {json_error.lineno} "
                    f"column {json_error.colno}"
                ) from None
            raise ConfigDumpError(f"neither JSON nor YAML: {_yaml_problem(yaml_error)}") from None
    _check_dump(doc)
    return doc


def _yaml_problem(error: yaml.YAMLError | UnicodeError) -> str:
    """One line describing a YAML error (PyYAML's own text spans several lines)."""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    context = getattr(error, "context", None)
    if context:
        problem = f"{context} {problem}"
    mark = getattr(error, "problem_mark", None)
    if mark is not None:
        return f"{problem} at line {mark.line + 1} column {mark.column + 1}"
    return str(problem)


def _describe(value: Any) -> str:
    """Name a JSON value's kind the way a user would ("an object with keys a, b")."""
    if isinstance(value, dict):
        keys = ", ".join(repr(k) for k in list(value)[:5])
        more = ", ..." if len(value) > 5 else ""
        return f"an object with keys {keys}{more}" if value else "an empty object"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    kind = type(value).__name__
    article = "an" if kind[:1] in "aeiou" else "a"
    return f"{article} {kind} ({value!r:.40})"


def _check_dump(doc: Any) -> None:
    """Raise ConfigDumpError unless ``doc`` has one of the config dump layouts."""
    if isinstance(doc, dict):
        if not doc:
            return  # what Envoy answers to ?resource=X when it holds no X
        configs = doc.get("configs")
        if isinstance(configs, list | dict):
            return
        if configs is None:
            raise ConfigDumpError(
                f"not an Envoy config dump: found {_describe(doc)} and no 'configs' list"
            )
        raise ConfigDumpError(f"'configs' is {_describe(configs)}, expected a list")
    if isinstance(doc, list):
        for index, item in enumerate(doc):
            if not isinstance(item, dict):
                raise ConfigDumpError(
                    f"not an istioctl resource list: item {index} is {_describe(item)}, "
                    "expected an object"
                )
        return
    raise ConfigDumpError(
        f"not an Envoy config dump: the top level is {_describe(doc)}, expected an object "
        "with 'configs' or a list of resources"
    )


def _as_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigDumpError(f"{where} is {_describe(value)}, expected an object")
    return value


def _as_list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []  # proto3 JSON omits empty repeated fields; YAML may write them as null
    if not isinstance(value, list):
        raise ConfigDumpError(f"{where} is {_describe(value)}, expected a list")
    return value


def _config_elements(dump: dict[str, Any] | list[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (location, element) for each element of an admin dump's ``configs``."""
    _check_dump(dump)
    if isinstance(dump, list):
        return
    configs = dump.get("configs", [])
    items = configs.items() if isinstance(configs, dict) else enumerate(configs)
    for key, element in items:
        where = f"configs[{key!r}]" if isinstance(configs, dict) else f"configs[{key}]"
        yield where, _as_dict(element, where)


def _bare_resources(dump: dict[str, Any] | list[Any], kind: str) -> Iterator[dict[str, Any]]:
    """Resources of ``kind`` from istioctl's bare list form (nothing for admin dumps)."""
    _check_dump(dump)
    if isinstance(dump, list):
        for resource in dump:
            if _resource_kind(resource) == kind:
                yield resource


def _resource_kind(resource: dict[str, Any]) -> str | None:
    """Tell a RouteConfiguration, Listener and Cluster apart in istioctl's bare lists.

    istioctl prints them without ``@type``, so fall back to fields only that kind has.
    """
    type_url = resource.get("@type")
    if isinstance(type_url, str):
        message = type_url.rsplit(".", 1)[-1]
        if message == "RouteConfiguration":
            return "route"
        if message in ("Listener", "Cluster"):
            return message.lower()
    keys = resource.keys()
    if keys & _ROUTE_KEYS:
        return "route"
    if keys & _LISTENER_KEYS:
        return "listener"
    if keys & _CLUSTER_KEYS or "type" in keys:
        return "cluster"
    return None


# --------------------------------------------------------------------------- routes


def _route_configurations(
    dump: dict[str, Any] | list[Any],
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (location, RouteConfiguration) for every static and dynamic route config."""
    for index, resource in enumerate(_bare_resources(dump, "route")):
        yield f"[{index}]", resource
    for where, element in _config_elements(dump):
        if "route_config" in element:  # ?resource= form: one wrapper per element
            at = f"{where}.route_config"
            yield at, _as_dict(element["route_config"], at)
            continue
        for key, value in element.items():  # document order: static before dynamic
            if key not in _ROUTE_LISTS:
                continue
            for index, wrapper in enumerate(_as_list(value, f"{where}.{key}")):
                at = f"{where}.{key}[{index}]"
                route_config = _as_dict(wrapper, at).get("route_config")
                if route_config is not None:  # absent while a config is still being fetched
                    yield f"{at}.route_config", _as_dict(route_config, f"{at}.route_config")


def route_entries(dump: dict[str, Any] | list[Any]) -> list[RouteEntry]:
    """Flatten every route of every static and dynamic route config, in dump order.

    Static route configs count too: Envoy reports route configs written inline in a
    listener (Istio's inbound routes in older versions, the Prometheus listener) there.
    Route configs without a name (inline ones may have none) are reported as ``""``.
    """
    entries: list[RouteEntry] = []
    for where, route_config in _route_configurations(dump):
        config_name = str(route_config.get("name") or "")
        vhosts = _as_list(route_config.get("virtual_hosts"), f"{where}.virtual_hosts")
        for vh_index, vhost_value in enumerate(vhosts):
            vh_where = f"{where}.virtual_hosts[{vh_index}]"
            vhost = _as_dict(vhost_value, vh_where)
            domains = tuple(
                str(d) for d in _as_list(vhost.get("domains"), f"{vh_where}.domains")
            )
            routes = _as_list(vhost.get("routes"), f"{vh_where}.routes")
            for r_index, route_value in enumerate(routes):
                r_where = f"{vh_where}.routes[{r_index}]"
                route = _as_dict(route_value, r_where)
                route_match = _as_dict(route.get("match") or {}, f"{r_where}.match")
                name = route.get("name")
                entries.append(
                    RouteEntry(
                        route_config=config_name,
                        virtual_host=str(vhost.get("name") or ""),
                        domains=domains,
                        match=_path_specifier(route_match),
                        cluster=_route_target(route),
                        name=None if name is None else str(name),
                        route_match=route_match,
                    )
                )
    return entries


def _path_specifier(route_match: dict[str, Any]) -> dict[str, Any]:
    """``{KEY: VALUE}`` for the path specifier that is set; ``{}`` when none is.

    ``safe_regex`` is reduced to its regex string because the engine (``google_re2``) is
    the same everywhere and only the pattern tells a reader anything.
    """
    for key, value in route_match.items():
        if key not in PATH_SPECIFIERS:
            continue
        if key == "safe_regex" and isinstance(value, dict):
            value = value.get("regex", "")
        return {key: value}
    return {}


def _route_target(route: dict[str, Any]) -> str | list[str] | None:
    """Where a route sends traffic: one cluster, sorted weighted clusters, or None.

    Weighted clusters are sorted because their order carries no meaning and assertions
    must not depend on it; entries naming their cluster by header are left out.
    """
    action = route.get("route")
    if not isinstance(action, dict):
        return None  # redirect, direct_response, filter_action, non_forwarding_action
    cluster = action.get("cluster")
    if isinstance(cluster, str):
        return cluster
    weighted = action.get("weighted_clusters")
    if isinstance(weighted, dict):
        clusters = weighted.get("clusters") or []
        return sorted(
            str(c["name"]) for c in clusters if isinstance(c, dict) and c.get("name")
        )
    return None  # cluster_header, cluster_specifier_plugin, ...


# --------------------------------------------------------------------------- listeners


def listener_names(dump: dict[str, Any] | list[Any]) -> list[str]:
    """Names of the static and dynamic listeners Envoy holds, in dump order, without repeats.

    A dynamic listener's name is on the wrapper in recent dumps but only inside
    ``active_state.listener`` (or ``warming_state``/``draining_state``) in older ones, so
    both are read. Listeners without a name (Envoy leaves static ones such as the
    Prometheus listener on 15090 unnamed) are skipped rather than given invented names.
    """
    names: list[str] = []
    for resource in _bare_resources(dump, "listener"):
        _add_name(names, resource.get("name"))
    for where, element in _config_elements(dump):
        _add_name(names, _dynamic_listener_name(element, where))
        if "listener" in element:  # ?resource=static_listeners
            _add_name(names, _as_dict(element["listener"], where).get("name"))
        for key, value in element.items():
            if key == "dynamic_listeners":
                for index, wrapper in enumerate(_as_list(value, f"{where}.{key}")):
                    at = f"{where}.{key}[{index}]"
                    _add_name(names, _dynamic_listener_name(_as_dict(wrapper, at), at))
            elif key in _WRAPPED_LISTENER_LISTS:
                for index, wrapper in enumerate(_as_list(value, f"{where}.{key}")):
                    at = f"{where}.{key}[{index}]"
                    listener = _as_dict(wrapper, at).get("listener")
                    if listener is not None:
                        _add_name(names, _as_dict(listener, f"{at}.listener").get("name"))
    return names


def _dynamic_listener_name(wrapper: dict[str, Any], where: str) -> str | None:
    """The name of a v3 DynamicListener if Envoy holds it in some non-error state."""
    states = [wrapper[s] for s in _LISTENER_STATES if wrapper.get(s) is not None]
    if not states:
        return None
    if wrapper.get("name"):
        return str(wrapper["name"])
    for state in states:
        listener = _as_dict(state, where).get("listener")
        if isinstance(listener, dict) and listener.get("name"):
            return str(listener["name"])
    return None


def _add_name(names: list[str], name: Any) -> None:
    if name and str(name) not in names:
        names.append(str(name))


# --------------------------------------------------------------------------- clusters


def clusters(dump: dict[str, Any] | list[Any]) -> list[dict[str, Any]]:
    """Every static, dynamic active and dynamic warming Cluster resource, in dump order.

    Warming clusters are included because a cluster that is warming after a push is being
    served under the same name; the ``?resource=`` form cannot tell the two apart anyway.
    """
    out: list[dict[str, Any]] = list(_bare_resources(dump, "cluster"))
    for where, element in _config_elements(dump):
        if "cluster" in element:  # ?resource=dynamic_active_clusters / static_clusters
            out.append(_as_dict(element["cluster"], f"{where}.cluster"))
        for key, value in element.items():
            if key not in _CLUSTER_LISTS:
                continue
            for index, wrapper in enumerate(_as_list(value, f"{where}.{key}")):
                at = f"{where}.{key}[{index}]"
                cluster = _as_dict(wrapper, at).get("cluster")
                if cluster is not None:
                    out.append(_as_dict(cluster, f"{at}.cluster"))
    return out


def cluster_names(dump: dict[str, Any] | list[Any]) -> list[str]:
    """Names of static, dynamic active and dynamic warming clusters, without repeats."""
    names: list[str] = []
    for cluster in clusters(dump):
        _add_name(names, cluster.get("name"))
    return names


# --------------------------------------------------------------------------- lookup


def find_route(
    entries: Iterable[RouteEntry],
    *,
    route_config: str | None,
    domain: str,
    path: str = "/",
) -> RouteEntry | None:
    """The first route that a plain request for ``domain`` + ``path`` would take, or None.

    This is membership, not Envoy's vhost selection: a virtual host qualifies when its
    domain list contains ``domain`` exactly (no wildcard or ``:port`` handling; pass the
    variant you mean), because Istio's domain lists change between releases and a
    specification should name the one it relies on. Within the qualifying hosts the
    routes are tried in order and the first whose path specifier matches wins, as in
    Envoy. ``route_config=None`` searches all route configs.

    The request has no special headers, query parameters or gRPC content type, so routes
    conditioned on those (or on a runtime fraction) are skipped; a CONNECT matcher never
    matches. The query string and fragment of ``path`` are ignored, as Envoy does.
    """
    request_path = re.split(r"[?#]", path, maxsplit=1)[0]
    for entry in entries:
        if route_config is not None and entry.route_config != route_config:
            continue
        if domain not in entry.domains:
            continue
        if _path_matches(entry, request_path):
            return entry
    return None


def _path_matches(entry: RouteEntry, path: str) -> bool:
    """Whether the entry's route matches ``path`` (query already stripped)."""
    route_match = entry.route_match or entry.match
    if any(route_match.get(key) for key in _EXTRA_CONDITIONS):
        return False
    if not entry.match:
        return False
    kind, value = next(iter(entry.match.items()))
    if kind in ("safe_regex", "regex"):
        if isinstance(value, dict):  # a hand-built entry may keep the RegexMatcher object
            value = value.get("regex", "")
        return _regex_matches(str(value), path)
    if kind == "path_match_policy":
        return _template_matches(value, path)
    if kind == "connect_matcher":
        return False
    wanted = str(value)
    if route_match.get("case_sensitive") is False:
        wanted, path = wanted.lower(), path.lower()
    if kind == "prefix":
        return path.startswith(wanted)
    if kind == "path":
        return path == wanted
    if kind == "path_separated_prefix":
        return path == wanted or path.startswith(wanted + "/")
    return False


def _regex_matches(pattern: str, path: str) -> bool:
    """Envoy matches RE2 against the whole path; Python's re agrees on the common subset."""
    try:
        return re.fullmatch(pattern, path) is not None
    except re.error as error:
        raise ConfigDumpError(
            f"cannot evaluate route regex {pattern!r} with Python's re ({error}); "
            "it may use RE2-only syntax"
        ) from None


def _template_matches(policy: Any, path: str) -> bool:
    """Match a ``uri_template`` path_match_policy (``/a/{x}/**``) against ``path``."""
    template = None
    if isinstance(policy, dict):
        typed_config = policy.get("typed_config")
        if isinstance(typed_config, dict):
            template = typed_config.get("path_template")
    if not isinstance(template, str):
        return False
    return re.fullmatch(_template_regex(template), path) is not None


def _template_regex(template: str) -> str:
    """Translate a URI template: ``*`` is one segment, ``**`` the rest, ``{v=...}`` binds."""
    expanded = re.sub(
        r"\{[^}=]+(?:=([^}]*))?\}", lambda m: m.group(1) or "*", template
    )
    parts = re.split(r"(\*\*|\*)", expanded)
    pieces = {"**": ".*", "*": "[^/]+"}
    return "".join(pieces.get(part, re.escape(part)) for part in parts)


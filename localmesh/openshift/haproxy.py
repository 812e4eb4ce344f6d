"""The router's HAProxy configuration, generated from admitted Routes as OpenShift's
router template generates it.

After openshift/router ``images/router/haproxy/conf/haproxy-config.template`` and
``pkg/router/template/util`` (``GenerateRouteRegexp``); nothing of theirs is copied, the
structure and names are theirs, so a reader of one reads the other:

- ``frontend public`` (HTTP): ``Host`` lower-cased, ``redirect scheme https`` for hosts in
  ``os_route_http_redirect.map`` (``insecureEdgeTerminationPolicy: Redirect``), then the
  backend looked up by ``base`` (host + path) in ``os_http_be.map``; else
  ``openshift_default`` (503);
- ``frontend public_ssl`` (TLS, TCP mode): SNI of a passthrough host → its ``be_tcp``
  backend (``os_sni_passthrough.map``, ``os_tcp_be.map``); other SNI → ``be_sni`` → ``fe_sni``,
  which terminates TLS with the route's certificate (``cert_config.map`` as a crt-list) or
  the default wildcard one; no SNI → ``be_no_sni`` → ``fe_no_sni`` with the default
  certificate; both then pick the backend by ``base`` in ``os_edge_reencrypt_be.map``;
- one backend per Route: ``be_http:<ns>:<name>`` (no TLS), ``be_edge_http:<ns>:<name>``
  (edge), ``be_secure:<ns>:<name>`` (re-encrypt: TLS again to the pods),
  ``be_tcp:<ns>:<name>`` (passthrough), each with a ``server pod:<pod>:<service>:<port
  name>:<ip>:<port>`` line per endpoint of ``to`` and ``alternateBackends``, weighted so
  the services share traffic in the ratio of their weights whatever their endpoint counts;
- map keys ``^<host>\\.?(:[0-9]+)?<path>(/.*)?$``, the longer paths first.

Where localmesh differs: the config binds the pod IP and the pod's own local address
(``__POD_IP__``/``__LOCAL_IP__``, filled in by the router pod, router_pod.py) instead of
``:80``/``:443`` and 127.0.0.1 (ports 8080/8443 as ``ROUTER_SERVICE_HTTP(S)_PORT``, the
SNI frontends on 10444/10443 of the pod's local address); files live in the pod's folder
(``__CONF__``); re-encrypt verifies the pods with the Route's
``destinationCACertificate`` when it has one and not at all otherwise (OpenShift falls
back to the service CA); no syslog, no stats page, no dynamic config manager.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

CONF = "__CONF__"
POD_IP = "__POD_IP__"
LOCAL_IP = "__LOCAL_IP__"
HTTP_PORT = 8080
HTTPS_PORT = 8443
STATS_PORT = 1936
SNI_PORT = 10444
NO_SNI_PORT = 10443
PREFIX = {"": "be_http", "edge": "be_edge_http", "reencrypt": "be_secure",
          "passthrough": "be_tcp"}

ERROR_503 = ("HTTP/1.0 503 Service Unavailable\r\nPragma: no-cache\r\n"
             "Cache-Control: private, max-age=0, no-cache, no-store\r\nConnection: close\r\n"
             "Content-Type: text/html\r\n\r\n<html><body><h1>Application is not available"
             "</h1><p>The application is currently not serving requests at this endpoint. It "
             "may not have been started or is still starting.</p></body></html>\n")
ERROR_404 = ERROR_503.replace("503 Service Unavailable", "404 Not Found")


@dataclass(frozen=True)
class Endpoint:
    """One address of a Service's Endpoints, with the Service port's name."""

    pod: str
    ip: str
    port: int
    port_name: str


@dataclass
class RouterInput:
    """What the router reads: admitted Routes, and the endpoints of every Service by
    (namespace, name)."""

    routes: list[dict]
    endpoints: dict[tuple[str, str], list[Endpoint]]
    default_certificate: str
    extra: dict[str, str] = field(default_factory=dict)


def route_regexp(host: str, path: str) -> str:
    """``GenerateRouteRegexp`` (openshift/router ``pkg/router/template/util``)."""
    host_re = re.escape(host).replace("\\-", "-") + "\\.?"
    if not path.rstrip("/"):
        path_re, sub = "", "(/.*)?"
    elif path.endswith("/"):
        path_re, sub = re.escape(path).replace("\\-", "-"), "(.*)?"
    else:
        path_re, sub = re.escape(path).replace("\\-", "-"), "(/.*)?"
    path_re = path_re.replace(" ", "\\x20")
    return f"^{host_re}(:[0-9]+)?{path_re}{sub}$"


def key(route: dict) -> str:
    return f"{route['metadata']['namespace']}:{route['metadata']['name']}"


def termination(route: dict) -> str:
    return ((route.get("spec") or {}).get("tls") or {}).get("termination", "") or ""


def insecure_policy(route: dict) -> str:
    return ((route.get("spec") or {}).get("tls") or {}).get(
        "insecureEdgeTerminationPolicy", "") or ""


def backend_name(route: dict) -> str:
    return f"{PREFIX[termination(route)]}:{key(route)}"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _matches_port(ep: Endpoint, target: object) -> bool:
    if target in (None, ""):
        return True
    return ep.port_name == str(target) or str(ep.port) == str(target)


def servers(route: dict, endpoints: dict[tuple[str, str], list[Endpoint]]) -> list[str]:
    """The backend's ``server`` lines: every endpoint of ``to`` and the alternate
    backends, weighted (out of 256) by their service's share per endpoint."""
    spec = route.get("spec") or {}
    ns = route["metadata"]["namespace"]
    target = ((spec.get("port") or {}).get("targetPort"))
    units = [spec.get("to") or {}, *(spec.get("alternateBackends") or [])]
    found = []
    for unit in units:
        eps = [e for e in endpoints.get((ns, unit.get("name", "")), [])
               if _matches_port(e, target)]
        found.append((unit, int(unit.get("weight", 100)), eps))
    total = sum(w for _, w, eps in found if eps) or 1
    out: list[str] = []
    tls = termination(route)
    for unit, weight, eps in found:
        for ep in eps:
            share = 0 if weight == 0 else max(1, min(256, round(256 * weight / total /
                                                               len(eps))))
            if tls == "passthrough" and share == 0:
                continue  # no cookies in TCP mode: weight 0 has nothing to keep
            server_id = f"pod:{ep.pod}:{unit.get('name')}:{ep.port_name}:{ep.ip}:{ep.port}"
            line = f"  server {server_id} {ep.ip}:{ep.port}"
            if tls != "passthrough":
                line += f" cookie {_md5(server_id)}"
            line += f" weight {share}"
            if tls == "reencrypt":
                line += " ssl alpn h2,http/1.1"
                if ((spec.get("tls") or {}).get("destinationCACertificate")):
                    line += f" verify required ca-file {CONF}/cacerts/{key(route)}.pem"
                else:
                    line += " verify none"
            out.append(line)
    return out


def _active_units(route: dict, endpoints: dict[tuple[str, str], list[Endpoint]]) -> int:
    spec = route.get("spec") or {}
    ns = route["metadata"]["namespace"]
    return sum(1 for u in [spec.get("to") or {}, *(spec.get("alternateBackends") or [])]
               if int(u.get("weight", 100)) > 0 and endpoints.get((ns, u.get("name", ""))))


def _http_backend(route: dict, inp: RouterInput) -> list[str]:
    annotations = route["metadata"].get("annotations") or {}
    balance = annotations.get("haproxy.router.openshift.io/balance") or (
        "roundrobin" if _active_units(route, inp.endpoints) > 1 else "random")
    lines = [f"backend {backend_name(route)}", "  mode http", "  option redispatch",
             "  option forwardfor", f"  balance {balance}"]
    timeout = annotations.get("haproxy.router.openshift.io/timeout")
    if timeout and re.fullmatch(r"[1-9][0-9]*(us|ms|s|m|h|d)?", timeout):
        lines.append(f"  timeout server  {timeout}")
    lines += ["  timeout check 5000ms",
              "  http-request add-header X-Forwarded-Host %[req.hdr(host)]",
              "  http-request add-header X-Forwarded-Port %[dst_port]",
              "  http-request add-header X-Forwarded-Proto http if !{ ssl_fc }",
              "  http-request add-header X-Forwarded-Proto https if { ssl_fc }",
              "  http-request add-header Forwarded "
              "for=%[src];host=%[req.hdr(host)];proto=%[req.hdr(X-Forwarded-Proto)]"]
    if annotations.get("haproxy.router.openshift.io/disable_cookies", "").lower() != "true":
        cookie = annotations.get("router.openshift.io/cookie_name") or _md5(key(route))
        secure = ""
        if termination(route) in ("edge", "reencrypt") and insecure_policy(route) != "Allow":
            secure = " secure attr SameSite=None"
        lines.append(f"  cookie {cookie} insert indirect nocache httponly{secure}")
    lines += servers(route, inp.endpoints)
    return lines


def _tcp_backend(route: dict, inp: RouterInput) -> list[str]:
    annotations = route["metadata"].get("annotations") or {}
    balance = annotations.get("haproxy.router.openshift.io/balance") or (
        "roundrobin" if _active_units(route, inp.endpoints) > 1 else "source")
    return [f"backend {backend_name(route)}", f"  balance {balance}",
            "  hash-type consistent", "  timeout check 5000ms", *servers(route, inp.endpoints)]


def _map_lines(routes: list[dict], value) -> str:
    """A map file: one ``<regexp> <value>`` line per route that has a value, the most
    specific (longest path) first."""
    entries = []
    for r in routes:
        v = value(r)
        if v is None:
            continue
        spec = r.get("spec") or {}
        entries.append((-len(spec.get("path") or ""), spec.get("host", ""), key(r),
                        f"{route_regexp(spec.get('host', ''), spec.get('path') or '')} {v}"))
    return "".join(line + "\n" for *_, line in sorted(entries))


def _frontend_http(name: str, bind: str, *first: str) -> list[str]:
    return [f"frontend {name}", f"  bind {bind}", "  mode http", *first,
            "  http-request del-header Proxy",
            "  http-request set-header Host %[req.hdr(Host),lower]"]


def render(inp: RouterInput) -> dict[str, str]:
    """Every file of the router's configuration, by path under the config folder."""
    routes = sorted(inp.routes, key=key)
    cfg = [
        "global",
        "  maxconn 20000",
        "  tune.maxrewrite 8192",
        "  tune.bufsize 32768",
        "  ssl-default-bind-options ssl-min-ver TLSv1.2",
        "",
        "defaults",
        "  maxconn 20000",
        f"  errorfile 503 {CONF}/error-page-503.http",
        f"  errorfile 404 {CONF}/error-page-404.http",
        "  timeout connect 5s", "  timeout client 30s", "  timeout client-fin 1s",
        "  timeout server 30s", "  timeout server-fin 1s", "  timeout http-request 10s",
        "  timeout http-keep-alive 300s", "  timeout tunnel 1h",
        "",
        "listen stats",
        f"  bind {POD_IP}:{STATS_PORT}",
        "  mode http",
        "  monitor-uri /healthz",
        "  http-request return status 200 content-type text/plain string ok "
        "if { path /healthz/ready }",
        "",
        *_frontend_http("public", f"{POD_IP}:{HTTP_PORT}", "  tcp-request inspect-delay 5s",
                        "  tcp-request content accept if HTTP"),
        f"  acl secure_redirect base,map_reg_int({CONF}/os_route_http_redirect.map) -m bool",
        "  redirect scheme https if secure_redirect",
        f"  use_backend %[base,map_reg({CONF}/os_http_be.map)]",
        "  default_backend openshift_default",
        "",
        "frontend public_ssl",
        f"  bind {POD_IP}:{HTTPS_PORT}",
        "  tcp-request inspect-delay 5s",
        "  tcp-request content accept if { req_ssl_hello_type 1 }",
        "  acl sni req.ssl_sni -m found",
        f"  acl sni_passthrough req.ssl_sni,lower,map_reg({CONF}/os_sni_passthrough.map) "
        "-m found",
        f"  use_backend %[req.ssl_sni,lower,map_reg({CONF}/os_tcp_be.map)] if sni "
        "sni_passthrough",
        "  use_backend be_sni if sni",
        "  default_backend be_no_sni",
        "",
        "backend be_sni",
        f"  server fe_sni {LOCAL_IP}:{SNI_PORT} weight 1 send-proxy",
        "",
        *_frontend_http("fe_sni", f"{LOCAL_IP}:{SNI_PORT} ssl crt "
                        f"{CONF}/default_pub_keys.pem crt-list {CONF}/cert_config.map "
                        "accept-proxy"),
        f"  use_backend %[base,map_reg({CONF}/os_edge_reencrypt_be.map)]",
        "  default_backend openshift_default",
        "",
        "backend be_no_sni",
        f"  server fe_no_sni {LOCAL_IP}:{NO_SNI_PORT} weight 1 send-proxy",
        "",
        *_frontend_http("fe_no_sni", f"{LOCAL_IP}:{NO_SNI_PORT} ssl crt "
                        f"{CONF}/default_pub_keys.pem accept-proxy"),
        f"  use_backend %[base,map_reg({CONF}/os_edge_reencrypt_be.map)]",
        "  default_backend openshift_default",
        "",
        "backend openshift_default",
        "  mode http",
        "  option forwardfor",
        "  option http-pretend-keepalive",
    ]
    files: dict[str, str] = {}
    for r in routes:
        cfg.append("")
        if termination(r) == "passthrough":
            cfg += _tcp_backend(r, inp)
        else:
            cfg += _http_backend(r, inp)
        tls = (r.get("spec") or {}).get("tls") or {}
        if termination(r) in ("edge", "reencrypt") and tls.get("certificate") and \
                tls.get("key"):
            files[f"certs/{key(r)}.pem"] = "\n".join(
                p.strip() for p in (tls["certificate"], tls["key"], tls.get("caCertificate"))
                if p) + "\n"
        if termination(r) == "reencrypt" and tls.get("destinationCACertificate"):
            files[f"cacerts/{key(r)}.pem"] = tls["destinationCACertificate"].strip() + "\n"

    def http_be(r: dict) -> str | None:
        t, policy = termination(r), insecure_policy(r)
        if t == "" or (t in ("edge", "reencrypt") and policy == "Allow"):
            return backend_name(r)
        return None

    files.update({
        "haproxy.config": "\n".join(cfg) + "\n",
        "os_http_be.map": _map_lines(routes, http_be),
        "os_edge_reencrypt_be.map": _map_lines(
            routes, lambda r: backend_name(r) if termination(r) in ("edge", "reencrypt")
            else None),
        "os_route_http_redirect.map": _map_lines(
            routes, lambda r: "1" if termination(r) and insecure_policy(r) == "Redirect"
            else None),
        "os_tcp_be.map": _map_lines(
            routes, lambda r: backend_name(r) if termination(r) == "passthrough" else None),
        "os_sni_passthrough.map": _map_lines(
            routes, lambda r: "1" if termination(r) == "passthrough" else None),
        "cert_config.map": "".join(
            f"{CONF}/certs/{key(r)}.pem [alpn h2,http/1.1] {r['spec']['host']}\n"
            for r in routes if f"certs/{key(r)}.pem" in files),
        "default_pub_keys.pem": inp.default_certificate,
        "error-page-503.http": ERROR_503,
        "error-page-404.http": ERROR_404,
    })
    files.update(inp.extra)
    return files

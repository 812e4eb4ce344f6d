"""Istio's naming rules, in one place (istio-mapping.md §1.5 cites the sources).

- clusters: ``BuildSubsetKey`` = ``direction|port|subset|hostname``, e.g.
  ``outbound|8080||composer.ns.svc.cluster.local``; inbound ``inbound|8080||`` keyed by the
  target port;
- outbound HTTP route config: the port number (``"8080"``), when the Service port's
  protocol is explicit HTTP (name ``http``/``http-*``, ``grpc*``, ``http2*`` or appProtocol);
- virtual host: ``<fqdn>:<port>``; domains without ports since Istio 1.16, plus the
  trailing-dot FQDN since 1.27;
- listeners: ``virtualOutbound`` (15001), ``virtualInbound`` (15006), ``0.0.0.0_<port>``;
- gateway: route config ``http.<targetPort>``, virtual host ``<host>:<port>`` or ``*:80``.
"""

from __future__ import annotations

DOMAIN = "cluster.local"


def fqdn(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.{DOMAIN}"


def outbound_cluster(port: int, host: str, subset: str = "") -> str:
    return f"outbound|{port}|{subset}|{host}"


def inbound_cluster(port: int) -> str:
    return f"inbound|{port}||"


def port_protocol(port: dict) -> str:
    """Istio's protocol selection: appProtocol first, then the port name prefix."""
    app = (port.get("appProtocol") or "").lower()
    name = (port.get("name") or "").lower()
    for candidate in (app, name.split("-", 1)[0]):
        if candidate in ("http", "https", "http2", "grpc", "grpc-web", "tcp", "tls", "mongo",
                         "redis", "mysql", "h2c"):
            return {"h2c": "http2", "grpc-web": "http"}.get(candidate, candidate)
    return "unknown"


def is_http(protocol: str) -> bool:
    return protocol in ("http", "http2", "grpc")


def vhost_domains(name: str, namespace: str, client_ns: str, cluster_ip: str | None) -> list[str]:
    """Domains of a service's virtual host as seen from a client namespace."""
    host = fqdn(name, namespace)
    out = [host, host + "."]
    if client_ns == namespace:
        out.append(name)
    out += [f"{name}.{namespace}.svc", f"{name}.{namespace}"]
    if cluster_ip and cluster_ip != "None":
        out.append(cluster_ip)
    return out

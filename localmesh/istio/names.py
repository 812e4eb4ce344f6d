"""Istio's names, in one place (istio/istio at master unless noted).

- the control plane's namespace, ``istio-system`` (where ``istioctl install`` puts istiod
  and the gateways, and Istio's ``samples/addons`` put Prometheus and Kiali); localmesh is
  the installer, so this is where the name is chosen;
- clusters: ``BuildSubsetKey`` = ``direction|port|subset|hostname``
  (``pilot/pkg/model/service.go``), e.g. ``outbound|8080||composer.ns.svc.cluster.local``;
  inbound ``inbound|8080||`` keyed by the target port (``BuildInboundSubsetKey``);
- outbound HTTP route config: the port number (``"8080"``), when the Service port's
  protocol is explicit HTTP (name ``http``/``http-*``, ``grpc*``, ``http2*`` or
  appProtocol; ``pilot/pkg/networking/core/listener.go``);
- virtual host: ``<fqdn>:<port>`` (``util.DomainName``); domains without ports since Istio
  1.16, plus the trailing-dot FQDN since 1.27 (``PILOT_ENABLE_ABSOLUTE_FQDN_VHOST_DOMAIN``;
  ``pilot/pkg/networking/core/httproute.go``);
- listeners: ``virtualOutbound`` (15001), ``virtualInbound`` (15006), ``0.0.0.0_<port>``
  (``pilot/pkg/model/listener.go``);
- gateway: route config ``http.<targetPort>``, virtual host ``<host>:<port>`` or ``*:80``
  (``pilot/pkg/networking/core/gateway.go``).
"""

from __future__ import annotations

DOMAIN = "cluster.local"
ISTIO_NAMESPACE = "istio-system"
# istiod's Service, which sidecars dial for xDS (15010) and certificates (15012).
ISTIOD_HOST = f"istiod.{ISTIO_NAMESPACE}.svc"


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


def resolve_host(host: str, namespace: str) -> str:
    """A host in Istio config, as an FQDN: short names resolve in the config's namespace
    (``reviews`` → ``reviews.<ns>.svc.cluster.local``; ``reviews.other`` →
    ``reviews.other.svc.cluster.local``); anything longer is taken as written."""
    if "." not in host:
        return fqdn(host, namespace)
    parts = host.split(".")
    if len(parts) == 2:
        return fqdn(parts[0], parts[1])
    return host

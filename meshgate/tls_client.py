"""HTTP sessions for the ingress, plain or TLS to an address under another name.

Through OpenShift's router an edge Route is reached at the router's address while the TLS
handshake names the Route's host: the router picks the certificate and the Route by SNI
(openshift/router's ``fe_sni`` frontend), and the client checks the certificate against
that host and the router's CA (the ingress operator publishes it in ConfigMap
``openshift-config-managed/default-ingress-cert``, key ``ca-bundle.crt``). That is
``curl --resolve <host>:443:<address> --cacert <ca>``; here a requests adapter whose pools
connect to the URL's address but send ``server_name`` as SNI and verify against it, with
the CA held in memory (no file to leave behind).
"""

from __future__ import annotations

import ssl
from typing import Any

import requests
from requests.adapters import HTTPAdapter


class _NamedTLS(HTTPAdapter):
    def __init__(self, server_name: str, ca_pem: str | None) -> None:
        self.server_name = server_name
        self.ca_pem = ca_pem
        super().__init__()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        context = ssl.create_default_context(cadata=self.ca_pem) if self.ca_pem \
            else ssl.create_default_context()
        pool_kwargs.update(ssl_context=context, server_hostname=self.server_name,
                           assert_hostname=self.server_name)
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)


def session(server_name: str | None = None, ca_pem: str | None = None) -> requests.Session:
    """A session that never goes through an environment proxy; with ``server_name``, its
    https connections use it for SNI and certificate checks (trusting ``ca_pem``, else
    the system's CAs)."""
    s = requests.Session()
    s.trust_env = False
    if server_name:
        s.mount("https://", _NamedTLS(server_name, ca_pem))
    return s

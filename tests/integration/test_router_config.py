"""The router's rendered configuration, checked by HAProxy itself (``haproxy -c``): what
localmesh/openshift/haproxy.py writes must be a configuration the real router program
accepts, without warnings."""

from __future__ import annotations

import subprocess
from pathlib import Path

from localmesh.openshift import haproxy
from localmesh.openshift.router import ingress_certificate
from localmesh.openshift.router_pod import write
from tests.support import HAPROXY, needs_haproxy


def _route(name: str, host: str, tls: dict | None = None) -> dict:
    spec: dict = {"host": host, "to": {"kind": "Service", "name": "composer", "weight": 100}}
    if tls:
        spec["tls"] = tls
    return {"metadata": {"namespace": "ns", "name": name}, "spec": spec}


@needs_haproxy
def test_haproxy_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    ca, cert, key = ingress_certificate("apps.test")
    routes = [_route("plain", "plain.apps.test"),
              _route("edge", "edge.apps.test", {"termination": "edge",
                                                "insecureEdgeTerminationPolicy": "Redirect"}),
              _route("re", "re.apps.test", {"termination": "reencrypt",
                                            "destinationCACertificate": ca}),
              _route("pt", "pt.apps.test", {"termination": "passthrough"})]
    eps = {("ns", "composer"): [haproxy.Endpoint("c-1", "127.0.1.1", 8080, "http")]}
    write(tmp_path, haproxy.render(haproxy.RouterInput(routes, eps, cert + key + ca)),
          "127.0.0.1", "127.0.0.1")
    check = subprocess.run([str(HAPROXY), "-c", "-f", str(tmp_path / "haproxy.config")],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    assert "[WARNING]" not in check.stderr, check.stderr

"""MeshConfig: the ``istio`` ConfigMap in ``istio-system``, as a real install writes it.

istioctl (and the ``istiod`` chart) put the mesh's settings, YAML under the key ``mesh``
(istio.io ``reference/config/istio.mesh.v1alpha1``), into ConfigMap ``istio``; istiod
watches it and applies a change to every proxy. localmesh's istiod reads the fields it
implements from it on every change: ``enableAutoMtls`` (true unless set to false: auto
mTLS to sidecar endpoints), ``trustDomain`` (the SPIFFE IDs' domain) and
``rootNamespace`` (where mesh-wide PeerAuthentication and AuthorizationPolicy live). The
rest is written for clients that read it (``accessLogFile``, ``defaultConfig``, the proxy
config the injector passes in ``PROXY_CONFIG``) and, like a real istiod, ignored where
localmesh has no such feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from localmesh.istio.names import DOMAIN, ISTIO_NAMESPACE

NAME = "istio"
KEY = "mesh"


@dataclass(frozen=True)
class MeshConfig:
    """The MeshConfig fields istiod's generator reads."""

    trust_domain: str = DOMAIN
    root_namespace: str = ISTIO_NAMESPACE
    enable_auto_mtls: bool = True


def default_mesh(default_config: dict) -> dict:
    """The mesh config of the demo profile, as ``istioctl install`` writes it."""
    return {
        "accessLogFile": "/dev/stdout",
        "defaultConfig": default_config,
        "enableAutoMtls": True,
        "enablePrometheusMerge": True,
        "extensionProviders": [{"name": "prometheus", "prometheus": {}}],
        "rootNamespace": ISTIO_NAMESPACE,
        "trustDomain": DOMAIN,
    }


def configmap(mesh: dict) -> dict:
    """ConfigMap ``istio`` in ``istio-system`` (the chart's ``configmap.yaml``)."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": NAME, "namespace": ISTIO_NAMESPACE,
                         "labels": {"app": "istiod", "istio.io/rev": "default",
                                    "install.operator.istio.io/owning-resource": "unknown",
                                    "operator.istio.io/component": "Pilot",
                                    "release": "istio"}},
            "data": {KEY: yaml.safe_dump(mesh, sort_keys=True),
                     "meshNetworks": "networks: {}\n"}}


def _mesh(cm: dict | None) -> dict:
    try:
        mesh = yaml.safe_load(((cm or {}).get("data") or {}).get(KEY) or "") or {}
    except yaml.YAMLError:
        return {}
    return mesh if isinstance(mesh, dict) else {}


def default_config(cm: dict | None) -> dict | None:
    """``defaultConfig``, the ProxyConfig the injector gives new proxies (Istio's injector
    reads it from the mesh config, so an edit applies to pods injected afterwards)."""
    value = _mesh(cm).get("defaultConfig")
    return value if isinstance(value, dict) and value else None


def parse(cm: dict | None) -> MeshConfig:
    """The implemented fields of ConfigMap ``istio``; Istio's defaults where it is absent,
    unparsable or silent (istiod keeps its defaults rather than fail on a bad edit)."""
    mesh = _mesh(cm)
    auto = mesh.get("enableAutoMtls", True)
    return MeshConfig(trust_domain=str(mesh.get("trustDomain") or DOMAIN),
                      root_namespace=str(mesh.get("rootNamespace") or ISTIO_NAMESPACE),
                      enable_auto_mtls=auto is not False and str(auto).lower() != "false")

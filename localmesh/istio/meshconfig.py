"""MeshConfig: the ``istio`` ConfigMap in ``istio-system``, as a real install writes it.

istioctl (and the ``istiod`` chart) put the mesh's settings, YAML under the key ``mesh``
(istio.io ``reference/config/istio.mesh.v1alpha1``), into ConfigMap ``istio``; istiod
watches it and applies a change to every proxy. localmesh's istiod reads the fields it
implements from it on every change: ``enableAutoMtls`` (true unless set to false: auto
mTLS to sidecar endpoints), ``trustDomain`` (the SPIFFE IDs' domain),
``rootNamespace`` (where mesh-wide PeerAuthentication and AuthorizationPolicy live),
``discoverySelectors`` (label selectors of the namespaces istiod sees; none: every
namespace) and Istio 1.4's ``mixerReportServer`` (where sidecars report telemetry:
localmesh/mixer/). The rest is written for clients that read it (``accessLogFile``,
``defaultConfig``, the proxy config the injector passes in ``PROXY_CONFIG``) and, like a
real istiod, ignored where localmesh has no such feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from localmesh.istio.names import DOMAIN, ISTIO_NAMESPACE

NAME = "istio"
KEY = "mesh"


# A label selector as (matchLabels items, matchExpressions as (key, operator, values)).
Selector = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str, tuple[str, ...]], ...]]


@dataclass(frozen=True)
class MeshConfig:
    """The MeshConfig fields istiod's generator reads."""

    trust_domain: str = DOMAIN
    root_namespace: str = ISTIO_NAMESPACE
    enable_auto_mtls: bool = True
    discovery_selectors: tuple[Selector, ...] = ()
    mixer_report_server: str = ""

    def discovers(self, labels: dict) -> bool:
        """Is a namespace with these labels one istiod sees (``discoverySelectors``: any
        selector matching; Kubernetes' label selector semantics)?"""
        if not self.discovery_selectors:
            return True
        return any(_matches(s, labels) for s in self.discovery_selectors)


def _matches(selector: Selector, labels: dict) -> bool:
    match_labels, expressions = selector
    if any(labels.get(k) != v for k, v in match_labels):
        return False
    for key, op, values in expressions:
        present = key in labels
        if (op == "In" and labels.get(key) not in values) or \
                (op == "NotIn" and present and labels[key] in values) or \
                (op == "Exists" and not present) or (op == "DoesNotExist" and present):
            return False
    return True


def _selectors(value: object) -> tuple[Selector, ...]:
    out = []
    for sel in value if isinstance(value, list) else []:
        if not isinstance(sel, dict):
            continue
        labels = tuple(sorted((str(k), str(v)) for k, v in
                              (sel.get("matchLabels") or {}).items()))
        exprs = tuple((str(e.get("key")), str(e.get("operator")),
                       tuple(str(v) for v in e.get("values") or []))
                      for e in sel.get("matchExpressions") or [] if isinstance(e, dict))
        out.append((labels, exprs))
    return tuple(out)


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
                      enable_auto_mtls=auto is not False and str(auto).lower() != "false",
                      discovery_selectors=_selectors(mesh.get("discoverySelectors")),
                      mixer_report_server=str(mesh.get("mixerReportServer") or ""))

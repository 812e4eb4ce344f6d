"""TLS in the generated config: auto mTLS and DestinationRule TLS on outbound clusters, and
the inbound filter chains a PeerAuthentication mode asks for.

Outbound, after istio/istio ``pilot/pkg/networking/core/cluster_tls.go``:

- a DestinationRule's ``tls`` (the top-level policy, overridden by its ``portLevelSettings``
  for the port, then by the subset's policy and the subset's port-level settings:
  ``MergeTrafficPolicy``) wins: ``DISABLE`` is plaintext, ``ISTIO_MUTUAL`` is the mesh
  certificate for every endpoint, ``SIMPLE`` originates TLS (``sni``, ``caCertificates``
  through pilot-agent's file SDS, ``file-root:system`` without them), ``MUTUAL`` also
  presents ``clientCertificate``/``privateKey``;
- without one, auto mTLS (MeshConfig ``enableAutoMtls``, unless the destination
  namespace's mode is ``DISABLE``) gives the cluster Istio's ``transport_socket_matches``:
  ``tlsMode-istio`` (endpoints whose metadata says ``tlsMode: istio``, i.e. pods with the
  injected label ``security.istio.io/tlsMode: istio``) gets the ``ISTIO_MUTUAL`` context,
  ``tlsMode-disabled`` plaintext;
- ``ISTIO_MUTUAL`` is the SDS certificate ``default`` and the SDS validation ``ROOTCA``
  (cluster ``sds-grpc``), ``match_subject_alt_names`` with the SPIFFE IDs of the
  Service's endpoints' ServiceAccounts, ALPN ``istio-peer-exchange``, ``istio`` (and
  ``h2`` for HTTP/2 clusters), SNI ``outbound_.<port>_.<subset>_.<host>``
  (``BuildDNSSrvSubsetKey``), TLS 1.2–1.3.

Inbound, after ``filterchain_options.go`` and ``pilot/pkg/security/authn``: per port,
``PERMISSIVE`` has a TLS chain (matching ``transport_protocol: tls`` and Istio's ALPNs)
and a plaintext chain; ``STRICT`` only the TLS chain, so plaintext finds no chain and is
refused; ``DISABLE`` only plaintext. The TLS chains terminate with a
``DownstreamTlsContext`` that requires a client certificate signed by ``ROOTCA`` whose
SAN is in the trust domain (golden/istio/sidecar-listeners-configdump.yaml).

Where localmesh differs: the DestinationRule is chosen per Service (its own namespace's
first, then the root namespace's, then any), not per client namespace and ``exportTo``.
"""

from __future__ import annotations

from localmesh.istio import names
from localmesh.istio.security.ca import spiffe_id
from localmesh.istio.xds import peerauth
from localmesh.istio.xds.model import MeshState, Service

UPSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3." \
               "UpstreamTlsContext"
DOWNSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3." \
                 "DownstreamTlsContext"
RAW_BUFFER_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3." \
                  "RawBuffer"
TLS_INSPECTOR_TYPE = "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector." \
                     "v3.TlsInspector"
SDS_CLUSTER = "sds-grpc"
SDS_DEFAULT, SDS_ROOT = "default", "ROOTCA"
TLS_MODE_LABEL = "security.istio.io/tlsMode"
TRANSPORT_SOCKET_MATCH = "envoy.transport_socket_match"

# pilot/pkg/networking/util: ALPNInMeshWithMxc, ALPNInMeshH2WithMxc; the inbound chains'
# allIstioMtlsALPNs; and the server's ALPN for HTTP (ALPNHttp).
ALPN_IN_MESH = ["istio-peer-exchange", "istio"]
ALPN_IN_MESH_H2 = ["istio-peer-exchange", "istio", "h2"]
ALL_ISTIO_MTLS_ALPNS = ["istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1",
                        "istio-h2"]
ALPN_HTTP = ["h2", "http/1.1"]
# The inbound TLS parameters of golden/istio/sidecar-listeners-configdump.yaml.
INBOUND_CIPHERS = ["ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
                   "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
                   "AES256-GCM-SHA384", "AES128-GCM-SHA256"]

RAW_BUFFER = {"name": "envoy.transport_sockets.raw_buffer",
              "typed_config": {"@type": RAW_BUFFER_TYPE}}
TLS_INSPECTOR = {"name": "envoy.filters.listener.tls_inspector",
                 "typed_config": {"@type": TLS_INSPECTOR_TYPE}}


def sds(name: str) -> dict:
    """An SDS secret from pilot-agent (``ConstructSdsSecretConfig``)."""
    return {"name": name, "sds_config": {
        "api_config_source": {"api_type": "GRPC", "set_node_on_first_message_only": True,
                              "transport_api_version": "V3",
                              "grpc_services": [{"envoy_grpc": {"cluster_name": SDS_CLUSTER}}]},
        "initial_fetch_timeout": "0s", "resource_api_version": "V3"}}


def _tls_params() -> dict:
    return {"tls_minimum_protocol_version": "TLSv1_2",
            "tls_maximum_protocol_version": "TLSv1_3"}


def _socket(context: dict) -> dict:
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def sni(port: int, host: str, subset: str = "") -> str:
    """``outbound_.<port>_.<subset>_.<host>`` (``model.BuildDNSSrvSubsetKey``)."""
    return f"outbound_.{port}_.{subset}_.{host}"


def service_accounts(state: MeshState, service: Service) -> list[str]:
    """The SPIFFE IDs of the ServiceAccounts behind a Service's endpoints."""
    found = {addr.get("_sa") or "default"
             for sub in state.endpoints.get((service.namespace, service.name), [])
             for addr in sub.get("addresses") or []}
    return sorted(spiffe_id(service.namespace, sa, state.mesh_config.trust_domain)
                  for sa in found)


def istio_mutual(sans: list[str], server_name: str, h2: bool) -> dict:
    """The ``ISTIO_MUTUAL`` UpstreamTlsContext."""
    return {"@type": UPSTREAM_TLS, "sni": server_name, "common_tls_context": {
        "tls_params": _tls_params(),
        "alpn_protocols": ALPN_IN_MESH_H2 if h2 else ALPN_IN_MESH,
        "tls_certificate_sds_secret_configs": [sds(SDS_DEFAULT)],
        "combined_validation_context": {
            "default_validation_context": {"match_subject_alt_names": [
                {"exact": s} for s in sans]},
            "validation_context_sds_secret_config": sds(SDS_ROOT)}}}


def _user_tls(tls: dict, h2: bool) -> dict:
    """``SIMPLE`` / ``MUTUAL`` with files: pilot-agent serves them as ``file-root:<path>``
    and ``file-cert:<cert>~<key>`` (``security.SdsCertificateConfig``)."""
    common: dict = {"tls_params": _tls_params()}
    if h2:
        common["alpn_protocols"] = ["h2"]
    if tls.get("mode") == "MUTUAL" and tls.get("clientCertificate") and tls.get("privateKey"):
        common["tls_certificate_sds_secret_configs"] = [
            sds(f"file-cert:{tls['clientCertificate']}~{tls['privateKey']}")]
    if tls.get("insecureSkipVerify"):
        common["validation_context"] = {}
    else:
        common["combined_validation_context"] = {
            "default_validation_context": {"match_subject_alt_names": [
                {"exact": s} for s in tls.get("subjectAltNames") or []]},
            "validation_context_sds_secret_config": sds(
                f"file-root:{tls.get('caCertificates') or 'system'}")}
    out = {"@type": UPSTREAM_TLS, "common_tls_context": common}
    if tls.get("sni"):
        out["sni"] = tls["sni"]
    return out


def destination_rule(state: MeshState, service: Service) -> dict | None:
    """The DestinationRule of a Service: its namespace's, else the root namespace's."""
    rules = [d for d in state.destination_rules if names.resolve_host(
        (d.get("spec") or {}).get("host", ""), d["metadata"]["namespace"]) == service.host]
    order = {service.namespace: 0, state.mesh_config.root_namespace: 1}
    return min(rules, key=lambda d: (order.get(d["metadata"]["namespace"], 2),
                                     d["metadata"].get("creationTimestamp") or "",
                                     d["metadata"]["name"]), default=None)


def _port_tls(policy: dict, port: int, tls: dict | None) -> dict | None:
    tls = policy.get("tls") or tls
    for pls in policy.get("portLevelSettings") or []:
        if (pls.get("port") or {}).get("number") == port and pls.get("tls"):
            tls = pls["tls"]
    return tls


def user_tls(dr: dict | None, port: int, subset: str) -> dict | None:
    """The ``tls`` a DestinationRule sets for a port and subset (``MergeTrafficPolicy``)."""
    if dr is None:
        return None
    spec = dr.get("spec") or {}
    tls = _port_tls(spec.get("trafficPolicy") or {}, port, None)
    if subset:
        sub: dict = next((s for s in spec.get("subsets") or [] if s.get("name") == subset),
                         {})
        tls = _port_tls(sub.get("trafficPolicy") or {}, port, tls)
    return tls


def apply_upstream_tls(cluster: dict, state: MeshState, service: Service, port: int,
                       subset: str, h2: bool) -> None:
    """Give an outbound cluster the transport socket(s) Istio would."""
    tls = user_tls(destination_rule(state, service), port, subset)
    server_name = sni(port, service.host, subset)
    if tls is not None and str(tls.get("mode", "DISABLE")).upper() != "ISTIO_MUTUAL":
        mode = str(tls.get("mode", "DISABLE")).upper()
        if mode in ("SIMPLE", "MUTUAL"):
            cluster["transport_socket"] = _socket(_user_tls(tls, h2))
            if not tls.get("sni"):
                _auto_sni(cluster, san_validation=not tls.get("subjectAltNames") and
                          not tls.get("insecureSkipVerify"))
        return
    if tls is not None:  # ISTIO_MUTUAL, chosen by the user: for every endpoint
        sans = tls.get("subjectAltNames") or service_accounts(state, service)
        cluster["transport_socket"] = _socket(istio_mutual(sans, tls.get("sni") or
                                                           server_name, h2))
        return
    if not state.mesh_config.enable_auto_mtls or \
            peerauth.namespace_mode(state, service.namespace) == peerauth.DISABLE:
        return
    cluster["transport_socket_matches"] = [
        {"name": "tlsMode-istio", "match": {"tlsMode": "istio"},
         "transport_socket": _socket(istio_mutual(service_accounts(state, service),
                                                  server_name, h2))},
        {"name": "tlsMode-disabled", "match": {}, "transport_socket": RAW_BUFFER},
    ]


def _auto_sni(cluster: dict, san_validation: bool) -> None:
    """``setAutoSniAndAutoSanValidation``: SNI (and SAN check) from the request's host."""
    options = cluster.get("typed_extension_protocol_options", {}).get(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
    if options is None:
        return
    upstream = options.setdefault("upstream_http_protocol_options", {})
    upstream["auto_sni"] = True
    if san_validation:
        upstream["auto_san_validation"] = True


def endpoint_metadata(labels: dict) -> dict | None:
    """EDS metadata telling the transport socket match an endpoint's TLS mode."""
    mode = labels.get(TLS_MODE_LABEL)
    if not mode:
        return None
    return {"filter_metadata": {TRANSPORT_SOCKET_MATCH: {"tlsMode": mode}}}


def downstream_tls(state: MeshState, http: bool) -> dict:
    """The inbound mTLS context: the workload certificate, a client certificate required
    and verified against ROOTCA, SANs within the trust domain."""
    return {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": DOWNSTREAM_TLS, "require_client_certificate": True,
        "common_tls_context": {
            "tls_params": {**_tls_params(), "cipher_suites": INBOUND_CIPHERS},
            "alpn_protocols": ALPN_HTTP if http else ["istio-peer-exchange", *ALPN_HTTP],
            "tls_certificate_sds_secret_configs": [sds(SDS_DEFAULT)],
            "combined_validation_context": {
                "default_validation_context": {"match_subject_alt_names": [
                    {"prefix": f"spiffe://{state.mesh_config.trust_domain}/"}]},
                "validation_context_sds_secret_config": sds(SDS_ROOT)}}}}


def inbound_chains(state: MeshState, mode: str, http: bool, port: int, chain: dict) -> list[dict]:
    """The filter chains of one inbound port under an mTLS mode, each a copy of ``chain``
    (its name and filters) with Istio's match and transport socket."""
    def variant(transport: str, alpns: list[str] | None, tls: bool) -> dict:
        match: dict = {"destination_port": port, "transport_protocol": transport}
        if alpns:
            match["application_protocols"] = alpns
        out = {**chain, "filter_chain_match": match}
        if tls:
            out["transport_socket"] = downstream_tls(state, http)
        return out

    if mode == peerauth.STRICT:
        return [variant("tls", None, True)]
    if mode == peerauth.DISABLE:
        return [variant("raw_buffer", None, False)]
    chains = [variant("tls", ALL_ISTIO_MTLS_ALPNS, True), variant("raw_buffer", None, False)]
    if not http:  # a TCP port also passes one-way TLS of the app's own through
        chains.append(variant("tls", None, False))
    return chains

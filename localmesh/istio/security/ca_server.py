"""istiod's certificate service: ``IstioCertificateService/CreateCertificate`` on 15012.

As istio/istio ``security/pkg/server/ca/server.go``: the caller is authenticated by the
ServiceAccount token in its ``authorization: Bearer …`` metadata (the ``istio-ca``
audience token the kubelet projects into every proxy at ``/var/run/secrets/tokens``;
``security/pkg/server/ca/authenticate/kubeauth``), which makes it the identity
``spiffe://<trust domain>/ns/<namespace>/sa/<service account>``; the certificate is
signed for that identity only. Answers: ``Unauthenticated`` without a valid token,
``InvalidArgument`` for a CSR the CA refuses (see :meth:`MeshCA.sign`). Served over TLS
with istiod's certificate from the mesh root, on the port (15012) and with the service
name Istio uses, so pilot-agent verifies istiod with ``istio-ca-root-cert``.

Counts ``citadel_server_csr_count`` and ``citadel_server_success_cert_issuance_count``,
Istio's names, for istiod's ``/metrics``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc

from localmesh.api.authn import UserInfo, split_service_account
from localmesh.istio.security import ca_api
from localmesh.istio.security.ca import MeshCA, SigningError, spiffe_id

log = logging.getLogger("localmesh.istiod.ca")

# istiod's TOKEN_AUDIENCES default; the injector projects tokens for it.
CA_AUDIENCE = "istio-ca"
TokenReview = Callable[[str, tuple[str, ...]], UserInfo | None]
# (caller, impersonated identity) -> may the caller, a node agent, have that identity's
# certificate? Istio's ``CA_TRUSTED_NODE_ACCOUNTS`` (istio-system/ztunnel) and its node
# authorizer: a pod of that identity runs on the caller's node.
NodeAuthorizer = Callable[[str, str], bool]


class CertificateService:
    """Signs workload certificates for authenticated ServiceAccounts."""

    def __init__(self, ca: MeshCA, review: TokenReview,
                 audiences: tuple[str, ...] = (CA_AUDIENCE,),
                 node_authorizer: NodeAuthorizer | None = None) -> None:
        self.ca = ca
        self.review = review
        self.node_authorizer = node_authorizer
        self.audiences = audiences
        self.counts: Counter[str] = Counter()

    def identity(self, metadata: tuple) -> str | None:
        """The caller's SPIFFE ID from its bearer token, or None."""
        auth = next((v for k, v in metadata if k.lower() == "authorization"), "")
        scheme, _, token = str(auth).partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        user = self.review(token.strip(), self.audiences)
        sa = split_service_account(user.name) if user is not None else None
        if sa is None:
            return None
        return spiffe_id(sa[0], sa[1], self.ca.trust_domain)

    async def create_certificate(self, request: Any, context: grpc.aio.ServicerContext
                                 ) -> Any:
        self.counts["citadel_server_csr_count"] += 1
        identity = self.identity(tuple(context.invocation_metadata() or ()))
        if identity is None:
            log.warning("CA: refused a CSR without a valid %s token", self.audiences[0])
            await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                "request authenticate failure")
            raise AssertionError("unreachable: ServicerContext.abort raises")
        asked = request.metadata.fields.get(ca_api.IMPERSONATED_IDENTITY)
        if asked is not None and asked.string_value:
            if self.node_authorizer is None or not self.node_authorizer(identity,
                                                                        asked.string_value):
                log.warning("CA: %s may not impersonate %s", identity, asked.string_value)
                await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                    "request authenticate failure")
                raise AssertionError("unreachable: ServicerContext.abort raises")
            identity = asked.string_value
        try:
            chain = self.ca.sign(request.csr, identity, int(request.validity_duration))
        except SigningError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        self.counts["citadel_server_success_cert_issuance_count"] += 1
        log.info("CA: issued a certificate for %s", identity)
        return ca_api.IstioCertificateResponse(cert_chain=chain)

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's gRPC handler, for istiod's server on 15012."""
        return grpc.method_handlers_generic_handler(ca_api.SERVICE, {
            "CreateCertificate": grpc.unary_unary_rpc_method_handler(
                self.create_certificate,
                request_deserializer=ca_api.IstioCertificateRequest.FromString,
                response_serializer=ca_api.IstioCertificateResponse.SerializeToString)})

    def metrics(self) -> list[str]:
        """Prometheus lines for istiod's /metrics."""
        out = []
        for name in ("citadel_server_csr_count", "citadel_server_success_cert_issuance_count"):
            out += [f"# TYPE {name} counter", f"{name} {self.counts[name]}"]
        return out

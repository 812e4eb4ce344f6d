"""Istio's certificate API on the wire: ``istio.v1.auth.IstioCertificateService``.

istio/api ``security/v1alpha1/ca.proto`` (package ``istio.v1.auth``)::

    service IstioCertificateService {
      rpc CreateCertificate(IstioCertificateRequest) returns (IstioCertificateResponse);
    }
    message IstioCertificateRequest {
      string csr = 1;                      // PEM-encoded certificate request
      int64 validity_duration = 3;         // requested lifetime, seconds
      google.protobuf.Struct metadata = 4; // opaque metadata of the XDS node
    }
    message IstioCertificateResponse {
      repeated string cert_chain = 1;      // PEM: leaf first, root last
    }

No Python package ships these generated classes, so the two messages are built here from
their descriptor (same field numbers and types, so the bytes on the wire are Istio's); the
caller authenticates with ``authorization: Bearer <ServiceAccount token>`` metadata, and
names its cluster in ``clusterid`` (istio/istio ``security/pkg/nodeagent/caclient``).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, struct_pb2

SERVICE = "istio.v1.auth.IstioCertificateService"
METHOD = f"/{SERVICE}/CreateCertificate"
# The key of ``metadata`` by which a trusted node agent (ztunnel) asks for one of its
# pods' identities (istio/istio security/pkg/server/ca/server.go, ``ImpersonatedIdentity``).
IMPERSONATED_IDENTITY = "ImpersonatedIdentity"


def _messages() -> tuple[Any, Any]:
    pool = descriptor_pool.Default()
    name = "localmesh/istio/v1/auth/ca.proto"
    try:
        pool.FindFileByName(name)
    except KeyError:
        f = descriptor_pb2.FileDescriptorProto(
            name=name, package="istio.v1.auth", syntax="proto3",
            dependency=[struct_pb2.DESCRIPTOR.name])
        F = descriptor_pb2.FieldDescriptorProto
        req = f.message_type.add(name="IstioCertificateRequest")
        req.field.add(name="csr", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
        req.field.add(name="validity_duration", number=3, type=F.TYPE_INT64,
                      label=F.LABEL_OPTIONAL)
        req.field.add(name="metadata", number=4, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                      type_name=".google.protobuf.Struct")
        resp = f.message_type.add(name="IstioCertificateResponse")
        resp.field.add(name="cert_chain", number=1, type=F.TYPE_STRING,
                       label=F.LABEL_REPEATED)
        pool.Add(f)
    request = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("istio.v1.auth.IstioCertificateRequest"))
    response = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("istio.v1.auth.IstioCertificateResponse"))
    return request, response


IstioCertificateRequest, IstioCertificateResponse = _messages()

"""Istio's workload API on the wire: ``istio.workload.Address`` and
``istio.security.Authorization``, the xDS types istiod sends ztunnel.

No Python package ships these generated classes, so the messages are built here from their
descriptors, with the field names and numbers of istio/ztunnel ``proto/workload.proto`` and
``proto/authorization.proto`` (so their bytes are Istio's), for the subset localmesh fills
(docs/localmesh.md, "Ambient mode"): a Workload's uid, name, namespace, addresses, tunnel
protocol, trust domain, service account, waypoint, node, canonical names, workload type and
name, services, authorization policies, status and cluster; a Service's name, namespace,
hostname, addresses, ports and waypoint; an Authorization's name, namespace, scope, action
and rules (namespaces, principals, destination ports).
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

T_ADDRESS = "type.googleapis.com/istio.workload.Address"
T_AUTHORIZATION = "type.googleapis.com/istio.security.Authorization"

F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED


def _field(msg: descriptor_pb2.DescriptorProto, name: str, number: int, kind: int,
           type_name: str = "", repeated: bool = False, oneof: int | None = None) -> None:
    f = msg.field.add(name=name, number=number, type=kind, label=_REP if repeated else _OPT)
    if type_name:
        f.type_name = type_name
    if oneof is not None:
        f.oneof_index = oneof


def _workload_file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(name="localmesh/istio/workload/workload.proto",
                                           package="istio.workload", syntax="proto3")
    p = ".istio.workload."
    e = f.enum_type.add(name="TunnelProtocol")
    e.value.add(name="NONE", number=0)
    e.value.add(name="HBONE", number=1)
    e = f.enum_type.add(name="WorkloadType")
    for i, n in enumerate(("DEPLOYMENT", "CRONJOB", "POD", "JOB")):
        e.value.add(name=n, number=i)
    e = f.enum_type.add(name="WorkloadStatus")
    e.value.add(name="HEALTHY", number=0)
    e.value.add(name="UNHEALTHY", number=1)
    m = f.message_type.add(name="Address")
    m.oneof_decl.add(name="type")
    _field(m, "workload", 1, F.TYPE_MESSAGE, p + "Workload", oneof=0)
    _field(m, "service", 2, F.TYPE_MESSAGE, p + "Service", oneof=0)
    m = f.message_type.add(name="NetworkAddress")
    _field(m, "network", 1, F.TYPE_STRING)
    _field(m, "address", 2, F.TYPE_BYTES)
    m = f.message_type.add(name="NamespacedHostname")
    _field(m, "namespace", 1, F.TYPE_STRING)
    _field(m, "hostname", 2, F.TYPE_STRING)
    m = f.message_type.add(name="GatewayAddress")
    m.oneof_decl.add(name="destination")
    _field(m, "hostname", 1, F.TYPE_MESSAGE, p + "NamespacedHostname", oneof=0)
    _field(m, "address", 2, F.TYPE_MESSAGE, p + "NetworkAddress", oneof=0)
    _field(m, "hbone_mtls_port", 3, F.TYPE_UINT32)
    m = f.message_type.add(name="Port")
    _field(m, "service_port", 1, F.TYPE_UINT32)
    _field(m, "target_port", 2, F.TYPE_UINT32)
    m = f.message_type.add(name="PortList")
    _field(m, "ports", 1, F.TYPE_MESSAGE, p + "Port", repeated=True)
    m = f.message_type.add(name="Service")
    _field(m, "name", 1, F.TYPE_STRING)
    _field(m, "namespace", 2, F.TYPE_STRING)
    _field(m, "hostname", 3, F.TYPE_STRING)
    _field(m, "addresses", 4, F.TYPE_MESSAGE, p + "NetworkAddress", repeated=True)
    _field(m, "ports", 5, F.TYPE_MESSAGE, p + "Port", repeated=True)
    _field(m, "subject_alt_names", 6, F.TYPE_STRING, repeated=True)
    _field(m, "waypoint", 7, F.TYPE_MESSAGE, p + "GatewayAddress")
    m = f.message_type.add(name="Workload")
    entry = m.nested_type.add(name="ServicesEntry")
    entry.options.map_entry = True
    _field(entry, "key", 1, F.TYPE_STRING)
    _field(entry, "value", 2, F.TYPE_MESSAGE, p + "PortList")
    for name, number, kind, type_name, repeated in (
            ("uid", 20, F.TYPE_STRING, "", False), ("name", 1, F.TYPE_STRING, "", False),
            ("namespace", 2, F.TYPE_STRING, "", False),
            ("addresses", 3, F.TYPE_BYTES, "", True), ("network", 4, F.TYPE_STRING, "", False),
            ("tunnel_protocol", 5, F.TYPE_ENUM, p + "TunnelProtocol", False),
            ("trust_domain", 6, F.TYPE_STRING, "", False),
            ("service_account", 7, F.TYPE_STRING, "", False),
            ("waypoint", 8, F.TYPE_MESSAGE, p + "GatewayAddress", False),
            ("node", 9, F.TYPE_STRING, "", False),
            ("canonical_name", 10, F.TYPE_STRING, "", False),
            ("canonical_revision", 11, F.TYPE_STRING, "", False),
            ("workload_type", 12, F.TYPE_ENUM, p + "WorkloadType", False),
            ("workload_name", 13, F.TYPE_STRING, "", False),
            ("native_tunnel", 14, F.TYPE_BOOL, "", False),
            ("authorization_policies", 16, F.TYPE_STRING, "", True),
            ("status", 17, F.TYPE_ENUM, p + "WorkloadStatus", False),
            ("cluster_id", 18, F.TYPE_STRING, "", False)):
        _field(m, name, number, kind, type_name, repeated)
    _field(m, "services", 22, F.TYPE_MESSAGE, p + "Workload.ServicesEntry", repeated=True)
    return f


def _authorization_file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(
        name="localmesh/istio/security/authorization.proto", package="istio.security",
        syntax="proto3")
    p = ".istio.security."
    e = f.enum_type.add(name="Scope")
    for i, n in enumerate(("GLOBAL", "NAMESPACE", "WORKLOAD_SELECTOR")):
        e.value.add(name=n, number=i)
    e = f.enum_type.add(name="Action")
    e.value.add(name="ALLOW", number=0)
    e.value.add(name="DENY", number=1)
    m = f.message_type.add(name="StringMatch")
    m.oneof_decl.add(name="match_type")
    for i, n in enumerate(("exact", "prefix", "suffix")):
        _field(m, n, i + 1, F.TYPE_STRING, oneof=0)
    m = f.message_type.add(name="Match")
    for name, number in (("namespaces", 1), ("not_namespaces", 2), ("principals", 3),
                         ("not_principals", 4)):
        _field(m, name, number, F.TYPE_MESSAGE, p + "StringMatch", repeated=True)
    _field(m, "destination_ports", 9, F.TYPE_UINT32, repeated=True)
    _field(m, "not_destination_ports", 10, F.TYPE_UINT32, repeated=True)
    m = f.message_type.add(name="Clause")
    _field(m, "matches", 2, F.TYPE_MESSAGE, p + "Match", repeated=True)
    m = f.message_type.add(name="Rule")
    _field(m, "clauses", 1, F.TYPE_MESSAGE, p + "Clause", repeated=True)
    m = f.message_type.add(name="Authorization")
    _field(m, "name", 1, F.TYPE_STRING)
    _field(m, "namespace", 2, F.TYPE_STRING)
    _field(m, "scope", 3, F.TYPE_ENUM, p + "Scope")
    _field(m, "action", 4, F.TYPE_ENUM, p + "Action")
    _field(m, "rules", 5, F.TYPE_MESSAGE, p + "Rule", repeated=True)
    return f


def _classes() -> tuple[type, type]:
    pool = descriptor_pool.Default()
    for build in (_workload_file, _authorization_file):
        proto = build()
        try:
            pool.FindFileByName(proto.name)
        except KeyError:
            pool.Add(proto)
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName("istio.workload.Address")),
            message_factory.GetMessageClass(
                pool.FindMessageTypeByName("istio.security.Authorization")))


Address, Authorization = _classes()
MESSAGES = {T_ADDRESS: Address, T_AUTHORIZATION: Authorization}

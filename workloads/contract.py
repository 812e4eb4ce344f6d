"""What the workloads promise to the outside: gRPC method paths and environment variables.

Kept in one module so the manifests' tests, the README and the programs agree on the
names; a renamed variable or method shows up as a failing test rather than as a pod that
silently ignores its configuration.
"""

from __future__ import annotations

ECA_SERVICE = "membersrvc.ECA"
"""gRPC service of the member service's enrollment CA."""
ECA_ENROLL = f"/{ECA_SERVICE}/Enroll"
ECA_PING = f"/{ECA_SERVICE}/Ping"

PEER_SERVICE = "protos.Peer"
"""gRPC service of the validating peer."""
PEER_PING = f"/{PEER_SERVICE}/Ping"
PEER_GET_BLOCK = f"/{PEER_SERVICE}/GetBlock"

METHODS: tuple[str, ...] = (ECA_ENROLL, ECA_PING, PEER_PING, PEER_GET_BLOCK)

_COMMON: dict[str, str] = {
    "BIND_ADDRESS": "address every server listens on (default 0.0.0.0; the emulator sets "
    "a pod-local loopback address)",
}
_OUTBOUND: dict[str, str] = {
    "MEMBERSRVC_ADDRESS": "host:port of membersrvc's gRPC port (default membersrvc:7054)",
    "MESH_OUTBOUND_PROXY": "host:port of a sidecar that takes plaintext gRPC and routes it "
    "by :authority; unset = dial targets directly (iptables interception)",
    "OUTBOUND_TIMEOUT_SECONDS": "deadline of each outbound call (default 3)",
}

ENVIRONMENT: dict[str, dict[str, str]] = {
    "composer": {
        **_COMMON,
        **_OUTBOUND,
        "PORT": "HTTP port (default 8080)",
        "COMPOSER_CONFIG": "JSON served (secrets redacted) at /config.json; default is built "
        "from MEMBERSRVC_ADDRESS and PEER_ADDRESS",
        "COMPOSER_ADMIN_ID": "identity composer enrolls as (default admin)",
        "COMPOSER_ADMIN_SECRET": "secret composer enrolls with (never logged)",
        "PEER_ADDRESS": "host:port of vp0's gRPC port, used in the default config "
        "(default vp0:7051)",
        "PEER_REST_URL": "base URL of vp0's REST API (default http://vp0:7050)",
        "HTTP_PROXY": "honoured by urllib for outbound HTTP (also http_proxy, NO_PROXY)",
    },
    "vp0": {
        **_COMMON,
        **_OUTBOUND,
        "REST_PORT": "REST (HTTP) port (default 7050)",
        "GRPC_PORT": "gRPC port (default 7051)",
        "CORE_PEER_ID": "peer name shown in /network/peers (default vp0)",
        "PEER_ADDRESS": "address the peer advertises in /network/peers (default vp0:7051)",
        "CORE_SECURITY_ENROLLID": "identity vp0 enrolls as (default test_vp0)",
        "CORE_SECURITY_ENROLLSECRET": "secret vp0 enrolls with (never logged)",
        "ENROLL_INTERVAL_SECONDS": "seconds between enrollments (default 5)",
        "ENROLL_RETRY_SECONDS": "seconds before retrying a failed enrollment (default 1)",
    },
    "membersrvc": {
        **_COMMON,
        "PORT": "gRPC port (default 7054)",
    },
    "client": {},
}
"""Per program: every environment variable it reads, with a one-line meaning."""

SECRET_VARIABLES: frozenset[str] = frozenset(
    {"COMPOSER_ADMIN_SECRET", "CORE_SECURITY_ENROLLSECRET"}
)
"""Variables that carry credentials: manifests must fill them from a Secret."""

"""The workloads' pure parts: the default connection profile, redaction, trace context,
and the README as the contract's documentation. In-process; the programs themselves run
as real processes in tests/integration/test_workloads.py."""

from __future__ import annotations

from tests.support import REPO
from workloads import contract, tracing
from workloads.composer import REDACTED, default_config, redact


def test_default_config_points_at_the_configured_services() -> None:
    config = default_config("membersrvc:7054", "vp0:7051")
    profile = config["connectionProfiles"][config["defaultConnectionProfile"]]
    assert profile["membershipServicesURL"] == "grpc://membersrvc:7054"
    assert profile["peerURL"] == "grpc://vp0:7051"


def test_redact_keeps_structure_and_hides_secret_values() -> None:
    document = {
        "credentials": {"hlfabric": {"admin": "s1"}},
        "nested": [{"apiToken": 5, "note": "contains s2 inline"}, None],
        "keyValStore": "/home/composer/.composer-credentials",
    }
    assert redact(document, ("s2", "")) == {
        "credentials": {"hlfabric": {"admin": REDACTED}},
        "nested": [{"apiToken": REDACTED, "note": REDACTED}, None],
        "keyValStore": "/home/composer/.composer-credentials",
    }


def test_trace_context_keeps_propagated_printable_headers_only() -> None:
    picked = tracing.pick(
        [
            ("X-Request-Id", "r1"),
            ("Authorization", "Bearer t"),
            ("X-B3-TraceId", "abc"),
            ("tracestate", "caf\u00e9"),
        ]
    )
    assert picked == {"x-request-id": "r1", "x-b3-traceid": "abc"}
    assert tracing.trace_id(picked) == "abc"
    assert tracing.trace_id({"traceparent": f"00-{'1' * 32}-{'2' * 16}-01"}) == "1" * 32


def test_readme_documents_every_method_and_variable() -> None:
    readme = (REPO / "workloads" / "README.md").read_text(encoding="utf-8")
    names = set(contract.METHODS)
    for variables in contract.ENVIRONMENT.values():
        names.update(variables)
    missing = sorted(name for name in names if f"`{name}`" not in readme)
    assert not missing, f"workloads/README.md does not mention {missing}"

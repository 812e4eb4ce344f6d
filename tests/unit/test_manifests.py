"""The Kubernetes manifests: they parse, name what the suite expects, and follow Istio's rules.

The checks encode what breaks a mesh test run when it goes wrong: a port name Istio cannot
read as HTTP/gRPC (routes and metrics turn into plain TCP), a hard-coded namespace (the
suite's per-scenario namespaces stop isolating anything), an env var the program does not
read (configuration silently ignored), or a secret written into a pod spec.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support import REPO
from workloads import contract
from workloads.__main__ import PROGRAMS

MANIFESTS = REPO / "manifests"
IMAGE = "ghcr.io/meshgate/workloads:0.1.0"
ISTIO_PORT_NAME = re.compile(r"^(http|http2|grpc)(-[a-z0-9]([a-z0-9-]*[a-z0-9])?)?$")
"""Istio's protocol selection by name: ``<protocol>[-<suffix>]`` (no appProtocol needed)."""

Doc = dict[str, Any]


def load(relative: str) -> list[Doc]:
    with (MANIFESTS / relative).open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def all_files() -> list[str]:
    return sorted(str(path.relative_to(MANIFESTS)) for path in MANIFESTS.rglob("*.yaml"))


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected exactly one {kind}/{name}, found {len(found)}"
    return found[0]


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) pair in a document, for whole-document rules."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


def secret_values(docs: list[Doc]) -> set[str]:
    values: set[str] = set()
    for doc in docs:
        if doc["kind"] == "Secret":
            values.update(str(v) for v in (doc.get("stringData") or {}).values())
            values.update(base64.b64decode(v).decode() for v in (doc.get("data") or {}).values())
    return values


EXPECTED_FILES: dict[str, set[tuple[str, str]]] = {
    "composer.yaml": {
        ("ServiceAccount", "composer"),
        ("Secret", "composer-credentials"),
        ("Service", "composer"),
        ("Deployment", "composer"),
    },
    "vp0.yaml": {("ServiceAccount", "vp0"), ("Secret", "vp0-enrollment"), ("Service", "vp0"),
                 ("Deployment", "vp0")},
    "membersrvc.yaml": {("ServiceAccount", "membersrvc"), ("Service", "membersrvc"),
                        ("Deployment", "membersrvc")},
    "ingress.yaml": {("IngressClass", "istio"), ("Ingress", "gateway")},
    "overlays/istio-gateway.yaml": {
        ("Gateway", "blockchain-gateway"),
        ("VirtualService", "blockchain"),
    },
    "overlays/gateway-api.yaml": {("Gateway", "blockchain-gateway"), ("HTTPRoute", "blockchain")},
    "overlays/waypoint.yaml": {("Gateway", "waypoint")},
    "overlays/openshift-route.yaml": {("Route", "blockchain-ingress")},
}

SERVICE_PORTS: dict[str, dict[str, int]] = {
    "composer": {"http": 8080},
    "vp0": {"http-rest": 7050, "grpc-peer": 7051},
    "membersrvc": {"grpc-ca": 7054},
}

INGRESS_ROUTES = {"/login": ("composer", 8080), "/chain/blocks/0": ("vp0", 7050)}


def workload_docs() -> list[Doc]:
    return [doc for name in SERVICE_PORTS for doc in load(f"{name}.yaml")]


# --------------------------------------------------------------------------- every file


def test_the_expected_files_exist() -> None:
    assert all_files() == sorted(EXPECTED_FILES)


@pytest.mark.parametrize("relative", sorted(EXPECTED_FILES))
def test_file_holds_exactly_the_expected_objects(relative: str) -> None:
    docs = load(relative)
    found = [(doc["kind"], doc["metadata"]["name"]) for doc in docs]
    assert sorted(found) == sorted(EXPECTED_FILES[relative])
    for doc in docs:
        assert isinstance(doc.get("apiVersion"), str) and doc["apiVersion"]


@pytest.mark.parametrize("relative", sorted(EXPECTED_FILES))
def test_no_namespace_is_set(relative: str) -> None:
    """The suite picks the namespace; a hard-coded one would escape its isolation."""
    for doc in load(relative):
        assert "namespace" not in doc["metadata"], f"{relative}: {doc['kind']} sets a namespace"


@pytest.mark.parametrize("relative", sorted(EXPECTED_FILES))
def test_injection_is_left_to_the_namespace_label(relative: str) -> None:
    for doc in load(relative):
        for path, value in walk(doc):
            if isinstance(value, dict):
                assert "sidecar.istio.io/inject" not in value, f"{relative}{path}"


# --------------------------------------------------------------------------- services


@pytest.mark.parametrize("name", sorted(SERVICE_PORTS))
def test_service_ports_follow_istio_naming(name: str) -> None:
    service = one(load(f"{name}.yaml"), "Service", name)
    assert service["metadata"]["labels"] == {"app": name}
    assert service["spec"]["selector"] == {"app": name}
    ports = service["spec"]["ports"]
    assert {p["name"]: p["port"] for p in ports} == SERVICE_PORTS[name]
    for port in ports:
        assert ISTIO_PORT_NAME.match(port["name"]), port["name"]
        assert port["targetPort"] == port["port"]
        assert port["appProtocol"] == port["name"].split("-")[0]


# --------------------------------------------------------------------------- deployments


def deployment(name: str) -> Doc:
    return one(load(f"{name}.yaml"), "Deployment", name)


def container(name: str) -> Doc:
    containers = deployment(name)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "the sidecar is injected, never written into the manifest"
    return dict(containers[0])


@pytest.mark.parametrize("name", sorted(SERVICE_PORTS))
def test_deployment_shape(name: str) -> None:
    spec = deployment(name)["spec"]
    labels = {"app": name, "version": "v1"}
    assert deployment(name)["metadata"]["labels"] == labels
    assert spec["replicas"] == 1
    assert spec["selector"] == {"matchLabels": labels}
    assert spec["template"]["metadata"]["labels"] == labels
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] == 5
    service = one(load(f"{name}.yaml"), "Service", name)
    assert set(service["spec"]["selector"].items()) <= set(labels.items())


@pytest.mark.parametrize("name", sorted(SERVICE_PORTS))
def test_container_runs_the_matching_program(name: str) -> None:
    spec = container(name)
    assert spec["image"] == IMAGE
    assert spec["args"] == [name]
    assert name in PROGRAMS
    assert "command" not in spec, "the image's ENTRYPOINT is python -m workloads"
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    assert ports == SERVICE_PORTS[name]
    for port_name in ports:
        assert ISTIO_PORT_NAME.match(port_name), port_name


@pytest.mark.parametrize("name", sorted(SERVICE_PORTS))
def test_resources_are_small_requests(name: str) -> None:
    requests = container(name)["resources"]["requests"]
    assert requests["cpu"].endswith("m") and int(requests["cpu"][:-1]) <= 100
    assert requests["memory"].endswith("Mi") and int(requests["memory"][:-2]) <= 128


@pytest.mark.parametrize("name", sorted(SERVICE_PORTS))
def test_env_names_are_ones_the_program_reads(name: str) -> None:
    names = [entry["name"] for entry in container(name).get("env", [])]
    unknown = set(names) - set(contract.ENVIRONMENT[name])
    assert not unknown, f"{name} does not read {sorted(unknown)}"
    assert len(names) == len(set(names)), "duplicate env entries"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("composer", {"PORT": "8080", "MEMBERSRVC_ADDRESS": "membersrvc:7054"}),
        ("composer", {"PEER_REST_URL": "http://vp0:7050", "PEER_ADDRESS": "vp0:7051"}),
        ("vp0", {"CORE_PEER_ID": "vp0", "CORE_SECURITY_ENROLLID": "test_vp0"}),
        (
            "vp0",
            {"REST_PORT": "7050", "GRPC_PORT": "7051", "MEMBERSRVC_ADDRESS": "membersrvc:7054"},
        ),
        ("membersrvc", {"PORT": "7054"}),
    ],
)
def test_env_values(name: str, expected: dict[str, str]) -> None:
    env = {e["name"]: e.get("value") for e in container(name)["env"]}
    assert {key: env.get(key) for key in expected} == expected


@pytest.mark.parametrize(
    ("name", "variable", "secret", "key"),
    [
        ("composer", "COMPOSER_ADMIN_SECRET", "composer-credentials", "COMPOSER_ADMIN_SECRET"),
        ("vp0", "CORE_SECURITY_ENROLLSECRET", "vp0-enrollment", "CORE_SECURITY_ENROLLSECRET"),
    ],
)
def test_credentials_come_from_secret_refs(name: str, variable: str, secret: str, key: str) -> None:
    env = {e["name"]: e for e in container(name)["env"]}
    assert "value" not in env[variable]
    assert env[variable]["valueFrom"] == {"secretKeyRef": {"name": secret, "key": key}}
    held = one(load(f"{name}.yaml"), "Secret", secret)
    assert held.get("stringData", {}).get(key) or held.get("data", {}).get(key)


def test_no_secret_is_written_into_a_pod_spec() -> None:
    docs = workload_docs()
    values = secret_values(docs)
    assert values, "the Secrets hold values"
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        for path, value in walk(doc):
            if isinstance(value, str):
                leaked = [v for v in values if v in value]
                assert not leaked, f"{doc['kind']}/{doc['metadata']['name']}{path}"
    for name in SERVICE_PORTS:
        for entry in container(name).get("env", []):
            if entry["name"] in contract.SECRET_VARIABLES:
                assert set(entry) == {"name", "valueFrom"}, entry
            if "valueFrom" in entry:
                assert set(entry["valueFrom"]) == {"secretKeyRef"}, entry


def test_composer_config_is_the_2017_profile_pointed_at_the_services() -> None:
    env = {e["name"]: e.get("value") for e in container("composer")["env"]}
    config = json.loads(env["COMPOSER_CONFIG"])
    profile = config["connectionProfiles"][config["defaultConnectionProfile"]]
    assert profile["type"] == "hlf"
    assert profile["membershipServicesURL"] == "grpc://membersrvc:7054"
    assert profile["peerURL"] == "grpc://vp0:7051"
    assert "credentials" not in config


@pytest.mark.parametrize(
    ("name", "probe"),
    [
        ("composer", {"httpGet": {"path": "/healthz", "port": 8080}}),
        ("vp0", {"httpGet": {"path": "/healthz", "port": 7050}}),
        ("membersrvc", {"tcpSocket": {"port": 7054}}),
    ],
)
def test_readiness_probes(name: str, probe: dict[str, Any]) -> None:
    readiness = container(name)["readinessProbe"]
    assert {key: readiness[key] for key in probe} == probe


# --------------------------------------------------------------------------- ingress


def services_by_name() -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in workload_docs() if d["kind"] == "Service"}


def assert_backends_exist(routes: dict[str, tuple[str, int]]) -> None:
    services = services_by_name()
    for path, (service, port) in routes.items():
        ports = [p["port"] for p in services[service]["spec"]["ports"]]
        assert port in ports, f"{path} -> {service}:{port} is not a Service port"


def test_ingress_class_is_istio() -> None:
    docs = load("ingress.yaml")
    ingress_class = one(docs, "IngressClass", "istio")
    assert ingress_class["apiVersion"] == "networking.k8s.io/v1"
    assert ingress_class["spec"] == {"controller": "istio.io/ingress-controller"}


def test_ingress_routes_the_two_exact_paths() -> None:
    ingress = one(load("ingress.yaml"), "Ingress", "gateway")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["spec"]["ingressClassName"] == "istio"
    assert "annotations" not in ingress["metadata"]
    (rule,) = ingress["spec"]["rules"]
    assert "host" not in rule
    routes = {}
    for path in rule["http"]["paths"]:
        assert path["pathType"] == "Exact"
        backend = path["backend"]["service"]
        routes[path["path"]] = (backend["name"], backend["port"]["number"])
    assert routes == INGRESS_ROUTES
    assert_backends_exist(routes)


def test_istio_gateway_overlay() -> None:
    docs = load("overlays/istio-gateway.yaml")
    gateway = one(docs, "Gateway", "blockchain-gateway")
    assert gateway["apiVersion"] == "networking.istio.io/v1"
    assert gateway["spec"]["selector"] == {"istio": "ingressgateway"}
    (server,) = gateway["spec"]["servers"]
    assert server["port"] == {"number": 80, "name": "http", "protocol": "HTTP"}
    assert server["hosts"] == ["*"]
    service = one(docs, "VirtualService", "blockchain")
    assert service["apiVersion"] == "networking.istio.io/v1"
    assert service["spec"]["gateways"] == ["blockchain-gateway"]
    assert service["spec"]["hosts"] == ["*"]
    routes = {}
    for http in service["spec"]["http"]:
        (match,) = http["match"]
        (route,) = http["route"]
        destination = route["destination"]
        routes[match["uri"]["exact"]] = (destination["host"], destination["port"]["number"])
    assert routes == INGRESS_ROUTES


def test_gateway_api_overlay() -> None:
    docs = load("overlays/gateway-api.yaml")
    gateway = one(docs, "Gateway", "blockchain-gateway")
    assert gateway["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert gateway["spec"]["gatewayClassName"] == "istio"
    (listener,) = gateway["spec"]["listeners"]
    assert (listener["name"], listener["port"], listener["protocol"]) == ("http", 80, "HTTP")
    route = one(docs, "HTTPRoute", "blockchain")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "blockchain-gateway"}]
    routes = {}
    for rule in route["spec"]["rules"]:
        (match,) = rule["matches"]
        (backend,) = rule["backendRefs"]
        assert match["path"]["type"] == "Exact"
        routes[match["path"]["value"]] = (backend["name"], backend["port"])
    assert routes == INGRESS_ROUTES


def test_openshift_route_targets_the_istio_gateway_in_istio_system() -> None:
    route = one(load("overlays/openshift-route.yaml"), "Route", "blockchain-ingress")
    assert route["apiVersion"] == "route.openshift.io/v1"
    assert route["metadata"]["annotations"]["meshgate.io/apply-namespace"] == "istio-system"
    assert route["spec"]["to"] == {"kind": "Service", "name": "istio-ingressgateway", "weight": 100}
    assert route["spec"]["port"] == {"targetPort": "http2"}
    assert "host" not in route["spec"]


def test_the_waypoint_overlay_is_what_istioctl_waypoint_apply_creates() -> None:
    """A Gateway of class istio-waypoint with one listener ``mesh`` on 15008, HBONE (istio.io,
    "Configure waypoint proxies"), for services (``istio.io/waypoint-for``)."""
    (gateway,) = load("overlays/waypoint.yaml")
    assert gateway["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert gateway["spec"]["gatewayClassName"] == "istio-waypoint"
    assert gateway["spec"]["listeners"] == [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]
    assert gateway["metadata"]["labels"]["istio.io/waypoint-for"] == "service"

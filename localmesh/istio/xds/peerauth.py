"""PeerAuthentication (``security.istio.io/v1``): the mTLS mode a workload's port accepts.

After istio/istio ``pilot/pkg/model/authentication.go`` (``GetPeerAuthentications``,
``ComposePeerAuthentication``) and the reference page
(istio.io ``reference/config/security/peer_authentication``):

- a policy in the root namespace without a selector is mesh-wide; one without a selector
  in a namespace is namespace-wide; one with ``selector.matchLabels`` applies to the
  workloads of its namespace whose labels match;
- where several apply at one level, the oldest wins (creation time, then name);
- precedence is workload > namespace > mesh, and ``UNSET`` (or no ``mtls``) inherits from
  the level above; the mesh level's ``UNSET`` is ``PERMISSIVE``;
- ``portLevelMtls`` (keyed by the workload's port, i.e. the Service's targetPort) only
  counts in a policy with a selector, and overrides the workload's mode on that port
  (``UNSET`` there inherits too).

For clients, auto mTLS asks the server's mode only from mesh- and namespace-level
policies (``BestEffortInferServiceMTLSMode``, pilot/pkg/model/push_context.go: workload
and port policies are ignored there), so a workload-level ``DISABLE`` still receives mTLS
from auto-mTLS clients, as in Istio.
"""

from __future__ import annotations

from localmesh.istio.xds.model import MeshState

UNSET, DISABLE, PERMISSIVE, STRICT = "UNSET", "DISABLE", "PERMISSIVE", "STRICT"
MODES = (UNSET, DISABLE, PERMISSIVE, STRICT)


def _mode(value: object) -> str:
    mode = str((value or {}).get("mode") or UNSET).upper() if isinstance(value, dict) \
        else UNSET
    return mode if mode in MODES else UNSET


def _oldest(policies: list[dict]) -> dict | None:
    return min(policies, key=lambda p: (p["metadata"].get("creationTimestamp") or "",
                                        p["metadata"]["name"]), default=None)


def _selector(policy: dict) -> dict:
    return ((policy.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}


def _level(state: MeshState, namespace: str, labels: dict | None) -> dict | None:
    """The policy of one level: namespace-wide (``labels`` None) or the workload's."""
    candidates = []
    for p in state.peer_authentications:
        if p["metadata"]["namespace"] != namespace:
            continue
        sel = _selector(p)
        if labels is None and not sel:
            candidates.append(p)
        elif labels is not None and sel and all(labels.get(k) == v for k, v in sel.items()):
            candidates.append(p)
    return _oldest(candidates)


def namespace_mode(state: MeshState, namespace: str) -> str:
    """The mode of the namespace level (namespace over mesh); PERMISSIVE when unset."""
    mode = PERMISSIVE
    for ns in (state.mesh_config.root_namespace, namespace):
        policy = _level(state, ns, None)
        if policy is not None and _mode((policy.get("spec") or {}).get("mtls")) != UNSET:
            mode = _mode(policy["spec"]["mtls"])
    return mode


def workload_modes(state: MeshState, namespace: str, labels: dict) -> tuple[str, dict[int, str]]:
    """The mode a workload accepts, and its per-port overrides (port → mode)."""
    mode = namespace_mode(state, namespace)
    policy = _level(state, namespace, labels)
    ports: dict[int, str] = {}
    if policy is None:
        return mode, ports
    spec = policy.get("spec") or {}
    if _mode(spec.get("mtls")) != UNSET:
        mode = _mode(spec["mtls"])
    for port, setting in (spec.get("portLevelMtls") or {}).items():
        if str(port).isdigit() and _mode(setting) != UNSET:
            ports[int(port)] = _mode(setting)
    return mode, ports


def port_mode(state: MeshState, namespace: str, labels: dict, port: int) -> str:
    """The mode the workload accepts on one of its ports."""
    mode, ports = workload_modes(state, namespace, labels)
    return ports.get(port, mode)

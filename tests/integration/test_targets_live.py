"""The live kind and k3s targets on this machine: where their tools or a Docker engine are
missing, starting them fails with a reason a user can act on (the fixtures turn it into a
printed skip of the scenarios). Probes the machine (PATH, the Docker socket), so not a
unit test; the targets' plans are tested without either in tests/unit/test_targets.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from meshgate.targets import TargetUnavailable, make
from meshgate.targets import k3s as k3s_target
from meshgate.targets import kind as kind_target


def test_live_kind_and_k3s_are_unavailable_here_with_a_reason(tmp_path: Path) -> None:
    """On a machine without kind/Docker the fixtures turn this into a printed skip."""
    for name in ("kind", "k3s"):
        target = make(name, kubeconfig=None, context=None, state_dir=tmp_path / name)
        if name == "kind" and not kind_target.missing_tools():
            pytest.skip("kind and its tools are installed here: a live run would create one")
        if name == "k3s" and k3s_target._docker_answers() is None:
            pytest.skip("a Docker engine answers here: a live run would start k3s")
        with pytest.raises(TargetUnavailable) as caught:
            target.start()
        assert f"--target {name} needs" in str(caught.value)
        assert "--target local" in str(caught.value)

"""The profile in force: safe where the run did not create the cluster (meshgate.profiles)."""

from __future__ import annotations

import pytest

from meshgate.profiles import CLUSTER_FAULT_TAG, ProfileError, choose


@pytest.mark.parametrize(("target", "owns", "profile"), [
    ("local", True, "nightly"),
    ("kind", True, "nightly"),
    ("k3s", True, "nightly"),
    ("kubeconfig", False, "gate"),
    ("local", False, "gate"),  # a reused localmesh is someone else's
])
def test_the_default_depends_on_who_owns_the_cluster(target: str, owns: bool,
                                                     profile: str) -> None:
    chosen = choose(None, {}, target=target, owns_cluster=owns)
    assert chosen.name == profile
    assert f"--target {target}" in chosen.reason
    assert chosen.header().startswith(f"profile {profile} (")


def test_an_explicit_profile_wins_and_says_where_it_came_from() -> None:
    assert choose("nightly", {}, target="kubeconfig", owns_cluster=False).reason == \
        "from --profile"
    env = choose(None, {"MESHGATE_PROFILE": "gate"}, target="local", owns_cluster=True)
    assert (env.name, env.reason) == ("gate", "from MESHGATE_PROFILE")


def test_an_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="MESHGATE_PROFILE='weekly' is not a profile: "
                                           "choose one of gate, nightly"):
        choose(None, {"MESHGATE_PROFILE": "weekly"}, target="local", owns_cluster=True)


def test_gate_deselects_nightly_and_chaos_only() -> None:
    gate = choose("gate", {}, target="local", owns_cluster=True)
    assert gate.excludes({"chaos", "nightly"}) and gate.excludes({"nightly"})
    assert not gate.excludes({"routes", "smoke"})
    assert not choose("nightly", {}, target="local", owns_cluster=True).excludes({"chaos"})


def test_cluster_wide_faults_need_the_opt_in_on_a_cluster_the_run_did_not_create() -> None:
    shared = choose("nightly", {}, target="kubeconfig", owns_cluster=False)
    refusal = shared.refuses({"chaos", CLUSTER_FAULT_TAG})
    assert refusal is not None and "--allow-cluster-faults" in refusal
    assert shared.refuses({"chaos"}) is None  # faults inside the run's own namespaces
    assert "skipped without --allow-cluster-faults" in shared.header()
    opted = choose("nightly", {}, target="kubeconfig", owns_cluster=False,
                   allow_cluster_faults=True)
    assert opted.refuses({CLUSTER_FAULT_TAG}) is None
    owned = choose(None, {}, target="local", owns_cluster=True)
    assert owned.refuses({CLUSTER_FAULT_TAG}) is None

"""The shapes of cluster localmesh boots, chosen by flags (localmesh.shape)."""

from __future__ import annotations

import argparse

import pytest

from localmesh.shape import IMPLEMENTED, Shape, ShapeError, add_arguments, from_arguments


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_default_is_istio_with_sidecars_on_kubernetes() -> None:
    shape = from_arguments(_parse())
    assert shape == Shape() and shape.with_mesh and shape.argv() == []
    assert from_arguments(_parse("--no-mesh")).mesh == "none"


def test_a_shape_round_trips_through_the_serve_command_line() -> None:
    shape = Shape(mesh="none", synthetic_services=0)
    assert from_arguments(_parse(*shape.argv())) == shape


def test_ambient_is_built() -> None:
    """``--mesh ambient``: ztunnel and istio-cni (localmesh/istio/ambient/)."""
    shape = from_arguments(_parse("--mesh", "ambient"))
    assert shape.mesh == "ambient" and shape.with_mesh and shape.argv() == ["--mesh", "ambient"]
    assert "mesh ambient" in shape.describe()


@pytest.mark.parametrize(("argv", "says"), [
    (("--flavor", "openshift", "--mesh", "mixer"),
     "--flavor openshift with --mesh mixer is not built"),
    (("--flavor", "openshift", "--mesh", "ambient"),
     "--flavor openshift with --mesh ambient is not built"),
    (("--synthetic-services", "-1"), "negative"),
])
def test_a_shape_not_built_yet_is_refused_with_one_message(argv: tuple[str, ...],
                                                         says: str) -> None:
    flag = argv[0].lstrip("-").replace("-", "_")
    if len(argv) == 2 and flag in IMPLEMENTED and argv[1] in IMPLEMENTED[flag]:
        pytest.skip(f"{argv[0]} {argv[1]} is built now")
    with pytest.raises(ShapeError, match=says):
        from_arguments(_parse(*argv))


@pytest.mark.parametrize("argv", [("--flavor", "openshift"),
                                  ("--flavor", "openshift", "--ossm", "2"),
                                  ("--flavor", "openshift", "--no-mesh"),
                                  ("--mesh", "mixer")])
def test_the_openshift_and_mixer_shapes_boot(argv: tuple[str, ...]) -> None:
    shape = from_arguments(_parse(*argv))
    assert from_arguments(_parse(*shape.argv())) == shape

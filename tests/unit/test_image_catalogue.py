"""The image catalogue and docs/images.md say the same: every image localmesh can run is in
the document's table, and the table names no image localmesh cannot run. Aliases count
as the image they stand for."""

from __future__ import annotations

import re

from localmesh.kubelet import catalogue
from tests.support import REPO


def _documented() -> set[str]:
    text = (REPO / "docs" / "images.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([a-z0-9./_-]+)`", row.split("|")[1])}


def test_every_catalogue_image_is_documented() -> None:
    documented = _documented()
    missing = sorted(set(catalogue.CATALOGUE) - documented)
    assert not missing, f"docs/images.md does not list {missing}"


def test_every_documented_image_can_run() -> None:
    unknown = sorted(n for n in _documented() if catalogue.lookup(n) is None)
    assert not unknown, f"docs/images.md lists images the catalogue cannot run: {unknown}"


def test_names_normalise_like_docker() -> None:
    for short, full in (("nginx:1.27", "docker.io/library/nginx"),
                        ("curlimages/curl:8.10.1", "docker.io/curlimages/curl"),
                        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause")):
        assert catalogue.normalize(short) == full
    assert catalogue.lookup("k8s.gcr.io/e2e-test-images/agnhost:2.39") is catalogue.CATALOGUE[
        "registry.k8s.io/e2e-test-images/agnhost"]

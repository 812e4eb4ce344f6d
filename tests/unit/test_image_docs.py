"""docs/images.md names every image localmesh knows: each catalogue repository and each
alias, in the catalogue's table and, for the repositories, in the podman runtime's table of
what runs where. An image added to localmesh/kubelet/catalogue.py without its line in the
docs fails here, naming it."""

from __future__ import annotations

from pathlib import Path

from localmesh.kubelet.catalogue import ALIASES, CATALOGUE

DOCS = Path(__file__).resolve().parents[2] / "docs" / "images.md"


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def test_the_catalogue_table_names_every_image_and_alias() -> None:
    table = _section(DOCS.read_text(encoding="utf-8"), "## The image catalogue")
    missing = sorted(ref for ref in [*CATALOGUE, *ALIASES] if f"`{ref}`" not in table)
    assert missing == [], f"docs/images.md's image catalogue does not name {missing}"


def test_the_podman_runtime_says_where_every_catalogue_image_runs() -> None:
    table = _section(DOCS.read_text(encoding="utf-8"), "## The podman runtime")
    missing = sorted(ref for ref in CATALOGUE if f"`{ref}`" not in table)
    assert missing == [], f"docs/images.md's podman runtime does not place {missing}"

"""The step catalogue: generated from the step definitions, and docs/steps.md kept equal.

The drift test is the point of generating the catalogue: a step whose sentence changes
without docs/steps.md changing fails here, with the command that fixes it.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import pytest

from meshgate import cli
from meshgate.catalogue import (
    CatalogueError,
    Parameter,
    collect,
    readable_sentence,
    render_json,
    render_markdown,
)
from tests.support import REPO

DOCS = REPO / "docs" / "steps.md"


def test_docs_steps_md_is_the_generated_catalogue() -> None:
    generated = render_markdown(collect())
    committed = DOCS.read_text(encoding="utf-8") if DOCS.is_file() else ""
    assert committed == generated, (
        "docs/steps.md differs from the step definitions in steps/: regenerate it with "
        "`meshgate steps > docs/steps.md` (or `.venv/bin/meshgate steps > docs/steps.md`) "
        "and commit the result"
    )


def test_the_catalogue_lists_every_step_of_the_suite() -> None:
    """Every step function registered by the steps package appears, nothing else."""
    modules = collect()
    names = {m.module for m in modules}
    assert names and all(n.startswith("steps.") for n in names)
    assert not any(n.startswith("steps.test_") for n in names)
    steps = [s for m in modules for s in m.steps]
    assert all(s.keyword in ("Given", "When", "Then", "Step") for s in steps)
    assert all(s.function.startswith(s.module + ".") for s in steps)
    assert "trace" not in {s.sentence for s in steps}  # pytest-bdd's own step is not ours


# --------------------------------------------------------------------------- synthetic


@pytest.fixture
def steps_package(tmp_path: Path) -> Path:
    """A steps package of its own name, so it cannot collide with the suite's ``steps``."""
    package = tmp_path / f"catalogue_steps_{uuid.uuid4().hex[:8]}"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "alpha.py").write_text(textwrap.dedent('''\
        """Steps about alpha things.

        More words that the catalogue leaves out.
        """
        from pytest_bdd import given, parsers, step, then, when


        @given(parsers.re(r"the (?P<name>[a-z0-9-]+) workload \\(v(?P<version>\\d+)\\) is up"))
        def workload_up(name, version):
            """Deploys the workload and waits for it.

            Second paragraph kept.
            """


        @when(parsers.parse('{count:d} requests are sent to "{path}"'))
        @when(parsers.parse('{count:d} request is sent to "{path}"'))
        def send(count, path):
            """Sends requests."""


        @then(parsers.cfparse("the rate is {rate:Number} per {unit}",
                              extra_types={"Number": float}), target_fixture="rate")
        def rate_is(rate, unit):
            return rate


        @then("the table matches:")
        def table(datatable):
            """Compares a table."""


        @step(parsers.parse("anything {{literal}} goes"))
        def anything(docstring):
            """Any keyword."""
        '''))
    (package / "beta.py").write_text(textwrap.dedent('''\
        """Steps about beta."""
        from pytest_bdd import then


        @then("beta holds")
        def beta_holds():
            """Beta."""
        '''))
    (package / "test_bind.py").write_text("raise RuntimeError('must not be imported')\n")
    return package


def test_synthetic_package_is_read_in_source_order(steps_package: Path) -> None:
    modules = collect(steps_package)
    assert [m.short for m in modules] == ["alpha", "beta"]
    alpha = modules[0]
    assert alpha.doc == "Steps about alpha things."
    assert alpha.path == f"{steps_package.name}/alpha.py"
    sentences = [(s.keyword, s.sentence) for s in alpha.steps]
    assert sentences == [
        ("Given", "the <name> workload (v<version>) is up"),
        ("When", '<count> requests are sent to "<path>"'),
        ("When", '<count> request is sent to "<path>"'),
        ("Then", "the rate is <rate> per <unit>"),
        ("Then", "the table matches:"),
        ("Step", "anything {literal} goes"),
    ]
    given = alpha.steps[0]
    assert given.parameters == (
        Parameter("name", "text matching a regular expression", "[a-z0-9-]+"),
        Parameter("version", "text matching a regular expression", r"\d+"))
    assert given.doc == "Deploys the workload and waits for it.\n\nSecond paragraph kept."
    assert given.parser == "re" and given.function.endswith(".alpha.workload_up")
    rate = alpha.steps[3]
    assert rate.target_fixture == "rate" and rate.parser == "cfparse"
    assert rate.parameters == (Parameter("rate", "Number (custom type)"),
                               Parameter("unit", "text"))
    assert alpha.steps[4].datatable and alpha.steps[5].docstring


def test_markdown_and_json_renderings(steps_package: Path) -> None:
    modules = collect(steps_package)
    text = render_markdown(modules, steps_dir_name=steps_package.name)
    assert text.startswith("# Step catalogue\n")
    assert "| Given | `the <name> workload (v<version>) is up` | [alpha](#alpha) |" in text
    assert "### `When <count> requests are sent to \"<path>\"`" in text
    assert "- `<count>`: integer" in text
    assert "- `<name>`: text matching a regular expression `[a-z0-9-]+`" in text
    assert "- provides the fixture `rate`" in text
    assert "- takes a data table" in text and "- takes a doc string" in text
    assert "*(no docstring" in text  # rate_is has none, and the catalogue says so
    assert "\n\n\n" not in text and text.endswith("\n")
    assert str(steps_package) not in text  # no absolute paths: the copy must be portable
    data = render_json(modules)
    assert [d["sentence"] for d in data][-1] == "beta holds"
    json.dumps(data)


@pytest.mark.parametrize(("pattern", "sentence"), [
    (r"^the (?P<a>x(?:y|z)+) and (?P<b>[()]+) end$", "the <a> and <b> end"),
    (r"costs \$(?P<n>\d+)\.", "costs $<n>."),
])
def test_regex_sentences(pattern: str, sentence: str) -> None:
    from pytest_bdd import parsers

    assert readable_sentence(parsers.re(pattern))[1] == sentence


def test_cli_prints_the_catalogue(steps_package: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["steps", "--steps-dir", str(steps_package)]) == 0
    out = capsys.readouterr().out
    assert out == render_markdown(collect(steps_package), steps_dir_name=steps_package.name)
    assert cli.main(["steps", "--steps-dir", str(steps_package), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 7


def test_cli_reports_a_missing_steps_folder_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["steps", "--steps-dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("meshgate steps: error: no steps folder")


def test_a_broken_step_module_is_named(tmp_path: Path) -> None:
    package = tmp_path / f"broken_steps_{uuid.uuid4().hex[:8]}"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "bad.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(CatalogueError, match=r"cannot import .*\.bad .*ModuleNotFoundError"):
        collect(package)

"""The step catalogue: every sentence a feature file can use, generated from the step code.

Reviewers write and read ``.feature`` files without opening Python, so they need the
list of sentences the suite understands, with their parameters and what each checks.
Hand-written lists drift from the code; this one is generated (kubedog's ``syntax.md``
idea): import the step modules, ask pytest-bdd which step functions they registered
(their Given/When/Then type, parser pattern, target fixture) and render the docstrings.
``meshgate steps`` prints it; ``docs/steps.md`` is the committed copy, which
tests/unit/test_catalogue.py keeps equal to the generated text.

The output has no line numbers, timestamps or absolute paths, so it only changes when a
step changes.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CatalogueError",
    "ModuleSteps",
    "Parameter",
    "StepDefinition",
    "collect",
    "default_steps_dir",
    "readable_sentence",
    "render_json",
    "render_markdown",
]

KEYWORDS = {"given": "Given", "when": "When", "then": "Then", None: "Step"}
KEYWORD_ORDER = {"Given": 0, "When": 1, "Then": 2, "Step": 3}

# parse's format types, as a reader of the catalogue would name them.
PARSE_TYPES = {
    "": "text", "d": "integer", "n": "integer (with thousands separators)",
    "f": "decimal number", "F": "decimal number", "g": "number", "e": "number",
    "w": "word", "W": "non-letters", "l": "letters", "S": "non-space text",
    "s": "whitespace", "%": "percentage", "ti": "ISO 8601 time", "te": "e-mail date",
    "tg": "date/time", "ta": "US date/time", "tc": "ctime date", "th": "HTTP log date",
    "ts": "Linux log date", "tt": "time",
}


class CatalogueError(RuntimeError):
    """The step modules cannot be found or imported; the message says which and why."""


@dataclass(frozen=True)
class Parameter:
    """A parameter of a step sentence and what text it matches."""

    name: str
    matches: str
    regex: str | None = None  # for parsers.re: the group's own pattern


@dataclass(frozen=True)
class StepDefinition:
    """One sentence a feature file can use, and the function that implements it."""

    keyword: str  # Given, When, Then, or Step (matches any)
    sentence: str  # readable form, parameters as <name>
    pattern: str  # the pattern exactly as written in the code
    parser: str  # parse, cfparse, re or string
    parameters: tuple[Parameter, ...]
    function: str  # module.qualname
    module: str
    doc: str
    target_fixture: str | None = None
    datatable: bool = False  # the function takes the step's data table
    docstring: bool = False  # the function takes the step's doc string

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["parameters"] = [asdict(p) for p in self.parameters]
        return data


@dataclass
class ModuleSteps:
    """The steps of one module of the steps package, in source order."""

    module: str
    path: str  # relative to the repository, e.g. steps/routes.py
    doc: str
    steps: list[StepDefinition] = field(default_factory=list)

    @property
    def short(self) -> str:
        return self.module.rsplit(".", 1)[-1]


def default_steps_dir() -> Path:
    """``steps/`` of the checkout this meshgate was imported from."""
    return Path(__file__).resolve().parents[1] / "steps"


# --------------------------------------------------------------------------- patterns


def _group_end(pattern: str, start: int) -> int:
    """Index just past the group that opens at ``pattern[start] == "("``."""
    depth, i = 0, start
    in_class = False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(pattern)


def _regex_parts(pattern: str) -> tuple[str, list[Parameter]]:
    out, params, i = [], [], 0
    while i < len(pattern):
        if pattern.startswith("(?P<", i):
            end = _group_end(pattern, i)
            name_end = pattern.index(">", i)
            name = pattern[i + 4:name_end]
            params.append(Parameter(name, "text matching a regular expression",
                                    pattern[name_end + 1:end - 1]))
            out.append(f"<{name}>")
            i = end
            continue
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and not pattern[i + 1].isalnum():
            out.append(pattern[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    text = "".join(out)
    text = text.removeprefix("^").removesuffix("$")
    return text, params


_FIELD = re.compile(r"\{\{|\}\}|\{([^{}:]*)(?::([^{}]*))?\}")


def _parse_parts(pattern: str, custom: bool) -> tuple[str, list[Parameter]]:
    params: list[Parameter] = []

    def field(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole in ("{{", "}}"):
            return whole[0]
        name, spec = match.group(1) or "", match.group(2) or ""
        kind = re.sub(r"^[^a-zA-Z%]*", "", spec)  # drop fill, alignment, width
        if custom and kind and kind not in PARSE_TYPES:
            matches = f"{kind} (custom type)"
        else:
            matches = PARSE_TYPES.get(kind, f"format {spec!r}")
        label = name or f"arg{len(params) + 1}"
        params.append(Parameter(label, matches))
        return f"<{label}>"

    return _FIELD.sub(field, pattern), params


def readable_sentence(parser: Any) -> tuple[str, str, tuple[Parameter, ...]]:
    """``(parser kind, sentence with <name> placeholders, parameters)`` of a step parser."""
    kind = type(parser).__name__
    raw = getattr(parser, "name", str(parser))
    if kind == "re":
        sentence, params = _regex_parts(raw)
    elif kind in ("parse", "cfparse"):
        sentence, params = _parse_parts(raw, custom=kind == "cfparse")
    else:
        sentence, params = raw, []
    return kind, sentence, tuple(params)


# --------------------------------------------------------------------------- collecting


def _first_paragraph(doc: str | None) -> str:
    text = inspect.cleandoc(doc or "")
    return text.split("\n\n", 1)[0].replace("\n", " ").strip()


def _import_modules(steps_dir: Path) -> list[Any]:
    if not steps_dir.is_dir():
        raise CatalogueError(f"no steps folder at {steps_dir}: pass --steps-dir with the "
                             "folder that holds the step modules")
    package = steps_dir.name
    parent = str(steps_dir.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    loaded = sys.modules.get(package)
    loaded_from = getattr(loaded, "__file__", None)
    if loaded_from and Path(loaded_from).resolve().parent != steps_dir.resolve():
        raise CatalogueError(f"another package named {package!r} is already imported "
                             f"(from {loaded_from}); run `meshgate steps` in a fresh process")
    modules = []
    for path in sorted(steps_dir.glob("*.py")):
        if path.stem == "__init__" or path.stem.startswith("test_"):
            continue  # test_*.py only bind scenarios; importing them collects nothing new
        name = f"{package}.{path.stem}"
        try:
            modules.append(importlib.import_module(name))
        except Exception as exc:
            raise CatalogueError(f"cannot import {name} ({path}): "
                                 f"{exc.__class__.__name__}: {exc}") from exc
    return modules


def _takes(func: Callable[..., object], name: str) -> bool:
    try:
        return name in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def collect(steps_dir: Path | None = None) -> list[ModuleSteps]:
    """Import the step modules and return their registered steps, module by module."""
    from pytest_bdd.steps import step_function_context_registry

    steps_dir = (steps_dir or default_steps_dir()).resolve()
    modules = _import_modules(steps_dir)
    by_module: dict[str, list[Any]] = {m.__name__: [] for m in modules}
    for context in list(step_function_context_registry.values()):
        module = getattr(context.step_func, "__module__", None)
        if module in by_module:
            by_module[module].append(context)

    out = []
    for module in modules:
        contexts = by_module[module.__name__]
        # Decorators register bottom-up; show a function's sentences top-down as written.
        order: dict[Callable[..., object], list[Any]] = {}
        for context in contexts:
            order.setdefault(context.step_func, []).insert(0, context)
        funcs = sorted(order, key=lambda f: getattr(getattr(f, "__code__", None),
                                                    "co_firstlineno", 0))
        path = Path(module.__file__).resolve()
        entry = ModuleSteps(
            module=module.__name__,
            path=f"{steps_dir.name}/{path.relative_to(steps_dir).as_posix()}",
            doc=_first_paragraph(module.__doc__),
        )
        for func in funcs:
            for context in order[func]:
                kind, sentence, params = readable_sentence(context.parser)
                entry.steps.append(StepDefinition(
                    keyword=KEYWORDS.get(context.type, "Step"),
                    sentence=sentence,
                    pattern=getattr(context.parser, "name", sentence),
                    parser=kind,
                    parameters=params,
                    function=f"{module.__name__}.{func.__qualname__}",
                    module=module.__name__,
                    doc=inspect.cleandoc(func.__doc__ or ""),
                    target_fixture=context.target_fixture,
                    datatable=_takes(func, "datatable"),
                    docstring=_takes(func, "docstring"),
                ))
        if entry.steps:
            out.append(entry)
    return out


# --------------------------------------------------------------------------- rendering


def _code(text: str) -> str:
    """A Markdown code span that survives backticks inside it."""
    ticks = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(modules: Iterable[ModuleSteps], *, steps_dir_name: str = "steps") -> str:
    """The catalogue as Markdown (what docs/steps.md holds)."""
    modules = list(modules)
    total = sum(len(m.steps) for m in modules)
    lines = [
        "# Step catalogue",
        "",
        "<!-- Generated by `meshgate steps` from the step definitions; do not edit by hand. -->",
        "",
        f"Every sentence the feature files can use: {total} steps in {len(modules)} modules "
        f"of `{steps_dir_name}/`, generated from the step definitions (their pattern, their "
        "Given/When/Then type and their docstring). A `<name>` is a parameter; the list under "
        "each step says what text it matches. In a feature, `And` and `But` continue the "
        "keyword before them.",
        "",
        "After changing a step, regenerate this file with `meshgate steps > docs/steps.md`; "
        "tests/unit/test_catalogue.py fails while it is out of date.",
        "",
        "| Keyword | Sentence | Module |",
        "|---|---|---|",
    ]
    for module in modules:
        for step in sorted(module.steps, key=lambda s: KEYWORD_ORDER.get(s.keyword, 9)):
            lines.append(f"| {step.keyword} | {_cell(_code(step.sentence))} | "
                         f"[{module.short}](#{module.short}) |")
    for module in modules:
        lines += ["", f"## {module.short}", ""]
        lines += [f"{_code(module.path)}" + (f" — {module.doc}" if module.doc else ""), ""]
        for step in module.steps:
            lines += [f"### {_code(f'{step.keyword} {step.sentence}')}", ""]
            lines += [step.doc if step.doc else "*(no docstring: say what this step checks "
                                                 "in its function's docstring)*", ""]
            facts = []
            for param in step.parameters:
                regex = f" {_code(param.regex)}" if param.regex is not None else ""
                facts.append(f"- {_code(f'<{param.name}>')}: {param.matches}{regex}")
            if step.datatable:
                facts.append("- takes a data table (the rows under the step)")
            if step.docstring:
                facts.append("- takes a doc string (the `\"\"\"` block under the step)")
            if step.target_fixture:
                facts.append(f"- provides the fixture {_code(step.target_fixture)}")
            facts.append(f"- defined by {_code(step.function)} with "
                         f"`parsers.{step.parser}` {_code(step.pattern)}")
            lines += [*facts, ""]
    text = "\n".join(lines).rstrip() + "\n"
    return re.sub(r"\n{3,}", "\n\n", text)


def render_json(modules: Iterable[ModuleSteps]) -> list[dict[str, Any]]:
    """The catalogue as a JSON-able list, one object per step."""
    return [step.to_json() for module in modules for step in module.steps]

"""The ``meshgate`` command line.

Each subcommand is one entry in SUBCOMMANDS: a function that adds its arguments and a
function that runs it and returns the exit code. To add one (``run``, ``steps``,
``sweep``, ``bench``, ``soak``, ...), write those two functions and append a Subcommand;
import heavy modules inside the run function so that ``meshgate routes`` stays instant.

Errors the user can fix are raised as CommandError and printed as a single line,
``meshgate <command>: error: <what>, in <where>: <what to do>``, with exit code 2 (the
same code argparse uses for usage errors); a traceback would only bury the one fact
that matters.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SUBCOMMANDS", "CommandError", "Subcommand", "build_parser", "main"]

PROG = "meshgate"
USAGE_ERROR = 2


class CommandError(Exception):
    """A failure the user can fix; main() prints it as one line and exits with 2."""

    def __init__(self, what: str, where: str | None = None, todo: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.where = where
        self.todo = todo

    def line(self, command: str) -> str:
        """The one-line message, e.g. ``meshgate routes: error: X, in F: do Y``."""
        text = f"{PROG} {command}: error: {self.what}"
        if self.where:
            text += f", in {self.where}"
        if self.todo:
            text += f": {self.todo}"
        return " ".join(text.splitlines())  # one line whatever the parts contained


@dataclass(frozen=True)
class Subcommand:
    """A subcommand: its name, one-line help, argument setup and implementation."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# --------------------------------------------------------------------------- shared helpers


def source_name(path: str) -> str:
    """How an input is named in messages (``-`` means standard input)."""
    return "<stdin>" if path == "-" else path


def read_input(path: str, what: str, todo: str) -> str:
    """Read a text file (``-`` for stdin), turning OS errors into one-line CommandErrors."""
    try:
        if path != "-":
            return Path(path).read_text(encoding="utf-8-sig")
        raw = getattr(sys.stdin, "buffer", None)  # bytes, so bad encodings are caught here
        return raw.read().decode("utf-8-sig") if raw is not None else sys.stdin.read()
    except FileNotFoundError:
        raise CommandError("file not found", path, f"check the path, or {todo}") from None
    except IsADirectoryError:
        raise CommandError("is a directory, not a file", path, f"pass the {what} file") from None
    except PermissionError:
        raise CommandError("permission denied", path, "make the file readable") from None
    except UnicodeDecodeError as error:
        raise CommandError(
            f"not UTF-8 text (byte {error.start})", source_name(path),
            f"pass the {what} as JSON or YAML",
        ) from None
    except OSError as error:
        raise CommandError(error.strerror or str(error), path, todo) from None


def print_json(items: Sequence[Any]) -> None:
    """Machine output: a JSON list, indented so that diffs of saved outputs are readable."""
    print(json.dumps(list(items), indent=2, default=str))


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Human output: columns padded to their widest cell, two spaces apart."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    for row in (header, *rows):
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


# --------------------------------------------------------------------------- routes

_DUMP_HINT = (
    "pass a dump saved with 'kubectl exec POD -c istio-proxy -- pilot-agent request GET"
    " config_dump' or 'istioctl proxy-config routes POD -o json'"
)


def configure_routes(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``meshgate routes``."""
    parser.add_argument(
        "--config-dump", required=True, metavar="FILE",
        help="Envoy config dump (JSON or YAML; '-' reads stdin)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list")


def run_routes(args: argparse.Namespace) -> int:
    """List every route entry of every route config in a saved config dump."""
    from meshgate.config_dump import ConfigDumpError, load_config_dump, route_entries

    text = read_input(args.config_dump, "config dump", _DUMP_HINT)
    source = source_name(args.config_dump)
    try:
        entries = route_entries(load_config_dump(text))
    except ConfigDumpError as error:
        raise CommandError(str(error), source, _DUMP_HINT) from None
    if args.json:
        print_json([entry.to_json() for entry in entries])
        return 0
    rows = [
        [
            entry.route_config or "-",
            entry.virtual_host or "-",
            _domains_cell(entry.domains),
            _match_cell(entry.match),
            _cluster_cell(entry.cluster),
        ]
        for entry in entries
    ]
    print_table(["ROUTE CONFIG", "VIRTUAL HOST", "DOMAINS", "MATCH", "CLUSTER"], rows)
    return 0


def _domains_cell(domains: Sequence[str]) -> str:
    if not domains:
        return "-"
    more = f" (+{len(domains) - 1} more)" if len(domains) > 1 else ""
    return f"{domains[0]}{more}"


def _match_cell(match: dict[str, Any]) -> str:
    if not match:
        return "-"
    ((kind, value),) = match.items()
    shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return f"{kind} {shown}"


def _cluster_cell(cluster: str | list[str] | None) -> str:
    if cluster is None:
        return "-"
    if isinstance(cluster, list):
        return "weighted: " + ", ".join(cluster)
    return cluster


# --------------------------------------------------------------------------- edges

_GRAPH_HINT = (
    "pass a response saved from Kiali's"
    " /kiali/api/namespaces/graph?namespaces=NS&graphType=workload"
)


def configure_edges(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``meshgate edges``."""
    parser.add_argument(
        "--kiali-graph", required=True, metavar="FILE",
        help="Kiali graph API response (JSON or YAML; '-' reads stdin)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list")


def run_edges(args: argparse.Namespace) -> int:
    """List the edges of a saved Kiali graph with their nodes' names, protocol and rate."""
    import yaml

    from meshgate.graph import GraphError, edges_from_kiali

    text = read_input(args.kiali_graph, "Kiali graph", _GRAPH_HINT)
    source = source_name(args.kiali_graph)
    todo = _GRAPH_HINT
    if not text.strip():
        raise CommandError("empty file", source, todo)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as json_error:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            raise CommandError(
                f"not valid JSON ({json_error.msg} at line {json_error.lineno} "
                f"column {json_error.colno})", source, todo
            ) from None
    try:
        edges = edges_from_kiali(doc)
    except GraphError as error:
        raise CommandError(str(error), source, todo) from None
    if args.json:
        print_json([edge.to_json() for edge in edges])
        return 0
    rows = [
        [
            edge.source.label(),
            edge.target.label(),
            edge.protocol or "-",
            "-" if edge.rate is None else f"{edge.rate:g}",
        ]
        for edge in edges
    ]
    print_table(["SOURCE", "TARGET", "PROTOCOL", "RATE"], rows)
    return 0


# --------------------------------------------------------------------------- wiring

SUBCOMMANDS: list[Subcommand] = [
    Subcommand(
        "routes",
        "list the route entries of a saved Envoy config dump",
        configure_routes,
        run_routes,
    ),
    Subcommand(
        "edges",
        "list the edges of a saved Kiali graph",
        configure_edges,
        run_edges,
    ),
]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per entry of SUBCOMMANDS."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Acceptance checks and inspection tools for Istio service meshes."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for sub in SUBCOMMANDS:
        sub_parser = commands.add_parser(sub.name, help=sub.help, description=sub.help)
        sub.configure(sub_parser)
        sub_parser.set_defaults(subcommand=sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code (never raises SystemExit itself).

    Returning the code instead of exiting lets tests and other tools call ``main([...])``
    in-process and look at the result.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has already printed usage and the error
        if exit_.code is None:
            return 0
        return exit_.code if isinstance(exit_.code, int) else USAGE_ERROR
    sub: Subcommand = args.subcommand
    try:
        return sub.run(args)
    except CommandError as error:
        print(error.line(sub.name), file=sys.stderr)
        return USAGE_ERROR
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away; stop quietly like other Unix tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1

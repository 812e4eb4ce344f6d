"""The ``meshgate`` command line.

Each subcommand is one Subcommand entry: a function that adds its arguments and a
function that runs it and returns the exit code. The entries live in two lists of this
module, in the order ``--help`` shows them: SUBCOMMANDS, the offline inspection commands
(``routes``, ``edges``: files in, JSON out, no cluster), and SUITE_COMMANDS, the commands
that drive the suite or a cluster (``run``, ``sweep``, ``steps``). To add one, write those
two functions and append a Subcommand to the list it belongs to; import heavy modules
inside the run function so that ``meshgate routes`` stays instant.

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

__all__ = ["SUBCOMMANDS", "SUITE_COMMANDS", "CommandError", "Subcommand", "build_parser",
           "main"]

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
    # True for commands that hand unknown arguments on (``meshgate run`` to pytest); they
    # arrive in ``args.passthrough``. Elsewhere an unknown argument is a usage error.
    passthrough: bool = False


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


# --------------------------------------------------------------------------- run


def repository_root() -> Path:
    """The checkout this meshgate runs from: it holds conftest.py, steps/ and features/."""
    return Path(__file__).resolve().parents[1]


def configure_run(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``meshgate run``; everything else goes to pytest unchanged."""
    from meshgate.targets import TARGETS

    parser.add_argument(
        "--target", metavar="NAME",
        help=f"where the cluster comes from: {', '.join(TARGETS)} (default: local)",
    )
    parser.add_argument("--kubeconfig", metavar="FILE",
                        help="kubeconfig of the cluster (or of a running localmesh to reuse)")
    parser.add_argument("--kube-context", metavar="NAME", help="kubeconfig context to use")
    parser.add_argument("--print-command", action="store_true",
                        help="print the pytest command line instead of running it")
    parser.epilog = (
        "Other arguments go to pytest unchanged, e.g. 'meshgate run --target kind -n 2 -m "
        "smoke --junitxml=artifacts/junit.xml'. The exit code is pytest's."
    )


def _names_tests(args: Sequence[str]) -> bool:
    """Does the pytest argument list name tests itself (a path or node id)?"""
    for arg in args:
        if arg.startswith("-"):
            continue
        path = arg.split("::", 1)[0]
        if path.endswith(".py") or "::" in arg or Path(path).exists():
            return True
    return False


def _check_target(name: str) -> None:
    import difflib

    from meshgate.targets import TARGETS

    if name in TARGETS:
        return
    close = difflib.get_close_matches(name, TARGETS, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise CommandError(f"unknown target {name!r}{hint}", None,
                       f"choose one of {', '.join(TARGETS)}")


def pytest_command(args: argparse.Namespace, root: Path | None = None,
                   python: str | None = None) -> list[str]:
    """The pytest command line ``meshgate run`` executes (``pytest <root>/steps ...``)."""
    root = root or repository_root()
    extra = list(getattr(args, "passthrough", None) or [])
    if "--" in extra:  # "meshgate run [ours] -- [pytest's]": the separator is ours
        extra.remove("--")
    if args.target is not None:
        _check_target(args.target)
    if args.kubeconfig is not None and not Path(args.kubeconfig).is_file():
        raise CommandError("kubeconfig not found", args.kubeconfig,
                           "pass the path of a kubeconfig file (or omit --kubeconfig)")
    command = [python or sys.executable, "-m", "pytest"]
    if not _names_tests(extra):
        steps = root / "steps"
        if not steps.is_dir() or not (root / "conftest.py").is_file():
            raise CommandError("the acceptance suite (conftest.py, steps/) is not beside this "
                               "meshgate", str(root),
                               "run meshgate from a checkout installed with 'pip install -e .'")
        command.append(str(steps))
    if args.target is not None:
        command += ["--target", args.target]
    if args.kubeconfig is not None:
        command += ["--kubeconfig", args.kubeconfig]
    if args.kube_context is not None:
        command += ["--kube-context", args.kube_context]
    return command + extra


def execute(command: Sequence[str]) -> int:
    """Run a child process in the foreground and return its exit code.

    Ctrl-C reaches the child too (same process group); we wait for it so that its own
    cleanup (namespaces, the local mesh) finishes before the prompt comes back.
    """
    import subprocess

    try:
        process = subprocess.Popen(list(command))
    except OSError as error:
        raise CommandError(f"cannot start {command[0]}: {error.strerror or error}", None,
                           "check the Python installation") from None
    try:
        return process.wait()
    except KeyboardInterrupt:
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.kill()
            return 130


def run_run(args: argparse.Namespace) -> int:
    """Run the acceptance suite (pytest on steps/) against the chosen target."""
    import shlex

    command = pytest_command(args)
    if args.print_command:
        print(shlex.join(command))
        return 0
    return execute(command)


# --------------------------------------------------------------------------- sweep


def configure_sweep(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``meshgate sweep``."""
    parser.add_argument("--kubeconfig", metavar="FILE",
                        help="kubeconfig of the cluster (default: KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--kube-context", metavar="NAME", help="kubeconfig context to use")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the namespaces that would be deleted, delete nothing")


def run_sweep(args: argparse.Namespace) -> int:
    """Delete the scenario namespaces whose expiry label has passed (leftovers of runs)."""
    from meshgate import namespaces
    from meshgate.cluster import Cluster, ClusterError

    if args.kubeconfig is not None and not Path(args.kubeconfig).is_file():
        raise CommandError("kubeconfig not found", args.kubeconfig,
                           "pass the path of a kubeconfig file with --kubeconfig")
    try:
        cluster = Cluster(Path(args.kubeconfig) if args.kubeconfig else None,
                          args.kube_context)
        names = namespaces.expired(cluster)
    except ClusterError as error:
        raise CommandError(str(error)) from None
    if not names:
        print("no expired meshgate namespaces")
        return 0
    failed = 0
    for name in names:
        if args.dry_run:
            print(f"would delete namespace {name}")
            continue
        try:
            namespaces.delete(cluster, name)
        except ClusterError as error:
            failed += 1
            print(f"{PROG} sweep: could not delete namespace {name}: {error}", file=sys.stderr)
            continue
        print(f"deleted namespace {name}")
    return 1 if failed else 0


# --------------------------------------------------------------------------- steps


def configure_steps(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``meshgate steps``."""
    parser.add_argument("--json", action="store_true", help="print a JSON list of the steps")
    parser.add_argument("--steps-dir", metavar="DIR",
                        help="folder of the step modules (default: steps/ of this checkout)")


def run_steps(args: argparse.Namespace) -> int:
    """Print the step catalogue, generated from the step definitions."""
    from meshgate.catalogue import CatalogueError, collect, render_json, render_markdown

    steps_dir = Path(args.steps_dir) if args.steps_dir else None
    try:
        modules = collect(steps_dir)
    except CatalogueError as error:
        raise CommandError(str(error)) from None
    if args.json:
        print_json(render_json(modules))
        return 0
    sys.stdout.write(render_markdown(modules, steps_dir_name=(steps_dir or Path("steps")).name))
    return 0


# --------------------------------------------------------------------------- bench, soak


def configure_bench(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``meshgate bench`` (other arguments go to pytest)."""
    parser.add_argument("--keep-artifacts", metavar="DIR", default=None,
                        help="keep the run's reports and convergence logs in DIR")
    parser.add_argument("--workers", metavar="N,M", default=None,
                        help="compare xdist worker counts, e.g. 0,2 (runs alternate)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per worker count with --workers (default 1)")


def _worker_counts(text: str) -> list[str]:
    counts = [c.strip() for c in text.split(",") if c.strip()]
    if len(counts) < 2 or any(not c.isdigit() or int(c) > 64 for c in counts):
        raise CommandError(f"--workers {text!r} is not a list of worker counts", None,
                           "give two or more counts from 0 to 64, e.g. --workers 0,2")
    return counts


def run_bench(args: argparse.Namespace) -> int:
    """The whole suite on localmesh from cold, with the numbers that matter."""
    from meshgate.bench import bench, compare

    extra = list(getattr(args, "passthrough", None) or [])
    if not 1 <= args.repeat <= 50:
        raise CommandError(f"--repeat {args.repeat} is out of range", None,
                           "give a number of runs from 1 to 50")
    if args.workers is not None:
        if any(a in ("-n", "--numprocesses") or a.startswith(("-n", "--numprocesses="))
               for a in extra):
            raise CommandError("both --workers and pytest's -n were given", None,
                               "give the worker counts to compare in --workers only")
        if args.keep_artifacts:
            raise CommandError("--keep-artifacts keeps one run; --workers makes several",
                               None, "drop one of the two options")
        code, text = compare(extra, _worker_counts(args.workers), args.repeat)
    else:
        code, text = bench(extra, Path(args.keep_artifacts) if args.keep_artifacts else None)
    print(text)
    return code


def configure_soak(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``meshgate soak`` (other arguments go to pytest)."""
    parser.add_argument("--runs", type=int, default=20, help="how many runs (default 20)")
    parser.add_argument("--artifacts", default="artifacts/soak",
                        help="where each run's reports and failure bundles go")


def run_soak(args: argparse.Namespace) -> int:
    """The suite N times against one localmesh; passes, failures and their bundles."""
    from meshgate.soak import soak

    if args.runs < 1 or args.runs > 500:
        raise CommandError(f"--runs {args.runs} is out of range", None,
                           "give a number of runs from 1 to 500")
    report = soak(args.runs, list(getattr(args, "passthrough", None) or []),
                  Path(args.artifacts).resolve())
    print(report.format())
    return 0 if report.passed == len(report.runs) else 1


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

SUITE_COMMANDS: list[Subcommand] = [
    Subcommand(
        "run",
        "run the acceptance suite against a target (other arguments go to pytest)",
        configure_run,
        run_run,
        passthrough=True,
    ),
    Subcommand(
        "sweep",
        "delete expired scenario namespaces left behind by interrupted runs",
        configure_sweep,
        run_sweep,
    ),
    Subcommand(
        "steps",
        "print the step catalogue (Markdown) generated from the step definitions",
        configure_steps,
        run_steps,
    ),
    Subcommand(
        "bench",
        "run the suite on localmesh from cold and print its timings and overhead ratio",
        configure_bench,
        run_bench,
        passthrough=True,
    ),
    Subcommand(
        "soak",
        "run the suite N times against one localmesh and report every failure",
        configure_soak,
        run_soak,
        passthrough=True,
    ),
]


def version() -> str:
    """The installed distribution's version (the package's when not installed)."""
    try:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        return dist_version("meshgate")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per entry of SUBCOMMANDS and SUITE_COMMANDS."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Acceptance checks and inspection tools for Istio service meshes."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for sub in (*SUBCOMMANDS, *SUITE_COMMANDS):
        # No abbreviations where arguments pass through: pytest's --k... must not be
        # taken for one of ours.
        sub_parser = commands.add_parser(sub.name, help=sub.help, description=sub.help,
                                         allow_abbrev=not sub.passthrough)
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
        args, extra = parser.parse_known_args(argv)
        if extra and not args.subcommand.passthrough:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        # `meshgate bench -- --profile gate`: a leading "--" only separates our options
        # from pytest's (as in tox); given to pytest it would turn them into file names.
        args.passthrough = extra[1:] if extra[:1] == ["--"] else extra
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

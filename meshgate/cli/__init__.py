"""The ``meshgate`` command line.

Each subcommand is one Subcommand entry (meshgate.cli.base): a function that adds its
arguments and a function that runs it and returns the exit code. The entries live in two
lists of this module, in the order ``--help`` shows them: SUBCOMMANDS, the offline
inspection commands (``routes``, ``edges``: files in, JSON out, no cluster;
meshgate.cli.inspect), and SUITE_COMMANDS, the commands that drive the suite or a cluster
(``run``, ``sweep``, ``steps`` in meshgate.cli.suite; ``bench``, ``soak`` in
meshgate.cli.measure). To add one, write those two functions in the module it belongs to
and append a Subcommand to its list here; import heavy modules inside the run function so
that ``meshgate routes`` stays instant.

Errors the user can fix are raised as CommandError and printed as one line with exit code
2. A SIGINT, SIGTERM or SIGHUP stops a command after its cleanup, with exit code 128 + the
signal (meshgate.children).
"""

from __future__ import annotations

import argparse
import os
import sys

from meshgate import children
from meshgate.cli.base import PROG, USAGE_ERROR, CommandError, Subcommand
from meshgate.cli.gate_change import configure_change, run_change
from meshgate.cli.images import configure_smoke_image, run_smoke_image
from meshgate.cli.inspect import configure_edges, configure_routes, run_edges, run_routes
from meshgate.cli.measure import (
    configure_bench,
    configure_soak,
    configure_trend,
    run_bench,
    run_soak,
    run_trend,
)
from meshgate.cli.suite import (
    configure_run,
    configure_steps,
    configure_sweep,
    run_run,
    run_steps,
    run_sweep,
)

__all__ = ["SUBCOMMANDS", "SUITE_COMMANDS", "USAGE_ERROR", "CommandError", "Subcommand",
           "build_parser", "main"]

SUBCOMMANDS: list[Subcommand] = [
    Subcommand("routes", "list the route entries of a saved Envoy config dump",
               configure_routes, run_routes),
    Subcommand("edges", "list the edges of a saved Kiali graph (or draw it: --svg, --dot)",
               configure_edges, run_edges),
]

SUITE_COMMANDS: list[Subcommand] = [
    Subcommand("run", "run the acceptance suite against a target (other arguments go to "
               "pytest)", configure_run, run_run, passthrough=True),
    Subcommand("change", "gate a change: checks, live traffic through COMMAND, checks and the "
               "disruption after", configure_change, run_change, passthrough=True),
    Subcommand("sweep", "delete expired scenario namespaces left behind by interrupted runs",
               configure_sweep, run_sweep),
    Subcommand("steps", "print the step catalogue (Markdown) generated from the step "
               "definitions", configure_steps, run_steps),
    Subcommand("bench", "run the suite on localmesh from cold and print its timings and "
               "overhead ratio", configure_bench, run_bench, passthrough=True),
    Subcommand("soak", "run the suite N times against one localmesh and report every "
               "failure", configure_soak, run_soak, passthrough=True),
    Subcommand("trend", "chart the nightly runs kept with --history and flag regressions",
               configure_trend, run_trend),
    Subcommand("smoke-image", "start the workloads image's programs in containers (as an "
               "arbitrary UID, read-only) and check they serve, before loading it into a "
               "cluster", configure_smoke_image, run_smoke_image),
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
        with children.interruptible():
            return sub.run(args)
    except CommandError as error:
        print(error.line(sub.name), file=sys.stderr)
        return USAGE_ERROR
    except children.Interrupted as interrupted:
        print(f"{PROG} {sub.name}: stopped by {interrupted}", file=sys.stderr)
        return interrupted.status
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away; stop quietly like other Unix tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1

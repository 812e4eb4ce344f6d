"""``meshgate change -- COMMAND…`` and ``meshgate run --phase before|after``: a change
gated with live traffic through it (meshgate.change)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from meshgate.cli.base import CommandError

if TYPE_CHECKING:  # imported when the command runs: `meshgate routes` stays instant
    from meshgate.change import Options, Outcome


def add_change_options(parser: argparse.ArgumentParser) -> None:
    """The options of a gated change, shared by ``change`` and ``run --phase``."""
    group = parser.add_argument_group("gating a change")
    group.add_argument("--max-failed-requests", type=int, default=0, metavar="N",
                       help="failed requests through the change that still pass (default 0)")
    group.add_argument("--max-gap", type=float, default=None, metavar="SECONDS",
                       help="the longest time any flow may go without a success")
    group.add_argument("--change-timeout", type=float, default=1800.0, metavar="SECONDS",
                       help="how long the change command may run (default 1800)")
    group.add_argument("--change-dir", default="artifacts/change", metavar="DIR",
                       help="the change's state, traffic record and report "
                            "(default artifacts/change)")
    group.add_argument("--checks", default="", metavar="'PYTEST ARGS'",
                       help="more arguments for the checks before and after, as one string "
                            "(e.g. '-m smoke')")
    group.add_argument("--change-keep", default="on-failure",
                       choices=("always", "on-failure", "never"),
                       help="keep the change's namespace (and a localmesh booted for it) "
                            "afterwards (default on-failure; the suite's own --keep goes "
                            "to pytest)")


def options_from(args: argparse.Namespace) -> Options:
    from meshgate.change import Options

    if args.max_failed_requests < 0:
        raise CommandError(f"--max-failed-requests {args.max_failed_requests} is negative",
                           None, "give 0 or more")
    if args.max_gap is not None and args.max_gap <= 0:
        raise CommandError(f"--max-gap {args.max_gap:g} is not a positive number of seconds")
    return Options(artifacts=Path(args.change_dir).resolve(), target=args.target or "local",
                   kubeconfig=args.kubeconfig, context=args.kube_context,
                   pytest_args=shlex.split(args.checks), max_failed=args.max_failed_requests,
                   max_gap=args.max_gap, timeout=args.change_timeout, keep=args.change_keep)


def print_outcome(outcome: Outcome, folder: Path) -> int:
    report = outcome.report
    for flow in report.get("flows") or []:
        print(f"  {flow['flow']}: {flow['failed']} of {flow['sent']} failed, "
              f"{flow['resets']} reset, longest gap {flow['longest_gap']:.2f}s")
    for hop in report.get("hops") or []:
        print(f"  {hop['source']} → {hop['destination']}: {hop['failed']} of {hop['sent']} "
              "failed")
    for line in report.get("proxy_changes") or []:
        print(f"  proxy {line}")
    if outcome.ok:
        print(f"meshgate: the change passed the gate; report: {folder / 'change.html'}")
        return 0
    for reason in outcome.reasons:
        print(f"meshgate: {reason}", file=sys.stderr)
    print(f"meshgate: the change failed the gate; report: {folder / 'change.html'}",
          file=sys.stderr)
    return 1


def configure_change(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``meshgate change``."""
    from meshgate.targets import TARGETS

    parser.add_argument("--target", metavar="NAME",
                        help=f"where the cluster comes from: {', '.join(TARGETS)} "
                             "(default: local; kubeconfig for an existing cluster)")
    parser.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig of the cluster")
    parser.add_argument("--kube-context", metavar="NAME", help="kubeconfig context to use")
    add_change_options(parser)
    parser.epilog = ("The command comes after '--', e.g. meshgate change -- "
                     "deploy/canary-upgrade.sh 1-2x; it gets KUBECONFIG and "
                     "MESHGATE_NAMESPACE (MESHGATE_NAMESPACES) in its environment.")


def run_change(args: argparse.Namespace) -> int:
    """Checks, traffic through COMMAND, checks again, and the disruption judged."""
    from meshgate.change import ChangeError, change
    from meshgate.targets import TargetError

    command = list(getattr(args, "passthrough", None) or [])
    if not command:
        raise CommandError("no change command", None,
                           "give it after '--', e.g. meshgate change -- ./upgrade.sh")
    options = options_from(args)
    try:
        outcome = change(options, command)
    except (ChangeError, TargetError) as error:
        raise CommandError(str(error)) from None
    return print_outcome(outcome, options.artifacts)


def run_phase(args: argparse.Namespace) -> int:
    """``meshgate run --phase before|after``: one half of a gated change."""
    from meshgate.change import ChangeError, after, before
    from meshgate.targets import TargetError

    if args.passthrough:
        raise CommandError(f"--phase takes no pytest arguments ({' '.join(args.passthrough)})",
                           None, "give them as --checks '...'")
    options = options_from(args)
    try:
        if args.phase == "before":
            state = before(options, detached=True)
            print(f"meshgate: before the change: checks passed, traffic recording (run "
                  f"{state.run_id}, namespace {state.namespaces[0]}); make the change, then "
                  f"run `meshgate run --phase after --change-dir {options.artifacts}`")
            return 0
        return print_outcome(after(options), options.artifacts)
    except (ChangeError, TargetError) as error:
        raise CommandError(str(error)) from None

"""``meshgate run``, ``meshgate sweep`` and ``meshgate steps``: the suite and its clusters.

``meshgate run`` is ``pytest <checkout>/steps`` with the suite's options: every argument it
does not know goes to pytest unchanged, in the ``--opt VALUE`` and the ``--opt=VALUE``
form alike. Whether the user named tests (and ``steps`` must not be added) is decided by
pytest's own parser with the suite's plugins loaded — the options the suite registers
itself — so ``--manifests DIR`` is never mistaken for a test path, and no second list of
options is kept by hand. The child runs through :mod:`meshgate.children`, which forwards
SIGINT, SIGTERM and SIGHUP and exits with 128 + the signal.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Sequence
from pathlib import Path

from meshgate.cli.base import PROG, CommandError, print_json, repository_root


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
    parser.add_argument("--phase", choices=("before", "after"), default=None,
                        help="one half of a gated change, for pipelines where the change "
                             "happens in another job (see `meshgate change`)")
    from meshgate.cli.gate_change import add_change_options

    add_change_options(parser)
    parser.epilog = (
        "Other arguments go to pytest unchanged, e.g. 'meshgate run --target kind -n 2 -m "
        "smoke --junitxml=artifacts/junit.xml'. The exit code is pytest's, or 128 + the "
        "signal that stopped the run (130 for Ctrl-C, 143 for SIGTERM)."
    )


def suite_plugins(root: Path) -> list[str]:
    """The plugin modules the suite's ``conftest.py`` loads (its ``pytest_plugins``)."""
    tree = ast.parse((root / "conftest.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name)
                                                 and t.id == "pytest_plugins"
                                                 for t in node.targets)):
            value = ast.literal_eval(node.value)
            return [str(v) for v in value]
    return []


def named_tests(args: Sequence[str], root: Path) -> list[str]:
    """The test paths and node ids among ``args``, as pytest itself will parse them.

    pytest's parser is built with its own plugins, the installed ones, any ``-p`` the user
    gave and the suite's plugins (so it knows which suite options take a value), and then
    parses ``args``. pytest builds its parser through ``_pytest.config.get_config`` and
    ``Config._parser``, which are not public API; the project pins pytest's range.
    """
    from _pytest.config import get_config

    added = str(root) not in sys.path
    if added:
        sys.path.insert(0, str(root))
    try:
        config = get_config()
        manager = config.pluginmanager
        manager.consider_preparse(list(args), exclude_only=False)
        manager.load_setuptools_entrypoints("pytest11")
        for plugin in suite_plugins(root):
            manager.import_plugin(plugin)
        namespace, _ = config._parser.parse_known_and_unknown_args(list(args))
        return [str(a) for a in getattr(namespace, "file_or_dir", None) or []]
    finally:
        if added:
            sys.path.remove(str(root))


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
    steps = root / "steps"
    if not steps.is_dir() or not (root / "conftest.py").is_file():
        raise CommandError("the acceptance suite (conftest.py, steps/) is not beside this "
                           "meshgate", str(root),
                           "run meshgate from a checkout installed with 'pip install -e .'")
    command = [python or sys.executable, "-m", "pytest"]
    try:
        explicit = named_tests(extra, root)
    except Exception:  # noqa: BLE001 - pytest reports a bad command line better than we can
        explicit = []
    if not explicit:
        command.append(str(steps))
    if args.target is not None:
        command += ["--target", args.target]
    if args.kubeconfig is not None:
        command += ["--kubeconfig", args.kubeconfig]
    if args.kube_context is not None:
        command += ["--kube-context", args.kube_context]
    return command + extra


def run_run(args: argparse.Namespace) -> int:
    """Run the acceptance suite (pytest on steps/) against the chosen target."""
    import shlex

    from meshgate import children

    if args.phase is not None:
        from meshgate.cli.gate_change import run_phase

        return run_phase(args)
    command = pytest_command(args)
    if args.print_command:
        print(shlex.join(command))
        return 0
    try:
        return children.run(command)
    except children.ChildError as error:
        raise CommandError(str(error), None, "check the Python installation") from None


# --------------------------------------------------------------------------- sweep


def configure_sweep(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``meshgate sweep``."""
    parser.add_argument("--kubeconfig", metavar="FILE",
                        help="kubeconfig of the cluster (default: KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--kube-context", metavar="NAME", help="kubeconfig context to use")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the namespaces that would be deleted, delete nothing")
    parser.add_argument("--json", action="store_true",
                        help="print what was found and done as one JSON object")


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
    deleted: list[str] = []
    failed: dict[str, str] = {}
    for name in names:
        if args.dry_run:
            continue
        try:
            namespaces.delete(cluster, name)
        except ClusterError as error:
            failed[name] = str(error)
            continue
        deleted.append(name)
    if args.json:
        print_json({"expired": names, "deleted": deleted, "failed": failed,
                    "dry_run": args.dry_run})
    elif not names:
        print("no expired meshgate namespaces")
    for name in names if not args.json else ():
        if args.dry_run:
            print(f"would delete namespace {name}")
        elif name in failed:
            print(f"{PROG} sweep: could not delete namespace {name}: {failed[name]}",
                  file=sys.stderr)
        else:
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

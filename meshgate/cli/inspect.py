"""``meshgate routes`` and ``meshgate edges``: saved files in, a table or JSON out.

No cluster: these read what a user saved from a proxy (``pilot-agent request GET
config_dump``, ``istioctl proxy-config routes -o json``) or from Kiali's graph API, and
list it the way the suite's checks read it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from meshgate.cli.base import CommandError, print_json, print_table, read_input, source_name

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
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON list")
    output.add_argument("--svg", action="store_true",
                        help="print the graph as an SVG picture (as the HTML report draws it)")
    output.add_argument("--dot", action="store_true",
                        help="print the graph in Graphviz's DOT language")


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
    if args.svg or args.dot:
        from meshgate.reports import edge_entry
        from meshgate.reports.graph_dot import render_dot
        from meshgate.reports.graph_svg import render_svg
        from meshgate.reports.model import parse_edges

        records = parse_edges([edge_entry(edge) for edge in edges])
        title = f"Service graph of {source}"
        print(render_svg(records, title=title) if args.svg else render_dot(records, title=title))
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

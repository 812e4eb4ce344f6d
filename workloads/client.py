"""``client``: a pod that only waits, for requests made from inside it with ``fetch``.

Istio's own tests use such a pod (the ``curl`` sample, formerly ``sleep``) as the caller
whose position in the mesh they choose: with a sidecar it is a mesh client, without one
(``sidecar.istio.io/inject: "false"``) it is a client outside the mesh, which mutual TLS
and authorization policies must refuse. The suite execs ``python -m workloads.fetch URL``
in it.
"""

from __future__ import annotations

from . import log
from .lifecycle import Lifecycle


def main() -> int:
    """Wait until SIGTERM or SIGINT; exit 0."""
    lifecycle = Lifecycle("client")  # first: a SIGTERM from now on stops it cleanly
    log.info("client", "waiting; requests are made with python -m workloads.fetch URL")
    return lifecycle.run()

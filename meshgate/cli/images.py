"""``meshgate smoke-image``: the workloads image's smoke test (meshgate.image_smoke)."""

from __future__ import annotations

import argparse

from meshgate.cli.base import CommandError


def configure_smoke_image(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``meshgate smoke-image``."""
    from meshgate.image_smoke import OPENSHIFT_USER
    from meshgate.istio_install import WORKLOADS_IMAGE

    parser.add_argument("--image", default=WORKLOADS_IMAGE,
                        help=f"the image to check (default {WORKLOADS_IMAGE})")
    parser.add_argument("--user", default=OPENSHIFT_USER, metavar="UID:GID",
                        help=f"run the containers as this user (default {OPENSHIFT_USER}, "
                             "an arbitrary UID with group 0 as OpenShift's restricted SCC)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="how long the checks may wait for the programs (default 30)")


def run_smoke_image(args: argparse.Namespace) -> int:
    """Start the image's three programs, check them, remove them; 0 when all pass."""
    try:
        from meshgate.image_smoke import smoke
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise CommandError(f"smoke-image needs testcontainers ({exc})", None,
                           "pip install -e '.[containers]' in meshgate's virtualenv") from None
    try:
        report = smoke(args.image, user=args.user, timeout=args.timeout)
    except Exception as exc:  # noqa: BLE001 - Docker's errors are many; say which, in one line
        raise CommandError(f"cannot start {args.image}: {exc.__class__.__name__}: {exc}", None,
                           "build the image first (./dev images, or docker build) and make a "
                           "Docker engine answer (DOCKER_HOST)") from None
    for line in report.lines():
        print(line)
    print(f"{'passed' if report.ok else 'FAILED'}: {report.image} as {report.user} in "
          f"{report.seconds:.1f}s")
    return 0 if report.ok else 1

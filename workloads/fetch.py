"""``python -m workloads.fetch URL [--header NAME:VALUE]... [--timeout SECONDS]``.

One HTTP GET from inside a pod, as ``curl`` would make it, for tests that need a request
from a chosen place in the mesh (workloads/client.py). It prints one JSON line — the status
and the start of the body, or the error — and exits 0 when any HTTP answer came back, 1
when none did (connection refused or reset, timeout: what a sidecar refusing a plaintext
client looks like). The request leaves the pod the way the pod's own traffic does: on a
cluster through the pod's network (a sidecar's iptables capture it), on localmesh through
the ``HTTP_PROXY`` the emulator gives injected pods in place of that capture.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

BODY_LIMIT = 200


def fetch(url: str, headers: dict[str, str], timeout: float) -> dict[str, object]:
    """The answer to one GET, as a small JSON-able dict."""
    opener = urllib.request.build_opener()
    request = urllib.request.Request(url, headers=headers)
    try:
        with opener.open(request, timeout=timeout) as answer:
            return {"status": answer.status, "body": answer.read(BODY_LIMIT).decode(
                errors="replace")}
    except urllib.error.HTTPError as error:
        return {"status": error.code, "body": error.read(BODY_LIMIT).decode(errors="replace")}
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return {"status": None, "error": f"{type(reason).__name__}: {reason}"}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m workloads.fetch",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    headers = dict(h.split(":", 1) for h in args.header)
    answer = fetch(args.url, {k.strip(): v.strip() for k, v in headers.items()}, args.timeout)
    print(json.dumps(answer))
    return 0 if answer.get("status") is not None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Short-lived admin tokens and the kubeconfig ``exec`` credential plugin that mints them.

On EKS, GKE, AKS and OpenShift a kubeconfig rarely holds a token: it names a program
(``aws eks get-token``, ``gke-gcloud-auth-plugin``, ``kubelogin``, ``oc``) that prints a
``client.authentication.k8s.io/v1`` ExecCredential whose token expires within minutes to
an hour, and the client runs it again once the token has expired or the API server
answers 401 (https://kubernetes.io/docs/reference/access-authn-authz/authentication/#client-go-credential-plugins).
``localmesh up --api-faults token-expiry`` is that: the kubeconfig's user runs

    python -m localmesh.credentials --key-file STATE/credential-key --ttl 60

which prints an ExecCredential with a token valid for ``--ttl`` seconds and its
``expirationTimestamp``. Like ``aws eks get-token`` (a presigned STS request that is valid
for 15 minutes), the token is minted offline: it carries its expiry and an HMAC-SHA256 of
it under a key only the API server and the key file's owner hold; the API server checks
both and answers 401 once it has expired.

This module uses the standard library only: a credential plugin runs for every client
that needs a token and must start fast.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

API_VERSION = "client.authentication.k8s.io/v1"
PREFIX = "lmx1"
DEFAULT_TTL = 60


def _sign(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def mint(key: bytes, ttl: float, now: float | None = None) -> tuple[str, float]:
    """A token valid for ``ttl`` seconds from ``now``, and the time it expires."""
    expires = int((time.time() if now is None else now) + ttl)
    payload = f"{PREFIX}.{expires}.{secrets.token_urlsafe(12)}"
    return f"{payload}.{_sign(key, payload)}", float(expires)


def check(key: bytes, token: str, now: float, max_ttl: float) -> str:
    """``valid``, ``expired``, or ``invalid`` (not minted with ``key``, or claiming a
    lifetime longer than ``max_ttl``: a token cannot extend itself)."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != PREFIX:
        return "invalid"
    payload = ".".join(parts[:3])
    if not hmac.compare_digest(_sign(key, payload), parts[3]):
        return "invalid"
    try:
        expires = int(parts[1])
    except ValueError:
        return "invalid"
    if expires > now + max_ttl + 1:
        return "invalid"
    return "valid" if now < expires else "expired"


def is_token(token: str) -> bool:
    return token.startswith(PREFIX + ".")


def exec_credential(token: str, expires: float) -> dict:
    """The ExecCredential a plugin prints (client.authentication.k8s.io/v1)."""
    stamp = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": API_VERSION, "kind": "ExecCredential",
            "status": {"token": token, "expirationTimestamp": stamp}}


def write_key(path: Path) -> bytes:
    """A fresh signing key, readable by its owner only."""
    key = secrets.token_bytes(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.touch(mode=0o600)
    tmp.write_bytes(key)
    tmp.replace(path)
    return key


def kubeconfig_user(key_file: Path, ttl: float) -> dict:
    """The kubeconfig ``user`` that runs this plugin (with this Python, from anywhere)."""
    package_root = str(Path(__file__).resolve().parents[1])
    return {"exec": {
        "apiVersion": API_VERSION, "command": sys.executable,
        "args": ["-m", "localmesh.credentials", "--key-file", str(key_file),
                 "--ttl", f"{ttl:g}"],
        "env": [{"name": "PYTHONPATH", "value": package_root}],
        # v1 requires it; the plugin never prompts.
        "interactiveMode": "Never", "provideClusterInfo": False}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localmesh.credentials",
        description="Print a client.authentication.k8s.io/v1 ExecCredential with a "
                    "short-lived localmesh token (a kubeconfig exec credential plugin).")
    parser.add_argument("--key-file", required=True, type=Path,
                        help="the signing key localmesh wrote in its state directory")
    parser.add_argument("--ttl", type=float, default=DEFAULT_TTL,
                        help=f"the token's lifetime in seconds (default {DEFAULT_TTL})")
    args = parser.parse_args(argv)
    try:
        key = args.key_file.read_bytes()
    except OSError as exc:
        print(f"localmesh credentials: cannot read the key file {args.key_file}: "
              f"{exc.strerror}; is this localmesh still running (`localmesh status`)?",
              file=sys.stderr)
        return 1
    token, expires = mint(key, args.ttl)
    json.dump(exec_credential(token, expires), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

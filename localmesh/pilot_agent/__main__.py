"""pilot-agent for localmesh's ``istio/proxyv2`` image.

Sub-commands, as in Istio's pilot-agent:

- ``proxy sidecar|router`` — write Envoy's bootstrap, run a real Envoy configured over ADS
  by istiod, serve the agent's status port (15020: ``/healthz/ready``, the merged
  ``/stats/prometheus``) and health port (15021), and receive Envoy's access-log stream to
  compute Istio's standard metrics. It exits when Envoy exits, so the kubelet restarts the
  container, as a crashed Envoy restarts a real istio-proxy.
- ``request <METHOD> <path> [body]`` — call Envoy's admin API on the pod's localhost
  (pilot/cmd/pilot-agent/app/request.go): prints the body; a status above 399 other than
  404 exits non-zero.
- ``istio-iptables …`` — the init container's job; localmesh has no iptables, so this only
  records that interception is emulated.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def request(argv: list[str]) -> int:
    import os

    if len(argv) < 2:
        print("Error: requires at least 2 arg(s): request <method> <path> [<body>]",
              file=sys.stderr)
        return 1
    method, path = argv[0].upper(), argv[1].lstrip("/")
    body = argv[2].encode() if len(argv) > 2 else None
    host = os.environ.get("LOCALMESH_POD_LOCAL_IP", "127.0.0.1")
    port = 15000
    for a in argv[3:]:
        if a.startswith("--debug-port="):
            port = int(a.split("=", 1)[1])
    req = urllib.request.Request(f"http://{host}:{port}/{path}", data=body, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as resp:
            sys.stdout.buffer.write(resp.read())
            return 0
    except urllib.error.HTTPError as err:
        sys.stdout.buffer.write(err.read())
        if err.code == 404:
            return 0
        print(f"Error: received unsuccessful status code {err.code}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: pilot-agent proxy|request|istio-iptables ...", file=sys.stderr)
        return 2
    cmd, rest = args[0], args[1:]
    if cmd == "request":
        return request(rest)
    if cmd == "istio-iptables":
        print("localmesh: traffic interception is emulated (apps send outbound traffic "
              "through the sidecar as an explicit proxy; inbound listeners sit on the pod IP "
              "in front of the app's pod-local address); no iptables rules are written")
        return 0
    if cmd == "proxy":
        from localmesh.pilot_agent.agent import run

        return run(rest)
    if cmd in ("version", "--version"):
        print("1.28.0-localmesh")
        return 0
    print(f"pilot-agent: unknown command {cmd!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

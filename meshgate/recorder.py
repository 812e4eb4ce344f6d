"""Traffic that lasts through a change, with every request's outcome recorded.

``python -m meshgate.recorder --url URL --host HOST --path /login ... --out FILE`` sends
requests through the ingress until it is stopped (SIGTERM or SIGINT), bounded by
``--max-seconds`` and ``--max-requests``, and writes one JSON line per request. It runs as
a process of its own so that it can outlive the process that started it: ``meshgate run
--phase before`` starts it, the change happens in another job, and ``--phase after``
stops it (by the PID it recorded) and reads what it saw.

Per path, two flows, because a change breaks them differently (Cilium's connectivity
test, which checks that connections set up before an upgrade survive it, is the model):

- ``new <path>``: a new connection for every request — what a new client sees;
- ``kept <path>``: one keep-alive connection, reused for as long as it lives — what a
  client that was connected before the change sees; a reset or a closed connection is
  recorded as such (and the next request opens a new one).

Each line: ``{"t": unix time, "flow": str, "ok": bool, "status": int|null, "ms": float,
"error": str|null, "reset": bool}``. ``ok`` means the expected status (200).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import requests

from meshgate import tls_client

INTERVAL = 0.1  # seconds between two requests of one flow
TIMEOUT = 2.0  # seconds a request may take


@dataclass
class Flow:
    """One stream of requests to one path, on new or on kept connections."""

    name: str
    url: str
    host: str
    keep_alive: bool
    expected: int = 200
    server_name: str | None = None  # TLS under this name to the URL's address
    ca_pem: str | None = None

    def run(self, write: Callable[[dict], bool], stop: threading.Event) -> None:
        session = self._session()
        while not stop.is_set():
            started = time.time()
            t0 = time.monotonic()
            record: dict = {"t": round(started, 3), "flow": self.name, "status": None,
                            "error": None, "reset": False}
            try:
                answer = session.get(self.url, headers={"Host": self.host}, timeout=TIMEOUT,
                                     allow_redirects=False)
                record["status"] = answer.status_code
            except requests.RequestException as exc:
                record["error"] = f"{type(exc).__name__}: {str(exc)[:160]}"
                record["reset"] = _reset(exc)
                session.close()
                session = self._session()
            record["ms"] = round((time.monotonic() - t0) * 1000, 1)
            record["ok"] = record["status"] == self.expected
            if not self.keep_alive:
                session.close()
                session = self._session()
            if not write(record):
                break
            stop.wait(INTERVAL)
        session.close()

    def _session(self) -> requests.Session:
        return tls_client.session(self.server_name, self.ca_pem)


def _reset(exc: BaseException) -> bool:
    """Was an established connection reset or closed under the request?"""
    text = repr(exc)
    return any(word in text for word in ("ConnectionResetError", "RemoteDisconnected",
                                         "Connection aborted", "BrokenPipe"))


class Recorder:
    """The flows' threads and the one output file they share, bounded in count and time."""

    def __init__(self, flows: list[Flow], out: IO[str], *, max_seconds: float,
                 max_requests: int) -> None:
        self.flows = flows
        self.out = out
        self.deadline = time.monotonic() + max_seconds
        self.left = max_requests
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def write(self, record: dict) -> bool:
        """Append one record; False once a bound is reached (every flow then stops)."""
        with self._lock:
            if self.left <= 0 or time.monotonic() >= self.deadline:
                self.stop.set()
                return False
            self.left -= 1
            self.out.write(json.dumps(record) + "\n")
            self.out.flush()
            return True

    def run(self) -> None:
        threads = [threading.Thread(target=f.run, args=(self.write, self.stop), daemon=True,
                                    name=f"flow {f.name}") for f in self.flows]
        for t in threads:
            t.start()
        while not self.stop.wait(0.2):
            if time.monotonic() >= self.deadline:
                self.stop.set()
        for t in threads:
            t.join(timeout=TIMEOUT + 1)


def flows_for(url: str, host: str, paths: list[str], server_name: str | None = None,
              ca_pem: str | None = None) -> list[Flow]:
    base = url.rstrip("/")
    return [Flow(f"{kind} {p}", base + p, host, kind == "kept", server_name=server_name,
                 ca_pem=ca_pem)
            for p in paths for kind in ("new", "kept")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meshgate.recorder",
                                     description="Record requests through the ingress until "
                                                 "stopped (SIGTERM/SIGINT).")
    parser.add_argument("--url", required=True, help="the ingress gateway's base URL")
    parser.add_argument("--host", required=True, help="the Host header (the namespace's host)")
    parser.add_argument("--path", action="append", required=True, help="a path to request")
    parser.add_argument("--out", required=True, help="the JSON-lines file to append to")
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    parser.add_argument("--max-requests", type=int, default=500_000)
    parser.add_argument("--server-name", help="TLS: the name to send as SNI and check the "
                                              "certificate against (a Route's host)")
    parser.add_argument("--ca-pem", help="TLS: the CA (PEM text) that signs it")
    args = parser.parse_args(argv)
    with Path(args.out).open("a", encoding="utf-8") as out:
        recorder = Recorder(flows_for(args.url, args.host, args.path, args.server_name,
                                      args.ca_pem), out,
                            max_seconds=args.max_seconds, max_requests=args.max_requests)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: recorder.stop.set())
        recorder.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

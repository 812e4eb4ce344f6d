"""Requests through the ingress that last through a change, in this process's keeping.

The recorder (meshgate.recorder) runs as a child process sending requests on new and on
kept connections; :class:`LiveTraffic` starts it, waits until every flow has sent a
request (a change must not begin before the traffic that is to show its effect), stops
it, and reads what it saw. ``meshgate change`` and the @upgrade scenarios use it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshgate import children, disruption

PATHS = ("/login", "/chain/blocks/0")
STOP_SECONDS = 10.0


class TrafficError(RuntimeError):
    """The traffic could not be started (the message says why and where its log is)."""


@dataclass
class LiveTraffic:
    out: Path
    child: children.Child
    started: float
    ended: float | None = None

    @classmethod
    def start(cls, url: str, host: str, out: Path, *, paths: tuple[str, ...] = PATHS,
              detached: bool = False, max_seconds: float = 3600.0,
              server_name: str | None = None, ca_pem: str | None = None) -> LiveTraffic:
        """Start the recorder (``detached``: it outlives this process) and wait until
        every flow has sent a request; ``server_name`` and ``ca_pem``: TLS to the URL's
        address under that name (an OpenShift Route through the router)."""
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        log_path = out.with_suffix(".log")
        with log_path.open("w") as log:
            child = children.start(
                [sys.executable, "-m", "meshgate.recorder", "--url", url, "--host", host,
                 *[a for p in paths for a in ("--path", p)], "--out", str(out),
                 "--max-seconds", str(max_seconds),
                 *(["--server-name", server_name] if server_name else []),
                 *(["--ca-pem", ca_pem] if ca_pem else [])],
                stdout=log, stderr=subprocess.STDOUT, detached=detached)
        traffic = cls(out, child, time.time())
        try:
            traffic._wait_for_every_flow(2 * len(paths))
        except BaseException:
            traffic.stop()
            raise
        return traffic

    def _wait_for_every_flow(self, flows: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while time.monotonic() < deadline:
            if self.child.process.poll() is not None:
                raise TrafficError(f"the traffic recorder exited with "
                                   f"{self.child.process.returncode}; see "
                                   f"{self.out.with_suffix('.log')}")
            seen = {r["flow"] for r in self.records()}
            if len(seen) >= flows:
                return
            time.sleep(0.05)
        raise TrafficError(f"the traffic recorder sent no request on {flows - len(seen)} of "
                           f"its {flows} flows within {timeout:g}s; see "
                           f"{self.out.with_suffix('.log')}")

    def records(self) -> list[dict[str, Any]]:
        return disruption.read_records(self.out.read_text() if self.out.exists() else "")

    def stop(self) -> list[dict[str, Any]]:
        """Stop the recorder (SIGTERM, then SIGKILL after a grace) and read its record."""
        process = self.child.process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.ended is None:
            self.ended = time.time()
        return self.records()

    def flows(self) -> list[disruption.FlowStats]:
        """Per flow, what the traffic saw between its start and its stop."""
        records = self.stop()
        return disruption.flow_stats(records, self.started, self.ended or time.time())

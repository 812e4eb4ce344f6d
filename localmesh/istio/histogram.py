"""A Prometheus histogram for istiod's self-monitoring, in the text exposition format.

Istio's ``pilot_proxy_convergence_time`` is a histogram of the delay between a config
change and its push reaching a proxy (pilot/pkg/xds/monitoring.go, buckets 0.1 to 30 s);
``meshgate bench --mesh-sizes`` reads its sum and count to see how istiod's pushes grow
with the mesh. Small enough not to need a client library in every localmesh process.
"""

from __future__ import annotations

import bisect


class Histogram:
    """Cumulative buckets, sum and count of observed values (seconds)."""

    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        self.name = name
        self.help = help_text
        self.buckets = tuple(sorted(buckets))
        self.counts = [0] * (len(self.buckets) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        running = 0
        for bound, n in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += n
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'{self.name}_bucket{{le="{le}"}} {running}')
        out += [f"{self.name}_sum {self.sum!r}", f"{self.name}_count {running}"]
        return out


def convergence_time() -> Histogram:
    """Istio's ``pilot_proxy_convergence_time`` with its buckets."""
    return Histogram("pilot_proxy_convergence_time",
                     "Delay in seconds between config change and a proxy receiving all "
                     "required configuration.", (0.1, 0.5, 1, 3, 5, 10, 20, 30))

"""An existing cluster: the kubeconfig of ``--kubeconfig``/``KUBECONFIG`` and a context."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from meshgate.targets.base import Provided, TargetError


@dataclass
class KubeconfigTarget:
    kubeconfig: str | None
    context: str | None
    name: str = "kubeconfig"

    @property
    def owns_cluster(self) -> bool:
        """An existing cluster is someone else's: possibly shared, never ours to disrupt."""
        return False

    def start(self) -> Provided:
        raw = self.kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or \
            str(Path.home() / ".kube" / "config")
        path = Path(raw)
        if not path.is_file():
            raise TargetError(f"kubeconfig {path} does not exist: pass --kubeconfig PATH (or "
                              "set KUBECONFIG) for --target kubeconfig")
        from meshgate.cluster import Cluster, ClusterError

        try:
            Cluster(path, self.context)
        except ClusterError as exc:
            raise TargetError(str(exc)) from exc
        return Provided(path, self.context, f"cluster of {path}"
                        + (f" (context {self.context})" if self.context else ""))

    def stop(self) -> None:
        """An existing cluster is not ours to stop."""

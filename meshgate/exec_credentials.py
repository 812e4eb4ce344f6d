"""Tokens from a kubeconfig's ``exec`` credential plugin, refreshed as client-go does.

EKS (``aws eks get-token``), GKE (``gke-gcloud-auth-plugin``), AKS (``kubelogin``) and
OpenShift hand out tokens that live minutes to an hour through an exec credential plugin
(https://kubernetes.io/docs/reference/access-authn-authz/authentication/#client-go-credential-plugins).
client-go keeps the plugin's token until its ``expirationTimestamp`` and runs the plugin
again when it has passed or when the API server answers 401
(k8s.io/client-go/plugin/pkg/client/auth/exec/exec.go).

The official Python client runs the plugin when the kubeconfig is loaded and installs a
refresh hook that treats a token as expired five minutes before its expiry
(kubernetes/config/kube_config.py, ``EXPIRY_SKEW_PREVENTION_DELAY``): a token that lives
less than that — localmesh's ``--api-faults token-expiry`` gives 60 s — runs the plugin
again for every request, a process per API call. And it never reacts to a 401.
:class:`ExecCredentials` replaces that hook: one plugin run per token, refreshed shortly
before it expires, and on demand after a 401 (meshgate.apiserver.Availability resends the
refused request once with the fresh token — a request answered 401 was not acted on).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kubernetes.config.config_exception import ConfigException
from kubernetes.config.exec_provider import ExecProvider
from kubernetes.config.kube_config import ConfigNode

from meshgate.apiserver import ClusterError

# Refresh this long before expiry (at most a tenth of the token's life): a request signed
# with a token that expires while it is in flight is answered 401.
REFRESH_MARGIN = 10.0


class ExecCredentials:
    """The bearer token of one kubeconfig user's exec plugin, cached until near expiry."""

    def __init__(self, exec_config: Any, cwd: str | None, cluster: Any = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        if isinstance(exec_config, dict):  # the client's provider reads a ConfigNode
            exec_config = ConfigNode("exec", exec_config)
        self._provider = ExecProvider(exec_config, cwd, cluster)
        self._command = str(exec_config["command"])
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self.runs = 0

    def header(self) -> str:
        """``Bearer <token>``, running the plugin first if the token is about to expire."""
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._run()
            assert self._token is not None
            return f"Bearer {self._token}"

    def refresh(self) -> str:
        """Run the plugin now (the API server refused the token); the new header."""
        with self._lock:
            self._run()
            assert self._token is not None
            return f"Bearer {self._token}"

    def _run(self) -> None:
        try:
            status = self._provider.run()
        except ConfigException as exc:
            raise ClusterError(f"the kubeconfig's exec credential plugin {self._command} "
                               f"failed: {exc}: run it yourself to see why, and check the "
                               "kubeconfig's user") from exc
        token = status.get("token")
        if not token:
            raise ClusterError(f"the kubeconfig's exec credential plugin {self._command} "
                               "printed no token (client certificates from a plugin are "
                               "not supported here)")
        now = self._clock()
        self.runs += 1
        self._token = token
        expiry = status.get("expirationTimestamp")
        if not expiry:
            self._refresh_at = float("inf")  # valid until the API server says otherwise
            return
        expires = datetime.fromisoformat(str(expiry).replace("Z", "+00:00")).timestamp()
        margin = min(REFRESH_MARGIN, max(expires - now, 0.0) / 10)
        self._refresh_at = expires - margin

    def install(self, configuration: Any) -> None:
        """Make ``configuration`` take its token from here for every request."""
        def hook(cfg: Any) -> None:
            cfg.api_key["BearerToken"] = self.header()

        configuration.refresh_api_key_hook = hook
        configuration.api_key.pop("authorization", None)
        hook(configuration)


def for_kubeconfig(path: str | None, context: str | None) -> ExecCredentials | None:
    """The exec credentials of the kubeconfig's (context's) user, or None if it has none."""
    from kubernetes.config import kube_config

    # The client's own merge of KUBECONFIG and choice of context (a private helper,
    # stable since v12), so that the user is the one load_kube_config used.
    loader = kube_config._get_kube_config_loader(filename=path, active_context=context,
                                                 persist_config=False)
    user = loader._user
    if user is None or "exec" not in user:
        return None
    return ExecCredentials(user["exec"], loader._get_base_path(loader._cluster.path),
                           loader._cluster)

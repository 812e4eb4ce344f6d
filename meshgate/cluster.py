"""Cluster access: everything the suite does to a cluster goes through a kubeconfig.

:class:`Cluster` wraps the official ``kubernetes`` client. It applies manifests (typed
and custom kinds alike, through the DynamicClient with a per-run discovery cache), runs
commands in containers over pods/exec, and reaches in-cluster HTTP services through the
API server's services/proxy — the same calls on localmesh, kind or OpenShift.
"""

from __future__ import annotations

import builtins
import json
import shutil
import tempfile
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError
from kubernetes.stream import portforward, stream
from websocket import WebSocketException

from meshgate import apiserver, exec_credentials
from meshgate.apiserver import ApiServerRetry, ApiServerUnreachable, ClusterError

__all__ = ["ApiServerRetry", "ApiServerUnreachable", "Cluster", "ClusterError", "ExecResult"]


@dataclass
class ExecResult:
    stdout: str
    stderr: str
    returncode: int


@dataclass
class Cluster:
    """A cluster reached through a kubeconfig (and optionally one of its contexts)."""

    DISCOVERY_PREFIX: ClassVar[str] = "meshgate-discovery-"

    kubeconfig: Path | None
    context: str | None = None
    # Names this process's discovery cache, so the run's controller can remove those of
    # workers that were killed before they could clean up (meshgate.lifecycle).
    run_id: str = "adhoc"
    api_client: client.ApiClient = field(init=False)
    _dynamic: DynamicClient | None = field(init=False, default=None)
    _identity: tuple[dict | None] | None = field(init=False, default=None)
    availability: apiserver.Availability = field(init=False)
    # Bytes this client has read from proxies and services (exec output, proxied GETs):
    # what a check costs on the wire (``meshgate bench --mesh-sizes``).
    received: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        cfg = client.Configuration()
        path = str(self.kubeconfig) if self.kubeconfig else None
        if path is not None and not Path(path).is_file():
            raise ClusterError(
                f"kubeconfig {path} does not exist: pass --kubeconfig with the path of a "
                "kubeconfig file, or set KUBECONFIG")
        try:
            config.load_kube_config(config_file=path, context=self.context,
                                    client_configuration=cfg, persist_config=False)
        except config.ConfigException as exc:
            raise ClusterError(f"cannot use kubeconfig {path or '~/.kube/config'}: {exc}: "
                               "check that it is a kubeconfig file and that the context "
                               "exists") from exc
        except Exception as exc:
            raise ClusterError(f"{path or '~/.kube/config'} is not a kubeconfig "
                               f"({exc.__class__.__name__}: {exc}): pass the path of a "
                               "kubeconfig file") from exc
        # The suite's own calls never go through an HTTP proxy from the environment.
        cfg.proxy = None
        cfg.retries = ApiServerRetry.policy()
        # An exec credential plugin's tokens are refreshed as client-go does
        # (meshgate/exec_credentials.py), not for every request.
        credentials = exec_credentials.for_kubeconfig(path, self.context)
        if credentials is not None:
            credentials.install(cfg)
        self.api_client = client.ApiClient(cfg)
        self.availability = apiserver.install(self.api_client)
        self.availability.credentials = credentials
        self.core = client.CoreV1Api(self.api_client)

    @property
    def host(self) -> str:
        return self.api_client.configuration.host

    # -- discovery -----------------------------------------------------------------------
    @property
    def dynamic(self) -> DynamicClient:
        if self._dynamic is None:
            # A per-process discovery cache: the kubernetes client's default one is shared
            # by every client of the same host and goes stale when CRDs change
            # (kubernetes/dynamic/discovery.py keys it by host only).
            tmp = tempfile.mkdtemp(prefix=f"{self.DISCOVERY_PREFIX}{self.run_id}-")
            weakref.finalize(self, shutil.rmtree, tmp, True)
            cache = Path(tmp) / "discovery.json"
            try:
                self._dynamic = DynamicClient(self.api_client, cache_file=str(cache))
            except OSError as exc:
                raise ClusterError(f"cannot write the discovery cache {cache}: {exc}") from exc
            except ApiException as exc:
                raise self._api_error(exc, "discover the API") from exc
        return self._dynamic

    def has_api(self, group_version: str, kind: str | None = None) -> bool:
        """Is ``group_version`` (and ``kind`` in it) served? Capabilities, not branches."""
        try:
            if kind is None:
                group, _, version = group_version.rpartition("/")
                path = f"/apis/{group}/{version}" if group else f"/api/{version}"
                status, _ = self.raw_get(path)
                return status == 200
            self.dynamic.resources.get(api_version=group_version, kind=kind)
            return True
        except (ResourceNotFoundError, ApiException):
            return False

    def raw_get(self, path: str, query: list[tuple[str, str]] | None = None,
                timeout: float = 15.0) -> tuple[int, bytes]:
        """GET any API path with the kubeconfig's credentials; (status, body), no raise."""
        method, url, headers, body, _ = self.api_client.param_serialize(
            "GET", path, query_params=query or [], header_params={"Accept": "*/*"},
            auth_settings=["BearerToken"])
        try:
            resp = self.api_client.call_api(method, url, header_params=headers, body=body,
                                            _request_timeout=timeout)
            resp.read()
            self.received += len(resp.data or b"")
            return resp.status, resp.data or b""
        except ApiException as exc:
            data = exc.body if isinstance(exc.body, bytes) else (exc.body or "").encode()
            return exc.status, data

    def server_version(self) -> str:
        try:
            info = client.VersionApi(self.api_client).get_code()
        except ApiException as exc:
            raise self._api_error(exc, "read the server version") from exc
        return info.git_version

    def _api_error(self, exc: ApiException, doing: str) -> ClusterError:
        reason = exc.reason
        try:
            reason = json.loads(exc.body or "{}").get("message") or reason
        except ValueError:
            pass
        if exc.status == 401:
            return ClusterError(f"the API server at {self.host} refused the credentials "
                                f"while trying to {doing} (401 Unauthorized): the kubeconfig's "
                                "token or certificate is wrong or expired", 401)
        if exc.status == 403:
            return ClusterError(f"forbidden to {doing}: {reason}: grant the suite the RBAC in "
                                "deploy/rbac.yaml", 403)
        return ClusterError(f"failed to {doing}: {exc.status} {reason}", exc.status)

    # -- identity ------------------------------------------------------------------------
    def raw_post(self, path: str, body: dict, timeout: float = 15.0) -> tuple[int, dict]:
        """POST a JSON object to any API path; (status, decoded answer), no raise."""
        method, url, headers, data, _ = self.api_client.param_serialize(
            "POST", path, body=body,
            header_params={"Accept": "application/json", "Content-Type": "application/json"},
            auth_settings=["BearerToken"])
        try:
            resp = self.api_client.call_api(method, url, header_params=headers, body=data,
                                            _request_timeout=timeout)
            resp.read()
            status, raw = resp.status, resp.data
        except ApiException as exc:
            status, raw = exc.status, exc.body
        try:
            doc = json.loads(raw or b"{}")
        except ValueError:
            doc = {}
        return status, doc if isinstance(doc, dict) else {}

    def whoami(self) -> dict | None:
        """Who the kubeconfig authenticates as: the ``userInfo`` of a SelfSubjectReview
        (``kubectl auth whoami``; authentication.k8s.io/v1 since Kubernetes 1.28, v1beta1
        in 1.27), or None where the API server does not serve it. Asked once."""
        if self._identity is None:
            found = None
            for version in ("v1", "v1beta1"):
                status, doc = self.raw_post(
                    f"/apis/authentication.k8s.io/{version}/selfsubjectreviews",
                    {"apiVersion": f"authentication.k8s.io/{version}",
                     "kind": "SelfSubjectReview"})
                if status in (200, 201):
                    found = (doc.get("status") or {}).get("userInfo") or None
                    break
                if status not in (404, 405):
                    break
            self._identity = (found,)
        return self._identity[0]

    def can_i(self, verb: str, resource: str, namespace: str | None = None, group: str = "",
              name: str | None = None) -> bool | None:
        """A SelfSubjectAccessReview (``kubectl auth can-i``); None where not served."""
        attrs = {"verb": verb, "resource": resource, "group": group}
        if namespace:
            attrs["namespace"] = namespace
        if name:
            attrs["name"] = name
        status, doc = self.raw_post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
             "spec": {"resourceAttributes": attrs}})
        if status not in (200, 201):
            return None
        return bool((doc.get("status") or {}).get("allowed"))

    # -- objects -------------------------------------------------------------------------
    def resource(self, api_version: str, kind: str) -> Any:
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError as exc:
            raise ClusterError(
                f"the cluster does not serve {kind} ({api_version}): install the CRDs or "
                "the component that provides it, or leave it out of the manifests") from exc

    def apply(self, obj: dict, namespace: str | None, *, dry_run: bool = False) -> dict:
        """Server-side apply, as ``kubectl apply --server-side`` does it."""
        res = self.resource(obj["apiVersion"], obj["kind"])
        ns = namespace if res.namespaced else None
        body = dict(obj)
        meta = dict(body.get("metadata") or {})
        if res.namespaced and ns:
            meta["namespace"] = ns
        body["metadata"] = meta
        try:
            out = res.server_side_apply(body=body, name=meta["name"], namespace=ns,
                                        field_manager="meshgate", force_conflicts=True,
                                        dry_run="All" if dry_run else None)
        except ApiException as exc:
            raise self._api_error(exc, f"apply {obj['kind']} {meta.get('name')}") from exc
        return out.to_dict()

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None, *,
               grace_period: int | None = None) -> bool:
        """Delete an object (``grace_period=0``: at once, as ``kubectl delete --grace-period=0
        --force`` does); False when it was already gone."""
        res = self.resource(api_version, kind)
        body: dict[str, object] = {"propagationPolicy": "Background"}
        if grace_period is not None:
            body["gracePeriodSeconds"] = grace_period
        try:
            res.delete(name=name, namespace=namespace if res.namespaced else None, body=body)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise self._api_error(exc, f"delete {kind} {name}") from exc

    def patch_merge(self, api_version: str, kind: str, name: str, namespace: str | None,
                    patch: dict) -> dict:
        """A JSON merge patch (``kubectl patch --type merge``)."""
        res = self.resource(api_version, kind)
        try:
            return res.patch(body=patch, name=name, namespace=namespace,
                             content_type="application/merge-patch+json").to_dict()
        except ApiException as exc:
            raise self._api_error(exc, f"patch {kind} {name}") from exc

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict | None:
        res = self.resource(api_version, kind)
        try:
            return res.get(name=name, namespace=namespace).to_dict()
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._api_error(exc, f"get {kind} {name}") from exc

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict]:
        res = self.resource(api_version, kind)
        try:
            out = res.get(namespace=namespace, label_selector=label_selector)
        except ApiException as exc:
            raise self._api_error(exc, f"list {kind}") from exc
        return [i.to_dict() for i in out.items]

    # -- pods ----------------------------------------------------------------------------
    def exec(self, namespace: str, pod: str, container: str, command: Sequence[str],
             timeout: float = 30.0) -> ExecResult:
        """Run a command in a container over pods/exec (WebSocket), with its exit code."""
        ws = self._open_exec(namespace, pod, container, command)
        # `list` here is the method above, hence builtins' own for the annotations.
        out: builtins.list[str] = []
        err: builtins.list[str] = []
        deadline = time.monotonic() + timeout
        cut = ClusterError(f"exec in {namespace}/{pod} -c {container} ended without an exit "
                           f"status (the connection to the API server at {self.host} "
                           f"closed): {' '.join(command)}")
        try:
            while ws.is_open() and time.monotonic() < deadline:
                try:
                    ws.update(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
                except (WebSocketException, OSError) as exc:
                    # The stream was cut (an API server that restarted): the command's
                    # outcome is unknown.
                    raise cut from exc
                if ws.peek_stdout():
                    out.append(ws.read_stdout())
                if ws.peek_stderr():
                    err.append(ws.read_stderr())
            if ws.is_open():
                raise ClusterError(f"exec in {namespace}/{pod} -c {container} did not finish "
                                   f"within {timeout:.0f}s: {' '.join(command)}")
            try:
                code = ws.returncode
            except (TypeError, KeyError, IndexError, ValueError) as exc:
                raise cut from exc  # closed without a status on the error channel
        finally:
            ws.close()
        result = ExecResult("".join(out), "".join(err), code if code is not None else 0)
        self.received += len(result.stdout) + len(result.stderr)
        return result

    def _open_exec(self, namespace: str, pod: str, container: str,
                   command: Sequence[str]) -> Any:
        """The exec WebSocket, opened as the REST calls are sent (meshgate.apiserver): a
        connection refused while an API server that answered before restarts is tried
        again for the availability budget, and a handshake refused with 401 once more
        with fresh credentials. Neither started the command."""
        watcher = self.availability
        deadline = time.monotonic() + watcher.budget
        delay = 0.2
        refreshed = False
        while True:
            try:
                return stream(self.core.connect_get_namespaced_pod_exec, pod, namespace,
                              container=container, command=list(command), stderr=True,
                              stdin=False, stdout=True, tty=False, _preload_content=False)
            except ApiException as exc:
                reason = str(exc.reason or "")
                if exc.status == 0 and "401" in reason and not refreshed \
                        and watcher.credentials is not None:
                    refreshed = True
                    watcher.credentials.refresh()
                    apiserver.record_retry("401-credentials-refreshed")
                    continue
                unreachable = exc.status == 0 and any(
                    s in reason for s in ("Connection refused", "Connection reset",
                                          "Connection aborted", "EOF"))
                if unreachable and watcher.last is not None \
                        and time.monotonic() + delay < deadline:
                    apiserver.record_retry("unreachable")
                    time.sleep(delay)  # a bounded back-off between attempts, not a wait
                    delay = min(delay * 2, 2.0)
                    continue
                if unreachable:
                    last = watcher.last.describe(time.monotonic()) if watcher.last \
                        else "it has not answered this run"
                    raise ApiServerUnreachable(
                        f"the API server at {self.host} did not take the exec connection "
                        f"into {namespace}/{pod} -c {container} ({reason}); {last}") from exc
                raise self._api_error(exc, f"exec into {namespace}/{pod} -c {container}") \
                    from exc

    def service_get(self, namespace: str, service: str, port: int | str, path: str,
                    params: dict | None = None, timeout: float = 15.0) -> tuple[int, bytes]:
        """GET through the API server's services/proxy; returns (status, body)."""
        api_path = f"/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy/" \
                   f"{path.lstrip('/')}"
        return self.raw_get(api_path, list((params or {}).items()), timeout)

    def pod_get(self, namespace: str, pod: str, port: int, path: str,
                timeout: float = 15.0) -> tuple[int, bytes]:
        """GET through the API server's pods/proxy; returns (status, body)."""
        api_path = f"/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy/{path.lstrip('/')}"
        return self.raw_get(api_path, None, timeout)

    def forwarded_get(self, namespace: str, pod: str, port: int, path: str,
                      timeout: float = 15.0) -> tuple[int, bytes]:
        """GET ``path`` from a port the pod serves on its own localhost, through a
        port-forward (pods/portforward), as ``istioctl ztunnel-config`` reads ztunnel's
        admin port; returns (status, body)."""
        try:
            forward = portforward(self.core.connect_get_namespaced_pod_portforward, pod,
                                  namespace, ports=str(port))
        except ApiException as exc:
            raise self._api_error(exc, f"port-forward to {namespace}/{pod}:{port}") from exc
        try:
            sock = forward.socket(port)
            sock.settimeout(timeout)
            sock.sendall(f"GET /{path.lstrip('/')} HTTP/1.1\r\nHost: localhost\r\n"
                         "Connection: close\r\n\r\n".encode())
            data = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            raise ClusterError(f"port-forward to {namespace}/{pod}:{port}: {exc}") from exc
        finally:
            forward.close()
        head, _, body = data.partition(b"\r\n\r\n")
        try:
            status = int(head.split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise ClusterError(f"port-forward to {namespace}/{pod}:{port}: no HTTP answer "
                               f"({head[:80]!r})") from None
        return status, body

    def pod_logs(self, namespace: str, pod: str, container: str, tail: int | None = None
                 ) -> str:
        try:
            return self.core.read_namespaced_pod_log(pod, namespace, container=container,
                                                     tail_lines=tail)
        except ApiException as exc:
            raise self._api_error(exc, f"read the logs of {namespace}/{pod} -c {container}") \
                from exc

"""The OpenShift flavor, assembled: what ``localmesh up --flavor openshift [--ossm 2|3]``
adds to the cluster a client sees.

- **APIs**: ``route.openshift.io/v1`` Routes (routes.py) and ``project.openshift.io/v1``
  Projects and ProjectRequests (projects.py), served as openshift-apiserver serves them;
  the CRDs of ``security.openshift.io`` and ``config.openshift.io`` (crds.py) with the
  cluster's ``ClusterVersion`` ``version``, ``Ingress`` ``cluster`` (``spec.domain``: the
  apps domain) and ``Infrastructure`` ``cluster``.
- **Security**: OpenShift's default SecurityContextConstraints and their admission
  (scc.py), each namespace's UID range, supplemental groups and SELinux level
  (projects.py).
- **Ingress**: the default IngressController's router in ``openshift-ingress`` — the
  Deployment ``router-default`` (a real HAProxy, router_pod.py), the LoadBalancer Service
  ``router-default`` (ports 80 and 443, on loopback like every LoadBalancer here) and
  ``router-internal-default``; its wildcard certificate ``*.<apps domain>`` in Secret
  ``router-certs-default`` and its CA in ConfigMap
  ``openshift-config-managed/default-ingress-cert`` (``ca-bundle.crt``), as the ingress
  operator publishes it; Route admission, status and HAProxy config in router.py.
- **OpenShift Service Mesh** 2 (ossm.py) or 3 (sail.py), with OSSM's injection
  (injection.py).

The apps domain is ``apps.localmesh.test``: a Route's host resolves nowhere (there is no
DNS for it, as on any cluster whose wildcard record a machine does not know); a client
reaches it through the router's LoadBalancer address with the Route's host as ``Host``
(HTTP) or SNI (TLS) — ``curl --resolve <host>:80:<ip>`` — the way one reaches a real
router before DNS points at it.
"""

from __future__ import annotations

import base64
import time

from localmesh.api.objects import ObjectAPI
from localmesh.api.rbac.authorizer import Authorizer
from localmesh.api.server import Route
from localmesh.api.status import ApiError
from localmesh.controllers.base import Reconciler
from localmesh.istio.injector import Platform
from localmesh.openshift import crds, projects, scc
from localmesh.openshift.injection import OpenShiftInjection
from localmesh.openshift.ossm import CONTROL_PLANE, MemberRoll
from localmesh.openshift.router import Router, ingress_certificate
from localmesh.openshift.routes import ROUTES, ROUTES_KEY, RouteAdmission
from localmesh.openshift.sail import SailStatus

APPS_DOMAIN = "apps.localmesh.test"
OPENSHIFT_VERSION = "4.20.0"
INGRESS_NAMESPACE = "openshift-ingress"
ROUTER_IMAGE = "quay.io/openshift/origin-haproxy-router:4.20"
ROUTER_LABELS = {"ingresscontroller.operator.openshift.io/deployment-ingresscontroller":
                 "default"}
NAMESPACES = ("openshift", "openshift-config", "openshift-config-managed",
              "openshift-ingress-operator", INGRESS_NAMESPACE)


class OpenShift:
    """The OpenShift rooms of one instance. ``ossm`` is ``"2"``, ``"3"`` or None (no mesh);
    ``router_listen`` is where the router reconciler serves its pod the config."""

    def __init__(self, api: ObjectAPI, authorizer: Authorizer, ossm: str | None,
                 router_listen: str) -> None:
        self.api = api
        self.ossm = ossm
        self.domain = APPS_DOMAIN
        for rt in (ROUTES, *projects.TYPES):
            api.registry.types.append(rt)
        api.admission.add_mutator(("", "namespaces"), projects.allocate)
        route_admission = RouteAdmission(self.domain)
        api.admission.add_mutator(ROUTES_KEY, route_admission.default)
        api.admission.add_validator(ROUTES_KEY, route_admission.validate)
        self.projects = projects.ProjectAPI(api)
        self.ingress_ca, self.certificate, self.key = ingress_certificate(self.domain)
        # HAProxy's default certificate file: the certificate, its key and its CA.
        self.router = Router(api, self.domain, router_listen,
                             self.certificate + self.key + self.ingress_ca)
        self.scc = scc.SCCAdmission(authorizer.authorize)
        self.mesh_roll: MemberRoll | SailStatus | None = (
            MemberRoll(api) if ossm == "2" else SailStatus(api) if ossm == "3" else None)
        self.router_listen = router_listen

    @property
    def controllers(self) -> list[Reconciler]:
        return [self.router, *([self.mesh_roll] if self.mesh_roll is not None else [])]

    def routes(self) -> list[Route]:
        """The API server's fixed-path handlers (the Project API)."""
        return self.projects.routes()

    def injection(self) -> Platform | None:
        """OSSM's injection, for the mesh's injector."""
        if self.ossm == "2":
            return OpenShiftInjection(member_of=CONTROL_PLANE, network="v2-6-istio-cni")
        if self.ossm == "3":
            return OpenShiftInjection()
        return None

    def _create(self, body: dict, namespace: str = "") -> None:
        try:
            self.api.create(self.api.rt(body["apiVersion"], body["kind"]),
                            namespace or body["metadata"].get("namespace", ""), body)
        except ApiError as exc:
            if exc.code != 409:
                raise

    def install(self) -> None:
        """The platform's APIs and objects (before any workload)."""
        groups = crds.PLATFORM_GROUPS + (crds.OSSM2_GROUPS if self.ossm == "2" else ()) + \
            (crds.OSSM3_GROUPS if self.ossm == "3" else ())
        for body in crds.definitions(groups):
            self._create(body)
        for name in NAMESPACES:
            self._create({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": name}})
        for body in scc.default_sccs():
            self._create(body)
            self._create(scc.scc_role(body["metadata"]["name"]))
        self._create(scc.restricted_v2_binding())
        if self.api.store.get(("rbac.authorization.k8s.io", "clusterroles"), "",
                              "admin") is None:
            self._create(projects.admin_role())
        self._config_objects()

    async def start(self) -> None:
        await self.router.serve()

    def admit_pods(self) -> None:
        """SCC admission from now on; it must run after the sidecar injector (registered
        by the mesh's install), so every pod created afterwards is injected, then
        constrained — call it right after the mesh is installed, before anything yields."""
        self.api.admission.add_mutator(("", "pods"), self.scc)

    def deploy(self) -> None:
        """The router's workload and Services, and the Service Mesh's resources (after the
        mesh is installed and :meth:`admit_pods`)."""
        ns = INGRESS_NAMESPACE
        self._create({"apiVersion": "v1", "kind": "ServiceAccount",
                      "metadata": {"name": "router", "namespace": ns}})
        self._create({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                      "metadata": {"name": "router-certs-default", "namespace": ns},
                      "data": {"tls.crt": base64.b64encode(self.certificate.encode()).decode(),
                               "tls.key": base64.b64encode(self.key.encode()).decode()}})
        labels = {"app": "router", "router": "router-default", **ROUTER_LABELS}
        owning = {"ingresscontroller.operator.openshift.io/owning-ingresscontroller": "default"}
        self._create({"apiVersion": "v1", "kind": "Service", "metadata": {
            "name": "router-default", "namespace": ns, "labels": {**labels, **owning}},
            "spec": {"type": "LoadBalancer", "selector": dict(ROUTER_LABELS),
                     "externalTrafficPolicy": "Local", "ports": [
                         {"name": "http", "port": 80, "targetPort": "http"},
                         {"name": "https", "port": 443, "targetPort": "https"}]}})
        self._create({"apiVersion": "v1", "kind": "Service", "metadata": {
            "name": "router-internal-default", "namespace": ns,
            "labels": {**labels, **owning}},
            "spec": {"selector": dict(ROUTER_LABELS), "ports": [
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "https", "port": 443, "targetPort": "https"},
                {"name": "metrics", "port": 1936, "targetPort": 1936}]}})
        self._create(self._router_deployment())
        if isinstance(self.mesh_roll, MemberRoll | SailStatus):
            self.mesh_roll.install()

    def _router_deployment(self) -> dict:
        env = {"ROUTER_SERVICE_NAME": "default", "ROUTER_SERVICE_NAMESPACE": INGRESS_NAMESPACE,
               "ROUTER_CANONICAL_HOSTNAME": self.router.canonical_hostname,
               "ROUTER_SERVICE_HTTP_PORT": "8080", "ROUTER_SERVICE_HTTPS_PORT": "8443",
               "STATS_PORT": "1936", "ROUTER_THREADS": "1",
               "DEFAULT_CERTIFICATE_DIR": "/etc/pki/tls/private",
               # localmesh's: where the router reconciler serves the rendered config.
               "ROUTER_CONFIG_URL": f"http://{self.router_listen}/router/default/config"}
        probe = {"httpGet": {"path": "/healthz/ready", "port": 1936}, "periodSeconds": 2,
                 "timeoutSeconds": 2}
        return {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "router-default", "namespace": INGRESS_NAMESPACE,
                         "labels": {"ingresscontroller.operator.openshift.io/"
                                    "owning-ingresscontroller": "default"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": dict(ROUTER_LABELS)},
                     "template": {
                         "metadata": {"labels": dict(ROUTER_LABELS), "annotations": {
                             "target.workload.openshift.io/management":
                                 '{"effect": "PreferredDuringScheduling"}'}},
                         "spec": {"serviceAccountName": "router",
                                  "terminationGracePeriodSeconds": 2,
                                  "containers": [{
                                      "name": "router", "image": ROUTER_IMAGE,
                                      "env": [{"name": k, "value": v} for k, v in env.items()],
                                      "ports": [
                                          {"name": "http", "containerPort": 8080},
                                          {"name": "https", "containerPort": 8443},
                                          {"name": "metrics", "containerPort": 1936}],
                                      "readinessProbe": probe,
                                      "livenessProbe": {**probe, "httpGet": {
                                          "path": "/healthz", "port": 1936}}}],
                                  "volumes": [{"name": "default-certificate", "secret": {
                                      "secretName": "router-certs-default"}}]}}}}

    def _config_objects(self) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._create({"apiVersion": "config.openshift.io/v1", "kind": "Ingress",
                      "metadata": {"name": "cluster"},
                      "spec": {"domain": self.domain}})
        self._create({"apiVersion": "config.openshift.io/v1", "kind": "Infrastructure",
                      "metadata": {"name": "cluster"},
                      "spec": {"platformSpec": {"type": "None"}},
                      "status": {"platform": "None", "platformStatus": {"type": "None"},
                                 "infrastructureName": "localmesh",
                                 "controlPlaneTopology": "SingleReplica",
                                 "infrastructureTopology": "SingleReplica"}})
        self._create({"apiVersion": "config.openshift.io/v1", "kind": "ClusterVersion",
                      "metadata": {"name": "version"},
                      "spec": {"channel": "stable-4.20", "clusterID": "localmesh"},
                      "status": {"desired": {"version": OPENSHIFT_VERSION},
                                 "history": [{"state": "Completed", "startedTime": now,
                                              "completionTime": now,
                                              "version": OPENSHIFT_VERSION}],
                                 "conditions": [
                                     {"type": "Available", "status": "True",
                                      "lastTransitionTime": now, "message":
                                          f"Done applying {OPENSHIFT_VERSION}"},
                                     {"type": "Progressing", "status": "False",
                                      "lastTransitionTime": now, "message":
                                          f"Cluster version is {OPENSHIFT_VERSION}"}]}})
        self._create({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "default-ingress-cert",
                                   "namespace": "openshift-config-managed"},
                      "data": {"ca-bundle.crt": self.ingress_ca}})

    def pending(self) -> list[str]:
        """The platform's Deployments that are not available yet, as ``<ns>/<name>``."""
        deployments = self.api.store.list(("apps", "deployments"), INGRESS_NAMESPACE)
        return [f"{INGRESS_NAMESPACE}/{d['metadata']['name']}" for d in deployments
                if (d.get("status") or {}).get("availableReplicas", 0) < 1]

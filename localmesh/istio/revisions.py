"""Istio control plane revisions, installed through the API as on a real cluster.

``istioctl install --set revision=<rev>`` (or the istiod chart with ``revision=<rev>``;
istio.io "Canary upgrades") puts a second control plane beside the first: a Deployment and
a Service ``istiod-<rev>`` in ``istio-system`` labelled ``istio.io/rev: <rev>``, its mesh
config ConfigMap ``istio-<rev>``, its injector ConfigMap ``istio-sidecar-injector-<rev>``
and the MutatingWebhookConfiguration ``istio-sidecar-injector-<rev>``. localmesh brings
such a revision to life from exactly those objects, applied with kubectl
(``deploy/istiod-revision.yaml``):

- :class:`ControlPlanes` watches Deployments: for each one in ``istio-system`` labelled
  ``app=istiod`` with an ``istio.io/rev`` other than ``default``, it runs one more istiod
  (istiod.py) in localmesh's process, on a loopback address of its own, for as long as the
  Deployment exists. That istiod reads its own mesh config (``istio-<rev>``), serves its
  own xDS, certificate service and ``/debug/syncz``, and reports the version of its
  Deployment's image (``docker.io/istio/pilot:<version>``). All revisions share the mesh
  CA (Secret ``istio-ca-secret``), as Istio's revisions do, so mTLS spans them.
- The revision's pod is istiod's pod as for the default revision (pod.py: image
  ``istio/pilot`` forwarding 15010, 15012 and 15014 to the in-process istiod); the only
  thing localmesh adds to a chart's pod is ``ISTIOD_UPSTREAM``, where its in-process istiod
  listens, by the admission step :meth:`ControlPlanes.admit` (the default istiod's
  Deployment carries it from the installer).
- Each istiod serves its injection webhook (inject_server.py, HTTPS on 15017, the
  Service's port 443) and keeps its webhook configurations' ``caBundle`` set.
- Proxies reach the revision through its Service: the injector (injector.py) gives pods
  a revision's webhook selected ``discoveryAddress`` and ``CA_ADDR``
  ``istiod-<rev>.istio-system.svc``; they connect to that istiod and are listed in its
  ``/debug/syncz``, not in another revision's.

Deleting the Deployment stops that istiod (its pods go with it), so proxies still on it
lose their control plane as on a real cluster: they keep their last configuration and
reconnect in a loop.
"""

from __future__ import annotations

import logging

from localmesh.api.objects import ObjectAPI
from localmesh.controllers.base import Reconciler
from localmesh.istio import webhooks
from localmesh.istio.inject_server import InjectionWebhook, patch_ca_bundles
from localmesh.istio.injector import ISTIO_VERSION, Injector
from localmesh.istio.istiod import Istiod
from localmesh.istio.names import ISTIO_NAMESPACE
from localmesh.istio.security.ca import MeshCA
from localmesh.istio.security.ca_server import TokenReview
from localmesh.kubelet import catalogue
from localmesh.resources import ResourceType

log = logging.getLogger("localmesh.istiod")

DEPLOYMENTS = ("apps", "deployments")
PILOT = "docker.io/istio/pilot"
UPSTREAM = "ISTIOD_UPSTREAM"
DEFAULT = "default"
# Revisions' istiods listen on the instance's own server addresses, 127.B.0.<FIRST + n>
# (localmesh/network.py: 127.B.0.x holds the instance's servers; .2 is the default istiod).
FIRST = 16
LAST = 250


def pilot_version(deployment: dict) -> str:
    """The version an istiod Deployment runs: its ``istio/pilot`` image's tag."""
    spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    for c in spec.get("containers") or []:
        image = c.get("image", "")
        if catalogue.normalize(image) in (PILOT, "gcr.io/istio-release/pilot"):
            last = image.rsplit("/", 1)[-1]
            if ":" in last:
                return last.split(":", 1)[1]
    return ISTIO_VERSION


def revision_of(deployment: dict) -> str | None:
    """The revision of an istiod Deployment in ``istio-system``, else None."""
    meta = deployment.get("metadata") or {}
    labels = meta.get("labels") or {}
    if meta.get("namespace") != ISTIO_NAMESPACE or labels.get("app") != "istiod" or \
            meta.get("deletionTimestamp"):
        return None
    return labels.get("istio.io/rev") or DEFAULT


class ControlPlanes(Reconciler):
    """One in-process istiod per revision Deployment (the default one is the installer's)."""

    name = "istiod-revisions"
    keys = (DEPLOYMENTS, webhooks.MWC)

    def __init__(self, api: ObjectAPI, ca: MeshCA, token_review: TokenReview,
                 default: Istiod, injector: Injector) -> None:
        super().__init__(api)
        self.ca = ca
        self.injector = injector
        self.token_review = token_review
        self.default = default
        self.running: dict[str, Istiod] = {}
        self._addresses: dict[str, str] = {DEFAULT: default.address}
        self._base = default.address.rsplit(".", 1)[0]

    def address_for(self, revision: str) -> str:
        """The loopback address of a revision's istiod, the same for the instance's life."""
        if revision not in self._addresses:
            n = FIRST + len(self._addresses) - 1
            if n > LAST:
                raise RuntimeError(f"localmesh runs at most {LAST - FIRST + 1} revisions")
            self._addresses[revision] = f"{self._base}.{n}"
        return self._addresses[revision]

    async def reconcile(self) -> None:
        wanted: dict[str, str] = {}
        for d in self.api.store.scan(DEPLOYMENTS):
            rev = revision_of(d)
            if rev is not None and rev != DEFAULT:
                wanted[rev] = pilot_version(d)
        for rev in sorted(set(self.running) - set(wanted)):
            log.info("istiod revision %s: its Deployment is gone; stopping", rev)
            await self.running.pop(rev).stop()
        for rev, version in sorted(wanted.items()):
            running = self.running.get(rev)
            if running is not None:
                running.version = version  # a new image's pods report the new version
                continue
            istiod = Istiod(self.api, self.address_for(rev), self.ca, self.token_review,
                            revision=rev, version=version)
            istiod.webhook_routes = InjectionWebhook(self.api, self.injector, rev).routes()
            try:
                await istiod.start()
            except BaseException:
                await istiod.stop()
                raise
            self.running[rev] = istiod
            log.info("istiod revision %s (%s) serving at %s", rev, version, istiod.address)
        patch_ca_bundles(self.api, {DEFAULT, *self.running}, self.ca.root_pem)

    def admit(self, api: ObjectAPI, rt: ResourceType, pod: dict, old: dict | None) -> None:
        """Point a new istiod pod of a revision at its in-process istiod."""
        meta = pod.get("metadata") or {}
        if old is not None or meta.get("namespace") != ISTIO_NAMESPACE:
            return
        revision = (meta.get("labels") or {}).get("istio.io/rev") or DEFAULT
        for c in (pod.get("spec") or {}).get("containers") or []:
            if catalogue.lookup(c.get("image", "")) is not catalogue.lookup(PILOT):
                continue
            env = c.setdefault("env", [])
            if not any(e.get("name") == UPSTREAM for e in env):
                env.append({"name": UPSTREAM, "value": self.address_for(revision)})

    async def stop(self) -> None:
        await super().stop()
        for rev in list(self.running):
            await self.running.pop(rev).stop()

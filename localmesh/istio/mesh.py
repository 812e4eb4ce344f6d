"""Installs the mesh into a localmesh instance: istiod and the sidecar injector.

Like ``istioctl install``, it creates the ``istio-system`` namespace and its objects
through the API; istiod itself runs in the localmesh process (it is one of its
reconcilers) and serves xDS on the instance's own loopback address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from localmesh.istio.injector import inject
from localmesh.istio.istiod import Istiod

if TYPE_CHECKING:
    from localmesh.instance import Instance


class Mesh:
    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.installed = False
        self.address = instance.addresses.server_address(2)
        self.istiod = Istiod(instance.api, self.address)

    def proxy_config(self) -> dict:
        """meshConfig.defaultConfig as the injector passes it in PROXY_CONFIG."""
        return {"discoveryAddress": f"{self.address}:15010", "proxyAdminPort": 15000,
                "statusPort": 15020, "controlPlaneAuthPolicy": "NONE",
                "serviceCluster": "istio-proxy", "drainDuration": "1s"}

    async def install(self) -> None:
        api = self.instance.api
        api.mesh = self  # type: ignore[attr-defined]
        api.admission.add_mutator(("", "pods"), inject)
        ns_rt = api.rt("v1", "Namespace")
        if api.store.get(ns_rt.key, "", "istio-system") is None:
            api.create(ns_rt, "", {"metadata": {"name": "istio-system", "labels": {
                "istio-injection": "disabled"}}})
        await self.istiod.start()
        self.installed = True

    async def uninstall(self) -> None:
        await self.istiod.stop()

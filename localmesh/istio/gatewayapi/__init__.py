"""The Kubernetes Gateway API as a cluster with Istio and the Gateway API installed has it.

Modules after the two upstreams they stand for:

- ``crds.py``: the standard-channel CRDs (kubernetes-sigs/gateway-api
  ``config/crd/standard``) and the ``istio`` GatewayClass istiod creates;
- ``model.py``: the snapshot of the cluster the Gateway API controllers read;
- ``binding.py``: which routes attach to which Gateway listeners and why not, and what
  their backends resolve to (istio/istio ``pilot/pkg/config/kube/gateway`` conversion.go,
  conditions.go);
- ``status.py``: the status istiod writes on GatewayClasses, Gateways and routes;
- ``deployment.py``: Istio's automated deployment of a Gateway (deploymentcontroller.go,
  ``manifests/charts/istio-control/istio-discovery/files/kube-gateway.yaml``).

The Envoy side (route configurations, virtual hosts, routes) is in
``localmesh/istio/xds/gatewayapi.py``. This package module imports none of them.
"""

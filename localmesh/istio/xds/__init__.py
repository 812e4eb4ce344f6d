"""xDS generation: cluster state → the listeners, routes, clusters and endpoints of one proxy.

Pure functions over a :class:`~localmesh.istio.xds.model.MeshState` snapshot, so the
generator is testable without Envoy, in modules after istio/istio's
``pilot/pkg/networking/core``: ``model.py`` (the snapshot and the proxy), ``filters.py``
(the HTTP connection manager with Istio's access logs and metadata exchange),
``clusters.py`` (cluster.go), ``endpoints.py`` (EDS), ``routes.py`` (httproute.go),
``sidecar.py`` (a sidecar's listeners, listener.go and listener_inbound.go, and all its
resources) and ``gateway.py`` (gateway.go, with Kubernetes Ingress conversion); istiod
picks the sidecar or the gateway generator per proxy (localmesh/istio/istiod.py
``generate``). This package module imports none of them. Resource names and shapes
follow Istio's (see localmesh/istio/names.py). Where localmesh must differ because there
is no iptables, it says so here and in docs/localmesh.md:

- Outbound: apps send through an explicit proxy on the pod's local address, port 15001
  (``virtualOutbound``). Envoy cannot recover the original destination port, so
  ``virtualOutbound`` selects the per-port route configuration (``"8080"``, ``"7050"`` …)
  with scoped routes keyed on the port in ``:authority``. The per-port route
  configurations are the same ones Istio builds; the ``0.0.0.0_<port>`` listeners exist
  (``bind_to_port: false``, as in Istio) and reference them too.
- Inbound: ``virtualInbound`` additionally binds the pod IP on each container port
  (``additional_addresses``) and picks its filter chain by destination port, as Istio's
  chains do after the iptables redirect; the app behind it listens on the pod's local
  address.
"""

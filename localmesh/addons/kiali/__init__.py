"""Kiali's namespace graph API, computed from Prometheus the way Kiali computes it.

Served as Istio's addon serves it (istio/istio ``samples/addons/kiali.yaml``: port 20001,
``web_root: /kiali``, anonymous auth), so ``GET /kiali/api/namespaces/graph?namespaces=ns``
reached through the API server's services/proxy answers with Kiali's JSON
(kiali/kiali ``graph/config/common/common.go``). The pipeline is a port of Kiali's, file by
file, so that nodes, edges, ids and rates are the ones real Kiali would return for the
same series. One module per step, named after Kiali's packages:

1. ``options.py`` — ``graph/options.go`` ``NewOptions``: parameters, defaults, 400
   messages;
2. ``graph.py`` — ``graph/types.go`` and ``graph/protocol.go``: nodes and edges, ``Id``
   for node identity per graph type, the rates each protocol reports;
3. ``telemetry.py`` — ``graph/telemetry/istio/istio.go``: per namespace, the
   source-reported "unserviced" query, the destination-reported incoming query and the
   source-reported outgoing query, for ``istio_requests_total`` and the TCP byte counters,
   each wrapped in ``round(…,0.001)`` (``util.PromQuery``); then ``populateTrafficMap`` /
   ``addTraffic`` / ``addEdgeTraffic`` with the time-series hash that keeps a request
   reported by both proxies from being counted twice;
4. ``finalizers.py`` — ``graph/telemetry/common.go``: merge namespaces, mark outsiders
   and roots (traffic generators), reduce to services for ``graphType=service``;
5. ``cytoscape.py`` — ``graph/config/common/common.go`` (``graph/config/cytoscape``
   before Kiali 2): ``sha256`` ids (identical to Kiali's, so the same node has the same id
   as in a real Kiali), rates as decimal strings with Kiali's precision,
   response-code/flags/hosts percentages, app boxes, sort order;
6. ``app.py`` — the HTTP API (``graph/api/api.go`` and ``handlers``) and the program
   (``python -m localmesh.addons.kiali``, ``__main__.py``).

Differences from real Kiali, on purpose (and why):

* **New series count from zero.** Each query also runs a new-series variant (see
  localmesh/addons/promql.py): where Kiali's ``rate`` has no positive value for a group,
  the counter's growth since it appeared in the window is used. A scenario that sends a
  handful of requests and asks for the graph seconds later gets its edges; real Kiali
  would show them only once a series has two increasing samples in the window.
* **No Kubernetes.** Appenders that read cluster config or health
  (``graph/telemetry/istio/appender``: dead nodes, sidecar checks, gateways, service
  entries, health, response time, security policy) are not run; ``appenders`` is
  accepted and ignored. Every namespace counts as accessible
  (anonymous auth with cluster-wide access), so outsiders are never ``isInaccessible``;
  the namespace's creation time does not shorten the window.
* No ambient namespaces (no waypoint/ztunnel detection); the ambient-only query is
  never needed. ``boxBy=none`` is accepted (Kiali rejects it although it is the default).

This package module imports none of them.
"""


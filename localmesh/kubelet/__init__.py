"""The kubelet of localmesh's single node: pods become process groups.

One room, several modules (k8s.io/kubernetes ``pkg/kubelet`` is the model):

- ``node.py`` — the :class:`~localmesh.kubelet.node.Kubelet`: watches Pods bound to the
  node ``localmesh``, runs one pod worker per pod, writes their status back and finishes
  graceful deletion;
- ``pods.py`` — one pod's life: init containers, native sidecars, containers, restarts
  with back-off, probes, status, termination;
- ``probes.py`` — httpGet, tcpSocket, exec and grpc probes;
- ``runtime.py`` — containers as process groups, the pid registry and the watchdog
  (docs/localmesh.md, "Process hygiene");
- ``environment.py`` — a container's environment variables and volumes;
- ``catalogue.py`` — images → local programs (docs/images.md);
- ``streams.py`` — the pod subresources served by the node: exec, attach, log,
  portforward and proxy;
- ``pidns.py`` — ``kill`` inside a container with a container's PID numbering.

This package module imports none of them, so that importing one never imports the rest.
"""

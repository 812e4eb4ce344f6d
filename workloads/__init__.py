"""The three demo programs the mesh carries: ``composer``, ``vp0`` and ``membersrvc``.

They stand in for Hyperledger Composer Playground, a Fabric 0.6 validating peer and the
Fabric 0.6 member service of the 2017 walkthrough. The originals cannot run today (their
images need a Fabric 0.6 network and are no longer published for current platforms), and
the suite only needs what the mesh sees: the same
names, ports, protocols and call graph. One package serves all three so that the local
emulator (processes) and a real cluster (one container image) run the same code::

    python -m workloads composer|vp0|membersrvc

Call graph (each arrow is traffic the mesh must route, count and draw)::

    ingress -> composer:8080   GET /login, GET /config.json           (HTTP/1.1)
    ingress -> vp0:7050        GET /chain/blocks/0                    (HTTP/1.1)
    composer -> membersrvc:7054  /membersrvc.ECA/Enroll  (gRPC) on every GET /login
    composer -> vp0:7050         GET /chain              (HTTP) on every GET /login
    vp0 -> membersrvc:7054       /membersrvc.ECA/Enroll  (gRPC) at start, then periodically

gRPC without generated code: every method is unary and its request and response messages
are UTF-8 JSON objects (no protobuf), registered with grpc's generic method handlers. The
method paths (see :mod:`workloads.contract`) are:

* ``/membersrvc.ECA/Enroll``  ``{"enrollId", "enrollSecret"}`` -> ``{"enrollId", "serial",
  "certificate", "issuer"}``; ``INVALID_ARGUMENT`` when the id or the secret is empty.
* ``/membersrvc.ECA/Ping``    ``{}`` -> ``{"service": "membersrvc", "status": "SERVING"}``.
* ``/protos.Peer/Ping``       ``{}`` -> ``{"peer": "vp0", "status": "STARTED", "height": N}``.
* ``/protos.Peer/GetBlock``   ``{"number": n}`` -> the block (REST shape); ``NOT_FOUND``.

Configuration is by environment only (names in :data:`workloads.contract.ENVIRONMENT`),
so a Kubernetes manifest and the local emulator configure the programs the same way.
Secrets are held in :class:`workloads.settings.Secret` and are never logged.
"""

__version__ = "0.1.0"

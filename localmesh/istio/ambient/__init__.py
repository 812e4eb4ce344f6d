"""Istio's ambient data plane in localmesh: istio-cni, ztunnel's configuration, waypoints.

See docs/localmesh.md ("Ambient mode") for what is emulated and where it differs.
"""

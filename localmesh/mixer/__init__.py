"""The Mixer-era mesh (``localmesh up --mesh mixer``): Istio 1.4 with istio-pilot,
istio-telemetry and istio-policy, sidecars reporting every request to Mixer, and Mixer's
stdio and Prometheus adapters. Assembled by install.py."""

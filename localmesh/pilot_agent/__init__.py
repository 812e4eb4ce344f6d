"""pilot-agent of the istio/proxyv2 image: runs Envoy, status port, telemetry."""

"""Local stand-ins for the container images test manifests commonly use (pause, agnhost,
an HTTP/HTTPS echo server, nginx's launcher), run by the kubelet from the image catalogue
(localmesh/kubelet/catalogue.py; docs/images.md lists them)."""

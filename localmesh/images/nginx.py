"""The nginx image on Debian's nginx: ``nginx -g 'daemon off;'`` (the image's CMD) run with
a configuration written for the pod, the way the official image's would behave.

- The image's default site: ``/usr/share/nginx/html`` (Debian's package ships the same
  "Welcome to nginx!" page there) on port 80, with the 50x page.
- ``/etc/nginx/conf.d/*.conf`` and ``/usr/share/nginx/html`` can be mounted over (a
  ConfigMap, a volume), as with the real image; paths in the configuration that name a
  mount are read from it.
- Every ``listen`` binds the pod's address (``BIND_ADDRESS``), never a wildcard: ``listen
  80`` becomes ``listen <pod address>:80`` (IPv6 listens are dropped). Port 80 needs
  privilege: where the kubelet has none (not root, no CAP_NET_BIND_SERVICE, and
  ``net.ipv4.ip_unprivileged_port_start`` above the port) each port below 1024 is moved up
  by 8000 (80 → 8080) and the log says so; the pod's port 80 then does not answer
  (docs/images.md).
- Logs go to the container's stdout/stderr, temporary files to the pod's folder.

Other commands (``sh``, ``cat`` …) run as the host's programs, as for any image here.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import shutil
import socket
import sys
from pathlib import Path

from localmesh.kubelet.containerfs import mounts, translate

HTML = "/usr/share/nginx/html"
PRIVILEGED_SHIFT = 8000
DEFAULT_SITE = """server {
    listen       80;
    server_name  localhost;
    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }
    error_page   500 502 503 504  /50x.html;
    location = /50x.html {
        root   /usr/share/nginx/html;
    }
}
"""
_LISTEN = re.compile(r"^(\s*)listen\s+([^;]+);", re.MULTILINE)
_PATHS = re.compile(r"^(\s*(?:root|alias|include)\s+)(/[^;\s]+)", re.MULTILINE)


def can_bind(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno != errno.EACCES
    return True


def rewrite(conf: str, host: str, table: dict[str, str], privileged: bool) -> str:
    """``listen`` on the pod's address; mounted paths read from their volumes."""

    def listen(m: re.Match) -> str:
        words = m.group(2).split()
        address = words[0]
        if address.startswith("["):
            return f"{m.group(1)}# localmesh: IPv6 listen {address} dropped"
        port_text = address.rsplit(":", 1)[-1]
        if not port_text.isdigit():
            return m.group(0)
        port = int(port_text)
        if port < 1024 and not privileged:
            print(f"localmesh: port {port} needs privilege here; nginx listens on "
                  f"{port + PRIVILEGED_SHIFT} instead", file=sys.stderr, flush=True)
            port += PRIVILEGED_SHIFT
        rest = " ".join(w for w in words[1:] if w not in ("ipv6only=on", "ipv6only=off"))
        return f"{m.group(1)}listen {host}:{port}{' ' + rest if rest else ''};"

    conf = _LISTEN.sub(listen, conf)
    return _PATHS.sub(lambda m: m.group(1) + translate(m.group(2), table), conf)


def configuration(workdir: Path, host: str, table: dict[str, str], privileged: bool) -> str:
    conf_d = translate("/etc/nginx/conf.d", table)
    sites = sorted(glob.glob(os.path.join(conf_d, "*.conf"))) if conf_d != \
        "/etc/nginx/conf.d" else []
    servers = "\n".join(Path(p).read_text() for p in sites) if sites else DEFAULT_SITE
    temp = workdir / "nginx"
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (temp / sub).mkdir(parents=True, exist_ok=True)
    return f"""worker_processes 1;
pid {temp}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /dev/stdout;
    sendfile on;
    keepalive_timeout 65;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
{rewrite(servers, host, table, privileged)}
}}
"""


def main(argv: list[str]) -> int:
    if not argv or os.path.basename(argv[0]) != "nginx":
        program = shutil.which(argv[0]) if argv else None
        if program is None:
            print(f"exec: {argv[0] if argv else ''}: not found", file=sys.stderr)
            return 127
        os.execv(program, argv)
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        print("nginx is not installed on this host: install Debian's package "
              "(apt-get install --no-install-recommends nginx, or ./dev setup)",
              file=sys.stderr)
        return 127
    host = os.environ.get("BIND_ADDRESS", "127.0.0.1")
    workdir = Path(os.environ.get("HOME") or os.getcwd())
    table = mounts()
    conf = workdir / "nginx.conf"
    conf.write_text(configuration(workdir, host, table, can_bind(host, 80)))
    extra = argv[1:]
    os.execv(binary, [binary, "-c", str(conf), "-p", str(workdir), *extra])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

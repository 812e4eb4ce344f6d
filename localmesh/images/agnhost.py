"""registry.k8s.io/e2e-test-images/agnhost, the Kubernetes e2e tests' Swiss-army image, in
the modes test manifests use most (its ENTRYPOINT is ``/agnhost``; the first argument is the
mode):

- ``netexec [--http-port=8080] [--udp-port=8081]``: HTTP on the pod's address with
  ``/`` (NOW: <time>), ``/hostname``, ``/echo?msg=``, ``/clientip``, ``/header?key=``,
  ``/healthz``, ``/readyz``, ``/exit?code=``, ``/shell?cmd=`` (JSON ``output``/``error``);
  a UDP echo of ``hostname``/``echo <text>``/``clientip`` on the UDP port.
- ``serve-hostname [--port=9376] [--http=true] [--tcp] [--udp]``: answers every request
  with the pod's hostname.
- ``pause``: waits for a signal.

Only what these modes document; the image's many other modes are not here
(docs/images.md).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from localmesh.images import pause


def _flags(args: list[str]) -> dict[str, str]:
    out = {}
    for a in args:
        if a.startswith("--"):
            k, _, v = a[2:].partition("=")
            out[k] = v or "true"
    return out


def _hostname() -> str:
    return os.environ.get("HOSTNAME") or socket.gethostname()


class NetExec(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _send(self, code: int, body: str, ctype: str = "text/plain; charset=utf-8") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        if path == "/":
            self._send(200, f"NOW: {datetime.datetime.now(datetime.UTC)}")
        elif path == "/hostname":
            self._send(200, _hostname())
        elif path == "/echo":
            self._send(200, q.get("msg", ""))
        elif path == "/clientip":
            self._send(200, f"{self.client_address[0]}:{self.client_address[1]}")
        elif path == "/header":
            self._send(200, self.headers.get(q.get("key", ""), ""))
        elif path in ("/healthz", "/readyz"):
            self._send(200, "ok")
        elif path == "/exit":
            self._send(200, "")
            os._exit(int(q.get("code", "0")))
        elif path == "/shell":
            done = subprocess.run(["/bin/sh", "-c", q.get("cmd", "")], capture_output=True,
                                  text=True, timeout=30, check=False)
            out = {"output": done.stdout}
            if done.returncode:
                out["error"] = f"exit status {done.returncode}"
            self._send(200, json.dumps(out), "application/json")
        else:
            self._send(404, "404 page not found\n")

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


def _udp(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, port))
        while True:
            data, peer = s.recvfrom(65535)
            text = data.decode(errors="replace").strip()
            if text == "hostname":
                answer = _hostname()
            elif text.startswith("echo "):
                answer = text[5:]
            elif text == "clientip":
                answer = f"{peer[0]}:{peer[1]}"
            else:
                answer = ""
            s.sendto(answer.encode(), peer)


def netexec(flags: dict[str, str]) -> int:
    host = os.environ.get("BIND_ADDRESS", "127.0.0.1")
    udp = int(flags.get("udp-port", "8081"))
    if udp > 0:
        threading.Thread(target=_udp, args=(host, udp), daemon=True).start()
    server = ThreadingHTTPServer((host, int(flags.get("http-port", "8080"))), NetExec)
    print(f"Started HTTP server on port {server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


def serve_hostname(flags: dict[str, str]) -> int:
    host = os.environ.get("BIND_ADDRESS", "127.0.0.1")
    port = int(flags.get("port", "9376"))
    name = _hostname()
    if flags.get("tcp") == "true" or flags.get("udp") == "true":
        kind = socket.SOCK_STREAM if flags.get("tcp") == "true" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, port))
            if kind == socket.SOCK_STREAM:
                s.listen()
            while True:
                if kind == socket.SOCK_STREAM:
                    conn, _ = s.accept()
                    with conn:
                        conn.sendall(name.encode())
                else:
                    _, peer = s.recvfrom(1024)
                    s.sendto(name.encode(), peer)

    class Hostname(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    print(f"Serving on port {port}.", flush=True)
    ThreadingHTTPServer((host, port), Hostname).serve_forever()
    return 0


def main(argv: list[str]) -> int:
    mode, flags = (argv[0] if argv else ""), _flags(argv[1:])
    if mode == "netexec":
        return netexec(flags)
    if mode == "serve-hostname":
        return serve_hostname(flags)
    if mode == "pause":
        return pause.main()
    print(f"localmesh's agnhost serves netexec, serve-hostname and pause, not {mode!r} "
          "(docs/images.md)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

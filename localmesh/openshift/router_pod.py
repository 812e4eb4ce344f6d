"""The program of the router's image (``quay.io/openshift/origin-haproxy-router``): a real
HAProxy, configured and reloaded like OpenShift's router does it.

OpenShift's ``openshift-router`` renders its template and runs ``reload-haproxy``
(openshift/router ``images/router/haproxy/reload-haproxy``), which starts HAProxy or
hands its listeners to a new process. Here the rendering happens in localmesh's process
(router.py); this program long-polls it (``ROUTER_CONFIG_URL``) for new files, writes them
into the pod's folder with the pod's addresses filled in (haproxy.py's placeholders),
checks the configuration (``haproxy -c``) and starts HAProxy in master-worker mode, or
reloads it (SIGUSR2 to the master: new workers take the new config, old ones finish their
connections). It logs each reload as the router does, and stops HAProxy with the pod.
``maxconn`` is lowered to what the process's descriptor limit allows.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from localmesh.kubelet.runtime import die_with_parent
from localmesh.openshift.haproxy import CONF, LOCAL_IP, POD_IP


def haproxy_binary() -> str:
    """Debian's haproxy (in /usr/sbin, which a pod's PATH may not name)."""
    return shutil.which("haproxy") or "/usr/sbin/haproxy"


def _log(message: str) -> None:
    print(f'I0000 router.go] template "msg"="{message}"', flush=True)


def fetch(url: str, version: str) -> dict | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}?version={version}", timeout=35) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def max_connections(wanted: int = 20000) -> int:
    """``ROUTER_MAX_CONNECTIONS`` (20000) within what the process may open: HAProxy needs
    two descriptors per connection and refuses to start where it cannot raise its limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else soft
    return max(256, min(wanted, (limit - 200) // 2))


def write(conf: Path, files: dict[str, str], pod_ip: str, local_ip: str) -> None:
    for name, text in files.items():
        path = conf / name
        path.parent.mkdir(parents=True, exist_ok=True)
        body = text.replace(CONF, str(conf)).replace(POD_IP, pod_ip).replace(LOCAL_IP,
                                                                             local_ip)
        if name == "haproxy.config":
            body = body.replace("maxconn 20000", f"maxconn {max_connections()}")
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(body)
        os.replace(tmp, path)


async def run() -> int:
    url = os.environ["ROUTER_CONFIG_URL"]
    pod_ip = os.environ.get("LOCALMESH_POD_IP", "127.0.0.1")
    local_ip = os.environ.get("LOCALMESH_POD_LOCAL_IP", pod_ip)
    conf = Path(os.environ.get("HOME", ".")) / "haproxy"
    conf.mkdir(parents=True, exist_ok=True)
    binary = haproxy_binary()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    proc: asyncio.subprocess.Process | None = None
    version = ""
    stopping = asyncio.ensure_future(stop.wait())
    while not stop.is_set():
        fetching = asyncio.ensure_future(asyncio.to_thread(fetch, url, version))
        await asyncio.wait({fetching, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            fetching.cancel()
            break
        answer = fetching.result()
        if answer is None:
            await asyncio.wait({stopping}, timeout=0.5)  # localmesh restarting: try again
            continue
        if answer.get("version") == version:
            continue
        write(conf, answer.get("files") or {}, pod_ip, local_ip)
        check = subprocess.run([binary, "-c", "-q", "-f", str(conf / "haproxy.config")],
                               capture_output=True, text=True)
        if check.returncode != 0:
            print(f"E0000 router.go] reloading the router failed: {check.stderr.strip()}",
                  file=sys.stderr, flush=True)
            version = answer.get("version", "")
            continue
        version = answer.get("version", "")
        if proc is None or proc.returncode is not None:
            proc = await asyncio.create_subprocess_exec(*die_with_parent(
                [binary, "-W", "-db", "-f", str(conf / "haproxy.config")], "TERM"))
        else:
            proc.send_signal(signal.SIGUSR2)
        _log("router reloaded")
    if proc is not None and proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
    return 0


def main() -> int:
    return asyncio.run(run())


if __name__ == "__main__":
    raise SystemExit(main())

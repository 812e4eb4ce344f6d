"""localmesh API benchmark: boot, a Deployment's readiness, bulk ConfigMaps, idle memory.

A plain script (not a test); it prints one table and exits 1 if a target is missed.

    .venv/bin/python bench/localmesh_api.py [--boots 5] [--configmaps 1000]

What it measures, against the targets of issue 3:

- ``localmesh up`` → ready: the CLI (``python -m localmesh up --no-mesh``) run as a user
  runs it, until it returns (it returns once the API answers); median of N boots.
- a 3-replica busybox Deployment created → all 3 Ready (``status.readyReplicas``, seen
  through a watch, so no polling interval is added); median of 5 rollouts.
- N ConfigMaps created one request at a time, then listed in one request.
- the ``localmesh serve`` process's RSS (``VmRSS`` in /proc/<pid>/status) when idle with
  no pod running: right after boot, and again after the work above is deleted.

Everything runs on loopback against a private state directory; every loop is bounded.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubernetes import client, config, watch  # noqa: E402

from localmesh.cli import launch  # noqa: E402

TARGET_BOOT_S = 1.0
TARGET_DEPLOY_S = 1.0
TARGET_IDLE_MIB = 150.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def boot_times(n: int, work: Path) -> list[float]:
    """Wall time of ``localmesh up`` (it returns when localmesh is ready), n times."""
    out = []
    for i in range(n):
        state = work / f"boot-{i}"
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "localmesh", "up", "--state-dir", str(state),
                        "--no-mesh"], check=True, capture_output=True, timeout=60, cwd=REPO)
        out.append(time.monotonic() - t0)
        subprocess.run([sys.executable, "-m", "localmesh", "down", "--state-dir", str(state)],
                       check=True, capture_output=True, timeout=60, cwd=REPO)
    return out


def deployment(name: str) -> dict:
    return {"metadata": {"name": name},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "main", "image": "busybox:1.36",
                                         "command": ["sh", "-c", "sleep 3600"]}]}}}}


def deploy_ready_time(apps: client.AppsV1Api, ns: str, name: str) -> float:
    """Seconds from the create request to readyReplicas == 3."""
    w = watch.Watch()
    rv = apps.list_namespaced_deployment(ns).metadata.resource_version
    t0 = time.monotonic()
    apps.create_namespaced_deployment(ns, deployment(name))
    for ev in w.stream(apps.list_namespaced_deployment, ns, resource_version=rv,
                       field_selector=f"metadata.name={name}", timeout_seconds=30):
        st = ev["object"].status
        if st and (st.ready_replicas or 0) >= 3:
            w.stop()
            return time.monotonic() - t0
    raise RuntimeError(f"deployment {name} was not ready within 30 s")


def wait_no_pods(core: client.CoreV1Api, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not core.list_pod_for_all_namespaces().items:
            return
        time.sleep(0.1)
    raise RuntimeError("pods still exist after cleanup")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--boots", type=int, default=5)
    p.add_argument("--rollouts", type=int, default=5)
    p.add_argument("--configmaps", type=int, default=1000)
    args = p.parse_args(argv)
    rows: list[tuple[str, str, str, str]] = []

    def row(what: str, value: str, target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        rows.append((what, value, target, verdict))

    with tempfile.TemporaryDirectory(prefix="localmesh-bench-") as tmp:
        work = Path(tmp)
        boots = boot_times(args.boots, work)
        boot = statistics.median(boots)
        row(f"localmesh up → ready (median of {len(boots)})", f"{boot:.3f} s",
            f"≤ {TARGET_BOOT_S:.0f} s", boot <= TARGET_BOOT_S)
        row("  boots", ", ".join(f"{b:.3f}" for b in boots) + " s")

        handle = launch(work / "main", mesh=False, timeout=60)
        try:
            api = config.new_client_from_config(config_file=str(handle.kubeconfig))
            core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
            time.sleep(0.5)  # let the boot's own writes settle before the idle reading
            idle_boot = rss_mib(handle.pid)
            row("idle RSS after boot", f"{idle_boot:.1f} MiB", f"≤ {TARGET_IDLE_MIB:.0f} MiB",
                idle_boot <= TARGET_IDLE_MIB)

            ns = "bench"
            core.create_namespace({"metadata": {"name": ns}})
            ready = [deploy_ready_time(apps, ns, f"web-{i}") for i in range(args.rollouts)]
            med = statistics.median(ready)
            row(f"3-replica Deployment → all Ready (median of {len(ready)})", f"{med:.3f} s",
                f"≤ {TARGET_DEPLOY_S:.0f} s", med <= TARGET_DEPLOY_S)
            row("  rollouts", ", ".join(f"{r:.3f}" for r in ready) + " s")
            for i in range(args.rollouts):
                apps.delete_namespaced_deployment(f"web-{i}", ns)

            cm_ns = "bench-cm"
            core.create_namespace({"metadata": {"name": cm_ns}})
            t0 = time.monotonic()
            for i in range(args.configmaps):
                core.create_namespaced_config_map(cm_ns, {"metadata": {"name": f"cm-{i:04d}"},
                                                          "data": {"index": str(i)}})
            created = time.monotonic() - t0
            row(f"{args.configmaps} ConfigMaps created (sequential)", f"{created:.3f} s")
            row("  per create", f"{created / args.configmaps * 1000:.2f} ms")
            t0 = time.monotonic()
            listed = core.list_namespaced_config_map(cm_ns)
            took = time.monotonic() - t0
            assert len(listed.items) >= args.configmaps
            row(f"{len(listed.items)} ConfigMaps listed (one request)", f"{took * 1000:.1f} ms")
            t0 = time.monotonic()
            body = core.list_namespaced_config_map(cm_ns, _preload_content=False).data
            took_raw = time.monotonic() - t0
            row("  same list, raw JSON (no client decoding)",
                f"{took_raw * 1000:.1f} ms, {len(body) / 1024:.0f} KiB")
            loaded = rss_mib(handle.pid)
            row(f"RSS with {args.configmaps} ConfigMaps stored", f"{loaded:.1f} MiB")

            core.delete_namespace(ns)
            core.delete_namespace(cm_ns)
            wait_no_pods(core)
            idle_after = rss_mib(handle.pid)
            row("idle RSS after the work is deleted (no pod)", f"{idle_after:.1f} MiB",
                f"≤ {TARGET_IDLE_MIB:.0f} MiB", idle_after <= TARGET_IDLE_MIB)
            api.close()
        finally:
            handle.stop()

    widths = [max(len(r[i]) for r in [("measure", "value", "target", ""), *rows])
              for i in range(4)]
    print("  ".join(h.ljust(w) for h, w in zip(("measure", "value", "target", ""), widths,
                                                strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 1 if any(r[3] == "MISSED" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Gating a change, not only a state: checks before, traffic through the change, checks
and the disruption after (``meshgate change -- COMMAND…``, ``meshgate run --phase``).

Two green runs before and after a change can hide a change that dropped a third of the
requests while it rolled out, or that left half the sidecars on the old control plane.
So, as Cilium's connectivity test does for a network (connections set up before an
upgrade must survive it):

1. **before**: the gate checks run (the suite's gate profile, the namespace kept for
   after); then traffic starts through the ingress — a recorder process
   (meshgate.recorder) that lasts through the change, every request's outcome recorded —
   and the proxies are noted (revision, image, control plane);
2. **the change**: the user's command (``istioctl upgrade``, ``helm upgrade``, a script),
   bounded by a timeout, with ``KUBECONFIG`` and ``MESHGATE_NAMESPACE(S)`` in its
   environment and its output kept for the report;
3. **after**: the traffic stops, the checks run again on the same namespace, and the
   disruption is reported — per flow and per hop, the longest gap without a success,
   connections reset, which proxies changed revision or control plane — with a timeline
   picture. The thresholds (``--max-failed-requests``, default 0; ``--max-gap``) make it a
   gate.

The two halves can run in separate jobs: the state between them (the run id, the
namespace, the recorder's PID, the proxies before) is a JSON file in the artifacts folder.
On ``--target local`` the before half boots a localmesh that outlives it and the after
half stops it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from meshgate import children, disruption, ingress, namespaces
from meshgate.cluster import Cluster
from meshgate.live_traffic import PATHS, LiveTraffic, TrafficError
from meshgate.mesh import discover
from meshgate.telemetry import backend

REPO = Path(__file__).resolve().parents[1]
STATE_FILE = "state.json"
RECORDER_STOP_SECONDS = 10.0


class ChangeError(RuntimeError):
    """The change cannot be gated (a phase's checks failed to run, no state from before);
    the message says what and what to do."""


@dataclass
class Options:
    """What the user chose for the change."""

    artifacts: Path
    target: str = "local"
    kubeconfig: str | None = None
    context: str | None = None
    pytest_args: list[str] = field(default_factory=list)
    max_failed: int = 0
    max_gap: float | None = None
    timeout: float = 1800.0
    keep: str = "on-failure"


@dataclass
class State:
    """What the before half leaves for the after half (``<artifacts>/state.json``)."""

    run_id: str
    kubeconfig: str
    context: str | None
    namespaces: list[str]
    entry_url: str
    entry_how: str
    host: str
    recorder_pid: int
    recorder_out: str
    started: float
    proxies_before: list[dict[str, Any]]
    localmesh_state: str | None = None
    command: list[str] = field(default_factory=list)
    command_status: int | None = None
    command_started: float | None = None
    command_ended: float | None = None
    command_timed_out: bool = False

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / STATE_FILE).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, folder: Path) -> State:
        path = folder / STATE_FILE
        if not path.is_file():
            raise ChangeError(f"no state of a 'before' phase in {folder}: run `meshgate run "
                              "--phase before` with the same --artifacts first")
        return cls(**json.loads(path.read_text()))


def _suite(options: Options, kubeconfig: str, context: str | None, run_id: str,
           keep: str, junit: Path) -> int:
    """The gate checks (the suite's gate profile) on the change's namespace."""
    command = [sys.executable, "-m", "pytest", str(REPO / "steps"), "-p", "no:cacheprovider",
               "--target", "kubeconfig", "--kubeconfig", kubeconfig, "--profile", "gate",
               "--run-id", run_id, f"--keep={keep}", f"--artifacts={options.artifacts}",
               f"--junitxml={junit}", "--no-html-report", "-q", *options.pytest_args]
    if context:
        command += ["--kube-context", context]
    return children.run_or_interrupt(command)


def _cluster(options: Options, folder: Path) -> tuple[str, str | None, str | None]:
    """The kubeconfig (and context) to gate the change on, and the localmesh state
    folder when one was booted for it."""
    if options.target == "local" and not options.kubeconfig:
        from meshgate.targets.local import boot_detached

        state = folder / "localmesh"
        provided = boot_detached(state)
        print(f"meshgate: target {provided.description}", file=sys.stderr)
        return str(provided.kubeconfig), None, str(state)
    if not options.kubeconfig and options.target != "kubeconfig":
        raise ChangeError(f"--target {options.target} cannot be gated across a change: use "
                          "--target local or --target kubeconfig --kubeconfig FILE")
    path = options.kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or \
        str(Path.home() / ".kube" / "config")
    return path, options.context, None


def before(options: Options, *, detached: bool) -> State:
    """The checks, then the traffic; returns (and saves) the state for ``after``.
    ``detached``: the recorder outlives this process (the after half runs in another)."""
    folder = options.artifacts
    folder.mkdir(parents=True, exist_ok=True)
    kubeconfig, context, local_state = _cluster(options, folder)
    run_id = namespaces.new_run_id()
    recorder: children.Child | None = None
    try:
        status = _suite(options, kubeconfig, context, run_id, "always",
                        folder / "junit-before.xml")
        if status != 0:
            raise ChangeError(f"the checks before the change failed (exit {status}): the "
                              f"cluster is not in a state worth changing; see "
                              f"{folder / 'junit-before.xml'}")
        cluster = Cluster(Path(kubeconfig), context, run_id=run_id)
        mesh = discover(cluster)
        names = sorted(n["metadata"]["name"] for n in cluster.list(
            "v1", "Namespace", label_selector=f"{namespaces.RUN_LABEL}={run_id}"))
        if not names:
            raise ChangeError(f"the checks before the change left no namespace of run {run_id}")
        host = ingress.scenario_host(names[0], mesh.host_domain)
        entry = ingress.entry_for(cluster, mesh, host, names[0])
        out = folder / "requests.jsonl"
        traffic = LiveTraffic.start(entry.base_url, host, out, paths=PATHS, detached=detached,
                                    server_name=entry.server_name, ca_pem=entry.ca_pem,
                                    max_seconds=options.timeout + 600)
        recorder = traffic.child
        state = State(run_id, kubeconfig, context, names, entry.base_url, entry.how, host,
                      recorder.process.pid, str(out), traffic.started,
                      [asdict(p) for p in disruption.proxies(cluster, mesh, names[0])],
                      local_state)
    except BaseException:
        if recorder is not None and recorder.process.poll() is None:
            recorder.process.terminate()
            recorder.process.wait(timeout=RECORDER_STOP_SECONDS)
        if isinstance(sys.exc_info()[1], TrafficError):
            raise ChangeError(str(sys.exc_info()[1])) from None
        if local_state is not None:
            from meshgate.targets.local import stop_detached

            stop_detached(Path(local_state))
        raise
    state.save(folder)
    print(f"meshgate: traffic through {entry.how} (Host {host}) is recorded in {out}",
          file=sys.stderr)
    return state


def run_command(state: State, options: Options, command: list[str]) -> State:
    """The change itself, bounded, with the namespaces in its environment."""
    env = {**os.environ, "KUBECONFIG": state.kubeconfig,
           "MESHGATE_NAMESPACE": state.namespaces[0],
           "MESHGATE_NAMESPACES": " ".join(state.namespaces)}
    state.command = command
    state.command_started = time.time()
    status, output, timed_out = children.communicate(command, env=env,
                                                     timeout=options.timeout)
    state.command_ended = time.time()
    state.command_status = status
    state.command_timed_out = timed_out
    (options.artifacts / "command-output.txt").write_text(output)
    state.save(options.artifacts)
    return state


def _stop_recorder(state: State) -> None:
    """SIGTERM the recorder the before half started — by its PID, and only if that PID is
    still the recorder (its command line names its output file)."""
    pid = state.recorder_pid
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return
    if "meshgate.recorder" not in cmdline or state.recorder_out not in cmdline:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + RECORDER_STOP_SECONDS
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        time.sleep(0.05)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)


@dataclass
class Outcome:
    """The verdict of a gated change, and everything it rests on."""

    ok: bool
    reasons: list[str]
    report: dict[str, Any]


def after(options: Options) -> Outcome:
    """Stop the traffic, check again, judge the disruption, write the report."""
    folder = options.artifacts
    state = State.load(folder)
    ended = time.time()
    _stop_recorder(state)
    records = disruption.read_records(Path(state.recorder_out).read_text()
                                      if Path(state.recorder_out).exists() else "")
    try:
        cluster = Cluster(Path(state.kubeconfig), state.context, run_id=state.run_id)
        mesh = discover(cluster)
        proxies_after = disruption.proxies(cluster, mesh, state.namespaces[0])
        prom = backend(cluster, mesh)
        hops = disruption.hop_stats(prom, state.namespaces[0], ended - state.started) \
            if prom is not None else []
        restarts = _restarts(cluster, state.namespaces[0], state.started)
        checks = _suite(options, state.kubeconfig, state.context, state.run_id, options.keep,
                        folder / "junit-after.xml")
    except BaseException:
        _stop_localmesh(state, options, failed=True)
        raise
    flows = disruption.flow_stats(records, state.started, ended)
    verdict = disruption.judge(flows, max_failed=options.max_failed, max_gap=options.max_gap)
    reasons = list(verdict.reasons)
    if state.command_status not in (None, 0):
        reasons.insert(0, f"the change command exited with {state.command_status}"
                       + (" after its timeout" if state.command_timed_out else ""))
    if checks != 0:
        reasons.append(f"the checks after the change failed (exit {checks}); see "
                       f"{folder / 'junit-after.xml'}")
    _stop_localmesh(state, options, failed=bool(reasons))
    before_proxies = [disruption.Proxy(**p) for p in state.proxies_before]
    changes = disruption.proxy_changes(before_proxies, proxies_after)
    report = disruption.as_json(flows, hops, changes, disruption.Verdict(not reasons,
                                                                         reasons))
    report.update({"run_id": state.run_id, "namespaces": state.namespaces,
                   "entry": state.entry_how, "host": state.host, "started": state.started,
                   "ended": ended, "command": state.command,
                   "command_status": state.command_status,
                   "command_started": state.command_started,
                   "command_ended": state.command_ended, "restarts": restarts,
                   "proxies_after": [asdict(p) for p in proxies_after]})
    (folder / "change.json").write_text(json.dumps(report, indent=1))
    from meshgate.reports.change_html import render_change

    output = folder / "command-output.txt"
    (folder / "change.html").write_text(render_change(
        report, records, output.read_text(errors="replace") if output.exists() else ""))
    return Outcome(not reasons, reasons, report)


def _stop_localmesh(state: State, options: Options, *, failed: bool) -> None:
    """Stop the localmesh booted for the change, unless ``--change-keep`` keeps it."""
    keep = options.keep == "always" or (options.keep == "on-failure" and failed)
    if state.localmesh_state is None:
        return
    if keep:
        print(f"meshgate: kept the localmesh of the change in {state.localmesh_state} "
              f"(`localmesh down --state-dir {state.localmesh_state}` stops it)",
              file=sys.stderr)
        return
    from meshgate.targets.local import stop_detached

    stop_detached(Path(state.localmesh_state))


def _restarts(cluster: Cluster, namespace: str, since: float) -> list[tuple[float, str]]:
    """Pods created and containers started during the window, for the timeline."""
    import datetime as dt

    def when(stamp: str | None) -> float | None:
        if not stamp:
            return None
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    marks = []
    for pod in cluster.list("v1", "Pod", namespace):
        name = pod["metadata"]["name"]
        created = when(pod["metadata"].get("creationTimestamp"))
        if created is not None and created > since:
            marks.append((created, f"{name} created"))
        for c in (pod.get("status") or {}).get("containerStatuses") or []:
            started = when(((c.get("state") or {}).get("running") or {}).get("startedAt"))
            if started is not None and started > since and c.get("restartCount", 0):
                marks.append((started, f"{name}/{c['name']} restarted"))
    return sorted(marks)


def change(options: Options, command: list[str]) -> Outcome:
    """Both halves around the command, in one process."""
    state = before(options, detached=False)
    try:
        run_command(state, options, command)
    except children.Interrupted:
        _stop_recorder(state)
        _stop_localmesh(state, options, failed=False)
        raise
    return after(options)

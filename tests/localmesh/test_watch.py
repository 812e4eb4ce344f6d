"""Watch: resume from a resourceVersion, selectors (and objects that stop matching), the
Python client's ``watch.Watch().stream``, 410 Gone, bookmarks, initial events, and the
deprecated ``/watch/`` paths."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from kubernetes import client, watch

from tests.localmesh.conftest import Raw
from tests.support import boot_localmesh, poll


def _stream_lines(raw: Raw, path: str, stop_after: int = 1000) -> list[dict]:
    """Read a (bounded: timeoutSeconds in the path) watch stream to its end."""
    resp = raw("GET", path, preload=False)
    assert resp.status == 200, resp.status
    out: list[dict] = []
    buf = b""
    for chunk in resp.stream(4096):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                out.append(json.loads(line))
        if len(out) >= stop_after:
            break
    resp.release_conn()
    return out


def _in_thread(fn: Callable[[], None]) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def test_resume_from_resource_version(core: client.CoreV1Api, raw: Raw, ns: str) -> None:
    core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "b"}})
    core.patch_namespaced_config_map("a", ns, {"data": {"x": "1"}})
    core.delete_namespaced_config_map("b", ns)
    events = _stream_lines(raw, f"/api/v1/namespaces/{ns}/configmaps?watch=1&"
                                f"resourceVersion={rv}&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert all(e["object"]["kind"] == "ConfigMap" for e in events)
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


def test_watch_without_version_starts_with_current_objects(core: client.CoreV1Api, raw: Raw,
                                                           ns: str) -> None:
    core.create_namespaced_config_map(ns, {"metadata": {"name": "one"}})
    events = _stream_lines(raw, f"/api/v1/namespaces/{ns}/configmaps?watch=true&"
                                "timeoutSeconds=1")
    names = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    assert ("ADDED", "one") in names


def test_python_client_stream_with_selectors(core: client.CoreV1Api, ns: str) -> None:
    """An object that stops matching the selector is DELETED for this watcher, and ADDED
    when it matches again (cache_watcher.go convertToWatchEvent)."""
    core.create_namespaced_config_map(ns, {"metadata": {"name": "sel",
                                                        "labels": {"team": "a"}}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "other",
                                                        "labels": {"team": "z"}}})
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    got: list[tuple[str, str, str | None]] = []
    w = watch.Watch()

    def run() -> None:
        for ev in w.stream(core.list_namespaced_config_map, ns, label_selector="team=a",
                           resource_version=rv, timeout_seconds=5):
            obj = ev["object"]
            got.append((ev["type"], obj.metadata.name, (obj.metadata.labels or {}).get("team")))
            if len(got) == 4:
                w.stop()

    t = _in_thread(run)
    core.patch_namespaced_config_map("other", ns, {"data": {"ignored": "1"}})
    core.patch_namespaced_config_map("sel", ns, {"metadata": {"labels": {"team": "b"}}})
    core.patch_namespaced_config_map("sel", ns, {"metadata": {"labels": {"team": "a"}}})
    core.patch_namespaced_config_map("sel", ns, {"data": {"x": "1"}})
    core.delete_namespaced_config_map("sel", ns)
    t.join(timeout=10)
    assert got == [("DELETED", "sel", "a"), ("ADDED", "sel", "a"), ("MODIFIED", "sel", "a"),
                   ("DELETED", "sel", "a")]


def test_field_selector_watch_of_one_object(core: client.CoreV1Api, raw: Raw, ns: str) -> None:
    core.create_namespaced_config_map(ns, {"metadata": {"name": "x"}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "y"}})
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.patch_namespaced_config_map("x", ns, {"data": {"a": "1"}})
    core.patch_namespaced_config_map("y", ns, {"data": {"a": "1"}})
    events = _stream_lines(raw, f"/api/v1/namespaces/{ns}/configmaps?watch=1&"
                                f"fieldSelector=metadata.name%3Dy&resourceVersion={rv}&"
                                "timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("MODIFIED", "y")]
    # The deprecated /watch/ path form watches the same object.
    events = _stream_lines(raw, f"/api/v1/watch/namespaces/{ns}/configmaps/y?"
                                f"resourceVersion={rv}&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("MODIFIED", "y")]


def test_too_old_resource_version_is_gone(tmp_path, monkeypatch) -> None:
    """The store keeps a bounded history; a resourceVersion before it answers 410 Expired
    (as an ERROR event, like the real watch cache), and the Python client raises it. This
    test boots its own localmesh with a 50-event history to get there quickly."""
    from kubernetes import config

    monkeypatch.setenv("LOCALMESH_WATCH_HISTORY", "50")
    with boot_localmesh(tmp_path / "small-history", mesh=False) as handle:
        api = config.new_client_from_config(config_file=str(handle.kubeconfig))
        core, raw = client.CoreV1Api(api), Raw(api)
        first = core.create_namespaced_config_map("default", {"metadata": {"name": "h"}})
        old_rv = int(first.metadata.resource_version)
        for i in range(80):
            core.patch_namespaced_config_map("h", "default", {"data": {"v": str(i)}})
        events = _stream_lines(raw, "/api/v1/namespaces/default/configmaps?watch=1&"
                                    f"resourceVersion={old_rv}&timeoutSeconds=1")
        assert events[0]["type"] == "ERROR"
        assert events[0]["object"]["code"] == 410
        assert events[0]["object"]["reason"] == "Expired"
        recent = core.list_namespaced_config_map("default").metadata.resource_version
        assert _stream_lines(raw, "/api/v1/namespaces/default/configmaps?watch=1&"
                                  f"resourceVersion={recent}&timeoutSeconds=1") == []
        try:
            for _ in watch.Watch().stream(core.list_namespaced_config_map, "default",
                                          resource_version=str(old_rv), timeout_seconds=1):
                pass
        except client.ApiException as exc:
            assert exc.status == 410
        else:
            raise AssertionError("the Python client's watch did not raise 410")
        api.close()


def test_bookmarks_and_initial_events_end(core: client.CoreV1Api, raw: Raw, ns: str) -> None:
    core.create_namespaced_config_map(ns, {"metadata": {"name": "b1"}})
    events = _stream_lines(raw, f"/api/v1/namespaces/{ns}/configmaps?watch=1&"
                                "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&"
                                "allowWatchBookmarks=true&timeoutSeconds=2")
    types = [e["type"] for e in events]
    assert types[0] == "ADDED" and events[0]["object"]["metadata"]["name"] == "b1"
    assert types[1] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {
        "k8s.io/initial-events-end": "true"}
    # And a bookmark before the stream's timeout ends it.
    assert types[-1] == "BOOKMARK" and len(events) >= 3
    bad = raw("GET", f"/api/v1/namespaces/{ns}/configmaps?watch=1&sendInitialEvents=true")
    assert bad.status == 422


def test_watch_as_table(core: client.CoreV1Api, raw: Raw, ns: str) -> None:
    """``kubectl get -w`` asks for Table events."""
    core.create_namespaced_config_map(ns, {"metadata": {"name": "t"}, "data": {"a": "b"}})
    resp = raw("GET", f"/api/v1/namespaces/{ns}/configmaps?watch=1&timeoutSeconds=1",
               headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
               preload=False)
    lines = [json.loads(x) for x in resp.data.splitlines() if x.strip()]
    assert lines[0]["object"]["kind"] == "Table"
    assert lines[0]["object"]["rows"][0]["cells"][:2] == ["t", 1]


def test_watch_sees_pods_of_a_deployment(apps: client.AppsV1Api, core: client.CoreV1Api,
                                         ns: str) -> None:
    """A controller-made object arrives through the Python client's watch."""
    seen: list[str] = []
    w = watch.Watch()

    def run() -> None:
        for ev in w.stream(core.list_namespaced_pod, ns, timeout_seconds=10):
            seen.append(ev["type"])
            if ev["object"].status.phase == "Running":
                w.stop()

    t = _in_thread(run)
    apps.create_namespaced_deployment(ns, {
        "metadata": {"name": "w"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "w"}},
                 "template": {"metadata": {"labels": {"app": "w"}}, "spec": {
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "busybox",
                                     "command": ["sleep", "30"]}]}}}})
    t.join(timeout=12)
    assert seen and seen[0] == "ADDED" and "MODIFIED" in seen
    poll(lambda: not t.is_alive(), what="watch ended")

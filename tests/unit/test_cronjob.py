"""The CronJob controller on a clock the test turns: Jobs at the scheduled minutes with
upstream's names, concurrencyPolicy, startingDeadlineSeconds, suspend, history limits and
time zones, and the cron parser behind it (robfig/cron's standard fields and macros)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from localmesh import admission_kinds
from localmesh.api.objects import ObjectAPI
from localmesh.controllers import cron
from localmesh.controllers.jobs import CronJobController
from localmesh.resources import Registry
from localmesh.store import Store


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


@pytest.fixture
def api() -> ObjectAPI:
    out = ObjectAPI(Store(), Registry())
    admission_kinds.install(out)
    out.create(out.rt("v1", "Namespace"), "", {"metadata": {"name": "ns"}})
    return out


def _cronjob(api: ObjectAPI, **spec: object) -> dict:
    body = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}},
                **spec}}
    created = api.create(api.rt("batch/v1", "CronJob"), "ns", body)
    # As if made just before 10:00.
    created["metadata"]["creationTimestamp"] = "2026-01-01T09:58:00Z"
    api.store.objects[("batch", "cronjobs")][("ns", "tick")] = created
    return created


def _run(api: ObjectAPI, ctl: CronJobController) -> list[dict]:
    ctl.reconcile()
    return api.store.list(("batch", "jobs"), "ns")


def _finish(api: ObjectAPI, job: dict, kind: str = "Complete") -> None:
    job = api.store.get(("batch", "jobs"), "ns", job["metadata"]["name"])
    assert job is not None
    job["status"] = {"conditions": [{"type": kind, "status": "True"}],
                     "completionTime": "2026-01-01T10:01:00Z"}
    api.store.update(("batch", "jobs"), job, check_version=False)


def test_jobs_at_the_scheduled_minutes(api: ObjectAPI) -> None:
    clock = Clock(datetime(2026, 1, 1, 9, 59, tzinfo=UTC))
    ctl = CronJobController(api, clock)
    _cronjob(api)
    assert _run(api, ctl) == []
    clock.t = datetime(2026, 1, 1, 10, 0, 30, tzinfo=UTC)
    jobs = _run(api, ctl)
    minute = int(datetime(2026, 1, 1, 10, 0, tzinfo=UTC).timestamp() // 60)
    assert [j["metadata"]["name"] for j in jobs] == [f"tick-{minute}"]
    assert jobs[0]["metadata"]["annotations"][
        "batch.kubernetes.io/cronjob-scheduled-timestamp"] == "2026-01-01T10:00:00Z"
    assert jobs[0]["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert len(_run(api, ctl)) == 1  # the same minute is not run twice
    status = api.store.get(("batch", "cronjobs"), "ns", "tick")["status"]
    assert status["lastScheduleTime"] == "2026-01-01T10:00:00Z"
    assert [a["name"] for a in status["active"]] == [f"tick-{minute}"]


def test_forbid_replace_and_history(api: ObjectAPI) -> None:
    clock = Clock(datetime(2026, 1, 1, 10, 0, 10, tzinfo=UTC))
    ctl = CronJobController(api, clock)
    _cronjob(api, concurrencyPolicy="Forbid", successfulJobsHistoryLimit=1)
    first = _run(api, ctl)
    clock.t += timedelta(minutes=5)
    assert len(_run(api, ctl)) == 1  # Forbid: the first is still running
    _finish(api, first[0])
    clock.t += timedelta(minutes=5)
    jobs = _run(api, ctl)
    assert len(jobs) == 2
    _finish(api, jobs[-1])
    clock.t += timedelta(minutes=5)
    done = _run(api, ctl)
    # Two finished jobs, a limit of one: the oldest goes.
    assert first[0]["metadata"]["name"] not in [j["metadata"]["name"] for j in done
                                                if not j["metadata"].get("deletionTimestamp")]


def test_suspend_deadline_and_time_zone(api: ObjectAPI) -> None:
    clock = Clock(datetime(2026, 1, 1, 10, 3, tzinfo=UTC))
    ctl = CronJobController(api, clock)
    _cronjob(api, startingDeadlineSeconds=60)
    assert _run(api, ctl) == []  # 10:00 was missed by more than the deadline
    body = api.store.get(("batch", "cronjobs"), "ns", "tick")
    body["spec"]["suspend"] = True
    api.store.update(("batch", "cronjobs"), body, check_version=False)
    clock.t = datetime(2026, 1, 1, 10, 5, 10, tzinfo=UTC)
    assert _run(api, ctl) == []
    assert cron.parse("0 9 * * *").next_after(
        datetime(2026, 1, 1, 10, 0, tzinfo=UTC)) == datetime(2026, 1, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "after", "want"), [
    ("*/15 * * * *", "2026-03-01T10:07", "2026-03-01T10:15"),
    ("0 9 * * mon-fri", "2026-12-05T00:00", "2026-12-07T09:00"),  # Saturday → Monday
    ("@daily", "2026-12-05T10:00", "2026-12-06T00:00"),
    ("@hourly", "2026-12-05T10:00", "2026-12-05T11:00"),
    ("30 2 1 * *", "2026-12-05T10:00", "2027-01-01T02:30"),
    ("0 0 * * 7", "2026-12-05T10:00", "2026-12-06T00:00"),  # 7 is Sunday too
    ("0 0 13 * 5", "2026-12-05T10:00", "2026-12-11T00:00"),  # day of month OR weekday
])
def test_cron_schedules(text: str, after: str, want: str) -> None:
    start = datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert cron.parse(text).next_after(start) == datetime.fromisoformat(want).replace(
        tzinfo=UTC)


@pytest.mark.parametrize("text", ["* * * *", "61 * * * *", "TZ=UTC * * * * *", "*/0 * * * *"])
def test_bad_schedules(text: str) -> None:
    with pytest.raises(cron.ScheduleError):
        cron.parse(text)

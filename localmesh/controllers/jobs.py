"""Jobs and CronJobs, after kube-controller-manager's job and cronjob controllers
(pkg/controller/job, pkg/controller/cronjob).

Job: pods from the template (``<job>-<random>``, or ``<job>-<index>-<random>`` for an
Indexed job) up to ``parallelism`` until ``completions`` of them succeeded; a failed pod —
or, with ``restartPolicy: OnFailure``, a container restart — counts toward
``backoffLimit``; ``activeDeadlineSeconds`` ends the job; the conditions clients wait for
(``SuccessCriteriaMet`` then ``Complete``, ``FailureTarget`` then ``Failed`` with reason
``BackoffLimitExceeded`` or ``DeadlineExceeded``), ``startTime``/``completionTime``,
``active``/``ready``/``succeeded``/``failed``; ``suspend`` stops the pods; a finished job
goes ``ttlSecondsAfterFinished`` later with its pods.

CronJob: a Job named ``<cronjob>-<scheduled minute since the epoch>`` at each scheduled
time (``spec.timeZone`` honoured), ``concurrencyPolicy`` Allow/Forbid/Replace, a missed
time older than ``startingDeadlineSeconds`` skipped, ``suspend``, the finished jobs beyond
``successfulJobsHistoryLimit``/``failedJobsHistoryLimit`` deleted, and ``lastScheduleTime``,
``lastSuccessfulTime`` and ``active`` in its status.

Differences (docs/localmesh.md): a failed pod is replaced at once (upstream backs off
exponentially from 10 s); pods are counted while they exist (upstream's tracking
finalizers are not used); podFailurePolicy and successPolicy are not evaluated.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from localmesh.api.objects import ObjectAPI
from localmesh.api.status import ApiError
from localmesh.controllers import cron
from localmesh.controllers.base import Reconciler
from localmesh.controllers.workloads import alive, owned_by, owner_ref, pod_ready

JOBS = ("batch", "jobs")
CRONJOBS = ("batch", "cronjobs")
PODS = ("", "pods")
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(job: dict, type_: str) -> dict | None:
    return next((c for c in (job.get("status") or {}).get("conditions") or []
                 if c.get("type") == type_ and c.get("status") == "True"), None)


def finished(job: dict) -> str | None:
    """``Complete`` or ``Failed`` once the job has finished."""
    for t in ("Complete", "Failed"):
        if condition(job, t):
            return t
    return None


def _cond(type_: str, reason: str, message: str, now: str) -> dict:
    return {"type": type_, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


class JobController(Reconciler):
    name = "job-controller"
    keys = (JOBS, PODS)

    def __init__(self, api: ObjectAPI, clock: Clock = _utcnow) -> None:
        super().__init__(api)
        self.clock = clock
        self.resync_seconds = 1.0  # deadlines and TTLs pass without events

    def reconcile(self) -> None:
        api = self.api
        pods = api.store.scan(PODS)
        for job in api.store.scan(JOBS):
            if alive(job):
                self.sync(job, [p for p in pods if p["metadata"].get("namespace") ==
                                job["metadata"]["namespace"]
                                and owned_by(p, job["metadata"]["uid"])])

    def sync(self, job: dict, pods: list[dict]) -> None:
        api = self.api
        job_rt, pod_rt = api.rt("batch/v1", "Job"), api.rt("v1", "Pod")
        spec, status = job.get("spec") or {}, copy.deepcopy(job.get("status") or {})
        now_dt = self.clock()
        now = _rfc3339(now_dt)
        done = finished(job)
        if done:
            self._expire(job, job_rt, now_dt)
            return
        policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        active = [p for p in pods if alive(p) and (p.get("status") or {}).get("phase") not in
                  ("Succeeded", "Failed")]
        succeeded = [p for p in pods if (p.get("status") or {}).get("phase") == "Succeeded"]
        failed = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
        restarts = sum(cs.get("restartCount", 0) for p in active
                       for cs in (p.get("status") or {}).get("containerStatuses") or []) \
            if policy == "OnFailure" else 0
        completions = spec.get("completions")
        parallelism = spec.get("parallelism", 1)
        indexed = spec.get("completionMode") == "Indexed"
        conditions = list(status.get("conditions") or [])
        if spec.get("suspend"):
            for p in active:
                self._delete(pod_rt, p)
            if not condition(job, "Suspended"):
                conditions.append(_cond("Suspended", "JobSuspended", "Job suspended", now))
            status.update(conditions=conditions, active=0)
            api.set_status(job_rt, job, _clean(status))
            return
        conditions = [c for c in conditions if c.get("type") != "Suspended"]
        status.setdefault("startTime", now)
        started = _time(status["startTime"]) or now_dt
        deadline = spec.get("activeDeadlineSeconds")
        outcome: tuple[str, str, str] | None = None
        done_indexes = {int((p["metadata"].get("annotations") or {}).get(INDEX_ANNOTATION, -1))
                        for p in succeeded}
        if indexed and completions is not None:
            complete = len(done_indexes & set(range(completions))) >= completions
        elif completions is not None:
            complete = len(succeeded) >= completions
        else:
            complete = bool(succeeded) and not active
        if complete:
            outcome = ("Complete", "CompletionsReached", "Reached expected number of succeeded "
                                                         "pods")
        elif len(failed) + restarts > spec.get("backoffLimit", 6):
            outcome = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff "
                                                         "limit")
        elif deadline is not None and now_dt >= started + timedelta(seconds=deadline):
            outcome = ("Failed", "DeadlineExceeded", "Job was active longer than specified "
                                                     "deadline")
        if outcome is not None:
            for p in active:
                self._delete(pod_rt, p)
            kind, reason, message = outcome
            interim = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
            conditions += [_cond(interim, reason, message, now), _cond(kind, reason, message,
                                                                        now)]
            if kind == "Complete":
                status["completionTime"] = now
            active = []
        else:
            want = parallelism if completions is None else min(
                parallelism, completions - (len(done_indexes) if indexed else len(succeeded)))
            if completions is None and succeeded:
                want = 0
            busy = {int((p["metadata"].get("annotations") or {}).get(INDEX_ANNOTATION, -1))
                    for p in active}
            free = [i for i in range(completions or 0) if i not in done_indexes | busy]
            for _ in range(max(0, want - len(active))):
                index = free.pop(0) if indexed and free else None
                created = self._create_pod(job, pod_rt, index)
                if created is not None:
                    active.append(created)
        status.update(conditions=conditions, active=len(active),
                      ready=sum(1 for p in active if pod_ready(p)),
                      succeeded=len(succeeded), failed=len(failed), terminating=0,
                      uncountedTerminatedPods={})
        if indexed:
            status["completedIndexes"] = _ranges(sorted(done_indexes))
        api.set_status(job_rt, job, _clean(status))

    def _create_pod(self, job: dict, pod_rt: object, index: int | None) -> dict | None:
        meta = job["metadata"]
        tmpl = copy.deepcopy((job.get("spec") or {}).get("template") or {})
        pmeta = tmpl.setdefault("metadata", {})
        pmeta["generateName"] = f"{meta['name']}-" + (f"{index}-" if index is not None else "")
        pmeta["namespace"] = meta["namespace"]
        pmeta["ownerReferences"] = [owner_ref({**job, "apiVersion": "batch/v1",
                                               "kind": "Job"})]
        spec = tmpl.setdefault("spec", {})
        if index is not None:
            pmeta.setdefault("annotations", {})[INDEX_ANNOTATION] = str(index)
            pmeta.setdefault("labels", {})[INDEX_ANNOTATION] = str(index)
            spec.setdefault("hostname", f"{meta['name']}-{index}")
            for c in spec.get("containers") or []:
                c.setdefault("env", []).append({"name": "JOB_COMPLETION_INDEX",
                                                "value": str(index)})
        try:
            return self.api.create(pod_rt, meta["namespace"],  # type: ignore[arg-type]
                                   {"apiVersion": "v1", "kind": "Pod", **tmpl})
        except ApiError as exc:
            # 5xx: a webhook that could not be called; the 1 s resync tries again.
            if exc.code not in (403, 404, 409) and exc.code < 500:
                raise
            return None

    def _delete(self, rt: object, obj: dict) -> None:
        try:
            self.api.delete(rt, obj["metadata"]["namespace"],  # type: ignore[arg-type]
                            obj["metadata"]["name"])
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _expire(self, job: dict, job_rt: object, now: datetime) -> None:
        """ttlSecondsAfterFinished: the job (and, in the background, its pods) goes."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        st = job.get("status") or {}
        end = _time(st.get("completionTime")) or _time(
            (finished_condition(job) or {}).get("lastTransitionTime"))
        if end is not None and now >= end + timedelta(seconds=ttl):
            try:
                self.api.delete(job_rt, job["metadata"]["namespace"],  # type: ignore[arg-type]
                                job["metadata"]["name"], propagation="Background")
            except ApiError as exc:
                if exc.code != 404:
                    raise


def finished_condition(job: dict) -> dict | None:
    kind = finished(job)
    return condition(job, kind) if kind else None


def _ranges(values: list[int]) -> str:
    """``completedIndexes``: ``1,3-5,7``."""
    out: list[str] = []
    for v in values:
        if out and "-" not in out[-1].split(",")[-1] and int(out[-1]) == v - 1:
            out[-1] = f"{out[-1]}-{v}"
        elif out and "-" in out[-1] and int(out[-1].split("-")[1]) == v - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{v}"
        else:
            out.append(str(v))
    return ",".join(out)


def _clean(status: dict) -> dict:
    """What the job status omits when empty (Go's omitempty)."""
    return {k: v for k, v in status.items()
            if not (k in ("succeeded", "failed", "active", "conditions") and not v)}


class CronJobController(Reconciler):
    name = "cronjob-controller"
    keys = (CRONJOBS, JOBS)

    def __init__(self, api: ObjectAPI, clock: Clock = _utcnow) -> None:
        super().__init__(api)
        self.clock = clock
        self.resync_seconds = 1.0

    def reconcile(self) -> None:
        jobs = self.api.store.scan(JOBS)
        for cj in self.api.store.scan(CRONJOBS):
            if alive(cj):
                mine = [j for j in jobs if j["metadata"].get("namespace") ==
                        cj["metadata"]["namespace"] and owned_by(j, cj["metadata"]["uid"])]
                self.sync(cj, mine)

    def sync(self, cj: dict, jobs: list[dict]) -> None:
        api = self.api
        cj_rt, job_rt = api.rt("batch/v1", "CronJob"), api.rt("batch/v1", "Job")
        spec, meta = cj.get("spec") or {}, cj["metadata"]
        status = copy.deepcopy(cj.get("status") or {})
        now = self.clock()
        active = [j for j in jobs if alive(j) and not finished(j)]
        for j in jobs:
            if condition(j, "Complete"):
                t = _time((j.get("status") or {}).get("completionTime"))
                last = _time(status.get("lastSuccessfulTime"))
                if t and (last is None or t > last):
                    status["lastSuccessfulTime"] = _rfc3339(t)
        try:
            schedule = cron.parse(spec.get("schedule", ""))
            zone = ZoneInfo(spec["timeZone"]) if spec.get("timeZone") else UTC
        except (cron.ScheduleError, ZoneInfoNotFoundError, ValueError):
            schedule = None
        if schedule is not None and not spec.get("suspend"):
            since = _time(status.get("lastScheduleTime")) or _time(
                meta.get("creationTimestamp")) or now
            due = self._latest_due(schedule, since, now, zone)
            deadline = spec.get("startingDeadlineSeconds")
            if due is not None and (deadline is None or now - due <= timedelta(
                    seconds=deadline)):
                policy = spec.get("concurrencyPolicy", "Allow")
                if policy == "Forbid" and active:
                    due = None
                elif policy == "Replace":
                    for j in active:
                        self._delete_job(job_rt, j)
                    active = []
                if due is not None:
                    created = self._create_job(cj, job_rt, due)
                    if created is not None:
                        active.append(created)
                    status["lastScheduleTime"] = _rfc3339(due)
            elif due is not None:
                status["lastScheduleTime"] = _rfc3339(due)  # missed: past the deadline
        status["active"] = [{"kind": "Job", "namespace": j["metadata"]["namespace"],
                             "name": j["metadata"]["name"], "uid": j["metadata"]["uid"],
                             "apiVersion": "batch/v1",
                             "resourceVersion": j["metadata"].get("resourceVersion", "")}
                            for j in active]
        if not status["active"]:
            status.pop("active")
        self._prune(job_rt, jobs, spec)
        api.set_status(cj_rt, cj, status)

    @staticmethod
    def _latest_due(schedule: cron.Schedule, since: datetime, now: datetime,
                    zone: object) -> datetime | None:
        """The last scheduled time in (since, now], in the schedule's time zone."""
        local_since = since.astimezone(zone)  # type: ignore[arg-type]
        local_now = now.astimezone(zone)  # type: ignore[arg-type]
        found = None
        t = schedule.next_after(max(local_since, local_now - timedelta(days=1)))
        while t <= local_now:  # at most a day of minutes; older misses do not count
            found = t
            t = schedule.next_after(t)
        return found.astimezone(UTC) if found is not None else None

    def _create_job(self, cj: dict, job_rt: object, due: datetime) -> dict | None:
        meta = cj["metadata"]
        tmpl = copy.deepcopy((cj.get("spec") or {}).get("jobTemplate") or {})
        jmeta = tmpl.setdefault("metadata", {})
        jmeta["name"] = f"{meta['name']}-{int(due.timestamp() // 60)}"
        jmeta["namespace"] = meta["namespace"]
        jmeta.setdefault("annotations", {})[SCHEDULED_ANNOTATION] = _rfc3339(due)
        jmeta["ownerReferences"] = [owner_ref({**cj, "apiVersion": "batch/v1",
                                               "kind": "CronJob"})]
        try:
            return self.api.create(job_rt, meta["namespace"],  # type: ignore[arg-type]
                                   {"apiVersion": "batch/v1", "kind": "Job", **tmpl})
        except ApiError as exc:
            # 5xx: a webhook that could not be called; the 1 s resync tries again.
            if exc.code not in (403, 404, 409) and exc.code < 500:
                raise
            return None

    def _delete_job(self, job_rt: object, job: dict) -> None:
        try:
            self.api.delete(job_rt, job["metadata"]["namespace"],  # type: ignore[arg-type]
                            job["metadata"]["name"], propagation="Background")
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _prune(self, job_rt: object, jobs: list[dict], spec: dict) -> None:
        for kind, limit in (("Complete", spec.get("successfulJobsHistoryLimit", 3)),
                            ("Failed", spec.get("failedJobsHistoryLimit", 1))):
            done = sorted((j for j in jobs if alive(j) and finished(j) == kind),
                          key=lambda j: j["metadata"].get("creationTimestamp", ""))
            for j in done[:max(0, len(done) - limit)]:
                self._delete_job(job_rt, j)


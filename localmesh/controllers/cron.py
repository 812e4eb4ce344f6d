"""Cron schedules as the CronJob controller reads them (robfig/cron's standard parser, which
kube-controller-manager uses): five fields — minute, hour, day of month, month, day of
week — with ``*``, lists, ranges, ``/`` steps and month and day names, or one of the
macros ``@yearly``, ``@annually``, ``@monthly``, ``@weekly``, ``@daily``, ``@midnight``,
``@hourly``. When both day fields are restricted a time matches either of them, as in
Vixie cron. ``TZ=``/``CRON_TZ=`` prefixes are refused, as the API server refuses them
(the time zone goes in ``spec.timeZone``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
          "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
          "@hourly": "0 * * * *"}
MONTHS = {m: i + 1 for i, m in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split())}
DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


class ScheduleError(ValueError):
    """A schedule the parser refuses (the message is the API server's validation detail)."""


def _value(text: str, names: dict[str, int]) -> int:
    low = text.lower()
    if low in names:
        return names[low]
    if not text.isdigit():
        raise ScheduleError(f"failed to parse int from {text}: strconv.Atoi: parsing "
                            f'"{text}": invalid syntax')
    return int(text)


def _field(text: str, lo: int, hi: int, names: dict[str, int]) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = _value(step_text, {})
            if step <= 0:
                raise ScheduleError(f"step of range should be a positive number: {text}")
        if part in ("*", "?"):
            start, end = lo, hi
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, names), _value(b, names)
        else:
            start = _value(part, names)
            end = hi if step > 1 else start
        if start < lo or end > hi or start > end:
            raise ScheduleError(f"end of range ({end}) above maximum ({hi}): {text}"
                                if end > hi else f"beginning of range ({start}) below "
                                f"minimum ({lo}): {text}")
        out.update(range(start, end + 1, step))
    return out


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    def matches(self, t: datetime) -> bool:
        return t.minute in self.minutes and t.hour in self.hours and self.day_matches(t)

    def day_matches(self, t: datetime) -> bool:
        if t.month not in self.months:
            return False
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def next_after(self, t: datetime) -> datetime:
        """The first matching minute strictly after ``t`` (looked for over five years)."""
        start = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        for _ in range(366 * 5):
            if self.day_matches(day):
                for h in sorted(self.hours):
                    for m in sorted(self.minutes):
                        candidate = day.replace(hour=h, minute=m)
                        if candidate >= start:
                            return candidate
            day += timedelta(days=1)
        raise ScheduleError("no time matches the schedule")


def parse(text: str) -> Schedule:
    text = text.strip()
    if text.startswith(("TZ=", "CRON_TZ=")):
        raise ScheduleError("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    text = MACROS.get(text.lower(), text)
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: {text}")
    names: tuple[dict[str, int], ...] = ({}, {}, {}, MONTHS, DAYS)
    parsed: list[frozenset[int]] = []
    for i, (f, (lo, hi), nm) in enumerate(zip(fields, BOUNDS, names, strict=True)):
        values = _field(f, lo, 7 if i == 4 else hi, nm)  # Sunday is 0 or 7
        parsed.append(frozenset(v % 7 if i == 4 else v for v in values))
    minutes, hours, days, months, weekdays = parsed
    return Schedule(minutes, hours, days, months, weekdays,
                    any_day=fields[2] in ("*", "?"), any_weekday=fields[4] in ("*", "?"))

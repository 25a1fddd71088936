"""A family's own clock: time zone, local wall-clock times and quiet hours.

The database holds naive UTC; parents live in local time. Everything that turns one into
the other goes through here so scheduling and dispatch agree, including across
daylight-saving changes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from smsbot.config import Settings
from smsbot.models import Clinic, Family


def family_zone(family: Family, clinic: Clinic | None, settings: Settings) -> ZoneInfo:
    """The family's own zone, else its clinic's, else the deployment default."""
    return ZoneInfo(family.timezone or (clinic.timezone if clinic else None) or settings.default_timezone)


def quiet_window(clinic: Clinic | None, settings: Settings) -> tuple[time, time]:
    """(start, end) of quiet hours: the clinic's when it sets both ends, else the deployment's."""
    if clinic and clinic.quiet_hours_start and clinic.quiet_hours_end:
        return time.fromisoformat(clinic.quiet_hours_start), time.fromisoformat(clinic.quiet_hours_end)
    return settings.quiet_start, settings.quiet_end


def to_local(moment: datetime, zone: ZoneInfo) -> datetime:
    """Naive UTC → aware local time."""
    return moment.replace(tzinfo=UTC).astimezone(zone)


def to_utc(moment: datetime) -> datetime:
    """Aware time → naive UTC, the only kind the database stores."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def wall_clock(day: date, at: time, zone: ZoneInfo) -> datetime:
    """Naive UTC of ``at`` on ``day`` in ``zone``.

    A time skipped by a spring-forward change (02:30) resolves with the offset in force
    before it, i.e. an hour later on the new clock, which is never early.
    """
    return to_utc(datetime.combine(day, at, tzinfo=zone))


def next_allowed(moment: datetime, zone: ZoneInfo, window: tuple[time, time]) -> datetime:
    """``moment`` (naive UTC) if it is outside quiet hours, else the end of those quiet hours."""
    start, end = window
    local = to_local(moment, zone)
    clock = local.time().replace(tzinfo=None)
    wraps = start > end  # 20:00–09:00 spans midnight
    quiet = (clock >= start or clock < end) if wraps else start <= clock < end
    if not quiet:
        return moment
    morning = local.date() + timedelta(days=1) if wraps and clock >= start else local.date()
    return wall_clock(morning, end, zone)

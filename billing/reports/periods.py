"""Report periods: the previous ISO week or calendar month, in UTC, with an exclusive end."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from billing.choices import ReportPeriod

# The ledger writes an hour a little after it ends; a report waits this long after its period so that the
# period's last hours are in it.
REPORT_SEND_DELAY = timedelta(hours=2)


def period_containing_end(*, period: str, day: date) -> tuple[date, date]:
    """The last complete period that ends on or before ``day``: (start, end exclusive)."""
    if period == ReportPeriod.WEEKLY:
        end = day - timedelta(days=day.weekday())  # Monday of day's ISO week
        return end - timedelta(days=7), end
    if period == ReportPeriod.MONTHLY:
        end = day.replace(day=1)
        start = (end - timedelta(days=1)).replace(day=1)
        return start, end
    raise ValueError(f"unknown report period {period!r}")


def report_period_last(*, period: str, now: datetime) -> tuple[date, date]:
    """The last period of this kind that has ended (and waited REPORT_SEND_DELAY) at ``now``."""
    return period_containing_end(period=period, day=(now.astimezone(UTC) - REPORT_SEND_DELAY).date())


def period_label(*, start: date, end: date) -> str:
    """A human name of a period: 'week 2026-W47 (16 Nov to 22 Nov 2026)', 'October 2026' or '2026-11-01 to
    2026-11-07'. Plain ASCII: it goes into the email subject, where a non-ASCII character makes mail libraries
    encode and fold the header (some clients then show a leading space)."""
    last = end - timedelta(days=1)
    if end - start == timedelta(days=7) and start.weekday() == 0:
        year, week, _ = start.isocalendar()
        return f"week {year}-W{week:02d} ({start:%d %b} to {last:%d %b %Y})"
    if start.day == 1 and end.day == 1 and (end - timedelta(days=1)).month == start.month:
        return f"{start:%B %Y}"
    return f"{start:%Y-%m-%d} to {last:%Y-%m-%d}"


def report_period_current(*, period: str, now: datetime) -> tuple[date, date]:
    """The period in progress at ``now``, to date: (its start, tomorrow) — what the next report will cover so far."""
    today = now.astimezone(UTC).date()
    _, start = period_containing_end(period=period, day=today)
    return start, today + timedelta(days=1)

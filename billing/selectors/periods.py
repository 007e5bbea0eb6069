"""Spend periods: UTC days, the bounds a period may take, month arithmetic and the month-end forecast.

Periods are UTC days, ``start`` inclusive and ``end`` exclusive; ``period_errors`` is the one check of a period
typed by a person (the spend page's form and the API).
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

# The days a spend period may name (the page's form and the API check them with ``period_errors``): dates
# outside these years are typing mistakes, and the upper bound keeps "last day + 1" representable.
EARLIEST_DAY, LATEST_DAY = date(1970, 1, 1), date(2999, 12, 31)
MAX_RANGE_DAYS = 400


def utc_today() -> date:
    """Today's UTC date: ledger days are UTC days."""
    return datetime.now(UTC).date()


def month_start_of(day: date) -> date:
    """The first day of ``day``'s month."""
    return day.replace(day=1)


def next_month_start(day: date) -> date:
    """The first day of the month after ``day``'s."""
    days = calendar.monthrange(day.year, day.month)[1]
    return month_start_of(day) + timedelta(days=days)


def period_errors(*, start: date, last: date) -> dict[str, str]:
    """What is wrong with a spend period from ``start`` to ``last`` (both inclusive): {"from"|"to": message},
    empty when it is fine. The one check of the spend page's filter form and the spend API."""
    errors = {}
    for name, value in (("from", start), ("to", last)):
        if not EARLIEST_DAY <= value <= LATEST_DAY:
            errors[name] = f"Give a day between {EARLIEST_DAY} and {LATEST_DAY}."
    if not errors and last < start:
        errors["to"] = "The end date is before the start date."
    elif not errors and (last - start).days + 1 > MAX_RANGE_DAYS:
        errors["to"] = f"Choose at most {MAX_RANGE_DAYS} days."
    return errors


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """The UTC midnights that open the days ``start`` and ``end`` (aware datetimes)."""
    return datetime.combine(start, time.min, tzinfo=UTC), datetime.combine(end, time.min, tzinfo=UTC)


def month_period(*, month: date, today: date | datetime | None = None) -> tuple[date, date, date | datetime]:
    """The month-to-date period of ``month`` as of ``today``: (start, end exclusive, the 'today' to forecast at)."""
    start = month_start_of(month)
    month_end = next_month_start(start)
    today = today or utc_today()
    today_date = today.date() if isinstance(today, datetime) else today
    end = min(month_end, max(start, today_date + timedelta(days=1)))
    return start, end, today


def month_forecast_usd(*, month_start: date, spent_usd: Decimal, today: date | datetime) -> Decimal:
    """The month-end spend if the month goes on at its run rate so far: spent / elapsed days × days in month.

    ``today`` as a date counts as a whole elapsed day (the ledger of today is partial, so early in a UTC day
    the forecast is a little low); as an aware datetime, today counts as the fraction of it elapsed. Before
    the month, the forecast is what was spent; after it, the month is over and the forecast is what was spent.
    """
    month_start = month_start_of(month_start)
    days_in_month = calendar.monthrange(month_start.year, month_start.month)[1]
    if isinstance(today, datetime):
        moment = today.astimezone(UTC)
        elapsed = Decimal((moment - datetime.combine(month_start, time.min, tzinfo=UTC)).total_seconds()) / 86400
    else:
        elapsed = Decimal((today - month_start).days + 1)
    if elapsed <= 0 or elapsed >= days_in_month:
        return spent_usd
    # A minute into the month the run rate means little; count at least one hour.
    elapsed = max(elapsed, Decimal(1) / 24)
    return (spent_usd / elapsed * days_in_month).quantize(Decimal("0.000001"))

"""The report's daily spend chart: a bar chart drawn with Pillow into a PNG (email clients run no scripts)."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

from PIL import Image, ImageDraw, ImageFont

CHART_WIDTH_PX = 640
CHART_HEIGHT_PX = 240
MARGIN_LEFT_PX, MARGIN_RIGHT_PX, MARGIN_TOP_PX, MARGIN_BOTTOM_PX = 72, 16, 28, 36
GRID_LINES = 5
BAR_COLOUR = (37, 99, 235)
AXIS_COLOUR = (75, 85, 99)
GRID_COLOUR = (229, 231, 235)
TEXT_COLOUR = (31, 41, 55)


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^n at or above ``value`` (a readable top for the y axis)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1.0
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def _money(value: float) -> str:
    if value == 0:
        return "$0"
    if value >= 10_000:
        return f"${value / 1000:,.0f}k"
    return f"${value:,.0f}" if value >= 10 else f"${value:,.2f}"


def spend_chart_png(*, days: list[tuple[date, Decimal]], title: str = "Spend per day (USD)") -> bytes:
    """A PNG bar chart of spend per day, with a labelled y axis ($) and day-of-month labels on x."""
    image = Image.new("RGB", (CHART_WIDTH_PX, CHART_HEIGHT_PX), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=11)
    left, top = MARGIN_LEFT_PX, MARGIN_TOP_PX
    right, bottom = CHART_WIDTH_PX - MARGIN_RIGHT_PX, CHART_HEIGHT_PX - MARGIN_BOTTOM_PX
    draw.text((left, 6), title, fill=TEXT_COLOUR, font=font)
    peak = _nice_ceiling(max((float(v) for _, v in days), default=0.0))
    for i in range(GRID_LINES + 1):
        y = bottom - (bottom - top) * i / GRID_LINES
        draw.line([(left, y), (right, y)], fill=GRID_COLOUR if i else AXIS_COLOUR)
        label = _money(peak * i / GRID_LINES)
        width = draw.textlength(label, font=font)
        draw.text((left - 6 - width, y - 6), label, fill=TEXT_COLOUR, font=font)
    draw.line([(left, top), (left, bottom)], fill=AXIS_COLOUR)
    if days:
        slot = (right - left) / len(days)
        gap = max(1.0, slot * 0.2)
        every = max(1, round(len(days) / 15))  # at most ~15 x labels, so they never overlap
        for i, (day, value) in enumerate(days):
            x0 = left + i * slot + gap / 2
            height = (bottom - top) * float(value) / peak
            if height >= 1:
                draw.rectangle([(x0, bottom - height), (x0 + slot - gap, bottom - 1)], fill=BAR_COLOUR)
            if i % every == 0:
                label = f"{day.day}" if len(days) > 7 else f"{day:%a %d}"
                width = draw.textlength(label, font=font)
                draw.text((x0 + (slot - gap - width) / 2, bottom + 4), label, fill=TEXT_COLOUR, font=font)
        first, last = days[0][0], days[-1][0]
        caption = f"{first:%d %b} to {last:%d %b %Y} (UTC days)"  # the bitmap font has no en dash
        width = draw.textlength(caption, font=font)
        draw.text(((left + right - width) / 2, bottom + 19), caption, fill=AXIS_COLOUR, font=font)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()

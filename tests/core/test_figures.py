"""How figures are written for people (core/figures.py) and the template filters that call it
(core/templatetags/fleetdeck.py): hand-checked strings, half-up rounding, negatives, and "" for what is not a
number."""

from datetime import date, datetime
from decimal import Decimal

import pytest
from django.template import Context, Template

from core.figures import bytes_text, gpu_hours_text, money_text, number_text, percent_text

NOT_NUMBERS = [None, "", "abc", "1,234", [], {}, True, float("nan"), float("inf"), Decimal("NaN"), "Infinity"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1234.565"), "1,234.57"),  # half up, not to even
        (Decimal("1234.564"), "1,234.56"),
        (Decimal("0.005"), "0.01"),
        (0, "0.00"),
        (Decimal("-0.001"), "0.00"),  # no "-0.00"
        (Decimal("-1234.5"), "-1,234.50"),
        (26200, "26,200.00"),
        ("875100", "875,100.00"),
        (1124887.88, "1,124,887.88"),
        (Decimal("1E+30"), ""),  # beyond 28 digits: no figure of ours, and no crash
    ],
)
def test_money_text(value, text):
    assert money_text(value) == text


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        (Decimal("1234567.5"), 0, "1,234,568"),
        (Decimal("1234567.45"), 1, "1,234,567.5"),
        (Decimal("2.5"), 0, "3"),
        (Decimal("-2.5"), 0, "-3"),  # half up is away from zero
        (Decimal("-0.4"), 0, "0"),
        (999, 0, "999"),
        (1000, 0, "1,000"),
        (Decimal("0.98"), 3, "0.980"),
    ],
)
def test_number_text(value, places, text):
    assert number_text(value, places) == text


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        (Decimal("87.45"), 1, "87.5 %"),
        (87, 1, "87.0 %"),
        (Decimal("1.5"), 1, "1.5 %"),
        (0, 1, "0.0 %"),
        (Decimal("-3.25"), 1, "-3.3 %"),
        (Decimal("1234.5"), 1, "1,234.5 %"),
        (Decimal("10.5731"), 2, "10.57 %"),
    ],
)
def test_percent_text(value, places, text):
    assert percent_text(value, places) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1234.45"), "1,234.5 GPU-h"),
        (Decimal("0.04"), "0.0 GPU-h"),
        (0, "0.0 GPU-h"),
        (Decimal("3.5"), "3.5 GPU-h"),
        (1_000_000, "1,000,000.0 GPU-h"),
    ],
)
def test_gpu_hours_text(value, text):
    assert gpu_hours_text(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (Decimal("999.4"), "999 B"),
        (Decimal("999.5"), "1 kB"),  # 1,000 B rounded: the next unit
        (1000, "1 kB"),
        (1500, "1.5 kB"),
        (512_000_000, "512 MB"),
        (999_950, "1 MB"),  # 999.95 kB → 1,000.0 kB: written as 1 MB
        (999_949, "999.9 kB"),
        (1_500_000_000, "1.5 GB"),
        (1_250_000_000, "1.3 GB"),  # half up
        (1_200_000_000_000, "1.2 TB"),
        (2 * 10**18, "2 EB"),
        (3 * 10**21, "3,000 EB"),  # the largest unit takes what is beyond it
        (-1_500_000, "-1.5 MB"),
    ],
)
def test_bytes_text_in_decimal_units(value, text):
    assert bytes_text(value) == text


@pytest.mark.parametrize("value", NOT_NUMBERS)
@pytest.mark.parametrize("function", [money_text, number_text, percent_text, gpu_hours_text, bytes_text])
def test_what_is_not_a_number_is_written_as_nothing(function, value):
    assert function(value) == ""


def render(source: str, **context) -> str:
    return Template("{% load fleetdeck %}" + source).render(Context(context))


def test_filters_write_the_same_figures():
    out = render(
        "${{ m|usd }}|{{ p|pct }}|{{ p2|pct:2 }}|{{ g|gpu_hours }}|{{ b|bytes }}|{{ n|number }}|{{ n|number:1 }}",
        m=Decimal("72573.405"),
        p=Decimal("8.29"),
        p2=Decimal("10.5731"),
        g=Decimal("1234.45"),
        b=1_500_000_000,
        n=Decimal("15131.77"),
    )
    assert out == "$72,573.41|8.3 %|10.57 %|1,234.5 GPU-h|1.5 GB|15,132|15,131.8"


def test_a_bad_places_argument_falls_back_to_the_default():
    assert render("{{ v|pct:'x' }}|{{ v|number:99 }}|{{ v|number:-1 }}", v=Decimal("1.25")) == "1.3 %|1|1"


def test_filters_leave_a_missing_figure_empty():
    assert render('{{ v|usd|default:"—" }}|{{ v|pct }}|{{ v|bytes }}', v=None) == "—||"


@pytest.mark.parametrize(
    ("end", "text"),
    [
        (date(2026, 11, 30), "2026-11-29"),  # the week of 23 Nov: [23 Nov, 30 Nov)
        (date(2026, 12, 1), "2026-11-30"),  # November: [1 Nov, 1 Dec)
        (date(2027, 1, 1), "2026-12-31"),
        (datetime(2026, 3, 1, 0, 0), "2026-02-28"),
    ],
)
def test_last_day_of_a_period_with_an_exclusive_end(end, text):
    assert render('{{ end|last_day|date:"Y-m-d" }}', end=end) == text


def test_last_day_of_what_is_not_a_date_is_empty():
    assert render('{{ end|last_day|date:"Y-m-d" }}', end="2026-11-30") == ""


def test_chart_table_of_a_money_chart_writes_money_and_keeps_gaps():
    chart = {"labels": ["03-01", "03-02"], "datasets": [{"label": "Compute $", "data": [15131.77, None]}]}
    html = render("{% chart_table chart unit %}", chart=chart, unit="$")
    assert '<td class="num">15,131.77</td>' in html and '<td class="num">—</td>' in html
    power = render("{% chart_table chart unit %}", chart=chart, unit="kW")
    assert '<td class="num">15131.77</td>' in power  # other units are shown as the chart has them

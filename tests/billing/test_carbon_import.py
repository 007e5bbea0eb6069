"""Hourly grid intensity import (billing.carbon.grid_intensity_import, manage.py import_carbon): every bad input is
refused with a line-numbered reason and nothing is written."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from billing.carbon import IntensityImportError, grid_intensity_import
from billing.models import GridIntensityHour, LedgerEntry
from fleet.choices import NodeLifecycle
from tests.billing.test_ledger import node_with_gpus, rollup_insert
from tests.factories import OnPremSiteFactory

pytestmark = pytest.mark.django_db

D = Decimal
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


def csv_file(*lines: str) -> io.BytesIO:
    return io.BytesIO(("\n".join(lines) + "\n").encode())


def run(*lines: str, **kwargs):
    return grid_intensity_import(file=csv_file(*lines), now=NOW, **kwargs)


def refused(*lines: str, **kwargs) -> list[str]:
    with pytest.raises(IntensityImportError) as caught:
        run(*lines, **kwargs)
    assert not GridIntensityHour.objects.exists(), "a refused file must write nothing"
    return caught.value.errors


@pytest.fixture
def sites():
    return OnPremSiteFactory(name="dc-ams1"), OnPremSiteFactory(name="dc-sjc1")


def test_a_good_file_is_written_in_utc_and_reimporting_an_hour_replaces_it(sites):
    ams, sjc = sites
    report = run(
        "site,hour,g_per_kwh",
        "dc-ams1,2026-03-02T10:00:00Z,236",
        "dc-ams1,2026-03-02T12:00+01:00,240.456",  # 11:00 UTC; rounded half-even to 2 decimals
        "",  # a blank line is skipped
        "dc-sjc1,2026-03-01T16:00:00-08:00,198.5",  # 2026-03-02 00:00 UTC
    )
    assert (report.rows, report.created, report.updated) == (3, 3, 0)
    assert report.site_names == ["dc-ams1", "dc-sjc1"]
    assert (report.first_hour, report.last_hour) == (
        datetime(2026, 3, 2, 0, tzinfo=UTC),
        datetime(2026, 3, 2, 11, tzinfo=UTC),
    )
    stored = {(h.site_id, h.hour): h.g_per_kwh for h in GridIntensityHour.objects.all()}
    assert stored == {
        (ams.pk, datetime(2026, 3, 2, 10, tzinfo=UTC)): D("236.00"),
        (ams.pk, datetime(2026, 3, 2, 11, tzinfo=UTC)): D("240.46"),
        (sjc.pk, datetime(2026, 3, 2, 0, tzinfo=UTC)): D("198.50"),
    }
    again = run("Site, Hour ,G_PER_KWH", "dc-ams1,2026-03-02T10:00Z,100", "dc-ams1,2026-03-02T13:00Z,0")
    assert (again.rows, again.created, again.updated) == (2, 1, 1)
    assert GridIntensityHour.objects.get(site=ams, hour=datetime(2026, 3, 2, 10, tzinfo=UTC)).g_per_kwh == D("100")
    assert GridIntensityHour.objects.count() == 4


def test_unknown_sites_are_named_with_their_lines_and_nothing_is_written(sites):
    lines = ["site,hour,g_per_kwh", "dc-ams1,2026-03-02T10:00Z,236"]
    lines += [f"dc-fra{n % 2},2026-03-02T{n:02d}:00Z,300" for n in range(8)]
    errors = refused(*lines)
    assert errors == [
        "unknown site 'dc-fra1' on 4 line(s): 4, 6, 8, 10",
        "unknown site 'dc-fra0' on 4 line(s): 3, 5, 7, 9",
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "line 2: g_per_kwh: -1 is negative"),
        ("2000.01", "line 2: g_per_kwh: 2000.01 gCO2e/kWh is absurd: above 2000"),
        ("1e6", "absurd"),
        ("NaN", "line 2: g_per_kwh: not a finite number: 'NaN'"),
        ("Infinity", "not a finite number"),
        ("12,5", "line 2: 4 cells, but the header names 3 columns"),  # an unquoted decimal comma
        ("twelve", "line 2: g_per_kwh: not a number: 'twelve'"),
        ("", "line 2: g_per_kwh: not a number: ''"),
    ],
)
def test_bad_intensities_are_refused(sites, value, message):
    errors = refused("site,hour,g_per_kwh", "dc-ams1,2026-03-02T09:00Z,200", f"dc-ams1,2026-03-02T10:00Z,{value}")
    assert any(message.replace("line 2", "line 3") in e for e in errors), errors


def test_the_largest_sane_value_and_zero_are_accepted(sites):
    assert run("site,hour,g_per_kwh", "dc-ams1,2026-03-02T10:00Z,2000", "dc-ams1,2026-03-02T11:00Z,0").rows == 2


@pytest.mark.parametrize(
    ("hour", "message"),
    [
        ("2026-03-02T10:30:00Z", "is not the start of a UTC hour (10:30:00 UTC)"),
        ("2026-03-02T10:00:01Z", "is not the start of a UTC hour"),
        ("2026-03-02T10:00:00+05:30", "is not the start of a UTC hour (04:30:00 UTC)"),
        ("2026-03-02T10:00:00", "has no UTC offset: add Z or ±HH:MM"),
        ("2026-03-02", "has no UTC offset"),
        ("yesterday", "not an ISO 8601 time: 'yesterday'"),
        ("2026-13-02T10:00Z", "not an ISO 8601 time"),
        ("", "a time is required"),
        ("1999-12-31T23:00Z", "is not between 2000-01-01 and 7 days from now"),
        ("2026-03-18T00:00Z", "is not between"),  # NOW + 7 days 12 h
        ("0001-01-01T00:00+01:00", "out of range"),
    ],
)
def test_bad_or_non_hour_timestamps_are_refused(sites, hour, message):
    errors = refused("site,hour,g_per_kwh", f"dc-ams1,{hour},200")
    assert len(errors) == 1 and errors[0].startswith("line 2: hour: ") and message in errors[0], errors


def test_a_forecast_up_to_a_week_ahead_is_accepted(sites):
    assert run("site,hour,g_per_kwh", "dc-ams1,2026-03-17T12:00Z,200").rows == 1


def test_duplicates_within_the_file_are_refused_even_in_another_offset(sites):
    errors = refused(
        "site,hour,g_per_kwh",
        "dc-ams1,2026-03-02T10:00Z,200",
        "dc-sjc1,2026-03-02T10:00Z,200",  # another site: not a duplicate
        "dc-ams1,2026-03-02T11:00+01:00,210",
    )
    assert errors == ["line 4: site 'dc-ams1' at 2026-03-02T10:00Z again (first on line 2)"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("site,hour", "line 1 (header): column 'g_per_kwh' is missing"),
        ("site,time,g_per_kwh", "column 'hour' is missing"),
        ("site,hour,g_per_kwh,zone", "unknown column 'zone'"),
        ("site,hour,g_per_kwh,site", "column 'site' appears twice"),
    ],
)
def test_missing_unknown_or_repeated_columns_are_refused(sites, header, message):
    errors = refused(header, "dc-ams1,2026-03-02T10:00Z,200")
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"site,hour,g_per_kwh\n", "the file has a header but no rows"),
        (b"site,hour,g_per_kwh\n\xff\xfe,x,1\n", "byte 20: the file is not UTF-8 text"),
        (b'site,hour,g_per_kwh\n"dc-ams1"x,2026-03-02T10:00Z,1\n', "line 2: malformed CSV"),
    ],
)
def test_empty_binary_or_malformed_files_are_refused(sites, content, message):
    with pytest.raises(IntensityImportError, match=message):
        grid_intensity_import(file=io.BytesIO(content), now=NOW)


def test_too_big_a_file_is_refused_before_parsing(sites):
    lines = ["site,hour,g_per_kwh"] + [f"dc-ams1,2026-03-0{1 + h // 24}T{h % 24:02d}:00Z,200" for h in range(48)]
    errors = refused(*lines, max_bytes=500)
    assert errors == ["the file is over the limit of 500 bytes: split it"]
    errors = refused(*lines, max_rows=47)
    assert errors == ["more than 47 rows: split the file"]
    assert run(*lines, max_rows=48).rows == 48


def test_an_upload_that_says_it_is_too_big_is_not_even_read(sites):
    class Upload(io.BytesIO):
        size = 10**9

    with pytest.raises(IntensityImportError, match="the file is 1,000,000,000 bytes, over the limit"):
        grid_intensity_import(file=Upload(b"site,hour,g_per_kwh\n"), now=NOW)


def test_every_problem_of_a_file_is_listed_at_once(sites):
    errors = refused(
        "site,hour,g_per_kwh",
        "dc-ams1,2026-03-02T10:15Z,-3",
        ",2026-03-02T10:00Z,1",
        "dc-nowhere,2026-03-02T10:00Z,1",
        "dc-sjc1,2026-03-02T10:00Z,1",  # the one good row is not written either
    )
    assert errors == [
        "unknown site 'dc-nowhere' on 1 line(s): 4",
        "line 2: hour: '2026-03-02T10:15Z' is not the start of a UTC hour (10:15:00 UTC)",
        "line 2: g_per_kwh: -3 is negative: an intensity is 0 or more gCO2e/kWh",
        "line 3: site: a site name is required",
    ]


# --- manage.py import_carbon ----------------------------------------------------------------------------------
def test_import_carbon_command_imports_backfills_and_warns_about_sites_without_intensity(tmp_path, capsys, sites):
    ams, _ = sites
    ams.carbon_g_per_kwh = D("236")
    ams.save()
    node = node_with_gpus(
        site=ams, lifecycle=NodeLifecycle.OWNED, external_id="", launched_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    ten = datetime(2026, 3, 2, 10, tzinfo=UTC)
    rollup_insert(node, ten, energy_wh=700.0)
    path = tmp_path / "intensity.csv"
    path.write_text("site,hour,g_per_kwh\ndc-ams1,2026-03-02T10:00Z,100\n")
    call_command("import_carbon", str(path))
    out = capsys.readouterr().out
    assert "Imported 1 hourly values from intensity.csv (1 new, 0 replaced) for dc-ams1" in out
    assert "manage.py ledger_backfill --from 2026-03-02 --to 2026-03-02" in out
    # dc-sjc1 (on-prem, no operator value) is listed; dc-ams1 has its operator value
    assert "dc-sjc1: An on-prem site needs its operator value (carbon_g_per_kwh)" in out and "dc-ams1:" not in out
    call_command("import_carbon", str(path), "--backfill")
    out = capsys.readouterr().out
    assert "(0 new, 1 replaced)" in out and "Ledger 2026-03-02..2026-03-02 recomputed for 1 node(s): 24 rows." in out
    # 8 GPUs × 700 Wh = 5.6 kWh × the factory site's PUE 1.35 = 7.56 kWh × 100 g (the hourly value) / 1000
    assert LedgerEntry.objects.get(node=node, hour=ten).co2e_kg == D("0.756000")


def test_import_carbon_command_refuses_a_bad_file_whole(tmp_path, sites):
    path = tmp_path / "bad.csv"
    path.write_text("site,hour,g_per_kwh\ndc-ams1,2026-03-02T10:00Z,100\ndc-ams1,2026-03-02T11:00Z,-5\n")
    with pytest.raises(CommandError, match=r"bad.csv: 1 problem\(s\); nothing was imported.\nline 3: g_per_kwh: -5"):
        call_command("import_carbon", str(path))
    assert not GridIntensityHour.objects.exists()
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_carbon", str(tmp_path / "missing.csv"))

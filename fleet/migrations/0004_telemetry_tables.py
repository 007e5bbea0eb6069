"""Telemetry tables written with COPY and read with SQL (not ORM models): see fleet/telemetry/storage.py."""

from django.db import migrations

CREATE = """
-- Raw samples: one row per GPU per poll, kept for TELEMETRY_RAW_RETENTION_H. Partitioned by day so that
-- retention drops whole partitions; the primary key makes ingest idempotent per (GPU, timestamp). Columns are
-- ordered widest first so rows pack without alignment padding.
CREATE TABLE fleet_gpu_sample (
    ts timestamptz NOT NULL,
    gpu_id bigint NOT NULL,
    power_w real,
    mem_used_mib real,
    util_pct smallint,
    temp_c smallint,
    sm_clock_mhz smallint,
    PRIMARY KEY (gpu_id, ts)
) PARTITION BY RANGE (ts);
-- Catches samples outside the prepared day partitions (a clock far off), so ingest never fails on them.
CREATE TABLE fleet_gpu_sample_default PARTITION OF fleet_gpu_sample DEFAULT;
-- Rows arrive in time order, so a BRIN index answers time-range scans (roll-ups) at almost no size.
CREATE INDEX fleet_gpu_sample_ts_brin ON fleet_gpu_sample USING brin (ts);

-- Long-term history: one row per GPU per hour with hourly aggregates and the hour's 1-minute roll-ups as
-- arrays (offsets in `minutes`), kept for TELEMETRY_ROLLUP_RETENTION_DAYS.
CREATE TABLE fleet_gpu_hour (
    hour timestamptz NOT NULL,
    gpu_id bigint NOT NULL,
    energy_wh double precision NOT NULL,
    samples integer NOT NULL,
    idle_s integer NOT NULL,
    util_avg real,
    util_max real,
    power_avg_w real,
    power_max_w real,
    mem_used_max_mib real,
    temp_max_c real,
    minutes smallint[] NOT NULL,
    util_1m smallint[] NOT NULL,
    power_1m_w real[] NOT NULL,
    mem_1m_mib real[] NOT NULL,
    temp_1m_c smallint[] NOT NULL,
    PRIMARY KEY (gpu_id, hour)
);
CREATE INDEX fleet_gpu_hour_hour_brin ON fleet_gpu_hour USING brin (hour);

-- Fleet-wide minute series per provider kind for the overview charts.
CREATE TABLE fleet_fleet_minute (
    minute timestamptz NOT NULL,
    provider_kind varchar(16) NOT NULL,
    gpus integer NOT NULL,
    util_avg real,
    power_w real,
    PRIMARY KEY (minute, provider_kind)
);
"""

DROP = """
DROP TABLE IF EXISTS fleet_fleet_minute;
DROP TABLE IF EXISTS fleet_gpu_hour;
DROP TABLE IF EXISTS fleet_gpu_sample;
"""


class Migration(migrations.Migration):
    dependencies = [("fleet", "0003_gpu_health_counters")]

    operations = [migrations.RunSQL(CREATE, DROP)]

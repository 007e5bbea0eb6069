"""The split of sliced GPUs' node-hours (MIG instances, time-sliced replicas: ``fleet.models.GpuSlice``) into
``LedgerShare`` rows per team and project, inside ``billing.ledger.ledger_compute``'s transaction.

Each slice holder gets ``units / of_units`` of its GPU's ``1 / gpu_count`` of the hour (compute $, kWh, energy $,
kgCO2e, GPU-hours, broken and covered $ alike), with none of the idle: its slice is in use by it. The node's own
team and project get the rest, whose idle GPU-hours are the slices nobody holds plus the measured idle of the whole
(unsliced) GPUs, taken as their share of the node's measured idle. The daily sums read the shares in place of their
entry (``billing.ledger.LEDGER_ROWS_SQL``), so the split shows everywhere spend is shown.
"""

from __future__ import annotations

from datetime import datetime

# Shares of the hours' entries are replaced whole (every node, whatever node_ids says: commitments re-cost every
# entry of an hour, and a share is a fraction of its entry's final figures). Before the ledger's DELETE_SQL: a
# share holds a foreign key to its entry.
SHARE_DELETE_SQL = """
DELETE FROM billing_ledgershare sh USING billing_ledgerentry e
WHERE sh.entry_id = e.id AND e.hour >= %(start)s AND e.hour < %(end)s
"""

# The split of sliced node-hours (MIG instances, time-sliced replicas): each slice holder gets units / of_units of
# its GPU's 1 / gpu_count of the hour, with none of the idle (its slice is in use by it); the node's own team and
# project get the rest, whose idle GPU-hours are the slices nobody holds plus the measured idle of the whole
# (unsliced) GPUs, taken as their share of the node's measured idle. Slices are read as they are when the hour is
# computed. Rows of one (entry, team, project) are summed: a holder may be the node's own team.
SHARE_INSERT_SQL = """
WITH slices AS (
    SELECT g.node_id, sl.gpu_id, sl.team_id, sl.project_id, sl.units::numeric / sl.of_units AS f
    FROM fleet_gpuslice sl JOIN fleet_gpu g ON g.id = sl.gpu_id
),
per_gpu AS (
    SELECT node_id, gpu_id, sum(CASE WHEN team_id IS NOT NULL THEN f ELSE 0 END) AS held FROM slices GROUP BY 1, 2
),
per_node AS (
    SELECT node_id, count(*) AS sliced_gpus, sum(1 - held) AS unheld, sum(held) AS held FROM per_gpu GROUP BY 1
),
holders AS (SELECT node_id, team_id, project_id, sum(f) AS f FROM slices WHERE team_id IS NOT NULL GROUP BY 1, 2, 3),
entries AS (
    SELECT e.* FROM billing_ledgerentry e JOIN per_node pn ON pn.node_id = e.node_id
    WHERE e.hour >= %(start)s AND e.hour < %(end)s AND e.gpu_count > 0
),
parts AS (
    SELECT e.id AS entry_id, h.team_id, h.project_id, h.f / e.gpu_count AS fraction, 0::numeric AS idle_hours
    FROM entries e JOIN holders h ON h.node_id = e.node_id
    UNION ALL
    SELECT e.id, e.team_id, e.project_id, 1 - pn.held / e.gpu_count,
           e.gpu_hours * pn.unheld / e.gpu_count
           + e.idle_gpu_hours * GREATEST(e.gpu_count - pn.sliced_gpus, 0) / e.gpu_count
    FROM entries e JOIN per_node pn ON pn.node_id = e.node_id
),
summed AS (
    SELECT entry_id, team_id, project_id, sum(fraction) AS fraction, sum(idle_hours) AS idle_hours
    FROM parts GROUP BY entry_id, team_id, project_id HAVING sum(fraction) > 0
)
INSERT INTO billing_ledgershare (
    entry_id, team_id, project_id, fraction, gpu_hours, compute_usd, energy_kwh, energy_usd, idle_gpu_hours,
    idle_usd, co2e_kg, broken_gpu_hours, broken_usd, covered_usd
)
SELECT s.entry_id, s.team_id, s.project_id, s.fraction, e.gpu_hours * s.fraction, e.compute_usd * s.fraction,
       e.energy_kwh * s.fraction, e.energy_usd * s.fraction, LEAST(s.idle_hours, e.gpu_hours * s.fraction),
       e.compute_usd * LEAST(s.idle_hours, e.gpu_hours * s.fraction) / e.gpu_hours, e.co2e_kg * s.fraction,
       e.broken_gpu_hours * s.fraction, e.broken_usd * s.fraction, e.covered_usd * s.fraction
FROM summed s JOIN billing_ledgerentry e ON e.id = s.entry_id
WHERE e.gpu_hours > 0
"""


def shares_delete(cursor, *, start: datetime, end: datetime) -> None:
    """Delete the shares of every entry of the hours [start, end) (before the entries themselves are replaced)."""
    cursor.execute(SHARE_DELETE_SQL, {"start": start, "end": end})


def shares_insert(cursor, *, start: datetime, end: datetime) -> int:
    """Write the shares of the sliced nodes' entries of the hours [start, end), after commitments re-costed them
    (a share is a fraction of its entry's final figures); returns the rows written."""
    cursor.execute(SHARE_INSERT_SQL, {"start": start, "end": end})
    return cursor.rowcount

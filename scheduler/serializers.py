"""The JSON shapes of the optimiser's candidates: what ``Placement.alternatives`` and ``breakdown`` store and the
what-if answer serves (``scheduler.api.serializers.CandidateSerializer`` describes the same fields)."""

from __future__ import annotations

from decimal import Decimal

from scheduler.optimizer import DatasetIn


def money(value) -> str:
    """A $ figure as the JSON holds it: a string with 6 decimals."""
    return str(Decimal(value).quantize(Decimal("0.000001")))


def candidate_dict(candidate, *, datasets: dict[int, DatasetIn] | None = None) -> dict:
    """A Candidate as JSON-able data (what Placement.alternatives and the what-if answer hold)."""
    names = {pk: d.name for pk, d in (datasets or {}).items()}
    offer = candidate.offer
    return {
        "kind": candidate.kind,
        "label": candidate.label,
        "node_id": candidate.node_id,
        "location": candidate.location,
        "provider_kind": offer.provider_kind if offer else candidate.location.partition(":")[0],
        "instance_type": offer.instance_type if offer else "",
        "spot": offer.spot if offer else False,
        "gpus": candidate.gpus,
        "instance_count": candidate.instance_count,
        "usd_per_h": money(candidate.usd_per_h),
        "compute_usd": money(candidate.compute_usd),
        "egress_usd": money(candidate.egress_usd),
        "total_usd": money(candidate.total_usd),
        "transfer_s": round(candidate.transfer_s),
        "moves": [
            {
                "dataset_id": move.dataset_id,
                "dataset": names.get(move.dataset_id, ""),
                "source": move.source,
                "destination": move.destination,
                "bytes": move.size_bytes,
                "usd": money(move.usd),
                "seconds": round(move.seconds),
            }
            for move in candidate.moves
        ],
    }


def breakdown(candidate, job_datasets: list[DatasetIn]) -> list[dict]:
    """One row per input dataset: where it is, where it goes, and what moving it costs (0 when already there)."""
    moves = {move.dataset_id: move for move in candidate.moves}
    rows = []
    for dataset in job_datasets:
        move = moves.get(dataset.id)
        rows.append(
            {
                "dataset_id": dataset.id,
                "dataset": dataset.name,
                "source": dataset.location,
                "destination": candidate.location,
                "bytes": dataset.size_bytes,
                "moved": move is not None,
                "usd": money(move.usd if move else 0),
                "seconds": round(move.seconds) if move else 0,
            }
        )
    return rows

"""Fractional GPUs: the slices (MIG instances, time-sliced replicas) that split a GPU's hour between teams.

Operators write slices through ``/api/v1/gpu-slices/`` and the admin; ``GpuSlice.clean`` and
``slice_extra_errors`` validate them. MIG slices also come from telemetry: when a GPU's exposition carries
``GPU_I_ID`` / ``GPU_I_PROFILE`` labels, ``mig_slices_sync`` (called from the ingest path) makes the GPU's MIG
slices exactly its reported instances, named "<profile>#<GPU_I_ID>" (e.g. "3g.40gb#1"), keeping the team and
project an operator set on a slice that is still there. It writes only when the set of instances changed, and a
GPU whose instances cannot be slices (unknown profile, more units than the GPU has) is left as it is with a
warning on its node, never stopping the others.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db import DatabaseError, connection, transaction

from fleet.catalog import GPU_SPECS, gpu_key, mig_profile_units, mig_slices_of
from fleet.choices import GpuSliceKind
from fleet.models import GPU, GpuSlice

MAX_INSTANCE_ID_DIGITS = 4  # MIG has at most a few dozen GPU instances per GPU; ids are small integers


@dataclass(frozen=True)
class MigReport:
    """What one scrape said about a GPU's MIG instances: GPU_I_ID → GPU_I_PROFILE (empty: MIG is off)."""

    gpu_id: int
    node_id: int
    model: str
    profiles: dict[str, str]


def mig_slice_name(profile: str, instance_id: str) -> str:
    """The name of the slice of a MIG instance: its profile and GPU instance id, "3g.40gb#1"."""
    return f"{profile}#{instance_id}"


def mig_instances_wanted(model: str, profiles: dict[str, str]) -> tuple[dict[str, tuple[int, int]], str]:
    """The slices ({name: (units, of_units)}) a GPU's reported MIG instances make, or ({}, why not)."""
    of_units = mig_slices_of(model)
    if of_units is None:
        return {}, "MIG instances reported on a GPU model without MIG; slices not synced"
    wanted = {}
    for instance_id, profile in profiles.items():
        units = mig_profile_units(profile)
        if units is None or not instance_id.isdigit() or len(instance_id) > MAX_INSTANCE_ID_DIGITS:
            return {}, "a MIG instance with an unknown profile or instance id; slices not synced"
        wanted[mig_slice_name(profile, instance_id)] = (units, of_units)
    held = sum(units for units, _ in wanted.values())
    if held > of_units:
        return {}, f"MIG instances hold {held} of the GPU's {of_units} slices; slices not synced"
    return wanted, ""


def _slices_of(gpu_ids: list[int]) -> dict[int, list[tuple]]:
    """(id, kind, name, units, of_units) of every slice of these GPUs, by GPU: one query (array parameter)."""
    found: dict[int, list[tuple]] = defaultdict(list)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT gpu_id, id, kind, name, units, of_units FROM fleet_gpuslice WHERE gpu_id = ANY(%s)", [gpu_ids]
        )
        for gpu_id, *row in cursor.fetchall():
            found[gpu_id].append(tuple(row))
    return found


def mig_slices_sync(reports: list[MigReport]) -> dict[int, str]:
    """Make each reported GPU's MIG slices its instances; return warnings by node id.

    ``reports`` holds the GPUs a scrape named MIG instances of, and (from whole scrapes only) the GPUs it showed
    without any, whose MIG slices are then removed (MIG was turned off). Costs one query when nothing changed.
    """
    if not reports:
        return {}
    existing = _slices_of([r.gpu_id for r in reports])
    # An exposition without modelName labels: the GPU row knows its model (one query, only then).
    nameless = [r.gpu_id for r in reports if r.profiles and not r.model]
    models = dict(GPU.objects.filter(pk__in=nameless).values_list("pk", "model")) if nameless else {}
    warnings: dict[int, str] = {}
    for report in reports:
        rows = existing.get(report.gpu_id, [])
        if not report.profiles and not rows:
            continue  # the common case: a whole GPU, never sliced
        mig = {name: (pk, units, of_units) for pk, kind, name, units, of_units in rows if kind == GpuSliceKind.MIG}
        if report.profiles:
            if any(kind != GpuSliceKind.MIG for _, kind, *_ in rows):
                warnings[report.node_id] = "a GPU reports MIG instances but has time-sliced slices; not synced"
                continue
            wanted, why = mig_instances_wanted(report.model or models.get(report.gpu_id, ""), report.profiles)
            if why:
                warnings[report.node_id] = why
                continue
        else:
            wanted = {}
        if {name: (units, of) for name, (_, units, of) in mig.items()} == wanted:
            continue
        try:
            _apply(report.gpu_id, mig, wanted)
        except DatabaseError:
            warnings[report.node_id] = "the GPU's MIG slices could not be written; retried on the next poll"
    return warnings


def _apply(gpu_id: int, mig: dict[str, tuple], wanted: dict[str, tuple[int, int]]) -> None:
    """Delete the MIG slices that are gone, resize the ones that changed, create the new ones (one savepoint)."""
    with transaction.atomic():
        gone = [pk for name, (pk, _, _) in mig.items() if name not in wanted]
        if gone:
            GpuSlice.objects.filter(pk__in=gone).delete()
        for name, (units, of_units) in wanted.items():
            if name in mig and mig[name][1:] != (units, of_units):
                GpuSlice.objects.filter(pk=mig[name][0]).update(units=units, of_units=of_units)
        GpuSlice.objects.bulk_create(
            [
                GpuSlice(gpu_id=gpu_id, kind=GpuSliceKind.MIG, name=name, units=units, of_units=of_units)
                for name, (units, of_units) in wanted.items()
                if name not in mig
            ]
        )


def slice_extra_errors(gpu_slice: GpuSlice) -> dict[str, str]:
    """Checks of a slice written by a person beyond ``GpuSlice.clean`` (the API and the admin run both): a
    project needs its team, and a MIG slice needs a GPU with MIG counted in its compute slices (7 or 4)."""
    errors = {}
    if gpu_slice.project_id and not gpu_slice.team_id:
        errors["team"] = "A slice with a project needs that project's team."
    if gpu_slice.kind == GpuSliceKind.MIG and gpu_slice.gpu_id and gpu_slice.of_units:
        model = gpu_slice.gpu.model
        slices = mig_slices_of(model)
        if slices is None and gpu_key(model) in GPU_SPECS:
            errors["kind"] = f"A {model} has no MIG; share it by time-slicing."
        elif slices is not None and gpu_slice.of_units != slices:
            errors["of_units"] = f"MIG cuts a {model} into {slices} compute slices: 'of units' is {slices}."
    return errors

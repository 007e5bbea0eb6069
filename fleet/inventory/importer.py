"""On-prem bulk import: nodes and their GPUs from a CSV or YAML file, all rows or none."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from fleet.catalog import GPU_SPECS, GpuSpec
from fleet.choices import NodeLifecycle, NodeSource
from fleet.inventory.base import gpu_from_spec
from fleet.inventory.sync import gpus_reconcile
from fleet.models import GPU, Node, Project, Site, Team

COLUMNS = (
    "site",
    "name",
    "instance_type",
    "telemetry_url",
    "token_ref",
    "team",
    "project",
    "labels",
    "gpu_model",
    "gpu_count",
)
REQUIRED_COLUMNS = ("site", "name", "gpu_model", "gpu_count")
MAX_GPUS_PER_NODE = 64
MAX_ERRORS_SHOWN = 200
FORMATS = ("csv", "yaml")
# Columns that map straight onto a Node field of the same name.
_PLAIN_FIELDS = ("instance_type", "telemetry_url", "token_ref")


class NodeImportError(Exception):
    """A file that cannot be imported; ``errors`` says why, one line per problem (``row 4: …``)."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        shown = errors[:MAX_ERRORS_SHOWN]
        more = len(errors) - len(shown)
        super().__init__("\n".join(shown + ([f"… and {more} more"] if more else [])))


@dataclass(frozen=True)
class ImportReport:
    """What an import did (or, with dry_run, would do)."""

    created: int
    updated: int
    unchanged: int
    gpus_changed: int = 0  # GPU rows created, changed or removed (0 in a dry run, which writes nothing)


def node_import(*, text: str, fmt: str, dry_run: bool = False) -> ImportReport:
    """Create or update (key: site + name) the on-prem nodes a CSV or YAML text lists; any bad row → nothing."""
    if fmt not in FORMATS:
        raise NodeImportError([f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}"])
    records = _records_csv(text) if fmt == "csv" else _records_yaml(text)
    with transaction.atomic():
        plan, errors = _plan(records)
        if errors:
            raise NodeImportError(errors)
        created = sum(1 for node, _, _ in plan if node.pk is None)
        updated = sum(1 for node, _, changed in plan if node.pk is not None and changed)
        gpus_changed = 0 if dry_run else _write(plan)
    return ImportReport(created, updated, len(plan) - created - updated, gpus_changed)


def _records_csv(text: str) -> list[dict]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), strict=True)
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise NodeImportError([f"line {reader.line_num}: malformed CSV: {exc}"]) from exc
    if not rows:
        raise NodeImportError(["the file is empty; the first line must name the columns"])
    header = [cell.strip().lower() for cell in rows[0]]
    _header_check(header)
    records = []
    for row in rows[1:]:
        if not any(cell.strip() for cell in row):
            records.append({"_blank": True})  # kept, so row numbers stay those of the file
            continue
        if len(row) != len(header):
            records.append({"_errors": [f"{len(row)} cells, but the header names {len(header)} columns"]})
            continue
        records.append(dict(zip(header, (cell.strip() for cell in row), strict=True)))
    return records


def _header_check(header: list[str]) -> None:
    errors = [f"unknown column {name!r}; columns are {', '.join(COLUMNS)}" for name in header if name not in COLUMNS]
    errors += [f"column {name!r} appears twice" for name in sorted(set(header)) if header.count(name) > 1]
    errors += [f"required column {name!r} is missing" for name in REQUIRED_COLUMNS if name not in header]
    if errors:
        raise NodeImportError([f"header: {error}" for error in errors])


def _records_yaml(text: str) -> list[dict]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise NodeImportError([f"{where}malformed YAML: {getattr(exc, 'problem', None) or exc}"]) from exc
    if isinstance(data, dict) and set(data) == {"nodes"}:
        data = data["nodes"]
    if not isinstance(data, list):
        raise NodeImportError(["the YAML file must be a list of nodes (or a mapping with one key, 'nodes')"])
    records = []
    for item in data:
        if not isinstance(item, dict):
            records.append({"_errors": ["each node must be a mapping of column names to values"]})
            continue
        unknown = [str(key) for key in item if key not in COLUMNS]
        if unknown:
            records.append({"_errors": [f"unknown key {key!r}; keys are {', '.join(COLUMNS)}" for key in unknown]})
            continue
        records.append({key: "" if value is None else value for key, value in item.items()})
    return records


def _labels_parse(value) -> dict[str, str]:
    """Labels from 'k=v;k2=v2' (CSV) or a mapping (YAML); raises ValueError with the reason."""
    if isinstance(value, dict):
        labels = {}
        for key, item in value.items():
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise ValueError(f"label {key!r} must have a text value")
            labels[str(key)] = str(item)
        return labels
    if not isinstance(value, str):
        raise ValueError("labels must be 'key=value;key2=value2' or a mapping")
    labels = {}
    for part in value.split(";"):
        if not part.strip():
            continue
        key, sep, item = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"labels: {part.strip()!r} is not key=value (separate pairs with ';')")
        labels[key.strip()] = item.strip()
    return labels


def _gpu_spec(value) -> GpuSpec | None:
    for spec in GPU_SPECS.values():
        if value in (spec.key, spec.nvml_name):
            return spec
    return None


def _plan(records: list[dict]) -> tuple[list[tuple[Node, tuple[GpuSpec, int], bool]], list[str]]:
    """Validate every record against the database; each node (new or changed) with its GPUs, and the errors."""
    sites = {
        site.name: site
        for site in Site.objects.select_related("provider").filter(name__in={str(r.get("site", "")) for r in records})
    }
    teams = {team.slug: team for team in Team.objects.filter(slug__in={str(r.get("team", "")) for r in records})}
    projects = {
        (project.team_id, project.slug): project
        for project in Project.objects.select_related("team").filter(team__in=teams.values())
    }
    existing = {
        (node.site_id, node.name): node
        for node in Node.objects.select_related("project").filter(
            site__in=sites.values(), name__in={str(r.get("name", "")) for r in records}
        )
    }
    plan, errors, first_row = [], [], {}
    for number, record in enumerate(records, start=1):
        if record.get("_blank"):
            continue
        problems = list(record.get("_errors", []))
        problems += [f"{key} is required" for key in REQUIRED_COLUMNS if not problems and record.get(key) in (None, "")]
        if not problems:
            node, gpus, changed = _node_build(record, sites, teams, projects, existing, problems)
            key = (record.get("site"), record.get("name"))
            if key in first_row:
                problems.append(f"node {key[1]!r} in site {key[0]!r} is already in row {first_row[key]}")
            first_row.setdefault(key, number)
            if not problems:
                plan.append((node, gpus, changed))
        errors += [f"row {number}: {problem}" for problem in problems]
    return plan, errors


def _node_build(record, sites, teams, projects, existing, problems: list[str]):
    site_name, name = str(record.get("site", "")), str(record.get("name", ""))
    site = sites.get(site_name)
    if site is None:
        problems.append(f"site {site_name!r} does not exist")
    elif not site.is_onprem:
        kind = site.provider.get_kind_display()
        problems.append(f"site {site_name!r} belongs to {kind} provider {site.provider.name!r}; import is for on-prem")
    team = project = None
    if record.get("team"):
        team = teams.get(str(record["team"]))
        if team is None:
            problems.append(f"team {record['team']!r} does not exist")
    if record.get("project"):
        if team is None and not record.get("team"):
            problems.append(f"project {record['project']!r} needs its team in the team column")
        elif team is not None:
            project = projects.get((team.pk, str(record["project"])))
            if project is None:
                problems.append(f"project {record['project']!r} does not exist in team {team.slug!r}")
    spec = _gpu_spec(record.get("gpu_model"))
    if spec is None:
        problems.append(
            f"gpu_model {record.get('gpu_model')!r} is not a known GPU; use one of {', '.join(GPU_SPECS)} "
            "or its NVML name"
        )
    count = _gpu_count(record.get("gpu_count"), problems)
    labels = None
    if "labels" in record:
        try:
            labels = _labels_parse(record["labels"])
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        return None, None, False
    node = existing.get((site.pk, name))
    values = {"site": site, "name": name, "lifecycle": NodeLifecycle.OWNED, "source": NodeSource.IMPORT}
    if "team" in record:
        values["team"] = team
    if "project" in record:
        values["project"] = project
    if labels is not None:
        values["labels"] = labels
    values.update({field: str(record[field]) for field in _PLAIN_FIELDS if field in record})
    changed = node is None
    if node is None:
        node = Node(**values)
    for field, value in values.items():
        attname = Node._meta.get_field(field).attname
        if getattr(node, attname) != (value.pk if isinstance(value, Model) else value):
            changed = True
        # Set even when equal: clean() reads node.site and node.project, which are then cached, not queried.
        setattr(node, field, value)
    try:
        # Site, team and project were resolved above; re-checking the foreign keys would cost a query per row.
        node.full_clean(exclude=["site", "team", "project"], validate_unique=False, validate_constraints=False)
        GPU(index=0, model=spec.nvml_name, memory_mib=spec.memory_mib, power_limit_w=spec.power_limit_w).full_clean(
            exclude=["node"], validate_unique=False, validate_constraints=False
        )
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            prefix = "" if field == "__all__" else f"{field}: "
            problems.extend(f"{prefix}{message}" for message in messages)
        return None, None, False
    return node, (spec, count), changed


def _gpu_count(value, problems: list[str]) -> int:
    try:
        count = int(str(value).strip())
    except ValueError:
        count = 0
    if isinstance(value, bool) or not 1 <= count <= MAX_GPUS_PER_NODE:
        problems.append(f"gpu_count {value!r} must be a whole number from 1 to {MAX_GPUS_PER_NODE}")
    return count


def _write(plan: list[tuple[Node, tuple[GpuSpec, int], bool]]) -> int:
    now = timezone.now()
    new = [node for node, _, _ in plan if node.pk is None]
    changed = [node for node, _, is_changed in plan if node.pk is not None and is_changed]
    Node.objects.bulk_create(new)
    for node in changed:
        node.updated = now
    if changed:
        fields = ["site", "name", "lifecycle", "source", "team", "project", "labels", "updated"]
        Node.objects.bulk_update(changed, fields=[*fields, *_PLAIN_FIELDS])
    return gpus_reconcile(wanted={node.pk: [gpu_from_spec(spec, count)] for node, (spec, count), _ in plan})

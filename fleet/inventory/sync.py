"""Cloud inventory sync: list every scope of a provider through its adapter and make the database agree."""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.module_loading import import_string

from fleet.choices import NodeSource, NodeState, ProviderKind
from fleet.inventory.base import DiscoveredGPU, DiscoveredNode, DiscoveryError, InventoryAdapter, continent_for_region
from fleet.models import GPU, InventoryScope, Node, Project, Provider, Site, Team

logger = logging.getLogger(__name__)

# Dotted paths: google-cloud-compute takes about a second to import, which web processes need not pay.
ADAPTERS = {ProviderKind.AWS: "fleet.inventory.aws.AwsAdapter", ProviderKind.GCP: "fleet.inventory.gcp.GcpAdapter"}
CLOUD_SOURCES = (NodeSource.AWS, NodeSource.GCP)
# States in which a cloud instance no longer bills for compute: the ledger stops at Node.ended_at.
ENDED_STATES = (NodeState.STOPPED, NodeState.TERMINATED)
# Scopes (regions) are listed concurrently: the wait is the cloud's, and a slow region must not delay the rest.
SCOPE_WORKERS = 8
ERROR_MAX_CHARS = 2000
WARNINGS_MAX_PER_SCOPE = 50
SITE_NAME_MAX_CHARS = 64
NODE_NAME_MAX_CHARS = 128
INSTANCE_TYPE_MAX_CHARS = 64


@dataclass
class ScopeReport:
    """What one scope's sync did (or why it did not)."""

    scope: str
    ok: bool
    skipped: bool = False
    nodes_seen: int = 0
    created: int = 0
    updated: int = 0
    retired: int = 0
    error: str = ""
    next_attempt_at: datetime | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class SyncReport:
    """The outcome of one provider's sync, per scope."""

    provider: str
    scopes: list[ScopeReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(scope.ok for scope in self.scopes if not scope.skipped)

    def as_dict(self) -> dict:
        """JSON-ready form (task results, logs)."""
        data = asdict(self)
        for scope in data["scopes"]:
            if scope["next_attempt_at"] is not None:
                scope["next_attempt_at"] = scope["next_attempt_at"].isoformat()
        return data


def adapter_for(provider: Provider) -> InventoryAdapter:
    """A fresh adapter (its caches live for one sync) for the provider's cloud."""
    path = ADAPTERS.get(provider.kind)
    if path is None:
        raise ValueError(f"{provider.get_kind_display()} providers have no cloud inventory to sync.")
    return import_string(path)()


def inventory_sync(*, provider: Provider, now: datetime | None = None, force: bool = False) -> SyncReport:
    """Sync every scope of ``provider`` that is not backing off (``force``: that are too); failures stay per scope."""
    now = now or timezone.now()
    adapter = adapter_for(provider)
    scopes = adapter.scopes(provider)
    rows = {row.scope: row for row in InventoryScope.objects.filter(provider=provider, scope__in=scopes)}
    report = SyncReport(provider=provider.name)
    due = []
    for scope in scopes:
        row = rows.get(scope)
        if not force and row is not None and row.next_attempt_at is not None and row.next_attempt_at > now:
            report.scopes.append(
                ScopeReport(scope, ok=False, skipped=True, error=row.last_error, next_attempt_at=row.next_attempt_at)
            )
        else:
            due.append(scope)
    outcomes = _discover_all(adapter, provider, due)
    for scope in due:
        outcome = outcomes[scope]
        if isinstance(outcome, BaseException):
            report.scopes.append(_scope_failure_record(provider, scope, outcome, now))
        else:
            report.scopes.append(_scope_apply(provider, adapter, scope, outcome, now))
    report.scopes.sort(key=lambda s: s.scope)
    return report


def _discover_all(
    adapter: InventoryAdapter, provider: Provider, scopes: list[str]
) -> dict[str, list[DiscoveredNode] | BaseException]:
    def discover(scope: str) -> list[DiscoveredNode] | BaseException:
        try:
            return adapter.discover(provider, scope)
        except (DiscoveryError, *adapter.errors) as exc:
            logger.warning("inventory %s/%s failed: %s", provider.name, scope, exc)
            return exc
        except Exception as exc:
            # A bug or a response shape we did not foresee: loud in the log, but it costs only this scope.
            logger.exception("inventory %s/%s failed unexpectedly", provider.name, scope)
            return exc

    if len(scopes) <= 1:
        return {scope: discover(scope) for scope in scopes}
    with ThreadPoolExecutor(max_workers=min(SCOPE_WORKERS, len(scopes)), thread_name_prefix="inventory") as pool:
        return dict(zip(scopes, pool.map(discover, scopes), strict=True))


def _error_message(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS]


def _backoff_s(failures: int) -> int:
    return min(settings.INVENTORY_BACKOFF_BASE_S * 2 ** (failures - 1), settings.INVENTORY_BACKOFF_MAX_S)


def _scope_failure_record(provider: Provider, scope: str, exc: BaseException, now: datetime) -> ScopeReport:
    with transaction.atomic():
        row, _ = InventoryScope.objects.select_for_update().get_or_create(provider=provider, scope=scope)
        row.consecutive_failures += 1
        row.last_attempt_at = now
        row.last_error = _error_message(exc)
        row.next_attempt_at = now + timedelta(seconds=_backoff_s(row.consecutive_failures))
        row.save(update_fields=["consecutive_failures", "last_attempt_at", "last_error", "next_attempt_at"])
    return ScopeReport(
        scope, ok=False, nodes_seen=row.nodes_seen, error=row.last_error, next_attempt_at=row.next_attempt_at
    )


def _scope_apply(
    provider: Provider, adapter: InventoryAdapter, scope: str, discovered: list[DiscoveredNode], now: datetime
) -> ScopeReport:
    report = ScopeReport(scope, ok=True, nodes_seen=len(discovered))
    with transaction.atomic():
        # One writer per scope: beat's sync and an operator's "sync now" may overlap.
        row, _ = InventoryScope.objects.select_for_update().get_or_create(provider=provider, scope=scope)
        warnings: list[str] = [f"{d.name}: {w}" for d in discovered for w in d.warnings]
        placed = _sites_ensure(provider, discovered, warnings)
        existing = {
            node.external_id: node
            for node in Node.objects.filter(site__provider=provider, external_id__in=[d.external_id for d, _ in placed])
        }
        placed = _owned_only(placed, existing, warnings)
        team_ids, project_ids = _teams_resolve(placed)
        names = _names_assign(placed, existing)
        created, updated = _nodes_upsert(adapter, provider, placed, existing, names, team_ids, project_ids, now)
        report.created, report.updated = len(created), len(updated)
        rows = {**existing, **{row.external_id: row for row in created}}
        gpus_reconcile(wanted={rows[d.external_id].pk: d.gpus for d, _ in placed})
        report.retired = _nodes_retire(provider, adapter, scope, {d.external_id for d in discovered}, now)
        row.last_attempt_at = row.last_success_at = now
        row.consecutive_failures = 0
        row.next_attempt_at = None
        row.last_error = ""
        row.nodes_seen = len(discovered)
        row.save()
    report.warnings = warnings[:WARNINGS_MAX_PER_SCOPE]
    return report


def _sites_ensure(
    provider: Provider, discovered: list[DiscoveredNode], warnings: list[str]
) -> list[tuple[DiscoveredNode, Site]]:
    """Each node with its site (one per provider and zone), creating the missing sites."""
    sites = {(site.region, site.zone): site for site in Site.objects.filter(provider=provider)}
    placed = []
    for node in discovered:
        key = (node.region, node.zone)
        if key not in sites:
            continent = continent_for_region(node.region)
            if continent is None:
                warnings.append(f"{node.name}: region {node.region!r} is not one Fleetdeck knows; node skipped")
                continue
            sites[key] = _site_create(provider, node.region, node.zone, continent)
        placed.append((node, sites[key]))
    return placed


def _site_create(provider: Provider, region: str, zone: str, continent: str) -> Site:
    name = f"{provider.name}-{zone or region}"[:SITE_NAME_MAX_CHARS]
    if Site.objects.filter(name=name).exists():
        # A hand-made site already has the natural name; a short digest keeps ours unique and stable.
        digest = hashlib.sha256(f"{provider.pk}:{region}:{zone}".encode()).hexdigest()[:6]
        name = f"{name[: SITE_NAME_MAX_CHARS - 7]}-{digest}"
    return Site.objects.create(provider=provider, name=name, region=region, zone=zone, continent=continent)


def _owned_only(
    placed: list[tuple[DiscoveredNode, Site]], existing: dict[str, Node], warnings: list[str]
) -> list[tuple[DiscoveredNode, Site]]:
    """Drop instances whose row a person registered or imported: sync never changes those."""
    kept = []
    for node, site in placed:
        row = existing.get(node.external_id)
        if row is not None and row.source not in CLOUD_SOURCES:
            warnings.append(f"{node.name}: registered by hand ({row.source}) as {row.name!r}; left as it is")
            continue
        kept.append((node, site))
    return kept


def _teams_resolve(placed: list[tuple[DiscoveredNode, Site]]) -> tuple[dict[str, int], dict[tuple[int, str], int]]:
    team_slugs = {n.labels.get(settings.INVENTORY_TEAM_TAG) for n, _ in placed} - {None, ""}
    team_ids = dict(Team.objects.filter(slug__in=team_slugs).values_list("slug", "pk")) if team_slugs else {}
    project_slugs = {n.labels.get(settings.INVENTORY_PROJECT_TAG) for n, _ in placed} - {None, ""}
    project_ids = {}
    if team_ids and project_slugs:
        rows = Project.objects.filter(team_id__in=team_ids.values(), slug__in=project_slugs)
        project_ids = {(team, slug): pk for team, slug, pk in rows.values_list("team_id", "slug", "pk")}
    return team_ids, project_ids


def _names_assign(placed: list[tuple[DiscoveredNode, Site]], existing: dict[str, Node]) -> dict[str, str]:
    """A node name per instance: its own name, or name-<id> where another node of the site already has it."""
    wanted = {d.external_id: d.name[:NODE_NAME_MAX_CHARS] or d.external_id for d, _ in placed}
    holders: dict[tuple[int, str], str] = {
        (site_id, name): f"pk:{pk}"
        for site_id, name, pk in Node.objects.filter(
            site__in={site.pk for _, site in placed}, name__in=set(wanted.values())
        ).values_list("site_id", "name", "pk")
    }
    names = {}
    # Sorted, so which of two same-named instances keeps the plain name does not change between runs.
    for node, site in sorted(placed, key=lambda pair: pair[0].external_id):
        row = existing.get(node.external_id)
        me = f"pk:{row.pk}" if row is not None else f"new:{node.external_id}"
        name = wanted[node.external_id]
        if holders.setdefault((site.pk, name), me) != me:
            name = f"{name[: NODE_NAME_MAX_CHARS - len(node.external_id) - 1]}-{node.external_id}"
            holders[(site.pk, name)] = me
        names[node.external_id] = name
    return names


def _nodes_upsert(
    adapter: InventoryAdapter,
    provider: Provider,
    placed: list[tuple[DiscoveredNode, Site]],
    existing: dict[str, Node],
    names: dict[str, str],
    team_ids: dict[str, int],
    project_ids: dict[tuple[int, str], int],
    now: datetime,
) -> tuple[list[Node], list[Node]]:
    to_create, to_update, changed_fields = [], [], set()
    for node, site in placed:
        team_id = team_ids.get(node.labels.get(settings.INVENTORY_TEAM_TAG, ""))
        project_id = project_ids.get((team_id, node.labels.get(settings.INVENTORY_PROJECT_TAG, "")))
        values = {
            "site_id": site.pk,
            "name": names[node.external_id],
            "instance_type": node.instance_type[:INSTANCE_TYPE_MAX_CHARS],
            "lifecycle": node.lifecycle,
            "state": node.state,
            "team_id": team_id,
            "project_id": project_id,
            "labels": node.labels,
            "launched_at": node.launched_at,
            "source": adapter.source,
        }
        row = existing.get(node.external_id)
        values["ended_at"] = _ended_at(row, node.state, now)
        if provider.agent_url_template and (row is None or not row.telemetry_url):
            # The node's agent, where the provider says its agents listen; a URL set by hand is kept.
            values["telemetry_url"] = provider.agent_url(node=node, name=values["name"])
            values["token_ref"] = provider.agent_token_ref
        if row is None:
            to_create.append(Node(external_id=node.external_id, **values))
            continue
        if row.state == NodeState.UNREACHABLE and node.state == NodeState.RUNNING:
            # Telemetry knows better whether a running instance answers; the cloud only knows it runs.
            values["state"] = NodeState.UNREACHABLE
        changed = [name for name, value in values.items() if getattr(row, name) != value]
        if changed:
            for name in changed:
                setattr(row, name, values[name])
            row.updated = now
            changed_fields.update(changed)
            to_update.append(row)
    if to_create:
        Node.objects.bulk_create(to_create)
    if to_update:
        Node.objects.bulk_update(to_update, fields=sorted(changed_fields | {"updated"}))
    return to_create, to_update


def _ended_at(row: Node | None, state: str, now: datetime) -> datetime | None:
    """When billing ended: kept from the sync that first saw the node stopped, cleared once it runs again."""
    if state not in ENDED_STATES:
        return None
    if row is not None and row.ended_at is not None:
        return row.ended_at
    # The cloud does not say when it stopped; the first sync that sees it is the best bound we have.
    return now


def gpus_reconcile(*, wanted: dict[int, list[DiscoveredGPU]]) -> int:
    """Make each node's GPU rows (by index) match ``wanted``; returns the rows created, changed or deleted.

    Rows whose UUID telemetry has filled keep their model, memory and power limit: NVML is the better witness.
    """
    if not wanted:
        return 0
    shapes = {
        node_id: [(gpu.model, gpu.memory_mib, gpu.power_limit_w) for gpu in gpus for _ in range(gpu.count)]
        for node_id, gpus in wanted.items()
    }
    current = {
        (gpu.node_id, gpu.index): gpu
        for gpu in GPU.objects.filter(node_id__in=shapes).only(
            "pk", "node_id", "index", "uuid", "model", "memory_mib", "power_limit_w"
        )
    }
    to_create, to_update = [], []
    for node_id, rows in shapes.items():
        for index, shape in enumerate(rows):
            model, memory_mib, power_limit_w = shape
            gpu = current.pop((node_id, index), None)
            if gpu is None:
                to_create.append(
                    GPU(node_id=node_id, index=index, model=model, memory_mib=memory_mib, power_limit_w=power_limit_w)
                )
            elif gpu.uuid is None and (gpu.model, gpu.memory_mib, gpu.power_limit_w) != shape:
                gpu.model, gpu.memory_mib, gpu.power_limit_w = model, memory_mib, power_limit_w
                to_update.append(gpu)
    to_delete = [gpu.pk for gpu in current.values()]
    if to_create:
        GPU.objects.bulk_create(to_create)
    if to_update:
        GPU.objects.bulk_update(to_update, fields=["model", "memory_mib", "power_limit_w"])
    if to_delete:
        GPU.objects.filter(pk__in=to_delete).delete()
    return len(to_create) + len(to_update) + len(to_delete)


def _nodes_retire(provider: Provider, adapter: InventoryAdapter, scope: str, seen: set[str], now: datetime) -> int:
    """Mark this scope's synced nodes that the cloud no longer lists as terminated (billing ends now, or earlier)."""
    gone = Node.objects.filter(site__provider=provider, source=adapter.source).exclude(state=NodeState.TERMINATED)
    regions = adapter.scope_regions(provider, scope)
    if regions is not None:
        gone = gone.filter(site__region__in=regions)
    # Select first, so a sync with nothing to retire writes nothing at all.
    ids = list(gone.exclude(external_id__in=seen).values_list("pk", flat=True))
    if ids:
        Node.objects.filter(pk__in=ids).update(
            state=NodeState.TERMINATED, ended_at=Coalesce("ended_at", Value(now)), updated=now
        )
    return len(ids)

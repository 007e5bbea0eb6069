"""The audit trail's event tables: one per tracked model, written by database triggers (audit.tracking).

Every event model lives in this app, so being audited gives no other app a migration; the triggers
themselves are installed by pgtrigger after every migrate (settings.PGTRIGGER_INSTALL_ON_MIGRATE).
When a tracked model gains a field, ``makemigrations audit`` adds it to its event table.
"""

from __future__ import annotations

from django.contrib.auth.models import User

from audit.tracking import audited
from billing.models import (
    Budget,
    Commitment,
    Discount,
    EgressRate,
    GridIntensity,
    InstancePrice,
    OnPremCostModel,
    ProviderPue,
    ReportSubscription,
)
from core.models import APIToken
from fleet.choices import NodeState
from fleet.models import GPU, GpuSlice, InventoryScope, Node, Project, PromQLSource, Provider, Site, Team
from scheduler.models import Dataset, Job, Placement, TeamQuota

# Written by every telemetry poll (the latest reading, health counters) or inventory sync (its bookkeeping).
NODE_QUIET = ("last_seen", "consecutive_poll_failures", "last_poll_error", "updated")
GPU_QUIET = (
    "sampled_at",
    "util_pct",
    "mem_used_mib",
    "power_w",
    "temp_c",
    "sm_clock_mhz",
    "idle_since",
    "xid_last",
    "ecc_sbe_total",
    "ecc_dbe_total",
    "lost",
)
SCOPE_QUIET = (
    "last_attempt_at",
    "last_success_at",
    "consecutive_failures",
    "next_attempt_at",
    "last_error",
    "nodes_seen",
)
PROMQL_QUIET = ("read_until", "last_success_at", "last_error", "consecutive_failures")
# A poll marks a running node unreachable after failures and running again on its next answer: telemetry's
# doing, not a change. Any other state change (stopped, terminated, by sync or by hand) is recorded.
_POLL_STATES = f"('{NodeState.RUNNING.value}', '{NodeState.UNREACHABLE.value}')"
NODE_STATE_SQL = (
    'OLD."state" IS DISTINCT FROM NEW."state"'
    f' AND NOT (OLD."state" IN {_POLL_STATES} AND NEW."state" IN {_POLL_STATES})'
)


class ProviderEvent(audited(Provider, quiet=("updated",))):
    """A change of a provider."""


class SiteEvent(audited(Site, quiet=("updated",))):
    """A change of a site."""


class TeamEvent(audited(Team)):
    """A change of a team."""


class TeamMemberEvent(audited(Team.members.through)):
    """A user added to (insert) or removed from (delete) a team."""


class ProjectEvent(audited(Project)):
    """A change of a project."""


class NodeEvent(audited(Node, quiet=NODE_QUIET, watched=("state",), watched_sql=NODE_STATE_SQL)):
    """A change of a node (not its telemetry bookkeeping, nor reachability as polls see it)."""


class GpuEvent(audited(GPU, quiet=GPU_QUIET)):
    """A change of a GPU (not its readings)."""


class GpuSliceEvent(audited(GpuSlice, quiet=("updated",))):
    """A change of a GPU slice."""


class InventoryScopeEvent(audited(InventoryScope, quiet=SCOPE_QUIET)):
    """An inventory scope created or removed (its sync outcome is not recorded)."""


class PromQLSourceEvent(audited(PromQLSource, quiet=PROMQL_QUIET)):
    """A change of a PromQL source (not its read progress)."""


class InstancePriceEvent(audited(InstancePrice)):
    """A change of an instance price."""


class DiscountEvent(audited(Discount)):
    """A change of a discount."""


class OnPremCostModelEvent(audited(OnPremCostModel)):
    """A change of an on-prem cost model."""


class EgressRateEvent(audited(EgressRate)):
    """A change of an egress rate."""


class CommitmentEvent(audited(Commitment)):
    """A change of a commitment."""


class BudgetEvent(audited(Budget)):
    """A change of a budget."""


class ReportSubscriptionEvent(audited(ReportSubscription)):
    """A change of a report subscription."""


class GridIntensityEvent(audited(GridIntensity)):
    """A change of a grid carbon intensity."""


class ProviderPueEvent(audited(ProviderPue)):
    """A change of a provider's PUE."""


class DatasetEvent(audited(Dataset)):
    """A change of a dataset."""


class JobEvent(audited(Job, quiet=("pending_reason",))):
    """A change of a job (not why a pending job waits, which every placement run rewrites)."""


class PlacementEvent(audited(Placement, quiet=("alternatives", "breakdown"))):
    """A change of a placement (its ranked alternatives and per-dataset breakdown stay on the placement)."""


class TeamQuotaEvent(audited(TeamQuota)):
    """A change of a team's GPU quota (guarantee, borrowing limit, fair-share weight)."""


class APITokenEvent(audited(APIToken, quiet=("key_hash", "last_used"))):
    """A change of an API token; never its hash, nor when it was last used."""


class UserEvent(audited(User, quiet=("password", "last_login"))):
    """A change of a user account; never the password hash, nor the last login."""


class UserGroupEvent(audited(User.groups.through)):
    """A role (group) given to (insert) or taken from (delete) a user."""

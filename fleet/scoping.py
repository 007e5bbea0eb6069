"""Team scoping: the one rule of which teams' rows a user may see, and the queryset method that applies it.

Why here: the rule is about ``fleet.Team`` (its members), and fleet is the lowest layer that has Team, so
billing (ledger, budgets, reports) and scheduler (jobs, placements) can both use it without importing each
other. Fleet may not import billing, so the permission that lifts the limit is checked by its codename string
(``billing.spend_all_teams``, declared on ``billing.LedgerEntry``), not through billing's code.

The rule: superusers and users whose roles grant ``billing.spend_all_teams`` (operators, admins) see every
team, and so does a viewer who is a member of no team; a viewer who is a member of teams (``Team.members``)
sees only those teams' rows — rows without a team (whole-fleet report subscriptions, unassigned spend) are
then hidden. An anonymous user sees nothing.

How: every team-scoped model uses a manager made from ``TeamScopedQuerySet`` and names the path(s) to the team
of a row in ``team_scope_fields`` (``("team",)`` by default; a budget is its team's or its project's team's).
``Model.objects.restrict(user)`` is what every page, API viewset, CSV and report read calls;
``for_teams(ids)`` is the same filter for a scope already worked out (a spend page narrowed by ``?team=``).
API viewsets get it through ``TeamScopedViewMixin``.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

SPEND_ALL_TEAMS_PERM = "billing.spend_all_teams"


def team_scope(user) -> list[int] | None:
    """The ids of the teams whose rows ``user`` may see, or None for every team (and rows without a team);
    an anonymous user sees nothing ([])."""
    if not user.is_authenticated:
        return []
    if user.is_superuser or user.has_perm(SPEND_ALL_TEAMS_PERM):
        return None
    team_ids = list(user.teams.order_by("pk").values_list("pk", flat=True))
    return team_ids or None


def teams_in_scope(*, scope: list[int] | None, requested: list[int] | None) -> list[int] | None:
    """Narrow a scope by the teams a filter asks for: the intersection (a team outside the scope yields
    nothing), or the scope itself when no team is asked for."""
    if not requested:
        return scope
    if scope is None:
        return sorted(set(requested))
    return sorted(set(requested) & set(scope))


class TeamScopedQuerySet(QuerySet):
    """A queryset of a team-scoped model; the model's ``team_scope_fields`` name the team of a row."""

    def _team_fields(self) -> tuple[str, ...]:
        return getattr(self.model, "team_scope_fields", ("team",))

    def for_teams(self, teams: list[int] | None) -> TeamScopedQuerySet:
        """The rows of ``teams`` (ids): None is every row, [] is none; rows without a team are left out."""
        if teams is None:
            return self
        if not teams:
            return self.none()
        match = Q()
        for field in self._team_fields():
            match |= Q(**{f"{field}__in": teams})
        return self.filter(match)

    def restrict(self, user) -> TeamScopedQuerySet:
        """The rows ``user`` may see (``team_scope``)."""
        return self.for_teams(team_scope(user))


class TeamScopedViewMixin:
    """For API viewsets of team-scoped models: the queryset restricted to the caller, and the caller's scope
    in the serializer context (``scope``: team ids or None) so writes can refuse another team."""

    def scope(self) -> list[int] | None:
        """The caller's team scope (None for the schema generator, which has no user)."""
        if getattr(self, "swagger_fake_view", False):
            return None
        if not hasattr(self, "_scope"):
            self._scope = team_scope(self.request.user)
        return self._scope

    def get_queryset(self):
        return super().get_queryset().for_teams(self.scope())

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "scope": self.scope()}

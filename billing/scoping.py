"""Which teams' spend a user may see.

Operators and admins (through their roles' ``billing.spend_all_teams`` permission) and superusers see every
team. A viewer who is a member of teams (``Team.members``) sees only those teams' spend; a viewer who is a
member of no team sees everything — to limit a viewer, add them to a team.
"""

from __future__ import annotations

SPEND_ALL_TEAMS_PERM = "billing.spend_all_teams"


def spend_team_scope(user) -> list[int] | None:
    """The ids of the teams whose spend ``user`` may see, or None for every team (and spend without a team);
    an anonymous user sees nothing."""
    if not user.is_authenticated:
        return []
    if user.is_superuser or user.has_perm(SPEND_ALL_TEAMS_PERM):
        return None
    team_ids = list(user.teams.order_by("pk").values_list("pk", flat=True))
    return team_ids or None


def teams_in_scope(*, scope: list[int] | None, requested: list[int] | None) -> list[int] | None:
    """Narrow a user's scope by the teams a filter asks for: the intersection (a team outside the scope
    yields nothing), or the scope itself when no team is asked for."""
    if not requested:
        return scope
    if scope is None:
        return sorted(set(requested))
    return sorted(set(requested) & set(scope))

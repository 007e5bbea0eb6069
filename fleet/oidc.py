"""Single sign-on's team memberships: groups named ``OIDC_TEAM_GROUP_PREFIX`` + a team's slug make a member.

The backend lives here, not in core, because teams are fleet's (core must not import fleet): it is core's
``OIDCBackend`` plus teams. Only existing teams are joined; a slug no team has is logged and ignored, never
created from a claim. Memberships are re-synced at every login, so leaving the group leaves the team.
"""

from __future__ import annotations

import logging

from django.conf import settings

from core.oidc import OIDCBackend
from fleet.models import Team

logger = logging.getLogger(__name__)


def team_slugs_for_groups(groups: list[str]) -> set[str]:
    """The team slugs that ``groups`` name (an empty prefix turns team mapping off)."""
    prefix = settings.OIDC_TEAM_GROUP_PREFIX
    if not prefix:
        return set()
    return {group[len(prefix) :] for group in groups if group.startswith(prefix) and len(group) > len(prefix)}


class FleetdeckOIDCBackend(OIDCBackend):
    """The single sign-on backend the settings install: role (core) and team memberships (here)."""

    def sync_memberships(self, user, groups: list[str]) -> None:
        """Make ``user`` a member of exactly the existing teams that ``groups`` name."""
        super().sync_memberships(user, groups)
        slugs = team_slugs_for_groups(groups)
        teams = list(Team.objects.filter(slug__in=slugs))
        unknown = sorted(slugs - {team.slug for team in teams})
        if unknown:
            logger.warning("single sign-on: %r's groups name teams that do not exist: %r", user.username, unknown)
        user.teams.set(teams)

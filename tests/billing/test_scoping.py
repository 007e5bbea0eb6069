"""Team scoping of spend: who sees which teams."""

import pytest

from fleet.scoping import team_scope, teams_in_scope
from tests.factories import TeamFactory


@pytest.mark.django_db
def test_operators_admins_and_superusers_see_every_team(make_user, django_user_model):
    team = TeamFactory()
    for role in ("operator", "admin"):
        user = make_user(role)
        team.members.add(user)
        assert team_scope(user) is None, role
    superuser = django_user_model.objects.create_superuser("root", "root@example.com", "a-long-password-1")
    team.members.add(superuser)
    assert team_scope(superuser) is None


@pytest.mark.django_db
def test_viewer_member_of_teams_sees_only_them(make_user):
    a, b, _other = TeamFactory(), TeamFactory(), TeamFactory()
    viewer = make_user("viewer")
    a.members.add(viewer)
    b.members.add(viewer)
    assert team_scope(viewer) == sorted([a.pk, b.pk])


@pytest.mark.django_db
def test_viewer_in_no_team_sees_everything(make_user):
    TeamFactory()
    assert team_scope(make_user("viewer")) is None


def test_teams_in_scope_intersects():
    assert teams_in_scope(scope=None, requested=None) is None
    assert teams_in_scope(scope=None, requested=[3, 1, 3]) == [1, 3]
    assert teams_in_scope(scope=[1, 2], requested=None) == [1, 2]
    assert teams_in_scope(scope=[1, 2], requested=[2, 5]) == [2]
    assert teams_in_scope(scope=[1, 2], requested=[5]) == []


@pytest.mark.django_db
def test_a_writer_limited_to_teams_budgets_only_for_them(make_user):
    """A custom grant (add_budget to a member of one team) never writes another team's budget."""
    from django.contrib.auth.models import Permission
    from django.urls import reverse
    from rest_framework.test import APIClient

    from billing.models import Budget
    from core.choices import Role
    from core.services import api_token_create
    from tests.factories import ProjectFactory

    mine, theirs = TeamFactory(name="Mine"), TeamFactory(name="Theirs")
    their_project = ProjectFactory(team=theirs)
    user = make_user(Role.VIEWER)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="billing", codename="add_budget"))
    mine.members.add(user)
    _, secret = api_token_create(user=user, name="test", read_only=False)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    url = reverse("api:budget-list")
    refused = client.post(url, {"team": theirs.pk, "monthly_usd": "100"}, format="json")
    assert refused.status_code == 400 and "your own teams" in str(refused.data["team"])
    refused = client.post(url, {"project": their_project.pk, "monthly_usd": "100"}, format="json")
    assert refused.status_code == 400 and "your own teams" in str(refused.data["project"])
    created = client.post(url, {"team": mine.pk, "monthly_usd": "100"}, format="json")
    assert created.status_code == 201, created.content
    assert list(Budget.objects.values_list("team__name", flat=True)) == ["Mine"]

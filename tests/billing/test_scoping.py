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

"""Every page needs a login, every API endpoint a session or a token; roles decide who writes."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from rest_framework.test import APIClient

from core.choices import Role
from core.services import role_permissions
from tests.factories import NodeFactory

pytestmark = pytest.mark.django_db

PAGES = ["overview", "node-list", "token-list", "api-docs"]


@pytest.mark.parametrize("name", PAGES)
def test_pages_redirect_anonymous_users_to_login(client, name):
    url = reverse(name)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


def test_node_detail_needs_login(client):
    node = NodeFactory()
    assert client.get(reverse("node-detail", args=[node.pk])).status_code == 302


def test_htmx_request_without_session_gets_client_redirect(client):
    response = client.get(reverse("node-list"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith(reverse("login"))


@pytest.mark.parametrize("url", ["/api/v1/", "/api/v1/nodes/", "/api/schema/"])
def test_api_without_credentials_is_401_not_a_redirect(url):
    response = APIClient().get(url)
    assert response.status_code == 401


def test_login_and_logout(client, make_user):
    make_user("viewer", username="alice", password="correct horse battery")
    bad = client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    assert bad.status_code == 200 and "did not match" in bad.content.decode()
    good = client.post(reverse("login"), {"username": "alice", "password": "correct horse battery"})
    assert good.status_code == 302 and good["Location"] == reverse("overview")
    assert client.get(reverse("overview")).status_code == 200
    client.post(reverse("logout"))
    assert client.get(reverse("overview")).status_code == 302


def test_healthz_is_public_and_checks_the_database(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_session_auth_works_for_the_api_with_csrf(make_user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(make_user("operator"))
    assert client.get(reverse("api:node-list")).status_code == 200
    # A session write without the CSRF token is refused: a page cannot be tricked into writing.
    assert client.post(reverse("api:team-list"), {"name": "x", "slug": "x"}, format="json").status_code == 403


def test_roles_exist_with_expected_permissions():
    groups = {
        g.name: {f"{p.content_type.app_label}.{p.codename}" for p in g.permissions.all()}
        for g in Group.objects.prefetch_related("permissions__content_type")
    }
    assert set(groups) >= {r.value for r in Role}
    viewer, operator, admin = groups["viewer"], groups["operator"], groups["admin"]
    assert "fleet.view_node" in viewer and "fleet.change_node" not in viewer
    assert all(p.split(".")[1].startswith("view_") for p in viewer)
    assert {"fleet.add_node", "fleet.change_node", "fleet.delete_node"} <= operator
    assert "auth.change_user" not in operator and "auth.change_user" in admin
    assert viewer < operator < admin
    assert "core.view_apitoken" not in viewer  # tokens are per user, never listed to others


def test_role_permissions_cover_models_added_later():
    """The viewer role is derived from installed models, so every fleet model is readable by it."""
    from django.apps import apps

    viewer = {p.codename for p in role_permissions(Role.VIEWER)}
    for model in apps.get_app_config("fleet").get_models():
        assert f"view_{model._meta.model_name}" in viewer


def test_operator_writes_viewer_does_not(api_client):
    payload = {"name": "Vision", "slug": "vision"}
    assert api_client(Role.OPERATOR).post(reverse("api:team-list"), payload, format="json").status_code == 201
    assert api_client(Role.VIEWER).post(reverse("api:team-list"), payload, format="json").status_code == 403


def test_user_without_role_sees_nothing_in_the_api(api_client, django_user_model):
    from core.services import api_token_create

    user = django_user_model.objects.create_user("norole", password="x-long-password")
    _, secret = api_token_create(user=user, name="t")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get(reverse("api:node-list")).status_code == 403


def test_healthz_is_exempt_from_the_https_redirect(settings, client):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get(reverse("healthz")).status_code == 200
    response = client.get(reverse("overview"))
    assert response.status_code == 301 and response["Location"].startswith("https://")

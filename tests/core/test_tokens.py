"""API tokens: stored hashed, expiry, read-only, last-used, created from the UI and from manage.py."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import APIToken
from core.services import api_token_create, api_token_hash

pytestmark = pytest.mark.django_db


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_token_is_stored_hashed_only(make_user):
    token, secret = api_token_create(user=make_user("viewer"), name="grafana")
    row = APIToken.objects.get(pk=token.pk)
    assert secret.startswith("fdk_") and len(secret) > 40
    assert row.key_hash == api_token_hash(secret) != secret
    assert secret not in {
        str(v) for v in APIToken.objects.values_list(*[f.attname for f in APIToken._meta.fields]).get()
    }


def test_valid_token_authenticates_and_records_last_use(make_user):
    token, secret = api_token_create(user=make_user("viewer"), name="t")
    assert bearer(secret).get(reverse("api:node-list")).status_code == 200
    token.refresh_from_db()
    assert token.last_used is not None and timezone.now() - token.last_used < timedelta(seconds=30)


def test_token_keyword_also_accepted(make_user):
    _, secret = api_token_create(user=make_user("viewer"), name="t")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    assert client.get(reverse("api:node-list")).status_code == 200


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer a b", "Bearer fdk_unknown", "Bearer \u00e9\u00e9"],
)
def test_bad_authorization_headers_are_401(db, header):
    response = APIClient().get(reverse("api:node-list"), HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_expired_token_is_401_with_reason(make_user):
    _, secret = api_token_create(user=make_user("admin"), name="old", expires=timezone.now() - timedelta(minutes=1))
    response = bearer(secret).get(reverse("api:node-list"))
    assert response.status_code == 401
    assert "expired" in response.data["detail"]


def test_inactive_users_token_is_401(make_user):
    user = make_user("admin")
    _, secret = api_token_create(user=user, name="t")
    user.is_active = False
    user.save()
    assert bearer(secret).get(reverse("api:node-list")).status_code == 401


def test_create_token_command_prints_a_working_read_only_token(make_user):
    make_user("operator", username="ops")
    out = StringIO()
    call_command("create_token", "ops", "--name", "ci", stdout=out, stderr=StringIO())
    secret = out.getvalue().strip()
    token = APIToken.objects.get(key_hash=api_token_hash(secret))
    assert token.read_only and token.name == "ci"
    assert token.expires is not None and token.expires > timezone.now() + timedelta(days=89)
    client = bearer(secret)
    assert client.get(reverse("api:node-list")).status_code == 200
    assert client.post(reverse("api:team-list"), {"name": "x", "slug": "x"}, format="json").status_code == 403


def test_create_token_command_write_and_never_expiring(make_user):
    make_user("operator", username="ops")
    out = StringIO()
    call_command("create_token", "ops", "--write", "--expires-days", "0", stdout=out, stderr=StringIO())
    token = APIToken.objects.get(key_hash=api_token_hash(out.getvalue().strip()))
    assert not token.read_only and token.expires is None
    response = bearer(out.getvalue().strip()).post(reverse("api:team-list"), {"name": "x", "slug": "x"}, format="json")
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("args", "message"),
    [(["nobody"], "No user named"), (["ops", "--expires-days", "-1"], "--expires-days")],
)
def test_create_token_command_rejects_bad_input(make_user, args, message):
    make_user("viewer", username="ops")
    with pytest.raises(CommandError, match=message):
        call_command("create_token", *args, stdout=StringIO(), stderr=StringIO())


def test_token_page_creates_shows_once_and_revokes(client, make_user):
    user = make_user("viewer")
    client.force_login(user)
    response = client.post(reverse("token-list"), {"name": "laptop", "read_only": "on", "expires_in": "30"})
    assert response.status_code == 200
    secret = response.context["new_secret"]
    assert secret in response.content.decode()
    token = APIToken.objects.get(user=user)
    assert token.read_only and token.key_hash == api_token_hash(secret)
    assert (token.expires - timezone.now()).days in (29, 30)
    # Shown once: the list afterwards carries only the prefix.
    assert secret not in client.get(reverse("token-list")).content.decode()
    client.post(reverse("token-delete", args=[token.pk]))
    assert not APIToken.objects.filter(pk=token.pk).exists()
    assert bearer(secret).get(reverse("api:node-list")).status_code == 401


@pytest.mark.parametrize(
    "data", [{"name": "", "expires_in": "30"}, {"name": "   ", "expires_in": "30"}, {"name": "x", "expires_in": "7"}]
)
def test_token_page_rejects_bad_input(client, make_user, data):
    client.force_login(make_user("viewer"))
    response = client.post(reverse("token-list"), data)
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not APIToken.objects.exists()


def test_cannot_revoke_someone_elses_token(client, make_user):
    token, _ = api_token_create(user=make_user("admin"), name="theirs")
    client.force_login(make_user("admin"))
    assert client.post(reverse("token-delete", args=[token.pk])).status_code == 404
    assert APIToken.objects.filter(pk=token.pk).exists()

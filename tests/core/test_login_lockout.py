"""Failed logins are throttled: a user name is locked out from one client address after a few failures."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db.models import F
from django.urls import reverse
from rest_framework.test import APIClient

from core.services import api_token_create

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"
ATTACKER = "203.0.113.7"
COLLEAGUE = "198.51.100.20"


@pytest.fixture
def alice(make_user):
    return make_user("viewer", username="alice", password=PASSWORD)


def log_in(client, password, *, username="alice", address=ATTACKER, url=None):
    """POST the login form from ``address``."""
    return client.post(url or reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def guess(client, times, **kwargs):
    for n in range(times):
        log_in(client, f"wrong-{n}", **kwargs)


def is_logged_in(client) -> bool:
    return client.get(reverse("overview")).status_code == 200


def cool_off_passes():
    """Time travel without a clock library: move every recorded failure back by the cool-off period."""
    from axes.models import AccessAttempt

    AccessAttempt.objects.update(attempt_time=F("attempt_time") - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))


def test_forty_wrong_passwords_then_the_right_one_does_not_log_in(client, alice):
    guess(client, 40)
    response = log_in(client, PASSWORD)
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed logins" in page
    assert f"{settings.AXES_COOLOFF_TIME.total_seconds() / 60:.0f} minutes" in page
    assert "alice" in page
    assert not is_logged_in(client)


def test_failures_below_the_limit_still_allow_the_right_password(client, alice):
    guess(client, settings.AXES_FAILURE_LIMIT - 1)
    assert log_in(client, PASSWORD).status_code == 302
    assert is_logged_in(client)


def test_lockout_ends_after_the_cool_off(client, alice):
    guess(client, settings.AXES_FAILURE_LIMIT)
    assert log_in(client, PASSWORD).status_code == 429
    cool_off_passes()
    response = log_in(client, PASSWORD)
    assert response.status_code == 302 and response["Location"] == reverse("overview")
    assert is_logged_in(client)


def test_axes_reset_unlocks_at_once(client, alice):
    guess(client, settings.AXES_FAILURE_LIMIT)
    assert log_in(client, PASSWORD).status_code == 429
    call_command("axes_reset", verbosity=0)
    assert log_in(client, PASSWORD).status_code == 302


def test_failures_lock_one_user_from_one_address_only(client, alice, make_user):
    """An attacker's guesses from one address lock neither a colleague nor alice herself at her own desk."""
    make_user("viewer", username="bob", password=PASSWORD)
    guess(client, 40)
    assert log_in(client, PASSWORD).status_code == 429
    assert log_in(client, PASSWORD, username="bob", address=COLLEAGUE).status_code == 302
    client.logout()
    assert log_in(client, PASSWORD, address=COLLEAGUE).status_code == 302


def test_admin_login_is_throttled_too(client, make_user):
    make_user("admin", username="root", password=PASSWORD)
    url = reverse("admin:login")
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, f"wrong-{n}", username="root", url=url)
    assert log_in(client, PASSWORD, username="root", url=url).status_code == 429
    assert client.get(reverse("admin:index")).status_code == 302


def test_admins_see_the_lockout_in_the_admin(client, alice, make_user):
    guess(client, settings.AXES_FAILURE_LIMIT)
    admin = make_user("admin", username="ops")
    assert not admin.is_superuser  # the admin role, not a superuser, sees and clears lockouts
    client.force_login(admin)
    response = client.get(reverse("admin:axes_accessattempt_changelist"), {"locked_out": "yes"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "alice" in page and ATTACKER in page


def test_api_tokens_are_not_locked_with_the_password(client, alice):
    _, secret = api_token_create(user=alice, name="grafana", read_only=True)
    guess(client, 40)
    api = APIClient(REMOTE_ADDR=ATTACKER)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get(reverse("api:node-list")).status_code == 200


def test_the_api_takes_no_passwords(alice):
    """No password-based API authentication (HTTP Basic) exists to bypass the login throttle."""
    import base64

    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Basic {basic}")
    assert api.get(reverse("api:node-list")).status_code == 401

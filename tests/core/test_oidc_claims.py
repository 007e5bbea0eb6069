"""Single sign-on's claim mapping (groups to role and teams, user names), hostile claim values, the login page's
button and break-glass form, and django-axes with the OIDC backend in the chain."""

# ruff: noqa: F811 - the provider fixtures are imported from tests.oidc_provider and named as parameters

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.urls import reverse

from core.choices import Role
from core.oidc import SSORefused, claim_groups, one_line, role_for_groups, sanitise_username, username_from_claims
from fleet.oidc import team_slugs_for_groups
from tests.factories import TeamFactory
from tests.oidc_provider import BACKENDS, QUIET_PROVIDER, oidc_provider, sign_in, sso  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db, QUIET_PROVIDER]

PASSWORD = "correct horse battery"


@pytest.fixture
def mapping(settings):
    settings.OIDC_ADMIN_GROUPS = ["fleet-admins", "root-ops"]
    settings.OIDC_OPERATOR_GROUPS = ["fleet-operators"]
    settings.OIDC_VIEWER_GROUPS = ["fleet-viewers", "everyone"]
    settings.OIDC_DEFAULT_ROLE = ""
    settings.OIDC_GROUPS_CLAIM = "groups"
    settings.OIDC_TEAM_GROUP_PREFIX = "team:"
    settings.OIDC_USERNAME_CLAIM = "preferred_username"


@pytest.mark.parametrize(
    ("groups", "role"),
    [
        (["everyone"], Role.VIEWER),
        (["everyone", "fleet-operators"], Role.OPERATOR),
        (["fleet-viewers", "root-ops", "fleet-operators"], Role.ADMIN),
        (["Fleet-Admins"], None),  # group names are compared exactly
        (["team:ml"], None),
        ([], None),
    ],
)
def test_the_highest_role_a_group_gives_wins(mapping, groups, role):
    assert role_for_groups(groups) == role


def test_the_default_role_applies_only_when_no_group_matches(mapping, settings):
    settings.OIDC_DEFAULT_ROLE = "viewer"
    assert role_for_groups([]) == Role.VIEWER
    assert role_for_groups(["fleet-operators"]) == Role.OPERATOR


def test_the_groups_claim_name_is_configurable_and_its_absence_refused(mapping, settings):
    settings.OIDC_GROUPS_CLAIM = "roles"
    assert claim_groups({"roles": ["a", 7, None, "b"]}) == ["a", "b"]  # non-strings dropped
    assert claim_groups({"roles": "solo"}) == ["solo"]
    with pytest.raises(SSORefused, match="sent no “roles” claim"):
        claim_groups({"groups": ["fleet-admins"]})
    with pytest.raises(SSORefused, match="not a list of group names"):
        claim_groups({"roles": {"admin": True}})


def test_team_groups_map_to_slugs_and_an_empty_prefix_turns_them_off(mapping, settings):
    assert team_slugs_for_groups(["team:ml", "team:", "teams:x", "ml", "team:infra"]) == {"ml", "infra"}
    settings.OIDC_TEAM_GROUP_PREFIX = ""
    assert team_slugs_for_groups(["team:ml"]) == set()


@pytest.mark.parametrize(
    ("raw", "username"),
    [
        ("alice", "alice"),
        ("alice.smith@example.com", "alice.smith@example.com"),
        ("<script>alert(1)</script>", "script-alert-1-script"),
        ("root\nadmin", "root-admin"),
        ("Zoë Ω", "Zoë-Ω"),
        ("ｆｕｌｌｗｉｄｔｈ", "fullwidth"),  # NFKC
        ("../../etc", "etc"),
        ("a" * 200, "a" * 150),
        ("<>\r\n", ""),
    ],
)
def test_user_names_are_sanitised(raw, username):
    assert sanitise_username(raw) == username


def test_the_username_claim_is_configurable_with_the_email_as_fallback(mapping, settings):
    settings.OIDC_USERNAME_CLAIM = "upn"
    assert username_from_claims({"upn": "carol", "email": "c@example.com"}) == "carol"
    assert username_from_claims({"upn": "<>", "email": "c@example.com"}) == "c@example.com"
    with pytest.raises(SSORefused, match="neither a usable “upn” nor an “email” claim"):
        username_from_claims({"upn": 42})


def test_one_line_drops_control_characters():
    assert one_line("a\r\nb\tc\x00d\u2028e", 100) == "a b c d e"
    assert one_line(["not text"], 10) == ""
    assert one_line("x" * 20, 5) == "xxxxx"


# --- hostile claims through the real flow --------------------------------------------------------------------


def test_hostile_claims_neither_break_pages_nor_forge_log_lines(client, sso, caplog):
    TeamFactory(slug="ml")
    sso.set_user(
        "sub-\nevil",
        {
            "preferred_username": "<img src=x onerror=alert(1)>\nadmin",
            "given_name": "<b>Eve</b>\r\nINFO forged log line",
            "email": "not an e-mail <x@y>",
            "groups": ["fleet-viewers", "team:<script>", "team:ml\n"],
        },
    )
    with caplog.at_level(logging.INFO):
        response = sign_in(client, sso, "sub-\nevil")
    assert response["Location"] == reverse("overview")

    user = get_user_model().objects.get()
    assert user.username == "img-src-x-onerror-alert-1-admin"
    assert user.first_name == "<b>Eve</b> INFO forged log line" and user.email == ""
    assert not user.teams.exists()  # "team:ml\n" is not team ml
    page = client.get(reverse("overview")).content.decode()
    assert "<img src=x" not in page and "<b>Eve" not in page
    oidc_lines = [r.getMessage() for r in caplog.records if r.name in ("core.oidc", "fleet.oidc")]
    assert oidc_lines and all("\n" not in line and "\r" not in line for line in oidc_lines)
    assert "teams that do not exist: ['<script>', 'ml\\n']" in caplog.text


def test_a_hostile_refusal_message_is_escaped_on_the_login_page(client, sso, make_user):
    make_user("viewer", username="script-x-script")
    sso.set_user("sub-x", {"preferred_username": "<script>x</script>", "groups": ["fleet-viewers"]})
    response = sign_in(client, sso, "sub-x")
    assert "already exists" in str(next(iter(get_messages(response.wsgi_request))))
    page = client.get(reverse("login")).content.decode()
    assert "<script>x" not in page and "“script-x-script” already exists" in page


# --- the login page ------------------------------------------------------------------------------------------


def test_the_login_page_offers_single_sign_on_only_when_configured(client, settings):
    settings.OIDC_RP_CLIENT_ID = ""
    page = client.get(reverse("login")).content.decode()
    assert "Sign in with single sign-on" not in page and 'name="password"' in page
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/", {"code": "x", "state": "y"}).status_code == 404


def test_the_login_page_shows_the_button_and_the_break_glass_form(client, sso):
    page = client.get(reverse("login"), {"next": "/nodes/"}).content.decode()
    assert '<a id="sso-login" href="/oidc/authenticate/?next=/nodes/">' in page
    assert "Sign in with single sign-on" in page and "form-action" not in page
    assert 'name="password"' in page


def test_single_sign_on_honours_next(client, sso):
    sso.set_user("sub-alice", {"preferred_username": "alice", "groups": ["fleet-viewers"]})
    start = client.get("/oidc/authenticate/", {"next": "/nodes/"})
    back = requests.post(start["Location"], data={"sub": "sub-alice"}, allow_redirects=False, timeout=5)
    assert client.get(back.headers["Location"].removeprefix("http://testserver"))["Location"] == "/nodes/"


def test_local_login_is_kept_for_everyone_by_default(client, sso, make_user):
    make_user("viewer", username="vic", password=PASSWORD)
    assert client.post(reverse("login"), {"username": "vic", "password": PASSWORD}).status_code == 302


def test_local_login_off_keeps_it_for_break_glass_admins_only(client, sso, settings, make_user):
    settings.OIDC_LOCAL_LOGIN = False
    make_user("viewer", username="vic", password=PASSWORD)
    make_user("admin", username="root", password=PASSWORD)
    refused = client.post(reverse("login"), {"username": "vic", "password": PASSWORD})
    assert refused.status_code == 200
    assert "Password login is reserved for administrators here" in refused.content.decode()
    assert client.post(reverse("login"), {"username": "root", "password": PASSWORD}).status_code == 302


def test_local_login_off_keeps_it_for_a_superuser_in_no_role_group(client, sso, settings):
    settings.OIDC_LOCAL_LOGIN = False
    get_user_model().objects.create_superuser("breakglass", "bg@example.com", PASSWORD)  # createsuperuser's kind
    assert client.post(reverse("login"), {"username": "breakglass", "password": PASSWORD}).status_code == 302


def test_wrong_password_message_is_unchanged(client, sso, make_user):
    make_user("viewer", username="vic", password=PASSWORD)
    page = client.post(reverse("login"), {"username": "vic", "password": "nope"}).content.decode()
    assert "Your user name and password did not match" in page


# --- django-axes ---------------------------------------------------------------------------------------------


def test_axes_still_locks_password_guessing_with_the_oidc_backend_in_the_chain(client, sso, settings, make_user):
    assert settings.AUTHENTICATION_BACKENDS == BACKENDS
    make_user("viewer", username="vic", password=PASSWORD)
    for n in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "vic", "password": f"wrong-{n}"})
    assert client.post(reverse("login"), {"username": "vic", "password": PASSWORD}).status_code == 429


def test_refused_single_sign_ons_are_not_counted_as_password_failures(client, sso, settings):
    from axes.models import AccessAttempt, AccessFailureLog

    sso.set_user("sub-bob", {"preferred_username": "bob", "groups": []})
    for _ in range(settings.AXES_FAILURE_LIMIT + 2):
        assert "none of the groups" in str(next(iter(get_messages(sign_in(client, sso, "sub-bob").wsgi_request))))
    assert not AccessAttempt.objects.exists() and not AccessFailureLog.objects.exists()
    sso.set_user("sub-bob", {"preferred_username": "bob", "groups": ["fleet-viewers"]})
    assert sign_in(client, sso, "sub-bob")["Location"] == reverse("overview")


def test_a_successful_single_sign_on_is_logged_by_axes(client, sso):
    from axes.models import AccessLog

    sso.set_user("sub-bob", {"preferred_username": "bob", "groups": ["fleet-viewers"]})
    sign_in(client, sso, "sub-bob")
    assert list(AccessLog.objects.values_list("username", "path_info")) == [("bob", "/oidc/callback/")]


# --- settings --------------------------------------------------------------------------------------------------


def settings_with(env: dict[str, str]) -> subprocess.CompletedProcess:
    """Import config.settings in a fresh interpreter with ``env`` added (no OIDC variable inherited)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OIDC_")}
    code = "import config.settings as s; print(s.AUTHENTICATION_BACKENDS)"
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "DEBUG": "true", "FLEETDECK_ENV_FILE": "", **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_a_client_id_without_endpoints_stops_the_process_naming_them():
    result = settings_with({"OIDC_RP_CLIENT_ID": "fleetdeck", "OIDC_OP_TOKEN_ENDPOINT": "https://sso/token"})
    assert result.returncode != 0
    assert (
        "OIDC_RP_CLIENT_ID is set, so single sign-on needs OIDC_OP_AUTHORIZATION_ENDPOINT, OIDC_OP_USER_ENDPOINT, "
        "OIDC_OP_JWKS_ENDPOINT." in result.stderr
    )


def test_a_bad_default_role_stops_the_process():
    endpoints = {f"OIDC_OP_{n}_ENDPOINT": f"https://sso/{n}" for n in ("AUTHORIZATION", "TOKEN", "USER", "JWKS")}
    result = settings_with({"OIDC_RP_CLIENT_ID": "fleetdeck", **endpoints, "OIDC_DEFAULT_ROLE": "root"})
    assert result.returncode != 0 and "OIDC_DEFAULT_ROLE='root': use viewer, operator, admin" in result.stderr


def test_the_backend_joins_the_chain_only_when_configured():
    endpoints = {f"OIDC_OP_{n}_ENDPOINT": f"https://sso/{n}" for n in ("AUTHORIZATION", "TOKEN", "USER", "JWKS")}
    assert settings_with({}).stdout.strip() == str(BACKENDS[:1] + BACKENDS[2:])
    assert settings_with({"OIDC_RP_CLIENT_ID": "fleetdeck", **endpoints}).stdout.strip() == str(BACKENDS)

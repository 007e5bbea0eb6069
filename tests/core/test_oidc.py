"""Single sign-on through a real OIDC provider (oidc-provider-mock on localhost), the redirect flow driven by the
test client and the provider's own authorise form: users, roles and teams from the groups claim, and every
failure back on the login page with its reason."""

# ruff: noqa: F811 - the provider fixtures are imported from tests.oidc_provider and named as parameters

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.urls import reverse

from core.choices import Role
from core.models import OIDCIdentity
from tests.factories import TeamFactory
from tests.oidc_provider import (  # noqa: F401 - fixtures
    QUIET_PROVIDER,
    b64url,
    expired_provider_options,
    jwt_payload,
    oidc_provider,
    point_settings_at,
    provider_running,
    sign_in,
    sso,
    token_proxy,
)

pytestmark = [pytest.mark.django_db, QUIET_PROVIDER]

ALICE = {"preferred_username": "alice", "email": "alice@example.com", "given_name": "Alice", "groups": []}


def roles(user) -> set[str]:
    return set(user.groups.filter(name__in=Role.values).values_list("name", flat=True))


def failure(response) -> str:
    """The one message a failed callback leaves, after checking it lands on the login page."""
    assert response.status_code == 302 and response["Location"] == reverse("login")
    found = [str(m) for m in get_messages(response.wsgi_request)]
    assert len(found) == 1, found
    return found[0]


def test_first_login_creates_the_user_with_the_role_and_teams_its_groups_give(client, sso):
    ml, infra = TeamFactory(slug="ml"), TeamFactory(slug="infra")
    TeamFactory(slug="finance")
    sso.set_user("sub-alice", {**ALICE, "groups": ["fleet-operators", "team:ml", "team:infra", "unrelated"]})

    response = sign_in(client, sso, "sub-alice")

    assert response.status_code == 302 and response["Location"] == reverse("overview")
    alice = get_user_model().objects.get(username="alice")
    assert roles(alice) == {"operator"} and not alice.is_staff and not alice.is_superuser
    assert set(alice.teams.all()) == {ml, infra}
    assert (alice.email, alice.first_name) == ("alice@example.com", "Alice")
    assert not alice.has_usable_password()
    identity = OIDCIdentity.objects.get(user=alice)
    assert (identity.issuer, identity.subject) == (sso.config["issuer"], "sub-alice")
    overview = client.get(reverse("overview"))
    assert overview.status_code == 200 and '<span class="who">alice</span>' in overview.content.decode()


def test_role_and_teams_are_resynced_at_every_login(client, sso):
    TeamFactory(slug="ml")
    infra = TeamFactory(slug="infra")
    sso.set_user("sub-alice", {**ALICE, "groups": ["fleet-admins", "fleet-viewers", "team:ml"]})
    sign_in(client, sso, "sub-alice")
    alice = get_user_model().objects.get(username="alice")
    assert roles(alice) == {"admin"} and alice.is_staff  # the highest role wins

    client.logout()
    sso.set_user("sub-alice", {**ALICE, "email": "a@example.org", "groups": ["fleet-viewers", "team:infra"]})
    assert sign_in(client, sso, "sub-alice")["Location"] == reverse("overview")

    alice.refresh_from_db()
    assert roles(alice) == {"viewer"} and not alice.is_staff
    assert list(alice.teams.all()) == [infra]
    assert alice.email == "a@example.org"
    assert get_user_model().objects.count() == 1 and OIDCIdentity.objects.count() == 1


def test_a_user_in_no_role_group_is_refused_and_nothing_is_created(client, sso):
    sso.set_user("sub-bob", {"preferred_username": "bob", "groups": ["team:ml", "wiki-editors"]})
    message = failure(sign_in(client, sso, "sub-bob"))
    assert "none of the groups that give a Fleetdeck role" in message
    assert not get_user_model().objects.filter(username="bob").exists()
    assert client.get(reverse("overview")).status_code == 302


def test_the_default_role_lets_a_user_in_no_role_group_in(client, sso, settings):
    settings.OIDC_DEFAULT_ROLE = "viewer"
    sso.set_user("sub-bob", {"preferred_username": "bob", "groups": []})
    assert sign_in(client, sso, "sub-bob")["Location"] == reverse("overview")
    assert roles(get_user_model().objects.get(username="bob")) == {"viewer"}


def test_a_user_taken_out_of_every_group_loses_role_and_teams(client, sso):
    TeamFactory(slug="ml")
    sso.set_user("sub-alice", {**ALICE, "groups": ["fleet-operators", "team:ml"]})
    sign_in(client, sso, "sub-alice")
    client.logout()
    sso.set_user("sub-alice", {**ALICE, "groups": []})

    assert "none of the groups" in failure(sign_in(client, sso, "sub-alice"))

    alice = get_user_model().objects.get(username="alice")
    assert roles(alice) == set() and not alice.teams.exists() and not alice.is_staff


def test_unknown_team_slugs_are_logged_and_never_created(client, sso, caplog):
    from fleet.models import Team

    ml = TeamFactory(slug="ml")
    sso.set_user("sub-alice", {**ALICE, "groups": ["fleet-viewers", "team:ml", "team:ghost", "team:"]})
    with caplog.at_level("WARNING", logger="fleet.oidc"):
        sign_in(client, sso, "sub-alice")
    assert list(get_user_model().objects.get(username="alice").teams.all()) == [ml]
    assert list(Team.objects.values_list("slug", flat=True)) == ["ml"]
    assert "teams that do not exist: ['ghost']" in caplog.text


def test_a_local_user_with_the_same_name_is_not_taken_over(client, sso, make_user):
    root = make_user("admin", username="root", password="correct horse battery")
    sso.set_user("sub-mallory", {"preferred_username": "ROOT", "email": "root@example.com", "groups": ["fleet-admins"]})

    message = failure(sign_in(client, sso, "sub-mallory"))

    assert "account named “ROOT” already exists and is not linked to single sign-on" in message
    assert not OIDCIdentity.objects.exists() and get_user_model().objects.count() == 1
    root.refresh_from_db()
    assert root.has_usable_password() and root.email == "admin@example.com"
    assert client.get(reverse("overview")).status_code == 302


def test_the_email_names_the_user_when_there_is_no_preferred_username(client, sso):
    sso.set_user("sub-carol", {"email": "carol@example.com", "groups": ["fleet-viewers"]})
    sign_in(client, sso, "sub-carol")
    assert get_user_model().objects.filter(username="carol@example.com").exists()


def test_a_disabled_linked_user_is_refused(client, sso):
    sso.set_user("sub-alice", {**ALICE, "groups": ["fleet-viewers"]})
    sign_in(client, sso, "sub-alice")
    client.logout()
    get_user_model().objects.filter(username="alice").update(is_active=False)
    assert "disabled" in failure(sign_in(client, sso, "sub-alice"))


# --- bad input: each a clear message on the login page -----------------------------------------------------


def test_a_callback_with_a_wrong_state_is_refused(client, sso):
    sso.set_user("sub-alice", {**ALICE, "groups": ["fleet-admins"]})
    client.get("/oidc/authenticate/")  # this session has a state, but not this one
    message = failure(client.get("/oidc/callback/", {"code": "stolen", "state": "forged"}))
    assert "does not belong to a sign-in started in this browser" in message
    assert not get_user_model().objects.exists()


def test_a_callback_no_sign_in_started_is_refused(client, sso):
    message = failure(client.get("/oidc/callback/", {"code": "stolen", "state": "forged"}))
    assert "does not belong to a sign-in started in this browser" in message


def test_a_callback_replayed_after_use_is_refused(client, sso):
    sso.set_user("sub-alice", {**ALICE, "groups": ["fleet-viewers"]})
    start = client.get("/oidc/authenticate/")
    back = requests.post(start["Location"], data={"sub": "sub-alice"}, allow_redirects=False, timeout=5)
    callback = back.headers["Location"].removeprefix("http://testserver")
    assert client.get(callback)["Location"] == reverse("overview")
    client.logout()
    assert "does not belong" in failure(client.get(callback))


def test_the_provider_refusing_is_shown_with_its_reason(client, sso):
    """The provider's own Deny button sends error=access_denied back."""
    message = failure(sign_in(client, sso, "", action={"action": "deny"}))
    assert message.startswith("The identity provider did not sign you in (access_denied")


def issued_state(client) -> str:
    """Start a sign-in in ``client``'s session; the state the provider would send back."""
    location = client.get("/oidc/authenticate/")["Location"]
    return parse_qs(urlsplit(location).query)["state"][0]


def test_a_hostile_error_description_is_one_escaped_line(client, sso):
    response = client.get(
        "/oidc/callback/",
        {
            "error": "x\r\nSet-Cookie: a=b",
            "error_description": "<script>alert(1)</script>\nnext",
            "state": issued_state(client),
        },
    )
    assert failure(response) == (
        "The identity provider did not sign you in (x Set-Cookie: a=b: <script>alert(1)</script> next)."
    )
    page = client.get(reverse("login")).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page


def test_an_error_link_for_a_sign_in_never_started_neither_logs_out_nor_shows_its_text(client, sso, make_user):
    client.force_login(make_user("viewer", username="vic"))
    response = client.get("/oidc/callback/", {"error": "access_denied", "error_description": "Call +1 555 0100"})
    assert failure(response) == "The identity provider did not sign you in (access_denied)."
    assert "555" not in client.get(reverse("login")).content.decode()
    assert client.get(reverse("overview")).status_code == 200  # still logged in


def test_an_unknown_error_code_without_a_known_state_names_nothing_from_the_link(client, sso):
    response = client.get("/oidc/callback/", {"error": "Your account is suspended, call +1 555 0100"})
    assert "does not belong" in failure(response)


def test_a_callback_without_a_code_is_refused(client, sso):
    assert "no authorisation code" in failure(client.get("/oidc/callback/", {"state": "x"}))


def test_an_expired_id_token_is_refused(client, settings, monkeypatch):
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    with provider_running(**expired_provider_options()) as provider:
        point_settings_at(settings, provider)
        provider.set_user("sub-alice", {**ALICE, "groups": ["fleet-admins"]})
        message = failure(sign_in(client, provider, "sub-alice"))
    assert "sign-in token has expired" in message
    assert not get_user_model().objects.exists()


def test_a_tampered_id_token_is_refused(client, sso, settings):
    """Someone between here and the provider swaps the groups in a genuine token; its signature no longer fits."""

    def promote(token: str) -> str:
        header, _, signature = token.split(".")
        payload = {**jwt_payload(token), "groups": ["fleet-admins"]}
        return f"{header}.{b64url(json.dumps(payload).encode())}.{signature}"

    sso.set_user("sub-alice", {**ALICE, "groups": ["fleet-viewers"]})
    with token_proxy(settings.OIDC_OP_TOKEN_ENDPOINT, promote) as url:
        settings.OIDC_OP_TOKEN_ENDPOINT = url
        message = failure(sign_in(client, sso, "sub-alice"))
    assert "could not be verified (JWS token verification failed.)" in message
    assert not get_user_model().objects.exists()


def test_an_id_token_signed_with_a_key_not_in_the_jwks_is_refused(client, sso, settings):
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def forge(token: str) -> str:
        payload = {**jwt_payload(token), "groups": ["fleet-admins"]}
        return jwt.encode(payload, foreign, algorithm="RS256")

    sso.set_user("sub-alice", {**ALICE, "groups": ["fleet-viewers"]})
    with token_proxy(settings.OIDC_OP_TOKEN_ENDPOINT, forge) as url:
        settings.OIDC_OP_TOKEN_ENDPOINT = url
        message = failure(sign_in(client, sso, "sub-alice"))
    assert "could not be verified" in message
    assert not get_user_model().objects.exists()


def test_an_id_token_for_another_client_is_refused(client, sso, settings):
    """A genuine token, but issued to another application of the same provider (its audience is not us)."""
    sso.set_user("sub-alice", {**ALICE, "groups": ["fleet-admins"]})
    start = client.get("/oidc/authenticate/")
    other = start["Location"].replace("client_id=fleetdeck", "client_id=another-app")
    back = requests.post(other, data={"sub": "sub-alice"}, allow_redirects=False, timeout=5)

    def as_other(body: bytes) -> bytes:
        return body.replace(b"client_id=fleetdeck", b"client_id=another-app")

    with token_proxy(settings.OIDC_OP_TOKEN_ENDPOINT, request=as_other) as url:
        settings.OIDC_OP_TOKEN_ENDPOINT = url
        message = failure(client.get(back.headers["Location"].removeprefix("http://testserver")))
    assert "could not be verified (the ID token was issued to another client)" in message
    assert not get_user_model().objects.exists()


def test_a_missing_groups_claim_is_refused_naming_the_claim(client, sso):
    sso.set_user("sub-alice", {"preferred_username": "alice", "email": "alice@example.com"})
    message = failure(sign_in(client, sso, "sub-alice"))
    assert "sent no “groups” claim" in message
    assert not get_user_model().objects.exists()


def test_a_missing_username_claim_is_refused(client, sso):
    sso.set_user("sub-alice", {"given_name": "Alice", "groups": ["fleet-admins"]})
    message = failure(sign_in(client, sso, "sub-alice"))
    assert "neither a usable “preferred_username” nor an “email” claim" in message
    assert not get_user_model().objects.exists()


def test_an_unreachable_token_endpoint_is_a_clear_error(client, sso, settings):
    sso.set_user("sub-alice", {**ALICE, "groups": ["fleet-admins"]})
    settings.OIDC_OP_TOKEN_ENDPOINT = "http://127.0.0.1:9/token"  # the discard port: nothing listens
    message = failure(sign_in(client, sso, "sub-alice"))
    assert "could not get your sign-in from the identity provider" in message

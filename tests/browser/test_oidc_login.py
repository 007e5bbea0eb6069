"""Real Chromium signs in through a real OIDC provider on localhost (oidc-provider-mock): the login page's button,
the provider's authorise page, the redirect back, and the role and teams the groups give."""

# ruff: noqa: F811 - the provider fixtures are imported from tests.oidc_provider and named as parameters

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from core.models import OIDCIdentity
from tests.factories import TeamFactory
from tests.oidc_provider import QUIET_PROVIDER, oidc_provider, sso  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), QUIET_PROVIDER]


def sign_in_at_the_provider(page, live_server, sub: str) -> None:
    """From the login page, through the provider's authorise form, as ``sub``."""
    page.goto(f"{live_server.url}/login/")
    page.click("#sso-login")
    expect(page.locator("h1")).to_have_text("Authorize Client")  # the provider's page, on its own port
    page.fill("input[name=sub]", sub)
    page.click("button:has-text('Authorize')")


def test_chromium_signs_in_and_lands_with_the_role_and_teams_of_its_groups(page, live_server, sso):
    ml = TeamFactory(slug="ml", name="Machine learning")
    TeamFactory(slug="infra", name="Infrastructure")
    sso.set_user(
        "sub-alice",
        {"preferred_username": "alice", "email": "alice@example.com", "groups": ["fleet-viewers", "team:ml"]},
    )

    sign_in_at_the_provider(page, live_server, "sub-alice")

    expect(page.locator("h1")).to_have_text("Overview")
    assert page.url == f"{live_server.url}/"
    expect(page.locator(".who")).to_have_text("alice")
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)  # a viewer
    page.goto(f"{live_server.url}/spend/")
    expect(page.get_by_test_id("scope-note")).to_have_text("You see the spend of your teams only.")

    alice = get_user_model().objects.get(username="alice")
    assert list(alice.groups.values_list("name", flat=True)) == ["viewer"]
    assert list(alice.teams.all()) == [ml]
    assert OIDCIdentity.objects.get(user=alice).subject == "sub-alice"


def test_an_admin_group_lands_as_admin_and_next_is_kept(page, live_server, sso):
    sso.set_user("sub-root", {"preferred_username": "ops", "groups": ["fleet-admins"]})
    page.goto(f"{live_server.url}/nodes/")  # not logged in: the login page, with ?next=/nodes/
    page.click("#sso-login")
    page.fill("input[name=sub]", "sub-root")
    page.click("button:has-text('Authorize')")
    expect(page.locator("h1")).to_have_text("Nodes")
    expect(page.get_by_role("link", name="Admin")).to_be_visible()
    assert get_user_model().objects.get(username="ops").is_staff


def test_denying_at_the_provider_lands_on_the_login_page_with_the_reason(page, live_server, sso):
    page.goto(f"{live_server.url}/login/")
    page.click("#sso-login")
    page.click("button:has-text('Deny')")
    expect(page.locator("h1")).to_have_text("Log in")
    expect(page.locator(".banner.error")).to_contain_text("The identity provider did not sign you in (access_denied")
    assert not get_user_model().objects.exists()

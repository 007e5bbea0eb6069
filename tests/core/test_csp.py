"""Every response carries a Content-Security-Policy that allows only this site's own scripts and styles."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from billing.models import ReportSubscription
from core.services import api_token_create
from tests.factories import NodeFactory

pytestmark = pytest.mark.django_db

PAGES = [
    "overview",
    "node-list",
    "spend",
    "spend-idle-nodes",
    "scheduler",
    "report-list",
    "report-create",
    "token-list",
    "api-docs",
    "admin:index",
    "admin:axes_accessattempt_changelist",
]


def policy(response) -> dict[str, list[str]]:
    """The response's Content-Security-Policy as {directive: [sources]}; fails when the header is missing."""
    header = response.headers.get("Content-Security-Policy")
    assert header, f"{response.request['PATH_INFO']} has no Content-Security-Policy header"
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def assert_strict(directives: dict[str, list[str]], *, inline_styles: bool = False) -> None:
    """The site-wide policy: own origin only, no inline script, no plugins, never framed, forms post home."""
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == (["'self'", "'unsafe-inline'"] if inline_styles else ["'self'"])
    assert directives["img-src"] == ["'self'", "data:"]
    assert directives["object-src"] == ["'none'"]
    assert directives["base-uri"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["form-action"] == ["'self'"]


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("admin"))
    return client


@pytest.mark.parametrize("name", PAGES)
def test_every_page_sends_the_policy(admin_client, name):
    response = admin_client.get(reverse(name))
    assert response.status_code == 200
    assert_strict(policy(response))


def test_detail_pages_send_the_policy(admin_client):
    node = NodeFactory()
    for url in (reverse("node-detail", args=[node.pk]), reverse("node-charts", args=[node.pk])):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert_strict(policy(response))


def test_login_and_error_pages_send_the_policy(client):
    assert_strict(policy(client.get(reverse("login"))))
    assert_strict(policy(client.get("/no-such-page/")))
    assert_strict(policy(client.get(reverse("overview"))))  # the redirect to the login page


def test_htmx_partials_send_the_policy(admin_client):
    response = admin_client.get(reverse("overview"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert_strict(policy(response))


def test_report_preview_allows_the_emails_inline_styles_only(admin_client):
    """The preview shows the email's own HTML (inline styles, as mail clients need) in a srcdoc iframe, which
    inherits the page's policy: that page alone allows inline styles; scripts stay blocked there too."""
    subscription = ReportSubscription.objects.create(name="Weekly fleet", recipients=["a@example.com"])
    response = admin_client.get(reverse("report-preview", args=[subscription.pk]))
    assert response.status_code == 200
    assert "srcdoc=" in response.content.decode()
    assert_strict(policy(response), inline_styles=True)


def test_api_responses_send_the_policy(make_user):
    _, secret = api_token_create(user=make_user("viewer"), name="t", read_only=True)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = api.get(reverse("api:node-list"))
    assert response.status_code == 200
    assert_strict(policy(response))


def test_pages_set_no_inline_script_or_style():
    """The shell and the pages load scripts and styles from static files only (the policy would block inline ones);
    JSON data blocks are not scripts, and e-mail templates are not pages."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "templates"
    inline = re.compile(r'<script(?![^>]*(?:\ssrc=|type="application/json"))[^>]*>|<style\b|\sstyle=|\son[a-z]+=')
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.html")
        if "email" not in path.parts and not path.name.endswith("_email.html") and inline.search(path.read_text())
    ]
    assert offenders == []

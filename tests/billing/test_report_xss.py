"""Names are data, never markup: a team, node or subscription named like an HTML payload shows escaped in the
report preview page (its srcdoc iframe and its plain-text part) and in the HTML email, while the email's
plain-text part stays plain text."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from billing.models import ReportDelivery, ReportSubscription
from billing.reports.periods import report_period_last
from billing.tasks.reports import report_deliver
from core.choices import Role
from tests.billing.test_selectors import ledger_day, ledger_entry
from tests.factories import NodeFactory, SiteFactory, TeamFactory

pytestmark = pytest.mark.django_db
PAYLOADS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


class Markup(HTMLParser):
    """The elements of an HTML document that would run script, the srcdoc of its iframes, the text of <pre>."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []
        self.handlers: list[tuple[str, str]] = []
        self.srcdocs: list[str] = []
        self.pre: list[str] = []
        self._in: str | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.handlers += [(tag, name) for name, _ in attrs if name.startswith("on")]
        self.srcdocs += [value for name, value in attrs if tag == "iframe" and name == "srcdoc"]
        self._in = tag if tag in ("script", "pre") else None
        if tag == "script":
            self.scripts.append("")

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "script":
            self.scripts[-1] += data
        elif self._in == "pre":
            self.pre.append(data)


def assert_inert(html: str) -> Markup:
    """No payload element or handler in ``html``: only the page's own scripts, none running alert()."""
    markup = Markup(html)
    assert not [s for s in markup.scripts if "alert" in s], markup.scripts
    assert markup.handlers == []
    for payload in PAYLOADS:
        assert payload not in html
    return markup


def named(payload: str) -> ReportSubscription:
    """A team subscription whose team, node and subscription are all named ``payload``, with spend last week."""
    team = TeamFactory(name=payload)
    node = NodeFactory(site=SiteFactory(), team=team, name=payload)
    subscription = ReportSubscription.objects.create(name=payload, recipients=["finance@example.com"], team=team)
    start, _ = report_period_last(period=subscription.period, now=timezone.now())
    ledger_day(day=start, site=node.site, team=team, compute="120", idle="20")
    ledger_entry(node=node, hour=datetime.combine(start, datetime.min.time(), tzinfo=UTC), compute="5", idle="3")
    return subscription


@pytest.mark.parametrize("payload", PAYLOADS)
def test_preview_shows_hostile_names_escaped(client, make_user, payload):
    client.force_login(make_user(Role.VIEWER))
    subscription = named(payload)
    response = client.get(reverse("report-preview", args=[subscription.pk]))
    assert response.status_code == 200
    page = assert_inert(response.content.decode())
    # The whole email stays inside the srcdoc attribute (nothing breaks out into the page) and, decoded as the
    # browser does, is HTML in which the names are still escaped.
    [srcdoc] = page.srcdocs
    assert srcdoc.rstrip().endswith("</html>")
    assert_inert(srcdoc)
    assert srcdoc.count(payload.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")) >= 2
    # The plain-text part is shown as text: the browser displays the name exactly as written.
    assert payload in "".join(page.pre)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_html_email_escapes_hostile_names_and_text_part_stays_plain(payload):
    subscription = named(payload)
    start, end = report_period_last(period=subscription.period, now=timezone.now())
    delivery = ReportDelivery.objects.create(subscription=subscription, period_start=start, period_end=end)
    report_deliver(delivery.pk)
    [message] = mail.outbox
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    assert_inert(html)
    assert "&lt;" in html
    assert payload in message.body and "&lt;" not in message.body  # plain text is not HTML-escaped

"""Under the Content-Security-Policy, real Chromium reports no violation on any page, HTMX still works, and a
script a hostile name smuggles into the report preview does not run."""

import pytest
from playwright.sync_api import expect

from billing.models import ReportSubscription
from devtools.demo.fleet import demo_fleet_seed
from fleet.models import Team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"  # noqa: S105 - a test user's
# Every securitypolicyviolation event of the page, kept where the test can read it after navigations.
RECORD_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  const seen = JSON.parse(sessionStorage.getItem("csp") || "[]");
  seen.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
  sessionStorage.setItem("csp", JSON.stringify(seen));
});
"""


@pytest.fixture
def admin_page(page, live_server, make_user):
    demo_fleet_seed(nodes=20, seed=3)
    make_user("admin", username="root", password=PASSWORD)
    messages = []
    page.on("console", lambda m: messages.append(m.text) if "Content Security Policy" in m.text else None)
    page.add_init_script(RECORD_VIOLATIONS)
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")
    page.csp_console = messages
    return page


def violations(page) -> list[str]:
    return page.evaluate("JSON.parse(sessionStorage.getItem('csp') || '[]')") + page.csp_console


@pytest.mark.parametrize(
    "path",
    ["/", "/nodes/", "/spend/", "/scheduler/", "/reports/", "/tokens/", "/api/docs/", "/admin/", "/admin/fleet/node/"],
)
def test_pages_load_without_a_policy_violation(admin_page, live_server, path):
    admin_page.goto(f"{live_server.url}{path}")
    admin_page.wait_for_load_state("networkidle")
    assert violations(admin_page) == []


def test_api_docs_render_under_the_policy(admin_page, live_server):
    admin_page.goto(f"{live_server.url}/api/docs/")
    # Swagger UI builds the operation list with script: it is there only if its script ran. It first fetches
    # /api/schema/, generated per request: seconds on a busy two-core machine, hence the longer wait.
    expect(admin_page.locator(".opblock").first).to_be_visible(timeout=30_000)
    assert violations(admin_page) == []


def test_htmx_swaps_work_under_the_policy(admin_page, live_server):
    admin_page.goto(f"{live_server.url}/nodes/")
    admin_page.select_option("select[name=provider]", "onprem")
    expect(admin_page).to_have_url(f"{live_server.url}/nodes/?provider=onprem")
    assert violations(admin_page) == []


def test_a_script_in_a_team_name_never_runs_in_the_report_preview(admin_page, live_server):
    team = Team.objects.create(name="<script>window.__pwned = 1</script>", slug="pwned")
    subscription = ReportSubscription.objects.create(
        name="<img src=x onerror=window.__pwned=2>", team=team, recipients=["finance@example.com"]
    )
    admin_page.goto(f"{live_server.url}/reports/{subscription.pk}/preview/")
    admin_page.wait_for_load_state("networkidle")
    expect(admin_page.get_by_text("<script>window.__pwned = 1</script>").first).to_be_attached()
    assert admin_page.evaluate("window.__pwned") is None
    for frame in admin_page.frames:
        assert frame.evaluate("window.__pwned") is None

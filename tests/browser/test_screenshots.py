"""Every page of a small demo fleet in real Chromium, at desktop (1280x800) and phone (390x844) width, light and
dark: each visit checks the layout (main heading visible, no sideways scrolling of the page, charts within the
screen, a dark background and charts that follow it in dark mode) and saves a full-page PNG.

The PNGs go to $FLEETDECK_SCREENSHOTS_DIR (default artifacts/screenshots/ in the repo); docs/screenshots.md says
how they are named.
"""

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from billing.models import ReportSubscription
from core.choices import HeartbeatComponent
from core.services import api_token_create, heartbeat_record
from devtools.demo.fleet import demo_fleet_seed
from devtools.demo.seed import demo_history_billing_and_scheduler_seed
from fleet.models import GPU, Node
from fleet.telemetry.storage import Sample, samples_ingest
from scheduler import runs
from scheduler.models import Job, PlaceRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"  # noqa: S105 - a test user's
VIEWPORTS = {"1280": {"width": 1280, "height": 800}, "390": {"width": 390, "height": 844}}
PHONE = "390"

# What the page reports about its layout: overflow, the body's colours, where the charts are and their colours.
LAYOUT = """() => {
  const body = getComputedStyle(document.body);
  const charts = Array.from(document.querySelectorAll("canvas.chart")).map((c) => {
    const chart = window.Chart && Chart.getChart(c);
    return { right: c.getBoundingClientRect().right,
             tick: chart ? String(chart.scales.x.options.ticks.color) : null };
  });
  return { scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
           background: body.backgroundColor, color: body.color, charts: charts,
           chartText: getComputedStyle(document.documentElement).getPropertyValue("--chart-text").trim() };
}"""


@dataclass(frozen=True)
class Fleet:
    node: Node
    job: Job
    run: PlaceRun
    report: ReportSubscription


def gpu_readings(*, at: datetime, minutes: range) -> list[Sample]:
    """Readings of the running GPUs every ``minutes`` before ``at`` (every fourth GPU idle at 2 %), as the demo's
    simulated agents send them."""
    samples = []
    for gpu in GPU.objects.filter(node__state="running").order_by("pk"):
        for minute in minutes:
            util = 2.0 if gpu.pk % 4 == 0 else 30.0 + (gpu.pk * 7 + minute // 15) % 65
            power = (gpu.power_limit_w or 400) * (0.12 + 0.85 * util / 100)
            samples.append(
                Sample(gpu.pk, at - timedelta(minutes=minute), util, gpu.memory_mib / 2, power, 55.0, 1400.0)
            )
    return samples


def fleet_keep_alive() -> None:
    """What a running deployment does all the time: agents report and the background processes beat. Done before
    each page, so a slow run never shows GPUs gone offline or the stale-processes banner."""
    samples_ingest(samples=gpu_readings(at=timezone.now(), minutes=range(1)))
    heartbeat_record(component=HeartbeatComponent.BEAT, hostname="fleetdeck-1")
    for queue in settings.FLEETDECK_QUEUES:
        heartbeat_record(component=HeartbeatComponent.WORKER, name=queue, hostname="fleetdeck-1")


@pytest.fixture
def fleet(make_user) -> Fleet:
    """The demo seed with a dozen nodes: 30 days of telemetry and ledger, prices, budgets, the weekly report, the
    demo jobs placed by a finished placement run, a day of live readings, running background processes and an API
    token."""
    demo_fleet_seed(nodes=12, seed=5)
    demo_history_billing_and_scheduler_seed(log=lambda _: None)
    samples_ingest(samples=gpu_readings(at=timezone.now(), minutes=range(15, 24 * 60, 15)))
    user = make_user("admin", username="ada", password=PASSWORD)
    api_token_create(user=user, name="grafana-readonly", read_only=True)
    run = runs.place_run_create(user=user)
    runs.place_run_execute(run.pk)
    run.refresh_from_db()
    node = Node.objects.filter(state="running", gpus__isnull=False).order_by("name").first()
    placed = Job.objects.filter(placements__isnull=False).order_by("-gpu_count", "name")
    job = placed.filter(datasets__isnull=False).first() or placed.first() or Job.objects.order_by("name").first()
    return Fleet(node=node, job=job, run=run, report=ReportSubscription.objects.get())


def pages(fleet: Fleet) -> list[tuple[str, str, str, str]]:
    """(file name, path, heading selector, heading text) of every page; the login page comes signed out."""
    return [
        ("overview", "/", "main h1", "Overview"),
        ("nodes", "/nodes/", "main h1", "Nodes"),
        ("node-detail", f"/nodes/{fleet.node.pk}/", "main h1", fleet.node.name),
        ("spend", "/spend/", "main h1", "Spend"),
        ("buy-vs-rent", "/buy-vs-rent/", "main h1", "Buy vs rent"),
        ("reports", "/reports/", "main h1", "Reports"),
        ("report-preview", f"/reports/{fleet.report.pk}/preview/", "main h1", f"Preview: {fleet.report.name}"),
        ("scheduler", "/scheduler/", "main h1", "Scheduler"),
        ("job-detail", f"/scheduler/jobs/{fleet.job.pk}/", "main h1", fleet.job.name),
        ("place-run", f"/scheduler/place-runs/{fleet.run.pk}/", "main h1", f"Placement run #{fleet.run.pk}"),
        ("changes", "/changes/", "main h1", "Changes"),
        ("tokens", "/tokens/", "main h1", "API tokens"),
        ("api-docs", "/api/docs/", ".info h1.title", "Fleetdeck API"),  # Swagger UI's own page and styles
        ("login", "/login/", "main h1", "Log in"),
    ]


def screenshots_dir() -> Path:
    path = Path(os.environ.get("FLEETDECK_SCREENSHOTS_DIR") or ROOT / "artifacts" / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def luminance(colour: str) -> float:
    """Relative luminance (WCAG) of a CSS colour as getComputedStyle or Chart.js gives it: rgb()/rgba() or #rrggbb."""
    if colour.startswith("#") and len(colour) == 7:
        channels = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    else:
        channels = [int(float(v)) for v in re.findall(r"[\d.]+", colour)[:3]]
    assert len(channels) == 3, f"not a colour: {colour!r}"
    linear = [(c / 255) / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def layout_problems(page, *, name: str, width: str, scheme: str) -> list[str]:
    """What is wrong with the page's layout, as sentences naming the page (empty when nothing)."""
    where, found, problems = f"{name} at {width} px {scheme}", page.evaluate(LAYOUT), []
    if width == PHONE and found["scrollWidth"] > found["innerWidth"] + 1:
        problems.append(f"{where}: the page scrolls sideways ({found['scrollWidth']} px wide in {found['innerWidth']})")
    for i, chart in enumerate(found["charts"]):
        if chart["right"] > found["innerWidth"] + 1:
            problems.append(f"{where}: chart {i} ends at {chart['right']:.0f} px, off the screen")
        if chart["tick"] is None:
            problems.append(f"{where}: chart {i} was not drawn")
        elif chart["tick"] != found["chartText"]:
            problems.append(f"{where}: chart {i} ticks are {chart['tick']}, not the page's {found['chartText']}")
    if name == "api-docs":
        return problems  # Swagger UI keeps its own light colours
    background, text = luminance(found["background"]), luminance(found["color"])
    if scheme == "dark" and not (background < 0.05 and text > 0.5):
        problems.append(f"{where}: not dark (background {found['background']}, text {found['color']})")
    if scheme == "light" and not (background > 0.8 and text < 0.1):
        problems.append(f"{where}: not light (background {found['background']}, text {found['color']})")
    return problems


def log_in(page, live_server) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("main h1")).to_have_text("Overview")


def visit_every_page(context, live_server, fleet: Fleet, *, width: str, scheme: str, out: Path) -> list[str]:
    """Log in, then open every page in one browser context: check it and save its full-page PNG."""
    problems = []
    page = context.new_page()
    page.set_default_timeout(15_000)
    log_in(page, live_server)
    for name, path, heading_selector, heading in pages(fleet):
        if name == "login":
            context.clear_cookies()
        fleet_keep_alive()
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        heading_el = page.locator(heading_selector).first
        try:
            expect(heading_el).to_be_visible()
            expect(heading_el).to_contain_text(heading)
        except AssertionError as exc:
            problems.append(f"{name} at {width} px {scheme}: main heading: {str(exc).splitlines()[0]}")
        problems += layout_problems(page, name=name, width=width, scheme=scheme)
        page.screenshot(path=str(out / f"{name}-{width}-{scheme}.png"), full_page=True)
    return problems


def test_every_page_lays_out_at_desktop_and_phone_width_light_and_dark(chromium, live_server, fleet):
    """One seed, four passes over every page (1280 and 390 px, light and dark); every problem of every page is
    listed at the end, so one broken page does not hide another."""
    out, problems = screenshots_dir(), []
    for width, viewport in VIEWPORTS.items():
        for scheme in ("light", "dark"):
            context = chromium.new_context(viewport=viewport, color_scheme=scheme)
            try:
                problems += visit_every_page(context, live_server, fleet, width=width, scheme=scheme, out=out)
            finally:
                context.close()
    assert problems == [], "\n".join(problems)
    assert len(list(out.glob("*-390-dark.png"))) == len(pages(fleet))


def test_the_phone_menu_reads_without_javascript(chromium, live_server, make_user):
    """With JavaScript off, at phone width, every link of the top bar is on screen: the bar wraps, no script is
    needed to reach a link."""
    make_user("admin", username="ada", password=PASSWORD)
    context = chromium.new_context(viewport=VIEWPORTS[PHONE], java_script_enabled=False)
    try:
        page = context.new_page()
        log_in(page, live_server)
        links = page.locator("header.topbar a, header.topbar button")
        expect(links).to_have_count(12)  # the brand, 8 main links (Changes for an admin), API tokens, Admin, Log out
        for i in range(links.count()):
            box = links.nth(i).bounding_box()
            assert box is not None
            assert box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORTS[PHONE]["width"] + 1, links.nth(i).inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORTS[PHONE]["width"] + 1
    finally:
        context.close()

"""Submit a job in real Chromium, see it placed with its cost breakdown, and price another with the what-if form."""

import pytest
from playwright.sync_api import expect

from config.celery import app as celery_app
from scheduler.models import Job
from tests.scheduler.conftest import scenario  # noqa: F401 - the hand-checked fleet, prices and dataset

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def eager():
    """The placement run queued on submission runs in the server's request thread, as a worker would run it."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


@pytest.fixture
def operator(make_user):
    make_user("operator", username="grace", password="correct horse battery")


def log_in(page, live_server):
    page.goto(f"{live_server.url}/scheduler/")
    page.fill("#id_username", "grace")
    page.fill("#id_password", "correct horse battery")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Scheduler")


def test_submit_a_job_and_see_its_placement(page, live_server, scenario, operator, eager, artifacts):  # noqa: F811
    log_in(page, live_server)
    form = page.get_by_test_id("job-form")
    form.locator("#id_job-name").fill("train-7b")
    form.locator("#id_job-team").select_option(label="Research")
    form.locator("#id_job-project").select_option(label="research/llm")
    form.locator("#id_job-gpu_count").fill("8")
    form.locator("#id_job-gpu_model").select_option("H100")
    form.locator("#id_job-expected_hours").fill("10")
    form.locator("#id_job-datasets").select_option(label="corpus-2tb")
    form.locator("button[type=submit]").click()

    expect(page.locator("h1")).to_contain_text("train-7b")
    expect(page.get_by_test_id("job-state")).to_have_text("Placed")
    expect(page.get_by_test_id("placement-target")).to_contain_text("dc-1")
    expect(page.get_by_test_id("placement-compute")).to_have_text("$97.80")
    expect(page.get_by_test_id("placement-egress")).to_have_text("$180.00")
    expect(page.get_by_test_id("placement-total")).to_have_text("$277.80")
    rows = page.get_by_test_id("alternatives-table").locator("tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.nth(1)).to_contain_text("us-east-1")
    expect(rows.nth(1)).to_contain_text("550.40")
    page.screenshot(path=str(artifacts / "scheduler-job.png"), full_page=True)
    assert Job.objects.get(name="train-7b").state == "placed"

    # Back on the queue: the job is listed as placed; the what-if form prices a 1-GPU job without a reload.
    page.click("nav >> text=Scheduler")
    expect(page.get_by_test_id("placed-table")).to_contain_text("train-7b")
    what_if = page.get_by_test_id("what-if-form")
    what_if.locator("#id_whatif-gpu_count").fill("8")
    what_if.locator("#id_whatif-gpu_model").select_option("H100")
    what_if.locator("#id_whatif-expected_hours").fill("10")
    what_if.locator("#id_whatif-datasets").select_option(label="corpus-2tb")
    what_if.locator("button[type=submit]").click()
    result = page.get_by_test_id("what-if-result")
    # dc-1's GPUs are taken by train-7b now, so AWS us-east-1 (no data movement) is the cheapest.
    expect(result.locator("tbody tr").first).to_contain_text("us-east-1")
    expect(result.locator("tbody tr").first).to_contain_text("550.40")
    expect(page.locator("h1")).to_have_count(1)
    page.screenshot(path=str(artifacts / "scheduler-what-if.png"), full_page=True)
    assert Job.objects.count() == 1


def test_place_now_shows_the_run_and_refreshes_the_queue(page, live_server, scenario, operator, eager, artifacts):  # noqa: F811
    job = scenario.job(name="waiting-job")
    log_in(page, live_server)
    expect(page.get_by_test_id("pending-table")).to_contain_text("waiting-job")
    page.get_by_test_id("place-now").click()
    run = page.get_by_test_id("place-run")
    expect(run).to_have_attribute("data-status", "done")
    expect(run).to_contain_text("Placed 1 job(s); 0 still pending.")
    # The run's HX-Trigger refreshed the queue in place: the job moved to the placed table without a reload.
    expect(page.get_by_test_id("placed-table")).to_contain_text("waiting-job")
    expect(page.get_by_test_id("pending-table")).not_to_contain_text("waiting-job")
    page.screenshot(path=str(artifacts / "scheduler-place-now.png"), full_page=True)
    assert Job.objects.get(pk=job.pk).state == "placed"

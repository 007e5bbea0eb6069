"""Names are one line of text: every user-settable name field rejects control characters (Unicode Cc: CR, LF,
tab, NUL, DEL, C1) and the line and paragraph separators, in the model (so forms, the admin and the API too)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models

from core.choices import Role
from core.validators import one_line, validate_one_line

BAD = ["Ops\r\nBcc: x@example.com", "tab\there", "lf\n", "nul\x00", "del\x7f", "c1\x85", "ls\u2028", "ps\u2029"]
GOOD = ["Research", "Équipe ML — 2", "<script>alert(1)</script>", "=SUM(1)", "a b"]
NAME_FIELDS = [
    ("fleet", "Team", "name"),
    ("fleet", "Project", "name"),
    ("fleet", "Node", "name"),
    ("billing", "ReportSubscription", "name"),
    ("scheduler", "Dataset", "name"),
    ("scheduler", "Job", "name"),
    ("core", "APIToken", "name"),
    ("fleet", "PromQLSource", "name"),
    ("fleet", "TelemetrySourceHealth", "name"),  # written by workers, but a sender's user name lands there
    ("billing", "Commitment", "name"),
    ("fleet", "GpuSlice", "name"),  # written by slice sync from dcgm labels a node reports
]
# Names that no person types (a worker's queue name), or that a stricter slug validator already limits.
EXEMPT = {("core", "Heartbeat", "name"), ("fleet", "Provider", "name"), ("fleet", "Site", "name")}


@pytest.mark.parametrize("value", BAD)
def test_validator_rejects_control_characters(value):
    with pytest.raises(ValidationError):
        validate_one_line(value)


@pytest.mark.parametrize("value", GOOD)
def test_validator_accepts_one_line_of_text(value):
    validate_one_line(value)


@pytest.mark.parametrize(("app", "model", "field"), NAME_FIELDS)
@pytest.mark.parametrize("value", BAD)
def test_every_name_field_rejects_control_characters(app, model, field, value):
    with pytest.raises(ValidationError):
        apps.get_model(app, model)._meta.get_field(field).run_validators(value)


def test_no_name_field_is_left_out():
    found = {
        (m._meta.app_label, m.__name__, f.name)
        for app in ("core", "fleet", "billing", "scheduler")
        for m in apps.get_app_config(app).get_models()
        for f in m._meta.get_fields()
        if isinstance(f, models.CharField) and (f.name == "name" or f.name.endswith("_name")) and f.editable
    }
    assert found - EXEMPT == set(NAME_FIELDS)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/v1/teams/", {"name": "Ops\r\nBcc: x@example.com", "slug": "ops"}),
        ("/api/v1/report-subscriptions/", {"name": "Weekly\u2028x", "recipients": ["f@example.com"]}),
    ],
)
def test_api_refuses_a_name_with_control_characters(api_client, url, body):
    response = api_client(Role.ADMIN).post(url, body, format="json")
    assert response.status_code == 400, response.content
    assert "name" in response.json()


def test_one_line_collapses_control_characters_to_single_spaces():
    assert one_line("Ops\r\nBcc: x@example.com\u2028y\tz") == "Ops Bcc: x@example.com y z"
    assert one_line("Research") == "Research"

"""The OpenAPI schema is valid and documents bearer-token auth; the docs page is served offline."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parent.parent


def test_spectacular_validate_passes_without_warnings():
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_schema_lists_resources_and_bearer_auth(admin_api):
    response = admin_api.get(reverse("api-schema"), {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    scheme = schema["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path in (
        "/api/v1/nodes/",
        "/api/v1/gpus/",
        "/api/v1/providers/",
        "/api/v1/sites/",
        "/api/v1/teams/",
        "/api/v1/projects/",
    ):
        assert path in schema["paths"]


@pytest.mark.django_db
def test_docs_page_loads_its_assets_locally(client, make_user):
    client.force_login(make_user("viewer"))
    html = client.get(reverse("api-docs")).content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower()

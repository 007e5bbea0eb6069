"""Schema-driven fuzzing: every operation in the OpenAPI schema, fed generated (valid and invalid) input
through the real WSGI app and database, answers 2xx/4xx and never a server error."""

import json

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings

from core.services import api_token_create
from fleet.demo import demo_fleet_seed

MAX_EXAMPLES_PER_OPERATION = 25


def _openapi() -> dict:
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated))


schema = schemathesis.openapi.from_dict(_openapi())
schema.app = get_wsgi_application()


@pytest.fixture
def fuzz_headers(make_user):
    # Every rejected write below is then a validation answer, not a permission one.
    demo_fleet_seed(nodes=15, seed=5)
    _, secret = api_token_create(user=make_user("admin"), name="fuzz", read_only=False)
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure here is reproducible, never flaky
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_operation_answers_with_a_server_error(case, fuzz_headers):
    response = case.call(headers=fuzz_headers)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} → {response.status_code}\n"
        f"query={case.query} body={case.body!r}\n{response.text[:2000]}"
    )

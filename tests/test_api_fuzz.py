"""Schema-driven fuzzing: every operation in the OpenAPI schema, fed generated (valid and invalid) input
through the real WSGI app and database, answers 2xx/4xx and never a server error; and the hostile shapes that
generated input rarely hits (lone surrogates, deep nesting, extreme dates, non-ASCII or fractional ids), sent to
every operation, are refused as a 4xx."""

import functools
import json

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings

from core.services import api_token_create
from devtools.demo.fleet import demo_fleet_seed

MAX_EXAMPLES_PER_OPERATION = 25


@functools.cache
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


# --- hostile shapes, each sent to every operation ----------------------------------------------------------------
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
LONE_SURROGATE = "\ud800"
# Path ids int() reads as 123 or 1: each must match no route.
HOSTILE_PATH_IDS = ("\u0661\u0662\u0663", "%D9%A1%D9%A2%D9%A3", "1.5", "+1", "1e0")
# Query values, percent-encoded as sent: a UTF-8-encoded surrogate, extreme dates, Arabic-Indic digits, a fraction.
HOSTILE_QUERY_VALUES = ("%ED%A0%80", "0001-01-01", "9999-12-31T23:59:59Z", "%D9%A1%D9%A2%D9%A3", "1.5")


def _operations():
    """(path template, method, operation) for every operation of the schema."""
    for path, item in _openapi()["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def _object_id(path: str) -> int | None:
    """The id of an existing row of the model behind ``path`` (a template with ``{id}``), or None."""
    view = resolve(path.replace("{id}", "1")).func
    return view.cls.queryset.model.objects.order_by("pk").values_list("pk", flat=True).first()


def _hostile_bodies(operation) -> list[str]:
    """JSON texts, byte for byte: every string property of the body set to a lone surrogate, a surrogate as a
    key, and documents nested past the parser's limit (as a property and alone)."""
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in body:
        body = _openapi()["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    names = list(body.get("properties", {})) or ["x"]
    deep = "[" * 1000 + "]" * 1000
    return [
        json.dumps(dict.fromkeys(names, LONE_SURROGATE)),  # ensure_ascii: the text carries the escape \ud800
        json.dumps({LONE_SURROGATE: 1}),
        "{" + ", ".join(f"{json.dumps(name)}: {deep}" for name in names) + "}",
        "[" * 100_000 + "]" * 100_000,
    ]


@pytest.fixture
def hostile_api(fuzz_headers):
    """A Django test client authenticated as the fuzz test's admin, over the demo's prices, budgets, reports and
    jobs as well as its fleet and a PromQL source, so that every detail operation has a row to address."""
    from rest_framework.test import APIClient

    from billing.models import Discount
    from devtools.demo.billing import demo_budgets_seed, demo_prices_seed, demo_reports_seed
    from devtools.demo.scheduler import demo_scheduler_seed
    from fleet.models import PromQLSource, Provider, Site, Team
    from scheduler.models import TeamQuota
    from scheduler.placements import jobs_place

    demo_prices_seed()
    demo_budgets_seed()
    demo_reports_seed()
    demo_scheduler_seed()
    jobs_place()  # placements and their planned egress records
    TeamQuota.objects.create(team=Team.objects.order_by("pk").first(), gpu_model="H100")  # after placing: no cap
    Discount.objects.create(provider=Provider.objects.order_by("pk").first(), percent=10, effective_from="2024-01-01")
    PromQLSource.objects.create(name="thanos", site=Site.objects.order_by("pk").first(), url="http://127.0.0.1:9/")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=fuzz_headers["Authorization"])
    return client


@pytest.mark.django_db
def test_hostile_bodies_are_400_on_every_operation_that_takes_one(hostile_api):
    failures, sent = [], set()
    for path, method, operation in _operations():
        if "requestBody" not in operation:
            continue
        pk = _object_id(path) if "{id}" in path else 0
        if pk is None:
            continue  # no row to address: nothing would read the body
        url = path.replace("{id}", str(pk))
        sent.add((method, path))
        for text in _hostile_bodies(operation):
            response = hostile_api.generic(method.upper(), url, text, content_type="application/json")
            if response.status_code != 400:
                failures.append((method, url, text[:60], response.status_code, response.content[:200]))
    assert not failures, failures
    assert len(sent) == sum("requestBody" in operation for _, _, operation in _operations())  # none left out


@pytest.mark.django_db
def test_non_ascii_or_fractional_path_ids_match_no_route(hostile_api):
    failures = []
    for path, method, _ in _operations():
        if "{id}" not in path:
            continue
        for pk in HOSTILE_PATH_IDS:
            response = hostile_api.generic(method.upper(), path.replace("{id}", pk))
            if response.status_code != 404:
                failures.append((method, path, pk, response.status_code))
    assert not failures, failures


@pytest.mark.django_db
def test_hostile_query_values_never_answer_a_server_error(hostile_api):
    failures = []
    for path, method, operation in _operations():
        if method != "get":
            continue
        pk = _object_id(path) if "{id}" in path else 0
        url = path.replace("{id}", str(pk or 1))
        for parameter in (p for p in operation.get("parameters", []) if p["in"] == "query"):
            for value in HOSTILE_QUERY_VALUES:
                response = hostile_api.get(f"{url}?{parameter['name']}={value}")
                if response.status_code >= 500:
                    failures.append((url, parameter["name"], value, response.status_code))
    assert not failures, failures

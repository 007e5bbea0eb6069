"""Hostile input at the API's base: lone surrogates, deep nesting, extreme dates and non-ASCII or fractional ids
are refused with a 4xx that names what was wrong, on every endpoint, and never reach the database as a 500."""

import json

import pytest
from django.urls import reverse

from fleet.models import Node, Team
from tests.factories import GPUFactory, NodeFactory, ProviderFactory, SiteFactory, TeamFactory

ARABIC_123 = "\u0661\u0662\u0663"  # "١٢٣": int() reads it as 123
LONE_SURROGATE = "\ud800"

pytestmark = pytest.mark.django_db


def post_json_text(client, url: str, text: str, method: str = "POST"):
    """Send ``text`` as the JSON body, byte for byte (the test client would re-encode a dict)."""
    return client.generic(method, url, text, content_type="application/json")


def node_payload(**overrides) -> dict:
    payload = {"site": SiteFactory().pk, "name": "gpu-node-1", "instance_type": "p5.48xlarge", "lifecycle": "spot"}
    return {**payload, **overrides}


def nested(depth: int) -> str:
    """A JSON document of ``depth`` nested arrays."""
    return "[" * depth + "]" * depth


# --- lone surrogates -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["state", "lifecycle"])
def test_lone_surrogate_in_a_choice_field_is_400(admin_api, field):
    text = json.dumps(node_payload(**{field: LONE_SURROGATE}))  # ensure_ascii: the body carries "\ud800"
    response = post_json_text(admin_api, reverse("api:node-list"), text)
    assert response.status_code == 400, response.content
    assert "surrogate" in response.json()["detail"]
    assert not Node.objects.exists()


def test_lone_surrogate_in_a_char_field_or_a_key_is_400(admin_api):
    url = reverse("api:team-list")
    for body in ({"name": f"a{LONE_SURROGATE}b", "slug": "ok"}, {"name": "ok", "slug": "ok", LONE_SURROGATE: 1}):
        response = post_json_text(admin_api, url, json.dumps(body))
        assert response.status_code == 400, response.content
    team = TeamFactory()
    patch = post_json_text(admin_api, reverse("api:team-detail", args=[team.pk]), '{"name": "\\udfff"}', "PATCH")
    assert patch.status_code == 400, patch.content
    assert not Team.objects.exclude(pk=team.pk).exists()


def test_escaped_surrogate_pair_is_one_character_and_accepted(admin_api):
    response = post_json_text(admin_api, reverse("api:team-list"), '{"name": "GPU \\ud83d\\ude80", "slug": "rocket"}')
    assert response.status_code == 201, response.content
    assert Team.objects.get(slug="rocket").name == "GPU \N{ROCKET}"


def test_undecodable_query_parameter_is_400_for_a_choice_filter(admin_api):
    # %ED%A0%80 is a UTF-8-encoded surrogate: Django decodes it to replacement characters, a choice none matches.
    response = admin_api.get(reverse("api:node-list") + "?state=%ED%A0%80")
    assert response.status_code == 400, response.content
    assert "state" in response.json()


# --- deep nesting ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_deeply_nested_json_is_400(admin_api, depth):
    text = json.dumps(node_payload())[:-1] + f', "labels": {nested(depth)}}}'
    response = post_json_text(admin_api, reverse("api:node-list"), text)
    assert response.status_code == 400, response.content
    assert "nested" in response.json()["detail"]
    assert not Node.objects.exists()


def test_json_nested_within_the_limit_is_parsed(admin_api):
    labels = {"a": {"b": {"c": "d"}}}
    response = admin_api.post(reverse("api:node-list"), node_payload(labels=labels), format="json")
    # Labels must be flat strings: the serializer, not the parser, answers, and names the field.
    assert response.status_code == 400, response.content
    assert "labels" in response.json()


# --- extreme dates ---------------------------------------------------------------------------------------------
def series_urls() -> list[str]:
    gpu = GPUFactory()
    return [
        reverse("api:telemetry-gpu", args=[gpu.pk]),
        reverse("api:telemetry-node", args=[gpu.node_id]),
        reverse("api:telemetry-fleet"),
    ]


@pytest.mark.parametrize(
    "query, field",
    [
        ({"end": "0001-01-01"}, "end"),
        ({"end": "0001-01-01T00:00:00Z"}, "end"),
        ({"start": "0001-01-01T00:00:00Z"}, "start"),
        ({"end": "9999-12-31T23:59:59Z"}, "end"),
        ({"start": "9999-12-31", "end": "9999-12-31T12:00:00Z"}, "start"),
        ({"start": "1999-12-31T00:00:00Z", "end": "2000-01-02T00:00:00Z"}, "start"),
    ],
)
def test_series_dates_out_of_range_are_400_naming_the_parameter(admin_api, query, field):
    for url in series_urls():
        response = admin_api.get(url, query)
        assert response.status_code == 400, (url, response.content)
        assert field in response.json(), (url, response.json())


def test_series_dates_in_range_still_answer(admin_api):
    for url in series_urls():
        response = admin_api.get(url, {"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"})
        assert response.status_code == 200, (url, response.content)


@pytest.mark.parametrize("name", ["from", "to"])
@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
def test_extreme_dates_on_date_filters_are_4xx(admin_api, name, day):
    for url_name in ("api:ledgerentry-list", "api:egressrecord-list", "api:spend-summary", "api:spend-egress"):
        response = admin_api.get(reverse(url_name), {name: day})
        assert response.status_code in (200, 400), (url_name, response.content)


# --- ids: ASCII decimal integers only --------------------------------------------------------------------------
@pytest.mark.parametrize("pk", [ARABIC_123, "%D9%A1%D9%A2%D9%A3", "123.0", "+123"])
def test_non_ascii_digit_or_fractional_path_id_is_404(admin_api, pk):
    node = NodeFactory(pk=123)
    assert admin_api.get(reverse("api:node-detail", args=[node.pk])).status_code == 200
    assert admin_api.get(f"/api/v1/nodes/{pk}/").status_code == 404
    assert admin_api.patch(f"/api/v1/nodes/{pk}/", {"name": "renamed"}, format="json").status_code == 404
    assert admin_api.post(f"/api/v1/nodes/{pk}/poll/").status_code == 404  # detail actions share the lookup
    assert Node.objects.get(pk=123).name == node.name


@pytest.mark.parametrize("value", [1.5, 1.0, True, ARABIC_123, "1.5", " 1", "1e0", "+1", -1])
def test_related_id_in_a_body_must_be_an_ascii_integer(admin_api, value):
    site = SiteFactory(pk=1)
    SiteFactory(pk=123, provider=site.provider)
    response = admin_api.post(reverse("api:node-list"), node_payload(site=value), format="json")
    assert response.status_code == 400, (value, response.content)
    assert "site" in response.json()
    assert not Node.objects.exists()


@pytest.mark.parametrize("value", [1, "1"])
def test_related_id_as_integer_or_digit_string_is_accepted(admin_api, value):
    SiteFactory(pk=1)
    response = admin_api.post(reverse("api:node-list"), node_payload(site=value), format="json")
    assert response.status_code == 201, response.content
    assert Node.objects.get().site_id == 1


@pytest.mark.parametrize("value", [ARABIC_123, "1.5", "1.0", "+1", "1e0"])
def test_id_filter_in_the_query_string_must_be_an_ascii_integer(admin_api, value):
    provider = ProviderFactory(pk=123)
    SiteFactory(provider=provider)
    assert admin_api.get(reverse("api:site-list"), {"provider": "123"}).json()["count"] == 1
    for url_name, name in (("api:site-list", "provider"), ("api:gpu-list", "node"), ("api:gpu-list", "index")):
        response = admin_api.get(reverse(url_name), {name: value})
        assert response.status_code == 400, (url_name, name, value, response.content)
        assert name in response.json()


@pytest.mark.parametrize("value", [ARABIC_123, "1.0"])
def test_id_parameters_of_spend_endpoints_must_be_ascii_integers(admin_api, value):
    TeamFactory(pk=123)
    ProviderFactory(pk=123)
    for url_name, name in (("api:spend-summary", "team"), ("api:spend-reconciliation", "provider")):
        response = admin_api.get(reverse(url_name), {name: value})
        assert response.status_code == 400, (url_name, response.content)
        assert name in response.json()


# --- every endpoint uses the strict pieces ---------------------------------------------------------------------
def test_every_writable_relation_and_filter_set_of_the_api_is_strict():
    from rest_framework.relations import ManyRelatedField, RelatedField

    from config.api_urls import router
    from core.api.fields import StrictPrimaryKeyRelatedField
    from core.filters import FleetdeckFilterSet

    loose = []
    for prefix, viewset, _ in router.registry:
        filterset = getattr(viewset, "filterset_class", None)
        if filterset is not None and not issubclass(filterset, FleetdeckFilterSet):
            loose.append((prefix, filterset.__name__))
        for name, field in viewset.serializer_class().fields.items():
            relation = field.child_relation if isinstance(field, ManyRelatedField) else field
            writable = isinstance(relation, RelatedField) and not field.read_only
            if writable and not isinstance(relation, StrictPrimaryKeyRelatedField):
                loose.append((prefix, name, type(relation).__name__))
    assert not loose, loose

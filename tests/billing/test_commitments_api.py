"""Commitments API, rules and admin: generic resource tests with a bad payload per rule, the overlap error naming
the other commitment, ``usage`` per day and month checked by hand, team scope, and the admin pages."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import count

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.urls import reverse

from billing.choices import CommitmentBasis, CommitmentKind, PriceSource
from billing.commitments import commitment_save, commitment_usage
from billing.ledger import ledger_compute
from billing.models import Commitment, CommitmentHour, InstancePrice
from core.choices import Role
from tests.api_base import APIResourceTests
from tests.factories import GPUFactory, NodeFactory, OnPremProviderFactory, ProviderFactory, SiteFactory, TeamFactory

D = Decimal
_n = count()


def p5_price(region: str = "us-east-1") -> None:
    InstancePrice.objects.get_or_create(
        provider_kind="aws",
        region=region,
        instance_type="p5.48xlarge",
        effective_from=date(2026, 1, 1),
        source=PriceSource.CATALOGUE,
        defaults={"gpu_model": "H100", "gpu_count": 8, "on_demand_usd_per_h": D("98.32"), "spot_usd_per_h": D(40)},
    )


def make_commitment(**kwargs) -> Commitment:
    p5_price()
    fields = {
        "provider": kwargs.pop("provider", None) or ProviderFactory(),
        "name": f"sp-{next(_n)}",
        "kind": CommitmentKind.SAVINGS_PLAN,
        "basis": CommitmentBasis.SPEND,
        "hourly_commitment_usd": D(50),
        "discount_pct": D(30),
        "start": date(2026, 6, 1),
        "end": date(2027, 6, 1),
    }
    return Commitment.objects.create(**{**fields, **kwargs})


COUNT = {"basis": "count", "kind": "reserved-instance", "hourly_commitment_usd": None, "discount_pct": None}
RI = {**COUNT, "instance_type": "p5.48xlarge", "count": 2, "rate_usd_per_h": "60.000000"}


class TestCommitmentAPI(APIResourceTests):
    basename = "commitment"
    model = Commitment
    compare_fields = ("name", "kind", "basis", "region", "hourly_commitment_usd", "discount_pct", "start", "end")
    bad_payloads = [
        ({"end": "2026-05-31"}, "end"),  # before the start
        ({"end": "2026-06-01"}, "end"),  # the end is exclusive: an empty term
        ({"end": "2026-02-30"}, "end"),
        ({"kind": "lease"}, "kind"),
        ({"basis": "hours"}, "basis"),
        ({"hourly_commitment_usd": "0"}, "hourly_commitment_usd"),
        ({"hourly_commitment_usd": None}, "hourly_commitment_usd"),
        ({"hourly_commitment_usd": "-5"}, "hourly_commitment_usd"),
        ({"discount_pct": "0"}, "discount_pct"),
        ({"discount_pct": "100"}, "discount_pct"),
        ({"discount_pct": None}, "discount_pct"),
        ({"discount_pct": "-3"}, "discount_pct"),
        ({"count": 3}, "count"),  # a spend-basis commitment has no count
        ({"rate_usd_per_h": "60"}, "rate_usd_per_h"),
        ({**RI, "instance_type": ""}, "instance_type"),
        ({**RI, "count": 0}, "count"),
        ({**RI, "count": None}, "count"),
        ({**RI, "rate_usd_per_h": None}, "rate_usd_per_h"),
        ({**RI, "discount_pct": "20"}, "discount_pct"),
        ({**RI, "hourly_commitment_usd": "50"}, "hourly_commitment_usd"),
        ({"region": "us-nowhere-9"}, "region"),  # no catalogue price in that region: it would cover nothing
        ({**RI, "instance_type": "p9.huge"}, "instance_type"),
        ({**RI, "region": "eu-west-1"}, "region"),  # p5 is priced only in us-east-1 here
        ({**RI, "count": -1}, "count"),
        ({**RI, "rate_usd_per_h": "-1"}, "rate_usd_per_h"),
        ({**RI, "rate_usd_per_h": "0"}, "rate_usd_per_h"),  # an instance is never free: amortise the upfront
        ({**RI, "rate_usd_per_h": "NaN"}, "rate_usd_per_h"),
        ({"hourly_commitment_usd": "123456789"}, "hourly_commitment_usd"),  # 8 digits before the point at most
        ({"discount_pct": "12.345"}, "discount_pct"),
        ({**RI, "kind": "savings-plan"}, "basis"),  # a savings plan commits to spend
        ({"kind": "reserved-instance"}, "basis"),  # reserved instances commit to a count
        ({"kind": "committed-use"}, "kind"),  # an AWS account sells no committed-use discount
        ({"start": "2026-02-30"}, "start"),
        ({"start": None}, "start"),
        ({"term": "2y"}, "term"),
        ({"end": None}, "end"),
        ({"term": None}, "term"),
        ({"term": "1y", "end": "2027-05-01"}, "term"),  # a 1-year term from 1 June 2026 ends on 1 June 2027
        ({"name": "plan\nsecond line"}, "name"),
        ({"name": ""}, "name"),
        ({"provider": "１"}, "provider"),  # a full-width digit is not an id
        ({"team": 987654321}, "team"),
    ]

    def make(self, **kwargs):
        return make_commitment(**kwargs)

    def create_payload(self):
        p5_price()
        return {
            "provider": ProviderFactory().pk,
            "name": "Compute Savings Plan sp-0a1b2c",
            "kind": "savings-plan",
            "basis": "spend",
            "region": "us-east-1",
            "instance_type": "",
            "hourly_commitment_usd": "50.000000",
            "discount_pct": "30.00",
            "start": "2026-06-01",
            "end": "2027-06-01",
            "note": "1-year, no upfront",
        }

    def update_payload(self, instance):
        return {"note": "renewed", "hourly_commitment_usd": "60.000000"}


@pytest.mark.django_db
def test_an_onprem_account_cannot_commit(admin_api):
    payload = {**TestCommitmentAPI().create_payload(), "provider": OnPremProviderFactory().pk, "region": ""}
    response = admin_api.post(reverse("api:commitment-list"), payload, format="json")
    assert response.status_code == 400 and "cloud" in str(response.data["provider"])


@pytest.mark.django_db
def test_gcp_committed_use_discounts_resource_and_spend_based(admin_api):
    """A Google Cloud account buys committed-use discounts: resource-based ones on the count basis, spend-based ones
    on the spend basis, for 1 or 3 years; reserved instances and savings plans are AWS's and are refused."""
    gcp = ProviderFactory(kind="gcp", name="gcp-prod")
    InstancePrice.objects.create(
        provider_kind="gcp", region="us-central1", instance_type="a3-highgpu-8g", gpu_model="H100", gpu_count=8,
        on_demand_usd_per_h=D("88.49"), effective_from=date(2026, 1, 1), source=PriceSource.CATALOGUE,
    )  # fmt: skip
    url = reverse("api:commitment-list")
    resource = {"provider": gcp.pk, "name": "cud-a3", "kind": "committed-use", "basis": "count",
                "region": "us-central1", "instance_type": "a3-highgpu-8g", "count": 2, "rate_usd_per_h": "55.75",
                "start": "2026-06-01", "term": "3y"}  # fmt: skip
    response = admin_api.post(url, resource, format="json")
    assert response.status_code == 201, response.content
    assert (response.data["end"], response.data["term"], response.data["provider_kind"]) == ("2029-06-01", "3y", "gcp")
    spend = {"provider": gcp.pk, "name": "cud-spend", "kind": "committed-use", "basis": "spend",
             "hourly_commitment_usd": "40", "discount_pct": "28", "start": "2026-06-01",
             "end": "2027-06-01"}  # fmt: skip
    response = admin_api.post(url, spend, format="json")
    assert response.status_code == 201 and response.data["term"] == "1y", response.content
    for kind, basis in (("reserved-instance", "count"), ("savings-plan", "spend")):
        payload = {**(resource if basis == "count" else spend), "kind": kind, "start": "2030-01-01", "term": "1y"}
        payload.pop("end", None)
        response = admin_api.post(url, payload, format="json")
        assert response.status_code == 400 and "committed-use" in str(response.data["kind"]), response.data
    assert Commitment.objects.filter(provider=gcp).count() == 2


@pytest.mark.django_db
def test_term_sets_the_end_and_reads_back():
    """1y from 1 June 2026 ends 1 June 2027; a 29 February start's year ends on 1 March; a month is no term."""
    from billing.api.commitments import CommitmentSerializer, term_end

    assert term_end(date(2026, 6, 1), 1) == date(2027, 6, 1)
    assert term_end(date(2028, 2, 29), 1) == date(2029, 3, 1)
    month = make_commitment(start=date(2026, 6, 1), end=date(2026, 7, 1))
    assert CommitmentSerializer(month).data["term"] is None
    serializer = CommitmentSerializer(month, data={"term": "3y"}, partial=True)
    assert serializer.is_valid(), serializer.errors
    assert serializer.save().end == date(2029, 6, 1)
    agreeing = CommitmentSerializer(month, data={"term": "1y", "end": "2027-06-01"}, partial=True)
    assert agreeing.is_valid(), agreeing.errors


@pytest.mark.django_db
def test_an_overlapping_commitment_is_refused_naming_the_other(admin_api):
    first = make_commitment(region="us-east-1", name="sp-first")
    payload = {**TestCommitmentAPI().create_payload(), "provider": first.provider_id, "start": "2027-05-01"}
    response = admin_api.post(reverse("api:commitment-list"), payload, format="json")
    assert response.status_code == 400
    assert f"#{first.pk}" in str(response.data["start"]) and "sp-first" in str(response.data["start"])
    # Back to back (the first ends 2027-06-01, exclusive), another region, or one instance type: accepted.
    for other in ({"start": "2027-06-01", "end": "2028-06-01"}, {"region": ""}, {"instance_type": "p5.48xlarge"}):
        response = admin_api.post(reverse("api:commitment-list"), {**payload, **other}, format="json")
        assert response.status_code == 201, (other, response.content)
    # Editing a commitment never collides with itself.
    assert admin_api.patch(reverse("api:commitment-detail", args=[first.pk]), {"note": "x"}).status_code == 200


@pytest.mark.django_db
def test_commitment_save_applies_the_rules():
    first = commitment_save(commitment=Commitment(**{**_model_fields(), "name": "ri-a"}))
    assert first.pk
    with pytest.raises(ValidationError) as caught:
        commitment_save(commitment=Commitment(**{**_model_fields(), "name": "ri-b", "provider": first.provider}))
    assert f"#{first.pk}" in str(caught.value.message_dict["start"])
    with pytest.raises(ValidationError) as caught:
        commitment_save(commitment=Commitment(**{**_model_fields(), "count": 0}))
    assert "count" in caught.value.message_dict
    assert Commitment.objects.count() == 1


def _model_fields() -> dict:
    p5_price()
    return {
        "provider": ProviderFactory(),
        "name": "ri",
        "kind": CommitmentKind.RESERVED_INSTANCE,
        "basis": CommitmentBasis.COUNT,
        "region": "us-east-1",
        "instance_type": "p5.48xlarge",
        "count": 2,
        "rate_usd_per_h": D(60),
        "start": date(2026, 6, 1),
        "end": date(2026, 7, 1),
    }


@pytest.fixture
def ri_usage(db):
    """2 × p5.48xlarge reserved at $60/h (on-demand $98.32) from 1 June; n1 runs 1 June 00:00 – 2 June 12:00,
    n2 and n3 1 June 10:00 – 11:00 (n3 is the third p5 of that hour: uncovered); the ledger of 1–3 June."""
    team = TeamFactory()
    site = SiteFactory(region="us-east-1")
    p5_price()
    for start, end in ((datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, 12, tzinfo=UTC)),) + (
        (datetime(2026, 6, 1, 10, tzinfo=UTC), datetime(2026, 6, 1, 11, tzinfo=UTC)),
    ) * 2:
        node = NodeFactory(site=site, instance_type="p5.48xlarge", launched_at=start, ended_at=end)
        for index in range(8):
            GPUFactory(node=node, index=index)
    ri = Commitment.objects.create(**{**_model_fields(), "provider": site.provider, "team": team})
    ledger_compute(
        start=datetime(2026, 6, 1, tzinfo=UTC),
        end=datetime(2026, 6, 4, tzinfo=UTC),
        now=datetime(2026, 7, 1, tzinfo=UTC),
    )
    return ri


def test_usage_per_day_and_month_hand_checked(ri_usage, admin_api):
    """Committed 2 × 60 = 120/h = 2,880 a day.

    1 June: n1 24 h, n2 1 h covered (25 × 60 = 1,500 used), n3's hour uncovered: eligible 26 × 98.32 = 2,556.32,
    covered 25 × 98.32 = 2,458, uncovered 98.32, unused 1,380, savings 2,458 − 1,500 = 958.
    2 June: n1 12 h: used 720, unused 2,160, eligible = covered = 1,179.84, savings 459.84.
    3 June: nothing runs: 2,880 unused.
    The three days: committed 8,640, used 2,220, unused 6,420, eligible 3,736.16, covered 3,637.84, uncovered
    98.32, savings 1,417.84, net savings 3,637.84 − 8,640 = −5,002.16 (the reservation loses money here).
    """
    url = reverse("api:commitment-usage", args=[ri_usage.pk])
    response = admin_api.get(url, {"from": "2026-06-01", "to": "2026-06-03", "by": "day"})
    assert response.status_code == 200, response.content
    days = {row["period"]: row for row in response.data["periods"]}
    keys = ("committed_usd", "used_usd", "unused_usd", "eligible_list_usd", "covered_list_usd",
            "uncovered_list_usd", "savings_usd")  # fmt: skip
    assert {day: tuple(D(row[k]) for k in keys) for day, row in days.items()} == {
        "2026-06-01": (D(2880), D(1500), D(1380), D("2556.32"), D(2458), D("98.32"), D(958)),
        "2026-06-02": (D(2880), D(720), D(2160), D("1179.84"), D("1179.84"), D(0), D("459.84")),
        "2026-06-03": (D(2880), D(0), D(2880), D(0), D(0), D(0), D(0)),
    }
    month = admin_api.get(url, {"from": "2026-06-01", "to": "2026-06-03"}).data
    assert month["by"] == "month" and [p["period"] for p in month["periods"]] == ["2026-06-01"]
    total = month["total"]
    assert total["hours"] == 72
    assert tuple(D(total[k]) for k in keys) == (
        D(8640), D(2220), D(6420), D("3736.16"), D("3637.84"), D("98.32"), D("1417.84"),
    )  # fmt: skip
    assert D(total["net_savings_usd"]) == D("-5002.16")
    assert month["periods"][0]["used_usd"] == total["used_usd"]


def test_usage_defaults_to_the_term_and_refuses_bad_parameters(ri_usage, admin_api):
    url = reverse("api:commitment-usage", args=[ri_usage.pk])
    assert admin_api.get(url).status_code == 200
    for params, field in (
        ({"from": "2026-06-03", "to": "2026-06-01"}, "to"),
        ({"from": "2026-13-01"}, "from"),
        ({"by": "week"}, "by"),
        ({"from": "2026-01-01", "to": "2028-01-01"}, "to"),  # more than a year and a bit
    ):
        response = admin_api.get(url, params)
        assert response.status_code == 400 and field in response.data, (params, response.data)
    with pytest.raises(ValueError):
        commitment_usage(commitment=ri_usage, start=date(2026, 6, 1), end=date(2026, 6, 2), by="week")


def test_a_limited_viewer_sees_only_their_teams_commitments(ri_usage, api_client):
    viewer = api_client(Role.VIEWER)
    url = reverse("api:commitment-usage", args=[ri_usage.pk])
    other = TeamFactory()
    other.members.add(viewer.user)
    assert viewer.get(url).status_code == 404
    assert viewer.get(reverse("api:commitment-list")).data["count"] == 0
    ri_usage.team.members.add(viewer.user)
    assert viewer.get(url).status_code == 200
    assert [row["id"] for row in viewer.get(reverse("api:commitment-list")).data["results"]] == [ri_usage.pk]


def test_filters(admin_api, db):
    sp = make_commitment(start=date(2026, 1, 1), end=date(2026, 7, 1))
    ri = make_commitment(**{**_model_fields(), "start": date(2026, 6, 1), "end": date(2027, 6, 1)})
    listed = admin_api.get(reverse("api:commitment-list"), {"at": "2026-03-01"}).data["results"]
    assert [row["id"] for row in listed] == [sp.pk]
    listed = admin_api.get(reverse("api:commitment-list"), {"basis": "count"}).data["results"]
    assert [row["id"] for row in listed] == [ri.pk]
    assert admin_api.get(reverse("api:commitment-list"), {"at": "June"}).status_code == 400


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "a-long-test-password")
    client.force_login(user)
    return client


def test_admin_pages_and_the_rules_in_the_admin_form(admin_client, ri_usage):
    for name in ("commitment", "commitmenthour"):
        assert admin_client.get(reverse(f"admin:billing_{name}_changelist")).status_code == 200
    hour = CommitmentHour.objects.first()
    assert admin_client.get(reverse("admin:billing_commitmenthour_change", args=[hour.pk])).status_code == 200
    form = {
        "provider": ri_usage.provider_id,
        "name": "overlapping",
        "kind": "reserved-instance",
        "basis": "count",
        "region": "us-east-1",
        "instance_type": "p5.48xlarge",
        "count": "1",
        "rate_usd_per_h": "50",
        "start": "2026-06-15",
        "end": "2026-08-01",
    }
    response = admin_client.post(reverse("admin:billing_commitment_add"), form)
    assert response.status_code == 200 and f"#{ri_usage.pk}" in response.content.decode()
    response = admin_client.post(reverse("admin:billing_commitment_add"), {**form, "start": "2026-07-01"})
    assert response.status_code == 302 and Commitment.objects.count() == 2

"""The scheduler REST API: datasets and jobs through the generic API tests, the verbs, and placements."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import EgressRecord
from core.choices import Role
from scheduler.models import Dataset, Job, Placement
from tests.api_base import APIResourceTests
from tests.factories import OnPremSiteFactory, ProjectFactory, SiteFactory, TeamFactory


def make_dataset(**kwargs) -> Dataset:
    n = Dataset.objects.count()
    fields = {
        "name": f"ds-{n}-{kwargs.get('region', 'x')}",
        "uri": f"s3://bucket-{n}/data/",
        "provider_kind": "aws",
        "region": "us-east-1",
        "size_bytes": 10**12,
    }
    fields.update(kwargs)
    return Dataset.objects.create(**fields)


class TestDatasetAPI(APIResourceTests):
    basename = "dataset"
    model = Dataset
    compare_fields = ("name", "uri", "region", "size_bytes")
    bad_payloads = [
        ({"uri": "ftp://bucket/x"}, "uri"),
        ({"uri": "s3://"}, "uri"),
        ({"uri": "gs://bucket/x", "region": ""}, "region"),
        ({"uri": "", "region": ""}, "site"),
        ({"size_bytes": 0}, "size_bytes"),
        ({"size_bytes": "big"}, "size_bytes"),
        ({"name": ""}, "name"),
        ({"site": 987654321}, "site"),
    ]

    def make(self, **kwargs):
        return make_dataset(**kwargs)

    def create_payload(self):
        return {
            "name": "imagenet",
            "uri": "gs://imagenet-eu/train/",
            "region": "europe-west4",
            "size_bytes": 150 * 10**9,
        }

    def update_payload(self, instance):
        return {"size_bytes": 2 * 10**12}

    def test_create_derives_provider_and_location(self, admin_api):
        response = admin_api.post(self.list_url(), self.create_payload(), format="json")
        assert response.status_code == 201, response.content
        assert response.data["provider_kind"] == "gcp"
        assert response.data["location"] == "gcp:europe-west4"

    def test_onprem_dataset_is_located_by_its_site(self, admin_api):
        site = OnPremSiteFactory(name="dc-7")
        payload = {"name": "scans", "uri": "", "region": "", "site": site.pk, "size_bytes": 10**9}
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code == 201, response.content
        assert (response.data["provider_kind"], response.data["location"]) == ("onprem", "onprem:dc-7")

    def test_moving_a_dataset_onprem_drops_its_cloud_region(self, admin_api):
        dataset = make_dataset(region="us-east-1")
        site = OnPremSiteFactory(name="dc-9")
        response = admin_api.patch(self.detail_url(dataset.pk), {"uri": "", "site": site.pk}, format="json")
        assert response.status_code == 200, response.content
        assert (response.data["region"], response.data["location"]) == ("", "onprem:dc-9")

    def test_changing_the_s3_uri_looks_the_region_up_again(self, admin_api, aws):
        from tests.scheduler.test_datasets import make_bucket

        make_bucket("moved", "eu-west-1")
        dataset = make_dataset(region="us-east-1")
        response = admin_api.patch(self.detail_url(dataset.pk), {"uri": "s3://moved/data/"}, format="json")
        assert response.status_code == 200, response.content
        assert response.data["location"] == "aws:eu-west-1"
        gs = admin_api.patch(self.detail_url(dataset.pk), {"uri": "gs://elsewhere/x"}, format="json")
        assert gs.status_code == 400 and "region" in gs.data  # not the old bucket's eu-west-1

    def test_other_changes_keep_the_stored_region(self, admin_api):
        dataset = make_dataset(uri="gs://kept/x", provider_kind="gcp", region="europe-west4")
        response = admin_api.patch(self.detail_url(dataset.pk), {"size_bytes": 5}, format="json")
        assert response.status_code == 200 and response.data["location"] == "gcp:europe-west4"

    def test_cloud_site_without_uri_is_400(self, admin_api):
        site = SiteFactory()
        payload = {"name": "x", "uri": "", "site": site.pk, "size_bytes": 10**9}
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code == 400 and "site" in response.data


class TestJobAPI(APIResourceTests):
    basename = "job"
    model = Job
    compare_fields = ("name", "gpu_count", "gpu_model", "expected_hours", "allowed_providers", "spot_allowed")

    @property
    def bad_payloads(self):
        other = ProjectFactory()
        return [
            ({"gpu_count": 0}, "gpu_count"),
            ({"gpu_count": "eight"}, "gpu_count"),
            ({"gpu_model": "H1000"}, "gpu_model"),
            ({"expected_hours": "0"}, "expected_hours"),
            ({"expected_hours": "-3"}, "expected_hours"),
            ({"allowed_providers": ["azure"]}, "allowed_providers"),
            ({"project": other.pk}, "project"),
            ({"datasets": [987654321]}, "datasets"),
            ({"min_gpu_memory_mib": 40000}, "min_gpu_memory_mib"),
            ({"min_gpu_memory_mib": 0, "gpu_model": ""}, "min_gpu_memory_mib"),
            ({"max_usd_per_h": "-1"}, "max_usd_per_h"),
            ({"priority": 10**12}, "priority"),
            ({"team": None}, "team"),
            ({"allowed_regions": ["us-east-1", "us-east-1"]}, "allowed_regions"),
        ]

    def make(self, **kwargs):
        team = kwargs.pop("team", None) or TeamFactory()
        fields = {"name": "job", "team": team, "gpu_count": 1, "expected_hours": Decimal("2")}
        fields.update(kwargs)
        return Job.objects.create(**fields)

    def create_payload(self):
        project = ProjectFactory()
        return {
            "name": "finetune",
            "team": project.team_id,
            "project": project.pk,
            "gpu_count": 8,
            "gpu_model": "H100",
            "expected_hours": "10.00",
            "datasets": [make_dataset().pk],
            "allowed_providers": ["aws", "onprem"],
            "spot_allowed": True,
        }

    def update_payload(self, instance):
        return {"priority": 5, "expected_hours": "3.50"}

    def test_submission_queues_a_placement_run_after_commit(self, admin_api, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = admin_api.post(self.list_url(), self.create_payload(), format="json")
        assert response.status_code == 201
        assert response.data["state"] == "pending"
        assert len(callbacks) == 1

    def test_placed_job_cannot_be_edited_or_deleted(self, admin_api):
        job = self.make(state="placed")
        response = admin_api.patch(self.detail_url(job.pk), {"priority": 3}, format="json")
        assert response.status_code == 409 and "state" in response.data
        assert admin_api.delete(self.detail_url(job.pk)).status_code == 409

    def test_job_placed_while_the_request_ran_is_409_not_500(self, admin_api, monkeypatch):
        """The view read the job pending; a placement run placed it before the write locked the row."""
        from scheduler.api.views import JobViewSet

        read = JobViewSet.get_object

        def stale_read(view):
            job = read(view)
            Job.objects.filter(pk=job.pk).update(state="placed")
            return job

        monkeypatch.setattr(JobViewSet, "get_object", stale_read)
        patched = admin_api.patch(self.detail_url(self.make().pk), {"priority": 3}, format="json")
        assert patched.status_code == 409 and "placed job cannot be edited" in str(patched.data["state"])
        job = self.make()
        assert admin_api.delete(self.detail_url(job.pk)).status_code == 409
        assert Job.objects.filter(pk=job.pk).exists()

    def test_job_with_egress_history_cannot_be_deleted(self, admin_api):
        job = self.make(state="succeeded")
        money = dict.fromkeys(("usd_per_h", "compute_usd", "egress_usd", "total_usd"), 0)
        placement = Placement.objects.create(
            job=job, target_kind="offer", provider_kind="aws", region="us-east-1", gpu_count=1, **money
        )
        record = {"source": "aws:us-east-1", "destination": "aws:us-west-2", "bytes": 10, "usd": "0.1"}
        record.update(occurred_at=timezone.now(), source_provider_kind="aws", cause="placement")
        EgressRecord.objects.create(placement=placement, team=job.team, planned=False, **record)
        response = admin_api.delete(self.detail_url(job.pk))
        assert response.status_code == 409 and "egress history" in str(response.data["state"])
        EgressRecord.objects.update(planned=True)
        assert admin_api.delete(self.detail_url(job.pk)).status_code == 204

    def test_team_cannot_change(self, admin_api):
        job = self.make()
        response = admin_api.patch(self.detail_url(job.pk), {"team": TeamFactory().pk}, format="json")
        assert response.status_code == 400 and "team" in response.data


@pytest.mark.django_db
class TestJobVerbs:
    def test_place_now_answers_202_with_a_run_to_poll_and_places_nothing_in_the_request(
        self, api_client, scenario, django_capture_on_commit_callbacks
    ):
        job = scenario.job()
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = api_client(Role.OPERATOR).post(reverse("api:job-place"))
        assert response.status_code == 202, response.content
        assert response["Location"] == response.data["url"]
        assert (response.data["status"], response.data["finished"], response.data["report"]) == ("queued", False, None)
        assert len(callbacks) == 1  # the placement run, queued once the request's transaction commits
        assert Job.objects.get(pk=job.pk).state == "pending"

    def test_place_now_places_and_reports(self, api_client, scenario, worker):
        job = scenario.job()
        blocked = scenario.job(name="blocked", gpu_model="B200")
        operator = api_client(Role.OPERATOR)
        with worker():
            response = operator.post(reverse("api:job-place"))
        assert response.status_code == 202, response.content
        run = operator.get(response.data["url"])
        assert run.status_code == 200 and (run.data["status"], run.data["finished"]) == ("done", True)
        assert run.data["report"]["placed"] == [job.pk]
        assert "B200" in run.data["report"]["unplaced"][str(blocked.pk)]

        listed = operator.get(reverse("api:placement-list"), {"job": job.pk})
        assert listed.status_code == 200 and listed.data["count"] == 1
        row = listed.data["results"][0]
        assert (row["compute_usd"], row["egress_usd"], row["total_usd"]) == ("97.800000", "180.000000", "277.800000")
        assert row["breakdown"][0]["destination"] == "onprem:dc-1"
        assert len(row["alternatives"]) == 4
        assert operator.get(reverse("api:placement-list"), {"active": "false"}).data["count"] == 0

    def test_place_while_another_run_is_in_progress_reports_it_skipped(self, api_client, scenario, worker):
        from django.db import connections

        from scheduler.placements import PLACE_LOCK_KEY

        job = scenario.job()
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PLACE_LOCK_KEY])
                with worker():
                    response = api_client(Role.OPERATOR).post(reverse("api:job-place"))
                cursor.execute("ROLLBACK")
        finally:
            other.close()
        run = api_client(Role.OPERATOR).get(response.data["url"]).data
        assert run["status"] == "done" and run["report"]["skipped"] == "another placement run is in progress"
        assert Job.objects.get(pk=job.pk).state == "pending"

    def test_transition_states_follow_the_service_rules(self):
        from scheduler.api.serializers import TransitionSerializer
        from scheduler.jobs import TRANSITIONS

        choices = set(TransitionSerializer().fields["state"].choices)
        assert choices == {state for targets in TRANSITIONS.values() for state in targets}

    def test_viewer_cannot_place_but_can_price(self, api_client, scenario):
        viewer = api_client(Role.VIEWER)
        assert viewer.post(reverse("api:job-place")).status_code == 403
        payload = {"gpu_count": 8, "gpu_model": "H100", "expected_hours": "10", "datasets": [scenario.dataset.pk]}
        response = viewer.post(reverse("api:job-what-if"), payload, format="json")
        assert response.status_code == 200, response.content
        assert [row["total_usd"] for row in response.data] == ["277.800000", "550.400000", "590.400000", "1062.500000"]
        assert response.data[0]["moves"][0]["usd"] == "180.000000"
        assert not Job.objects.exists() and not Placement.objects.exists()

    @pytest.mark.parametrize(
        ("bad", "field"),
        [
            ({"gpu_count": 0}, "gpu_count"),
            ({"gpu_model": "V100"}, "gpu_model"),
            ({"expected_hours": "0"}, "expected_hours"),
            ({"datasets": [987654321]}, "datasets"),
            ({"allowed_providers": ["oracle"]}, "allowed_providers"),
        ],
    )
    def test_what_if_bad_input_is_400(self, admin_api, scenario, bad, field):
        payload = {"gpu_count": 8, "gpu_model": "H100", "expected_hours": "10", **bad}
        response = admin_api.post(reverse("api:job-what-if"), payload, format="json")
        assert response.status_code == 400 and field in response.data

    def test_transition_lifecycle_and_conflicts(self, api_client, scenario, worker):
        job = scenario.job()
        operator = api_client(Role.OPERATOR)
        url = reverse("api:job-transition", kwargs={"pk": job.pk})
        response = operator.post(url, {"state": "running"}, format="json")
        assert response.status_code == 409 and "pending job cannot become running" in str(response.data["state"])
        with worker():
            operator.post(reverse("api:job-place"))
        assert operator.post(url, {"state": "running"}, format="json").data["state"] == "running"
        assert operator.post(url, {"state": "succeeded"}, format="json").data["state"] == "succeeded"
        assert operator.post(url, {"state": "cancelled"}, format="json").status_code == 409
        bad = operator.post(url, {"state": "exploded"}, format="json")
        assert bad.status_code == 400 and "state" in bad.data
        assert api_client(Role.VIEWER).post(url, {"state": "failed"}, format="json").status_code == 403
        # Running made the placement's planned egress real (billing counts it from then on).
        assert EgressRecord.objects.filter(placement__job=job, planned=False, cause="placement").count() == 1

    def test_placement_list_query_count(self, admin_api, scenario, worker, django_assert_max_num_queries):
        for i in range(5):
            scenario.job(name=f"j{i}", gpu_count=1)
        with worker():
            admin_api.post(reverse("api:job-place"))
        with django_assert_max_num_queries(5):  # auth, permissions, count, page; no per-row query
            response = admin_api.get(reverse("api:placement-list"))
        assert response.data["count"] == 5

    def test_placements_are_read_only(self, admin_api):
        assert admin_api.post(reverse("api:placement-list"), {}, format="json").status_code == 405


@pytest.mark.django_db
def test_what_if_without_egress_rates_is_400(admin_api, scenario):
    from billing.models import EgressRate

    EgressRate.objects.all().delete()
    payload = {"gpu_count": 8, "gpu_model": "H100", "expected_hours": "10", "datasets": [scenario.dataset.pk]}
    response = admin_api.post(reverse("api:job-what-if"), payload, format="json")
    assert response.status_code == 400 and "egress rate" in str(response.data["datasets"])

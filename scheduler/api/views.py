"""REST API viewsets of the scheduler: datasets, jobs (submit, place, what-if, transition), placements, and the
placement runs "place" answers with."""

from django.db import transaction
from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from billing.models import EgressRecord
from core.api.permissions import FleetdeckModelPermissions, ModelActionPermissions
from core.api.views import FleetdeckModelViewSet
from fleet.scoping import TeamScopedViewMixin
from scheduler import carbon, filtersets, jobs, placements, selectors, tasks
from scheduler.api import serializers
from scheduler.choices import ACTIVE_JOB_STATES, JobState
from scheduler.models import Job, Placement, PlaceRun
from scheduler.serializers import candidate_dict


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The job's state does not allow this."
    default_code = "conflict"


class ViewPermissions(FleetdeckModelPermissions):
    """For verbs that only read (what-if): POST needs ``view_``."""

    perms_map = {**FleetdeckModelPermissions.perms_map, "POST": ["%(app_label)s.view_%(model_name)s"]}


class DatasetViewSet(FleetdeckModelViewSet):
    queryset = selectors.dataset_list()
    serializer_class = serializers.DatasetSerializer
    filterset_class = filtersets.DatasetFilterSet


class JobViewSet(TeamScopedViewMixin, FleetdeckModelViewSet):
    """Jobs of the caller's teams (every team for operators, admins and a viewer of no team); another team's job
    answers 404, and a job is submitted or priced only for one of the caller's teams."""

    queryset = selectors.job_list().prefetch_related(
        "datasets",
        Prefetch("placements", queryset=Placement.objects.filter(active=True).only("pk", "job_id", "active")),
    )
    serializer_class = serializers.JobSerializer
    filterset_class = filtersets.JobFilterSet

    def perform_create(self, serializer):
        serializer.instance = jobs.job_submit(data=serializer.validated_data, user=self.request.user)
        tasks.jobs_place_enqueue()

    def perform_update(self, serializer):
        if serializer.instance.state != JobState.PENDING:
            raise Conflict({"state": [f"A {serializer.instance.state} job cannot be edited; only pending jobs can."]})
        try:
            # job_update re-reads the row under a lock: a placement run may have placed it meanwhile.
            serializer.instance = jobs.job_update(job=serializer.instance, data=serializer.validated_data)
        except jobs.TransitionError as exc:
            raise Conflict({"state": [str(exc)]}) from exc
        tasks.jobs_place_enqueue()

    @transaction.atomic
    def perform_destroy(self, instance):
        job = Job.objects.select_for_update().get(pk=instance.pk)  # the state may have changed since it was read
        if job.state in ACTIVE_JOB_STATES:
            raise Conflict({"state": [f"A {job.state} job cannot be deleted; cancel it first."]})
        if EgressRecord.objects.filter(placement__job=job, planned=False).exists():
            raise Conflict(
                {"state": ["This job's data movement is recorded in egress history; the job cannot be deleted."]}
            )
        job.delete()

    @extend_schema(
        request=None,
        responses={202: serializers.PlaceRunSerializer},
        description="Queue a placement run of every pending job for a worker. The answer is the run: poll "
        "GET /api/v1/place-runs/{id}/ (its `url`, also the Location header) until `finished`; its report then says "
        "what was placed and why the rest was not (`skipped` when another run was in progress and places them).",
    )
    @action(detail=False, methods=["post"], permission_classes=[ModelActionPermissions])
    def place(self, request):
        """Queue a placement run of every pending job now; answer 202 with the run to poll."""
        run = tasks.place_run_start(user=request.user)
        data = serializers.PlaceRunSerializer(run, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})

    @extend_schema(request=serializers.WhatIfSerializer, responses={200: serializers.CandidateSerializer(many=True)})
    @action(detail=False, methods=["post"], url_path="what-if", permission_classes=[ViewPermissions])
    def what_if(self, request):
        """Price a job on every feasible target, ranked by total $, without saving anything."""
        serializer = serializers.WhatIfSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        candidates, datasets = placements.job_what_if(data=serializer.validated_data)
        rows = [candidate_dict(c, datasets=datasets) for c in candidates]
        return Response(serializers.CandidateSerializer(rows, many=True).data)

    @extend_schema(request=serializers.TransitionSerializer, responses={200: serializers.JobSerializer})
    @action(detail=True, methods=["post"], permission_classes=[ModelActionPermissions])
    def transition(self, request, pk=None):
        """Move the job to another state (running, succeeded, failed, cancelled); 409 when not allowed."""
        job = self.get_object()
        serializer = serializers.TransitionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            moved = jobs.job_transition(job=job, state=serializer.validated_data["state"])
        except jobs.TransitionError as exc:
            raise Conflict({"state": [str(exc)]}) from exc
        if moved.frees_gpus:
            tasks.jobs_place_enqueue()
        return Response(serializers.JobSerializer(self.get_queryset().get(pk=job.pk)).data)

    @extend_schema(responses={200: serializers.JobFootprintSerializer})
    @action(detail=True, methods=["get"])
    def footprint(self, request, pk=None):
        """The job's kgCO2e, kWh and $: its share of the ledger hours of its placements (scheduler.carbon)."""
        footprint = carbon.job_footprint(job=self.get_object())
        data = {**footprint.__dict__, "total_usd": footprint.total_usd}
        return Response(serializers.JobFootprintSerializer(data).data)


class PlacementViewSet(TeamScopedViewMixin, viewsets.ReadOnlyModelViewSet):
    """Placements (with their costs and alternatives) of the caller's teams' jobs."""

    queryset = selectors.placement_list()
    serializer_class = serializers.PlacementSerializer
    filterset_class = filtersets.PlacementFilterSet


class PlaceRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Placement runs asked for with ``POST /api/v1/jobs/place/``, newest first; each report tells the caller only
    about their teams' jobs."""

    queryset = PlaceRun.objects.all()
    serializer_class = serializers.PlaceRunSerializer

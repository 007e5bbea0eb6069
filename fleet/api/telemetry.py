"""Telemetry API: time series for a GPU, a node or the fleet, and the Prometheus remote-write receiver.

(Poll-now is an action on the node viewset.)
"""

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.permissions import FleetdeckModelPermissions
from fleet.models import GPU, Node
from fleet.telemetry.remote_write import RemoteWriteError, remote_write_receive
from fleet.telemetry.series import SeriesRangeError, fleet_series, gpu_series, series_window


class SeriesQuerySerializer(serializers.Serializer):
    """?start=&end=&step= (ISO 8601 times; step in seconds); defaults: the last 24 h, about 300 points."""

    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)
    step = serializers.IntegerField(required=False, min_value=1, max_value=86400 * 31)

    def window(self):
        data = self.validated_data
        try:
            return series_window(start=data.get("start"), end=data.get("end"), step_s=data.get("step"))
        except SeriesRangeError as exc:
            raise ValidationError({exc.field: [str(exc)]}) from None


class PointSerializer(serializers.Serializer):
    t = serializers.DateTimeField()
    util_pct = serializers.FloatField(allow_null=True)
    power_w = serializers.FloatField(allow_null=True)
    mem_used_mib = serializers.FloatField(allow_null=True, required=False)
    temp_c = serializers.FloatField(allow_null=True, required=False)
    gpus = serializers.IntegerField(required=False)


class GpuSeriesSerializer(serializers.Serializer):
    gpu = serializers.IntegerField()
    uuid = serializers.CharField(allow_null=True)
    index = serializers.IntegerField()
    model = serializers.CharField()
    points = PointSerializer(many=True)


class SeriesResponseSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    step = serializers.IntegerField()
    series = GpuSeriesSerializer(many=True)


class FleetSeriesResponseSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    step = serializers.IntegerField()
    providers = serializers.DictField(child=PointSerializer(many=True))


class PollReportSerializer(serializers.Serializer):
    slot = serializers.DateTimeField()
    nodes_polled = serializers.IntegerField()
    nodes_ok = serializers.IntegerField()
    samples_added = serializers.IntegerField()
    samples_rejected = serializers.IntegerField(help_text="Readings skipped: values out of range, or over the cap.")
    gpus_seen = serializers.IntegerField()
    gpus_created = serializers.IntegerField()
    malformed_lines = serializers.IntegerField()
    health_events = serializers.IntegerField()
    marked_unreachable = serializers.ListField(child=serializers.IntegerField())
    nodes_skipped = serializers.ListField(
        child=serializers.IntegerField(), help_text="Nodes the poll's deadline left unfetched."
    )
    errors = serializers.DictField(child=serializers.CharField())
    warnings = serializers.DictField(child=serializers.CharField(), help_text="Notes on nodes that answered.")


SERIES_PARAMETERS = [
    OpenApiParameter("start", str, description="ISO 8601; default end - 24 h"),
    OpenApiParameter("end", str, description="ISO 8601; default now"),
    OpenApiParameter("step", int, description="seconds per point (≥ 15); default about 300 points"),
]


class _GPUReadView(APIView):
    """Reads GPU telemetry: needs fleet.view_gpu."""

    queryset = GPU.objects.all()  # for FleetdeckModelPermissions
    permission_classes = [FleetdeckModelPermissions]

    def _series(self, request, gpus):
        query = SeriesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        window = query.window()
        gpus = list(gpus)
        points = gpu_series(gpu_ids=[g.pk for g in gpus], window=window)
        body = {
            "start": window.start,
            "end": window.end,
            "step": window.step_s,
            "series": [
                {"gpu": g.pk, "uuid": g.uuid, "index": g.index, "model": g.model, "points": points[g.pk]} for g in gpus
            ],
        }
        return Response(SeriesResponseSerializer(body).data)


class GPUSeriesView(_GPUReadView):
    @extend_schema(parameters=SERIES_PARAMETERS, responses=SeriesResponseSerializer, operation_id="telemetry_gpu")
    def get(self, request, pk: int):
        return self._series(request, [get_object_or_404(GPU, pk=pk)])


class NodeSeriesView(_GPUReadView):
    @extend_schema(parameters=SERIES_PARAMETERS, responses=SeriesResponseSerializer, operation_id="telemetry_node")
    def get(self, request, pk: int):
        node = get_object_or_404(Node, pk=pk)
        return self._series(request, node.gpus.order_by("index"))


class FleetSeriesView(_GPUReadView):
    @extend_schema(
        parameters=SERIES_PARAMETERS, responses=FleetSeriesResponseSerializer, operation_id="telemetry_fleet"
    )
    def get(self, request):
        query = SeriesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        window = query.window()
        body = {
            "start": window.start,
            "end": window.end,
            "step": max(window.step_s, 60),
            "providers": fleet_series(window=window),
        }
        return Response(FleetSeriesResponseSerializer(body).data)


class RemoteWritePermission(FleetdeckModelPermissions):
    """Writing telemetry stores samples on GPUs and may register new ones: needs fleet.add_gpu and
    fleet.change_gpu (operators and admins have both), and a token that is not read-only."""

    perms_map = {
        **FleetdeckModelPermissions.perms_map,
        "POST": ["%(app_label)s.add_%(model_name)s", "%(app_label)s.change_%(model_name)s"],
    }


class RemoteWriteResultSerializer(serializers.Serializer):
    samples_received = serializers.IntegerField()
    samples_accepted = serializers.IntegerField()
    samples_ignored = serializers.IntegerField(help_text="Series of metrics Fleetdeck does not store.")
    samples_skipped = serializers.IntegerField()
    skipped = serializers.DictField(child=serializers.IntegerField(), help_text="Skipped samples by reason.")
    rows_stored = serializers.IntegerField()
    rows_already_stored = serializers.IntegerField()
    gpus_created = serializers.IntegerField()
    health_events = serializers.IntegerField()
    unknown_gpus = serializers.DictField(child=serializers.CharField(), help_text="UUID: why it was skipped.")
    warnings = serializers.ListField(child=serializers.CharField())


class RemoteWriteView(APIView):
    """Prometheus remote-write 1.0 receiver (docs/telemetry.md, "Prometheus remote-write").

    204: everything stored; 200 with a JSON body: stored, but some samples were skipped (the body says why);
    400: the body cannot be read (Prometheus does not retry a 4xx); 413: over TELEMETRY_REMOTE_WRITE_MAX_BYTES;
    415: not snappy-compressed protobuf remote-write 1.0.
    """

    queryset = GPU.objects.none()  # for the model permissions
    permission_classes = [RemoteWritePermission]
    parser_classes: list = []  # the body is read raw, never through DRF's parsers

    @extend_schema(
        # The body is not JSON: a snappy-compressed protobuf prometheus.WriteRequest (remote-write 1.0), sent by
        # Prometheus, never by hand; described here rather than as a request schema.
        request=None,
        description=(
            "Prometheus remote-write 1.0: body = snappy block-compressed protobuf prometheus.WriteRequest, "
            "headers Content-Encoding: snappy, Content-Type: application/x-protobuf. "
            "See docs/telemetry.md, 'Prometheus remote-write'."
        ),
        responses={204: None, 200: RemoteWriteResultSerializer},
        operation_id="telemetry_remote_write",
    )
    def post(self, request):
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        content_type = request.headers.get("Content-Type", "").strip().lower()
        version = request.headers.get("X-Prometheus-Remote-Write-Version", "")
        if encoding != "snappy":
            return Response({"detail": "Content-Encoding must be snappy."}, status=415)
        if not content_type.startswith("application/x-protobuf") or "io.prometheus.write.v2" in content_type:
            return Response({"detail": "Expected application/x-protobuf, remote-write 1.0."}, status=415)
        if version and not version.startswith(("0.1", "1.")):
            return Response({"detail": f"Remote-write version {version} is not supported; use 1.0."}, status=415)
        limit = settings.TELEMETRY_REMOTE_WRITE_MAX_BYTES
        try:
            length = int(request.headers.get("Content-Length") or 0)
        except ValueError:
            return Response({"detail": "Bad Content-Length."}, status=400)
        # Read at most one byte over the limit (a body declared larger is refused unread): never request.body,
        # whose DATA_UPLOAD_MAX_MEMORY_SIZE check is not this limit.
        body = request._request.read(limit + 1) if length <= limit else b""
        try:
            result = remote_write_receive(body, source=request.user.get_username(), declared_length=length)
        except RemoteWriteError as exc:
            return Response({"detail": exc.reason}, status=exc.status)
        if not result.skipped and not result.unknown_gpus:
            return Response(status=204)
        return Response(RemoteWriteResultSerializer(result.as_dict()).data, status=200)


urlpatterns = [
    path("telemetry/remote-write", RemoteWriteView.as_view(), name="telemetry-remote-write"),
    path("telemetry/gpus/<int:pk>/", GPUSeriesView.as_view(), name="telemetry-gpu"),
    path("telemetry/nodes/<int:pk>/", NodeSeriesView.as_view(), name="telemetry-node"),
    path("telemetry/fleet/", FleetSeriesView.as_view(), name="telemetry-fleet"),
]

"""The Prometheus remote-write 1.0 message types (``prometheus.WriteRequest``), built at runtime from a descriptor.

Only the fields Fleetdeck reads are declared (prompb/remote.proto and types.proto): a WriteRequest's
``timeseries``, each with its ``labels`` and float ``samples``. Everything else a sender adds (metadata,
exemplars, native histograms) is an unknown field to this schema and is skipped by the parser, as protobuf
does for any field a reader does not know. Field numbers and types are those of the upstream files, so the
same classes also build real request bodies (tests, the benchmark).
"""

from __future__ import annotations

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(name="fleetdeck/prometheus_remote.proto", package="prometheus")
    proto.syntax = "proto3"

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        msg = proto.message_type.add(name=name)
        for field_name, number, label, kind, type_name in fields:
            field = msg.field.add(name=field_name, number=number, label=label, type=kind)
            if type_name:
                field.type_name = type_name

    message(
        "WriteRequest",
        ("timeseries", 1, _F.LABEL_REPEATED, _F.TYPE_MESSAGE, ".prometheus.TimeSeries"),
    )
    message(
        "TimeSeries",
        ("labels", 1, _F.LABEL_REPEATED, _F.TYPE_MESSAGE, ".prometheus.Label"),
        ("samples", 2, _F.LABEL_REPEATED, _F.TYPE_MESSAGE, ".prometheus.Sample"),
    )
    message(
        "Label",
        ("name", 1, _F.LABEL_OPTIONAL, _F.TYPE_STRING, ""),
        ("value", 2, _F.LABEL_OPTIONAL, _F.TYPE_STRING, ""),
    )
    message(
        "Sample",
        ("value", 1, _F.LABEL_OPTIONAL, _F.TYPE_DOUBLE, ""),
        ("timestamp", 2, _F.LABEL_OPTIONAL, _F.TYPE_INT64, ""),
    )
    # The same wire format, read faster (fleet.telemetry.remote_write) as two views of one body: each series as
    # the raw bytes of its TimeSeries message (WriteRequestRaw), and each series' samples alone, its labels
    # left unread (WriteRequestSamples); the label part of a series' bytes keys a cache of what it maps to.
    message(
        "WriteRequestRaw",
        ("timeseries", 1, _F.LABEL_REPEATED, _F.TYPE_BYTES, ""),
    )
    message(
        "WriteRequestSamples",
        ("timeseries", 1, _F.LABEL_REPEATED, _F.TYPE_MESSAGE, ".prometheus.TimeSeriesSamples"),
    )
    message(
        "TimeSeriesSamples",
        ("samples", 2, _F.LABEL_REPEATED, _F.TYPE_MESSAGE, ".prometheus.Sample"),
    )
    return proto


# A pool of our own: the default pool may already hold a "prometheus" package from another library.
_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())
WriteRequest = message_factory.GetMessageClass(_pool.FindMessageTypeByName("prometheus.WriteRequest"))
TimeSeries = message_factory.GetMessageClass(_pool.FindMessageTypeByName("prometheus.TimeSeries"))
Label = message_factory.GetMessageClass(_pool.FindMessageTypeByName("prometheus.Label"))
Sample = message_factory.GetMessageClass(_pool.FindMessageTypeByName("prometheus.Sample"))
WriteRequestRaw = message_factory.GetMessageClass(_pool.FindMessageTypeByName("prometheus.WriteRequestRaw"))
WriteRequestSamples = message_factory.GetMessageClass(_pool.FindMessageTypeByName("prometheus.WriteRequestSamples"))


def write_request_body(series, *, compress: bool = True) -> bytes:
    """A remote-write body as Prometheus sends it: ``series`` is an iterable of (labels dict, [(value, ms)])."""
    request = WriteRequest()
    for labels, samples in series:
        ts = request.timeseries.add()
        # Prometheus sends the labels sorted by name.
        ts.labels.extend(Label(name=name, value=value) for name, value in sorted(labels.items()))
        ts.samples.extend(Sample(value=value, timestamp=ms) for value, ms in samples)
    raw = request.SerializeToString()
    return bytes(cramjam.snappy.compress_raw(raw)) if compress else raw

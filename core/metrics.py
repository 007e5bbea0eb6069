"""Request latency for the app's own /metrics (docs/metrics.md): a histogram by view, method and status.

The histogram lives in prometheus_client's default registry. Under gunicorn's several worker processes each
process only sees its own requests, so when ``PROMETHEUS_MULTIPROC_DIR`` is set (config/gunicorn.py sets it)
prometheus_client writes every process's figures to files there and the /metrics view adds them up
(dashboard.metrics_access). Labels stay bounded: the URL pattern's name (never the path), a known method or
``other``, the status code.
"""

from __future__ import annotations

import time

from prometheus_client import Histogram

UNRESOLVED_VIEW = "<unresolved>"  # no URL pattern matched (a 404, a static file served by WhiteNoise)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds: a page answers in tens of milliseconds; an export or a slow database shows in the upper buckets.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

REQUEST_SECONDS = Histogram(
    "fleetdeck_http_request_duration_seconds",
    "Seconds the web process took to answer a request, by URL pattern name, method and status.",
    ["view", "method", "status"],
    buckets=LATENCY_BUCKETS,
)


def request_view_label(request) -> str:
    """The request's URL pattern name (``namespace:name``, or the view's dotted path when unnamed)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return UNRESOLVED_VIEW
    return match.view_name or UNRESOLVED_VIEW


def request_method_label(request) -> str:
    """The request's method when it is a standard one, else ``other`` (a client must not invent labels)."""
    method = (request.method or "").upper()
    return method if method in KNOWN_METHODS else "other"


class RequestMetricsMiddleware:
    """Time every request from here inwards and observe it in ``fleetdeck_http_request_duration_seconds``.

    Put it first in MIDDLEWARE so the time includes the other middleware. Django turns a view's exception into
    a response (500) before it reaches here, so failed requests are counted too.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        REQUEST_SECONDS.labels(
            view=request_view_label(request),
            method=request_method_label(request),
            status=str(response.status_code),
        ).observe(time.perf_counter() - started)
        return response

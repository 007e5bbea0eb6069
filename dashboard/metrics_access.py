"""``GET /metrics``: the app's own metrics for Prometheus, for allowed networks and/or a bearer token only.

Who may scrape (docs/metrics.md): a client address inside METRICS_ALLOWED_NETWORKS (default the loopback
addresses; empty: any address) and, when METRICS_TOKEN is set, ``Authorization: Bearer <token>`` (compared in
constant time). Outside the networks → 403; token missing → 401; token wrong → 403. With neither a token nor a
network the endpoint is closed (403), never open. The client address is REMOTE_ADDR; X-Forwarded-For only
counts when METRICS_TRUST_X_FORWARDED_FOR says a proxy in front sets it (its last entry is then used);
otherwise a proxied request (X-Forwarded-For or Forwarded present) is outside every network, so a local
reverse proxy cannot open the endpoint to the internet.

The answer is the request-latency histogram (core.metrics; every gunicorn process's when
PROMETHEUS_MULTIPROC_DIR is set) and the figures ``dashboard.metrics.FleetdeckCollector`` reads at scrape time.
"""

from __future__ import annotations

import hmac
import ipaddress
import os

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess

# The classic text format every Prometheus 2.x reads (the app names nothing that needs 1.0.0's UTF-8 names).
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from dashboard.metrics import FleetdeckCollector

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks_parse(values) -> list[IPNetwork]:
    """CIDR strings (``10.0.0.0/8``, ``::1/128``, a bare address) as networks; a clear error for a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"METRICS_ALLOWED_NETWORKS: {value!r} is not a network; use CIDRs such as 10.0.0.0/8,::1/128."
            ) from None
    return networks


def client_address(request) -> str:
    """The scraping client's address: REMOTE_ADDR, or X-Forwarded-For's last entry when a setting trusts it.

    A request that came through a proxy the settings do not trust has no known address (""): REMOTE_ADDR is the
    proxy's own, often 127.0.0.1, and must not let every client behind it in.
    """
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if settings.METRICS_TRUST_X_FORWARDED_FOR:
        if forwarded:
            return forwarded[-1]
    elif forwarded or request.META.get("HTTP_FORWARDED"):
        return ""
    return request.META.get("REMOTE_ADDR", "")


def address_allowed(address: str, networks: list[IPNetwork]) -> bool:
    """Whether ``address`` lies in one of ``networks`` (an unparsable address never does)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 from a dual-stack socket is 127.0.0.1
    return any(ip.version == net.version and ip in net for net in networks)


def _refusal(status: int, reason: str, *, challenge: bool = False) -> HttpResponse:
    response = HttpResponse(f"{reason}\n", status=status, content_type="text/plain; charset=utf-8")
    if challenge:
        response["WWW-Authenticate"] = 'Bearer realm="fleetdeck-metrics"'
    return response


def metrics_refusal(request) -> HttpResponse | None:
    """The 401/403 answer for a client that may not scrape, or None when it may."""
    token = settings.METRICS_TOKEN
    networks = networks_parse(settings.METRICS_ALLOWED_NETWORKS)
    if not token and not networks:
        return _refusal(403, "Metrics are closed: set METRICS_TOKEN or METRICS_ALLOWED_NETWORKS.")
    if networks and not address_allowed(client_address(request), networks):
        return _refusal(403, "This address may not read the metrics (METRICS_ALLOWED_NETWORKS).")
    if token:
        scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return _refusal(401, "A bearer token is required (METRICS_TOKEN).", challenge=True)
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            return _refusal(403, "Wrong metrics token.")
    return None


class _Registry:
    """The process-local registry's metrics (the request histogram, process and Python figures)."""

    def collect(self):
        """Everything prometheus_client's default registry holds."""
        return REGISTRY.collect()


def metrics_registry() -> CollectorRegistry:
    """A registry for one scrape: request latency (all processes' in multiprocess mode) and the app's figures."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Registry())
    registry.register(FleetdeckCollector())
    return registry


@require_GET
@login_not_required
@never_cache
def metrics(request) -> HttpResponse:
    """The Prometheus text exposition of the app's own metrics, for allowed clients only."""
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_PLAIN_0_0_4)

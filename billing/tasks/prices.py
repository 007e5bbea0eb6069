"""Celery tasks of the price catalogue (queue ``billing``)."""

import logging

from celery import shared_task

from billing.pricelist import PriceListError, PriceListUnavailable, price_list_refresh
from fleet.choices import ProviderKind
from fleet.models import Site

logger = logging.getLogger(__name__)
DEFAULT_REGION = "us-east-1"
REFRESH_SOFT_TIME_LIMIT_S = 900
REFRESH_TIME_LIMIT_S = 960


@shared_task(
    name="billing.tasks.prices_refresh",
    ignore_result=True,
    autoretry_for=(PriceListUnavailable,),
    retry_backoff=60,
    max_retries=3,
    soft_time_limit=REFRESH_SOFT_TIME_LIMIT_S,
    time_limit=REFRESH_TIME_LIMIT_S,
)
def prices_refresh(regions: list[str] | None = None) -> None:
    """Refresh AWS on-demand prices from the Price List API for ``regions`` (default: every AWS site's region)."""
    if not regions:
        found = Site.objects.filter(provider__kind=ProviderKind.AWS).exclude(region="").values_list("region", flat=True)
        regions = sorted(set(found)) or [DEFAULT_REGION]
    for region in regions:
        try:
            price_list_refresh(region=region)
        except PriceListUnavailable:
            raise
        except PriceListError as exc:  # refused (credentials, permissions): a retry would be refused too
            logger.error("AWS price refresh for %s failed: %s", region, exc)

"""Choice sets of the billing app."""

from django.db import models


class PriceSource(models.TextChoices):
    """Where a price row came from; an override beats every other source for the hours it covers."""

    CATALOGUE = "catalogue", "Shipped catalogue"
    AWS_PRICE_LIST = "aws-price-list", "AWS Price List API"
    OVERRIDE = "override", "Admin override"


class PurchaseOption(models.TextChoices):
    """Which purchase options a negotiated discount applies to."""

    ALL = "all", "All"
    ON_DEMAND = "on-demand", "On-demand and reserved"
    SPOT = "spot", "Spot"


class LocationClass(models.TextChoices):
    """How far data travels between two locations: what egress rates are keyed by."""

    SAME_ZONE = "same-zone", "Same zone"
    SAME_REGION = "same-region", "Same region, another zone"
    SAME_CONTINENT = "same-continent", "Another region, same continent"
    OTHER_CONTINENT = "other-continent", "Another continent"
    INTERNET = "internet", "Internet"
    OTHER_CLOUD = "other-cloud", "Another cloud or on-prem"


class EgressCause(models.TextChoices):
    """Why data moved."""

    PLACEMENT = "placement", "Placement moved a dataset"
    COST_EXPLORER = "cost-explorer", "AWS Cost Explorer"
    MANUAL = "manual", "Entered by hand"


class ReportPeriod(models.TextChoices):
    """How often a report subscription sends."""

    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"


class DeliveryStatus(models.TextChoices):
    """Where one report delivery stands."""

    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending (or the sender died: sent again, same Message-ID)"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (will retry)"


class BudgetAlertKind(models.TextChoices):
    """What a budget alert says."""

    THRESHOLD = "threshold", "Spend passed a threshold"
    FORECAST = "forecast", "Forecast over budget"


class CommitmentKind(models.TextChoices):
    """What a cloud commitment is called where it was bought."""

    RESERVED_INSTANCE = "reserved-instance", "Reserved instances"
    SAVINGS_PLAN = "savings-plan", "Savings plan"
    COMMITTED_USE = "committed-use", "Committed-use discount"


class CommitmentBasis(models.TextChoices):
    """What a commitment commits to: a number of instances, or an amount of spend per hour."""

    COUNT = "count", "Instances"
    SPEND = "spend", "Spend per hour"


class BilledCostSource(models.TextChoices):
    """Where a day's billed cost came from."""

    COST_EXPLORER = "cost-explorer", "AWS Cost Explorer"
    FOCUS = "focus", "FOCUS billing export"


class IntensitySource(models.TextChoices):
    """Where a site's grid carbon intensity for an hour comes from, in the order the ledger looks (billing.carbon)."""

    HOURLY = "hourly", "Imported hourly value"
    OPERATOR = "operator", "Operator's value for the site"
    DATASET = "dataset", "Shipped per-region dataset"
    UNKNOWN = "unknown", "Unknown"

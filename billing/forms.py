"""Forms of the billing pages."""

from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from billing.models import ReportSubscription

RECIPIENTS_MAX = 50
_SEPARATORS = re.compile(r"[,;\s]+")


def recipients_parse(value: str) -> list[str]:
    """Addresses from a comma-separated string (semicolons and line breaks also separate); each one validated.

    Raises ValidationError naming every bad address.
    """
    addresses = [a for a in _SEPARATORS.split(value or "") if a]
    errors = []
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            errors.append(ValidationError("“%(address)s” is not a valid e-mail address.", params={"address": address}))
    if errors:
        raise ValidationError(errors)
    if not addresses:
        raise ValidationError("Give at least one recipient.")
    if len(addresses) > RECIPIENTS_MAX:
        raise ValidationError(f"At most {RECIPIENTS_MAX} recipients.")
    return list(dict.fromkeys(addresses))  # once each, in the order given


class ReportSubscriptionForm(forms.ModelForm):
    """Create or edit a report subscription; recipients are typed comma-separated."""

    recipients = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="E-mail addresses, separated by commas.",
    )

    class Meta:
        model = ReportSubscription
        fields = ("name", "recipients", "period", "team", "enabled")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].empty_label = "Whole fleet"
        if self.instance.pk and not self.is_bound:
            self.initial["recipients"] = ", ".join(self.instance.recipients)

    def clean_recipients(self) -> list[str]:
        return recipients_parse(self.cleaned_data["recipients"])

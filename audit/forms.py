"""The Changes filter form, shared by the page and the API (one definition of every filter)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django import forms
from django.contrib.auth.models import User

from audit.context import INTERFACES
from audit.selectors import EVENT_DELETE, EVENT_INSERT, EVENT_UPDATE, ChangeFilters, object_type_choices


def _day_start(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


class ChangeFilterForm(forms.Form):
    """Object type and id, user, interface, event, and a range of UTC days (both ends included)."""

    object_type = forms.ChoiceField(required=False, label="Object type")
    object_id = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1, label="Object id")
    user = forms.ModelChoiceField(queryset=User.objects.order_by("username", "pk"), required=False)
    interface = forms.ChoiceField(required=False, choices=[("", "any"), *((i, i) for i in INTERFACES)])
    event = forms.ChoiceField(
        required=False, choices=[("", "any"), *((e, e) for e in (EVENT_INSERT, EVENT_UPDATE, EVENT_DELETE))]
    )
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["object_type"].choices = [("", "any"), *object_type_choices()]

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The last day comes before the first.")
        return data

    def filters(self) -> ChangeFilters:
        """The filters of the valid fields (call is_valid() first): a field in error does not narrow the list,
        the page says which was ignored, and an unbound form filters nothing."""
        if not self.is_bound:
            return ChangeFilters()
        data = self.cleaned_data
        user = data.get("user")
        return ChangeFilters(
            object_type=data.get("object_type") or "",
            object_id=data.get("object_id"),
            user=user.pk if user is not None else None,
            interface=data.get("interface") or "",
            event=data.get("event") or "",
            since=_day_start(data["since"]) if data.get("since") else None,
            until=_day_start(data["until"]) + timedelta(days=1) if data.get("until") else None,
        )

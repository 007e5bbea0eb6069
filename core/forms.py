"""Forms of the core app."""

from datetime import timedelta

from django import forms
from django.utils import timezone

EXPIRY_CHOICES = [("30", "30 days"), ("90", "90 days"), ("365", "1 year"), ("never", "Never")]


class APITokenForm(forms.Form):
    """Create an API token for yourself."""

    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. 'grafana'.")
    read_only = forms.BooleanField(required=False, initial=True, help_text="Only GET requests.")
    expires_in = forms.ChoiceField(choices=EXPIRY_CHOICES, initial="90")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the token a name.")
        return name

    def expires(self):
        """The expiry time the form asks for, or None for a token that never expires."""
        choice = self.cleaned_data["expires_in"]
        return None if choice == "never" else timezone.now() + timedelta(days=int(choice))

"""The buy-vs-rent page: per GPU model, the fleet's measured utilisation, what renting costs per GPU-hour
(on-demand, spot, with commitments) and what owning costs per used GPU-hour, with the break-even utilisation and
months (billing.buyrent), within the viewer's team scope; a what-if form recomputes it (HTMX partial)."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.shortcuts import render
from django.urls import path

from billing import buyrent, selectors
from core.api.fields import ascii_integer
from core.validators import validate_one_line
from fleet.catalog import GPU_SPECS
from fleet.scoping import team_scope

NUMBER = {"required": False, "min_value": 0, "decimal_places": 2, "max_digits": 12}


class PlainDecimalField(forms.DecimalField):
    """A decimal written in ASCII digits (``12.5``); "1e3", "NaN" and "١٢" are refused, as the API refuses them."""

    default_error_messages = {"invalid": "Expected a number such as 12.5 (ASCII digits, no exponent)."}

    def to_python(self, value):
        if value not in self.empty_values and not buyrent.PLAIN_NUMBER.fullmatch(str(value).strip()):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


class WholeNumberField(forms.IntegerField):
    """An integer written in ASCII digits (``48``): no "4.8", "48.0" or other scripts' digits, as in the API."""

    default_error_messages = {"invalid": "Expected a whole number written in ASCII digits (0-9)."}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        number = ascii_integer(str(value).strip())
        if number is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return number


class BuyRentForm(forms.Form):
    """The window (default: the last 30 days) and what-if figures; empty fields keep the fleet's own."""

    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    gpu_model = forms.CharField(
        label="GPU model", required=False, max_length=100, validators=[validate_one_line], widget=forms.Select
    )
    purchase_usd_per_gpu = PlainDecimalField(
        label="Purchase $ per GPU", **NUMBER, error_messages={"min_value": "A purchase price cannot be negative."}
    )
    amortisation_months = WholeNumberField(
        label="Amortisation (months)",
        required=False,
        min_value=1,
        max_value=buyrent.AMORTISATION_MONTHS_MAX,
        error_messages={"min_value": "The amortisation period is at least 1 month."},
    )
    ops_usd_per_gpu_year = PlainDecimalField(
        label="Operations $ per GPU-year",
        **NUMBER,
        error_messages={"min_value": "An operations cost cannot be negative."},
    )
    utilisation = PlainDecimalField(label="Utilisation %", required=False, max_digits=9, decimal_places=6)
    usd_per_kwh = PlainDecimalField(
        label="Electricity $/kWh",
        required=False,
        min_value=0,
        max_value=buyrent.USD_PER_KWH_MAX,
        max_digits=12,
        decimal_places=6,
        error_messages={"min_value": "An electricity price cannot be negative."},
    )

    def __init__(self, *args, today, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today
        models = [("", "Every model in the fleet")] + [(key, key) for key in GPU_SPECS]
        chosen = (self.data.get("gpu_model") or "") if self.is_bound else ""
        if chosen and chosen not in GPU_SPECS:
            models.append((chosen, chosen))  # keep a model outside the catalogue selectable (the fleet's NVML name)
        self.fields["gpu_model"].widget.choices = models

    def clean_utilisation(self):
        value = self.cleaned_data.get("utilisation")
        if value is not None and (problem := buyrent.utilisation_problem(value)):
            raise forms.ValidationError(problem)
        return value

    def clean(self):
        cleaned = super().clean()
        if "date_from" in self.errors or "date_to" in self.errors:
            return cleaned
        start, last = buyrent.window_resolve(
            first=cleaned.get("date_from"), last=cleaned.get("date_to"), today=self.today
        )
        errors = selectors.period_errors(start=start, last=last)
        for name, message in errors.items():
            self.add_error("date_from" if name == "from" else "date_to", message)
        if not errors:
            cleaned["start"], cleaned["last"] = start, last
        return cleaned

    def what_if(self) -> buyrent.WhatIf:
        """The what-if figures given (a valid form)."""
        data = self.cleaned_data
        return buyrent.WhatIf(
            purchase_usd_per_gpu=data.get("purchase_usd_per_gpu"),
            amortisation_months=data.get("amortisation_months"),
            ops_usd_per_gpu_year=data.get("ops_usd_per_gpu_year"),
            utilisation_pct=data.get("utilisation"),
            usd_per_kwh=data.get("usd_per_kwh"),
        )


def buy_vs_rent(request):
    """Buy vs rent per GPU model; an HTMX request (the what-if form) gets only the results partial."""
    today = selectors.utc_today()
    scope = team_scope(request.user)
    form = BuyRentForm(request.GET or None, today=today)
    if not form.is_bound:
        form = BuyRentForm({}, today=today)
    context = {"form": form, "scoped": scope is not None}
    status = 200
    if form.is_valid():
        try:
            context["answer"] = buyrent.buy_vs_rent(
                start=form.cleaned_data["start"],
                end=form.cleaned_data["last"] + timedelta(days=1),
                teams=scope,
                today=today,
                gpu_model=form.cleaned_data["gpu_model"],
                what_if=form.what_if(),
            )
        except buyrent.BuyRentError as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
    if not form.is_valid():
        status = 400
    if request.htmx and not request.htmx.boosted:
        # htmx swaps only 2xx answers; the partial shows the form errors itself.
        return render(request, "billing/htmx/buyrent_results.html", context)
    return render(request, "billing/buyrent.html", context, status=status)


urlpatterns = [
    path("buy-vs-rent/", buy_vs_rent, name="buy-vs-rent"),
]

"""Report pages: subscriptions with their last delivery, create/edit/delete, a preview, and 'send now'."""

from __future__ import annotations

from datetime import timedelta

from csp.decorators import csp_update
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing.forms import ReportSubscriptionForm
from billing.models import ReportSubscription
from billing.reports.data import report_data
from billing.reports.delivery import report_send_now
from billing.reports.periods import report_period_current, report_period_last
from billing.reports.queries import RECENT_DELIVERIES, report_delivery_list, report_subscription_list
from billing.reports.render import report_render
from billing.tasks.reports import report_deliveries_enqueue
from fleet.scoping import team_scope

PREVIEW_CHOICES = {"last": "Last complete period", "current": "Current period so far"}


def _subscriptions(request):
    """The subscriptions the user may see: a viewer limited to teams sees only those teams' (fleet.scoping)."""
    return ReportSubscription.objects.restrict(request.user)


@permission_required("billing.view_reportsubscription", raise_exception=True)
def report_list(request):
    """Subscriptions with their latest delivery (failed ones with their error) and the recent deliveries."""
    scope = team_scope(request.user)  # once for both lists
    context = {
        "subscriptions": report_subscription_list().for_teams(scope),
        "deliveries": report_delivery_list().for_teams(scope)[:RECENT_DELIVERIES],
    }
    return render(request, "billing/report_list.html", context)


def _form_page(request, form, subscription=None):
    return render(request, "billing/report_form.html", {"form": form, "subscription": subscription})


@permission_required("billing.add_reportsubscription", raise_exception=True)
def report_create(request):
    """A new subscription."""
    form = ReportSubscriptionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.instance.created_by = request.user
        subscription = form.save()
        messages.success(request, f"Report “{subscription}” created.")
        return redirect("report-list")
    return _form_page(request, form)


@permission_required("billing.change_reportsubscription", raise_exception=True)
def report_edit(request, pk: int):
    """Change a subscription's recipients, period, scope or enabled flag."""
    subscription = get_object_or_404(_subscriptions(request), pk=pk)
    form = ReportSubscriptionForm(request.POST or None, instance=subscription)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Report “{subscription}” saved.")
        return redirect("report-list")
    return _form_page(request, form, subscription)


@permission_required("billing.delete_reportsubscription", raise_exception=True)
def report_delete(request, pk: int):
    """Confirm (GET) and delete (POST) a subscription with its delivery history."""
    subscription = get_object_or_404(_subscriptions(request), pk=pk)
    if request.method == "POST":
        subscription.delete()
        messages.success(request, f"Report “{subscription}” deleted.")
        return redirect("report-list")
    return render(request, "billing/report_confirm_delete.html", {"subscription": subscription})


@permission_required("billing.view_reportsubscription", raise_exception=True)
@csp_update({"style-src": ["'unsafe-inline'"]})  # the e-mail's HTML, shown in a srcdoc iframe, styles inline
def report_preview(request, pk: int):
    """The report as it would be emailed, for the last complete period or the current one so far."""
    subscription = get_object_or_404(_subscriptions(request).select_related("team"), pk=pk)
    which = request.GET.get("which", "last")
    if which not in PREVIEW_CHOICES:
        which = "last"
    bounds = report_period_current if which == "current" else report_period_last
    start, end = bounds(period=subscription.period, now=timezone.now())
    data = report_data(subscription=subscription, period_start=start, period_end=end)
    # The email references the chart by Content-ID; in the page the same PNG is embedded as a data: URI.
    rendered = report_render(data, embed_chart=True)
    context = {
        "subscription": subscription,
        "rendered": rendered,
        "which": which,
        "choices": PREVIEW_CHOICES,
        "can_send": request.user.has_perm("billing.change_reportsubscription"),
    }
    return render(request, "billing/report_preview.html", context)


@require_POST
@permission_required("billing.change_reportsubscription", raise_exception=True)
def report_send(request, pk: int):
    """'Send now': enqueue a manual delivery of the last complete period."""
    subscription = get_object_or_404(_subscriptions(request), pk=pk)
    with transaction.atomic():
        delivery = report_send_now(subscription=subscription)
        report_deliveries_enqueue(delivery_ids=[delivery.pk])
    last_day = delivery.period_end - timedelta(days=1)  # people read periods with their last day
    messages.success(
        request,
        f"Report “{subscription}” for {delivery.period_start:%Y-%m-%d} – {last_day:%Y-%m-%d} queued "
        f"for {', '.join(subscription.recipients)}; its status appears below.",
    )
    return redirect("report-list")


urlpatterns = [
    path("reports/", report_list, name="report-list"),
    path("reports/new/", report_create, name="report-create"),
    path("reports/<int:pk>/edit/", report_edit, name="report-edit"),
    path("reports/<int:pk>/delete/", report_delete, name="report-delete"),
    path("reports/<int:pk>/preview/", report_preview, name="report-preview"),
    path("reports/<int:pk>/send/", report_send, name="report-send"),
]

"""Scheduler pages: the queue with submit and what-if forms, "Place now" and its run's progress, a job's placement
with its alternatives."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.runs import run_stalled
from fleet.scoping import team_scope
from scheduler import carbon, jobs, placements, selectors, tasks
from scheduler.forms import JobForm, WhatIfForm
from scheduler.models import Job, PlaceRun
from scheduler.runs import PLACE_RUN_STALLED_AFTER
from scheduler.serializers import candidate_dict

HTMX_STOP_POLLING = 286  # htmx stops an hx-trigger="every …" poll on this status


def _is_partial(request) -> bool:
    return bool(request.htmx) and not request.htmx.boosted


def _queue_context(request) -> dict:
    """The queue of the jobs the user may see (their teams' only, for a viewer limited to teams), and the quotas
    of those teams with their usage."""
    queue = selectors.job_queue(user=request.user)
    return {
        "queue": queue,
        "quotas": selectors.quota_rows(user=request.user),
        "live": bool(queue.pending or queue.placed or queue.running),
    }


def scheduler(request):
    """The queue (pending with reasons, placed, running), the submit form and the what-if form."""
    context = _queue_context(request)
    if _is_partial(request) and request.htmx.target == "queue":
        response = render(request, "scheduler/htmx/queue.html", context)
        if not context["live"]:
            response.status_code = HTMX_STOP_POLLING
        return response
    scope = team_scope(request.user)
    context.update(job_form=JobForm(prefix="job", scope=scope), what_if_form=WhatIfForm(prefix="whatif", scope=scope))
    return render(request, "scheduler/scheduler.html", context)


@require_POST
def job_create(request):
    """Submit a job from the form; placement runs in the background (or with "Place now")."""
    if not request.user.has_perm("scheduler.add_job"):
        raise PermissionDenied
    scope = team_scope(request.user)
    form = JobForm(request.POST, prefix="job", scope=scope)
    if form.is_valid():
        job = jobs.job_submit(data=form.cleaned_data, user=request.user)
        tasks.jobs_place_enqueue()
        messages.success(request, f"Job {job.name} submitted; it is placed within a minute.")
        return redirect("scheduler-job", pk=job.pk)
    context = _queue_context(request)
    context.update(job_form=form, what_if_form=WhatIfForm(prefix="whatif", scope=scope))
    return render(request, "scheduler/scheduler.html", context, status=400)


@require_POST
def what_if(request):
    """Price a job on every feasible target without saving it; HTMX gets only the result table."""
    scope = team_scope(request.user)
    form = WhatIfForm(request.POST, prefix="whatif", scope=scope)
    candidates = None
    if form.is_valid():
        try:
            found, datasets = placements.job_what_if(data=form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            candidates = [candidate_dict(c, datasets=datasets) for c in found]
    status = 200 if form.is_valid() else 400
    if _is_partial(request):
        # htmx swaps only 2xx answers by default; the form errors come back as a 200 partial.
        return render(request, "scheduler/htmx/what_if.html", {"what_if_form": form, "candidates": candidates})
    context = _queue_context(request)
    context.update(job_form=JobForm(prefix="job", scope=scope), what_if_form=form, candidates=candidates)
    return render(request, "scheduler/scheduler.html", context, status=status)


@require_POST
def place_now(request):
    """Queue a placement run of every pending job (operators); HTMX gets the run's progress, which polls itself,
    a browser without JavaScript the run's page."""
    if not request.user.has_perm("scheduler.change_job"):
        raise PermissionDenied
    run = tasks.place_run_start(user=request.user)
    if _is_partial(request):
        # A worker that ran it already (eager Celery in development) makes it finished here.
        return _place_run_partial(request, PlaceRun.objects.get(pk=run.pk))
    return redirect("scheduler-place-run", pk=run.pk)


def place_run(request, pk: int):
    """A placement run's progress, then what it placed (the user's teams' jobs only); HTMX polls the partial until
    the run is finished, then stops and tells the queue to refresh."""
    if not request.user.has_perm("scheduler.view_placerun"):
        raise PermissionDenied
    run = get_object_or_404(PlaceRun, pk=pk)
    if not _is_partial(request):
        return render(request, "scheduler/place_run.html", _place_run_context(run, request.user))
    return _place_run_partial(request, run)


def _place_run_context(run: PlaceRun, user) -> dict:
    return {
        "run": run,
        "report": selectors.place_run_report(run, user=user),
        "stalled": run_stalled(run, within=PLACE_RUN_STALLED_AFTER),
        "stalled_after_min": int(PLACE_RUN_STALLED_AFTER.total_seconds() // 60),
    }


def _place_run_partial(request, run: PlaceRun):
    """The run's progress partial; once it has finished, htmx stops polling and the queue refreshes (polling also
    stops when no worker has finished it in PLACE_RUN_STALLED_AFTER: the partial says so)."""
    context = _place_run_context(run, request.user)
    response = render(request, "scheduler/htmx/place_run.html", context)
    if run.finished or context["stalled"]:
        response.status_code = HTMX_STOP_POLLING
        response["HX-Trigger"] = "placed"
    return response


def job_detail(request, pk: int):
    """One job: its request, its placement's cost breakdown per dataset, and the alternatives that lost; 404 for
    a job of a team the user may not see."""
    try:
        job = selectors.job_detail(pk=pk, user=request.user)
    except Job.DoesNotExist as exc:
        raise Http404("No such job.") from exc
    placements = list(job.placements.all())
    active = next((p for p in placements if p.active), None)
    return render(
        request,
        "scheduler/job_detail.html",
        {
            "job": job,
            "placement": active,
            "history": [p for p in placements if p is not active],
            "footprint": carbon.job_footprint(job=job),
        },
    )

"""URLs of the scheduler pages."""

from django.urls import path

from scheduler import views

urlpatterns = [
    path("scheduler/", views.scheduler, name="scheduler"),
    path("scheduler/jobs/", views.job_create, name="scheduler-job-create"),
    path("scheduler/jobs/<int:pk>/", views.job_detail, name="scheduler-job"),
    path("scheduler/what-if/", views.what_if, name="scheduler-what-if"),
    path("scheduler/place/", views.place_now, name="scheduler-place"),
    path("scheduler/place-runs/<int:pk>/", views.place_run, name="scheduler-place-run"),
]

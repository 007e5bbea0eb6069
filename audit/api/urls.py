"""Routes of the audit API, mounted under /api/v1/."""

from django.urls import path

from audit.api.views import ChangeListView

urlpatterns = [path("changes/", ChangeListView.as_view(), name="change-list")]

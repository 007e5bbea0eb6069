"""URLs of the audit trail's pages."""

from django.urls import path

from audit import views

urlpatterns = [
    path("changes/", views.change_list, name="change-list"),
    path("changes/<str:object_type>/<int:pk>/", views.object_history_panel, name="change-history"),
]

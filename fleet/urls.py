"""URLs of the fleet pages."""

from django.urls import path

from fleet import views

urlpatterns = [
    path("nodes/", views.node_list, name="node-list"),
    path("nodes/<int:pk>/", views.node_detail, name="node-detail"),
    path("nodes/<int:pk>/charts/", views.node_charts, name="node-charts"),
]

"""URLs of the billing pages: spend and reports."""

from billing.views import buyrent, reports, spend

urlpatterns = spend.urlpatterns + reports.urlpatterns + buyrent.urlpatterns

"""URLs of the billing pages: spend and reports."""

from billing.views import reports, spend

urlpatterns = spend.urlpatterns + reports.urlpatterns

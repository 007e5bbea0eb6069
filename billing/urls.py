"""URLs of the billing pages."""

urlpatterns = []

"""URLs of the scheduler pages."""

urlpatterns = []

"""Login required everywhere, except the API (which authenticates per request and answers 401)."""

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequiredMiddleware
from django_htmx.http import HttpResponseClientRedirect


class LoginRequiredMiddleware(DjangoLoginRequiredMiddleware):
    """Django's LoginRequiredMiddleware, leaving API paths to DRF and sending HTMX requests to a full login."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith(settings.FLEETDECK_API_PATH_PREFIXES):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)

    def handle_no_permission(self, request, view_func):
        response = super().handle_no_permission(request, view_func)
        if getattr(request, "htmx", False):
            # A redirect would swap the login page into a table cell; have the browser navigate instead.
            return HttpResponseClientRedirect(response["Location"])
        return response

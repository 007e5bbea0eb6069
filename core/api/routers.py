"""The API's router: detail routes match ASCII-digit ids only."""

from rest_framework.routers import DefaultRouter

# ASCII only (not \d): /nodes/١٢٣/ or /nodes/+123/ is no route (404), never node 123.
ID_PATH_REGEX = "[0-9]+"


class IdRouter(DefaultRouter):
    """DefaultRouter whose ``{lookup}`` matches ID_PATH_REGEX, unless a viewset sets its own lookup_value_regex
    (DRF's default, ``[^/.]+``, passed ``١٢٣`` to ``int()``, which reads it as 123)."""

    def get_lookup_regex(self, viewset, lookup_prefix=""):
        if hasattr(viewset, "lookup_value_regex"):
            return super().get_lookup_regex(viewset, lookup_prefix)
        lookup_url_kwarg = getattr(viewset, "lookup_url_kwarg", None) or getattr(viewset, "lookup_field", "pk")
        return f"(?P<{lookup_prefix}{lookup_url_kwarg}>{ID_PATH_REGEX})"

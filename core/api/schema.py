"""OpenAPI (drf-spectacular) descriptions of Fleetdeck's own API pieces."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Documents ``TokenAuthentication`` as an HTTP bearer scheme."""

    target_class = "core.api.authentication.TokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token from the Tokens page or `manage.py create_token`: `Bearer fdk_…`.",
        }

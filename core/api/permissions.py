"""API permissions: Django model permissions (reads need ``view_``) plus read-only tokens."""

from rest_framework import exceptions, permissions

from core.models import APIToken


class FleetdeckModelPermissions(permissions.DjangoModelPermissions):
    """Model permissions of the user's role, with GET needing ``view_``; a read-only token never writes."""

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if (
            isinstance(request.auth, APIToken)
            and request.auth.read_only
            and request.method not in permissions.SAFE_METHODS
        ):
            raise exceptions.PermissionDenied("This API token is read-only.")
        if getattr(view, "queryset", None) is None and not hasattr(view, "get_queryset"):
            return True  # not a model view (the API root): being authenticated is enough
        return super().has_permission(request, view)


class ModelActionPermissions(FleetdeckModelPermissions):
    """For verbs on an existing object (poll a node, sync a provider): POST needs ``change_``, not ``add_``."""

    perms_map = {**FleetdeckModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}

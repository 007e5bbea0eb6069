"""API tokens, background-process heartbeats and single sign-on identities."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.choices import HeartbeatComponent
from core.validators import validate_one_line


class APIToken(models.Model):
    """A bearer token for the REST API; only its SHA-256 is stored, the secret is shown once at creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(
        max_length=100, validators=[validate_one_line], help_text="What the token is for, e.g. 'grafana' or 'ci'."
    )
    prefix = models.CharField(max_length=12, help_text="The first characters of the token, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    read_only = models.BooleanField(default=True, help_text="A read-only token can only use GET/HEAD/OPTIONS.")
    created = models.DateTimeField(default=timezone.now, editable=False)
    expires = models.DateTimeField(null=True, blank=True, help_text="Empty means the token never expires.")
    last_used = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ("-created", "-pk")
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_expired(self) -> bool:
        """Whether the token is past its expiry."""
        return self.expires is not None and self.expires <= timezone.now()


class Heartbeat(models.Model):
    """When a background process (beat, or a worker serving one queue) was last seen alive."""

    component = models.CharField(max_length=16, choices=HeartbeatComponent.choices)
    name = models.CharField(max_length=64, blank=True, help_text="The queue, for a worker heartbeat.")
    hostname = models.CharField(max_length=255, blank=True)
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ("component", "name")
        constraints = [
            models.UniqueConstraint(fields=("component", "name"), name="%(app_label)s_%(class)s_unique_component"),
        ]

    def __str__(self) -> str:
        return f"{self.component}:{self.name}" if self.name else self.component


class OIDCIdentity(models.Model):
    """The single sign-on identity (the provider's issuer and subject) a user was created for (core.oidc)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_identity")
    issuer = models.CharField(max_length=255, help_text="The provider's iss claim.")
    subject = models.CharField(max_length=255, help_text="The provider's sub claim: stable, unlike user names.")
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "OIDC identity"
        verbose_name_plural = "OIDC identities"
        constraints = [
            models.UniqueConstraint(fields=("issuer", "subject"), name="%(app_label)s_%(class)s_unique_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} @ {self.issuer}"

"""Single sign-on with OpenID Connect (mozilla-django-oidc): who a provider's claims make a user, and as what.

A user is linked to the provider's (issuer, subject) in ``OIDCIdentity``, never matched by user name or e-mail,
so a local account (a break-glass admin) cannot be taken over by an identity that claims its name. The role comes
from the groups claim (``OIDC_ADMIN_GROUPS`` > ``OIDC_OPERATOR_GROUPS`` > ``OIDC_VIEWER_GROUPS``, else
``OIDC_DEFAULT_ROLE``, else the login is refused) and is re-synced at every login, as are memberships (teams are
fleet's: ``fleet.oidc`` extends ``sync_memberships``). Whatever goes wrong ends as one clear sentence that the
callback view shows on the login page (``request.oidc_error``); see docs/sso.md.
"""

from __future__ import annotations

import logging
import re
import unicodedata

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from core.choices import Role
from core.models import OIDCIdentity
from core.services import user_set_role

logger = logging.getLogger(__name__)

CALLBACK_URL_NAME = "oidc_authentication_callback"
USERNAME_MAX_LENGTH = 150
_NOT_USERNAME = re.compile(r"[^\w.@+-]+")
ROLE_ORDER = (Role.ADMIN, Role.OPERATOR, Role.VIEWER)  # highest first: the first that matches wins
AGAIN = "Sign in again; if it keeps happening, tell an administrator."


class SSORefused(Exception):
    """A sign-in that Fleetdeck refuses; the message (one sentence, no markup) is shown on the login page."""


def sso_enabled() -> bool:
    """Whether single sign-on is configured (``OIDC_RP_CLIENT_ID`` is set)."""
    return bool(getattr(settings, "OIDC_RP_CLIENT_ID", ""))


def axes_exempts_sso_callback(request, credentials) -> bool:
    """django-axes' whitelist hook: the single sign-on callback is neither throttled nor counted as a failure.

    A refused sign-in there is no password guess (the provider throttles its own form), and all of them come
    without a user name: counting them would lock every user behind one address out of single sign-on."""
    return request is not None and request.path_info == reverse(CALLBACK_URL_NAME)


def one_line(value: object, max_length: int) -> str:
    """``value`` as text on one line: control characters (newlines included) become spaces, then truncated."""
    if not isinstance(value, str):
        return ""
    text = "".join(" " if unicodedata.category(c).startswith("C") else c for c in value)
    return " ".join(text.split())[:max_length]


def sanitise_username(raw: str) -> str:
    """A Django user name from a claim: letters, digits and ``.@+-_`` kept, any other run of characters a ``-``."""
    text = _NOT_USERNAME.sub("-", unicodedata.normalize("NFKC", raw)).strip("-.")
    return text[:USERNAME_MAX_LENGTH].rstrip("-.")


def claim_groups(claims: dict) -> list[str]:
    """The group names of the groups claim; a missing claim is refused (the provider is not sending it)."""
    name = settings.OIDC_GROUPS_CLAIM
    if name not in claims:
        raise SSORefused(
            f"The identity provider sent no “{name}” claim, so Fleetdeck cannot tell your role. "
            "An administrator must add it to the provider's client (see docs/sso.md)."
        )
    value = claims[name]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise SSORefused(f"The identity provider's “{name}” claim is not a list of group names. {AGAIN}")
    return [item for item in value if isinstance(item, str)]


def role_for_groups(groups: list[str]) -> Role | None:
    """The highest role one of ``groups`` gives, else ``OIDC_DEFAULT_ROLE``, else None (refuse the login)."""
    mapped = {
        Role.ADMIN: settings.OIDC_ADMIN_GROUPS,
        Role.OPERATOR: settings.OIDC_OPERATOR_GROUPS,
        Role.VIEWER: settings.OIDC_VIEWER_GROUPS,
    }
    member_of = set(groups)
    for role in ROLE_ORDER:
        if member_of.intersection(mapped[role]):
            return role
    return Role(settings.OIDC_DEFAULT_ROLE) if settings.OIDC_DEFAULT_ROLE else None


def username_from_claims(claims: dict) -> str:
    """The user name a new user gets: ``OIDC_USERNAME_CLAIM`` (preferred_username), else the e-mail, sanitised."""
    name = settings.OIDC_USERNAME_CLAIM
    for claim in (name, "email"):
        value = claims.get(claim)
        if isinstance(value, str) and sanitise_username(value):
            return sanitise_username(value)
    raise SSORefused(
        f"The identity provider sent neither a usable “{name}” nor an “email” claim, so Fleetdeck cannot name "
        "your account. An administrator must add one of them to the provider's client (see docs/sso.md)."
    )


class OIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, linking users on (issuer, sub) and mapping groups to a role.

    Subclasses add memberships by extending ``sync_memberships`` (the settings name ``fleet.oidc``'s)."""

    def authenticate(self, request, **kwargs):
        """The code flow, only on the callback; a failure leaves its reason in ``request.oidc_error``."""
        if request is None or "nonce" not in kwargs or request.path_info != reverse(CALLBACK_URL_NAME):
            return None  # a password login, or one that did not come through the callback view
        try:
            return super().authenticate(request, **kwargs)
        except SSORefused as exc:
            message = str(exc)
        except jwt.ExpiredSignatureError:
            message = f"The identity provider's sign-in token has expired (is this server's clock right?). {AGAIN}"
        except (jwt.InvalidTokenError, SuspiciousOperation) as exc:
            message = f"The identity provider's answer could not be verified ({one_line(str(exc), 120)}). {AGAIN}"
        except requests.RequestException as exc:
            logger.warning("single sign-on: the provider did not answer: %r", str(exc)[:300])
            message = f"Fleetdeck could not get your sign-in from the identity provider. {AGAIN}"
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("single sign-on: malformed answer from the provider: %r", exc)
            message = f"The identity provider's answer was malformed. {AGAIN}"
        logger.warning("single sign-on refused: %s", message)
        request.oidc_error = message
        return None

    def verify_token(self, token, **kwargs):
        """The signature, expiry and nonce (mozilla-django-oidc), plus the audience and, if set, the issuer."""
        payload = super().verify_token(token, **kwargs)
        audience = payload.get("aud")
        audiences = [audience] if isinstance(audience, str) else list(audience or [])
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("the ID token was issued to another client")
        if settings.OIDC_OP_ISSUER and payload.get("iss") != settings.OIDC_OP_ISSUER:
            raise SuspiciousOperation("the ID token comes from another issuer")
        return payload

    def get_or_create_user(self, access_token, id_token, payload):
        """The user the ID token and userinfo claims (userinfo wins) stand for, created on the first login."""
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if not isinstance(userinfo, dict) or userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("userinfo is about another subject than the ID token")
        return self.user_from_claims({**payload, **userinfo})

    def user_from_claims(self, claims: dict):
        """Find (by issuer and sub) or create the user, then set their profile, role and memberships."""
        subject, issuer = claims.get("sub"), claims.get("iss") or ""
        if not isinstance(subject, str) or not subject or not isinstance(issuer, str):
            raise SSORefused(f"The identity provider sent no “sub” claim. {AGAIN}")
        groups = claim_groups(claims)
        role = role_for_groups(groups)
        identity = OIDCIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
        if role is None:
            if identity is not None:
                self.revoke(identity.user)  # a user taken out of every group keeps no role from before
            raise SSORefused(
                "Your account at the identity provider is in none of the groups that give a Fleetdeck role. "
                "Ask an administrator to add you to one."
            )
        try:
            with transaction.atomic():
                user = identity.user if identity else self.create_linked_user(claims, issuer=issuer, subject=subject)
                if not user.is_active:
                    raise SSORefused("This Fleetdeck account is disabled. Ask an administrator.")
                self.update_profile(user, claims)
                user_set_role(user=user, role=role)
                self.sync_memberships(user, groups)
        except IntegrityError:
            raise SSORefused(f"Another sign-in for this account was in progress. {AGAIN}") from None
        logger.info("single sign-on: %r signed in as %s", user.username, role.value)
        return user

    def create_linked_user(self, claims: dict, *, issuer: str, subject: str):
        """A new user (no usable password) linked to the identity; refused if a local user has the name."""
        username = username_from_claims(claims)
        users = get_user_model().objects
        if users.filter(username__iexact=username).exists():
            raise SSORefused(
                f"A Fleetdeck account named “{username}” already exists and is not linked to single sign-on, "
                "so it was not taken over. Ask an administrator to link or rename it (see docs/sso.md)."
            )
        user = users.create_user(username)  # no password: set_unusable_password
        OIDCIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        logger.info("single sign-on: created %r for subject %r", username, subject)
        return user

    def update_profile(self, user, claims: dict) -> None:
        """E-mail and names from the claims (one line each; an invalid e-mail is left out)."""
        email = one_line(claims.get("email"), 254)
        try:
            validate_email(email)
        except ValidationError:
            email = ""
        user.email = email
        user.first_name = one_line(claims.get("given_name"), 150)
        user.last_name = one_line(claims.get("family_name"), 150)
        user.save(update_fields=["email", "first_name", "last_name"])

    def sync_memberships(self, user, groups: list[str]) -> None:
        """Set memberships from ``groups``; nothing in core (``fleet.oidc`` adds teams)."""

    @transaction.atomic
    def revoke(self, user) -> None:
        """Take every role and membership from a linked user whom the provider no longer gives any."""
        user.groups.remove(*Group.objects.filter(name__in=Role.values))
        user.is_staff = False
        user.save(update_fields=["is_staff"])
        self.sync_memberships(user, [])

"""The login page (password form and the single sign-on button) and the OpenID Connect redirect views.

mozilla-django-oidc's views, made public (no login required), 404 while single sign-on is off, and turning every
failed callback (wrong state, the provider's error, a token that does not verify, a refused claim) into a
redirect to the login page with one clear message instead of a 400 or 500 page.
"""

from __future__ import annotations

import logging

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import NON_FIELD_ERRORS, SuspiciousOperation
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.utils.decorators import method_decorator
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from core.choices import Role
from core.oidc import AGAIN, one_line, sso_enabled

logger = logging.getLogger(__name__)

STATE_UNKNOWN = (
    "This single sign-on answer does not belong to a sign-in started in this browser, or was already used. "
    "Start again with “Sign in with single sign-on”."
)
# The authorisation endpoint's error codes (RFC 6749 4.1.2.1, OpenID Connect Core 3.1.2.6).
OAUTH_ERRORS = frozenset(
    [
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "interaction_required",
        "login_required",
        "account_selection_required",
        "consent_required",
        "invalid_request_uri",
        "invalid_request_object",
        "request_not_supported",
        "request_uri_not_supported",
        "registration_not_supported",
    ]
)
NO_CODE = f"The identity provider's answer had no authorisation code. {AGAIN}"


class FleetdeckAuthenticationForm(AuthenticationForm):
    """The password form; with single sign-on on and ``OIDC_LOCAL_LOGIN`` off, only admins and superusers
    (break-glass) pass."""

    def confirm_login_allowed(self, user):
        """Refuse a non-admin's password login when local login is reserved for break-glass admins."""
        super().confirm_login_allowed(user)
        admin = user.is_superuser or user.groups.filter(name=Role.ADMIN).exists()
        if sso_enabled() and not settings.OIDC_LOCAL_LOGIN and not admin:
            raise forms.ValidationError(
                "Password login is reserved for administrators here: use “Sign in with single sign-on”.",
                code="sso_only",
            )


class LoginView(auth_views.LoginView):
    """Django's login view, with the single sign-on button above the form when it is configured."""

    template_name = "core/login.html"
    authentication_form = FleetdeckAuthenticationForm

    def get_context_data(self, **kwargs):
        """Add whether to show the single sign-on button, and why a password login failed."""
        context = super().get_context_data(**kwargs, sso_enabled=sso_enabled())
        form = context["form"]
        if form.has_error(NON_FIELD_ERRORS, "sso_only"):
            context["login_error"] = form.non_field_errors()[0]
        elif form.errors:
            context["login_error"] = "Your user name and password did not match. Please try again."
        return context


@method_decorator(login_not_required, name="dispatch")
class OIDCAuthenticateView(OIDCAuthenticationRequestView):
    """Starts the sign-in: a redirect to the provider's authorisation endpoint (state, nonce, PKCE)."""

    def get(self, request):
        """Redirect to the provider, or 404 while single sign-on is off."""
        if not sso_enabled():
            raise Http404("Single sign-on is not configured.")
        return super().get(request)


@method_decorator(login_not_required, name="dispatch")
class OIDCCallbackView(OIDCAuthenticationCallbackView):
    """Where the provider sends the browser back; a failure lands on the login page with its reason."""

    failure_message = ""

    @property
    def failure_url(self):
        """The login page (``LOGIN_REDIRECT_URL_FAILURE`` is a URL name)."""
        return resolve_url(settings.LOGIN_REDIRECT_URL_FAILURE)

    def get(self, request):
        """Check the state and sign in (mozilla-django-oidc); a state this session never issued is a failure."""
        if not sso_enabled():
            raise Http404("Single sign-on is not configured.")
        if request.GET.get("error") and not self.state_issued():
            # Anyone can link here, and some providers drop the state on an error: an answer this session cannot
            # tie to its sign-in neither logs the user out (the library would) nor puts the link's free text on
            # our login page; only a standard OAuth error code is named.
            error = request.GET["error"]
            logger.warning("single sign-on error answer without a known state: %s", one_line(error, 60))
            self.failure_message = (
                f"The identity provider did not sign you in ({error})." if error in OAUTH_ERRORS else STATE_UNKNOWN
            )
            return self.login_failure()
        try:
            return super().get(request)
        except SuspiciousOperation as exc:  # raised only for a state not in the session
            logger.warning("single sign-on callback refused: %s", exc)
            self.failure_message = STATE_UNKNOWN
            return self.login_failure()

    def state_issued(self) -> bool:
        """Whether the answer's ``state`` is one this session issued and has not used yet."""
        return self.request.GET.get("state", "") in self.request.session.get("oidc_states", {})

    def login_failure(self):
        """Back to the login page with the reason as an error message."""
        messages.error(self.request, self.failure_reason())
        return HttpResponseRedirect(self.failure_url)

    def failure_reason(self) -> str:
        """One sentence saying why this callback did not sign the user in."""
        query = self.request.GET
        if self.failure_message:
            return self.failure_message
        if query.get("error"):
            error = one_line(query["error"], 60)
            description = one_line(query.get("error_description", ""), 200)
            said = f"{error}: {description}" if description else error
            return f"The identity provider did not sign you in ({said})."
        if getattr(self.request, "oidc_error", ""):
            return self.request.oidc_error
        if "code" not in query or "state" not in query:
            return NO_CODE
        if "oidc_states" not in self.request.session:
            return STATE_UNKNOWN
        return f"Single sign-on did not sign you in. {AGAIN}"

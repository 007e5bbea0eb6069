"""Bearer-token authentication against hashed ``APIToken`` rows."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from core.models import APIToken
from core.services import api_token_hash, api_token_touch

KEYWORDS = ("bearer", "token")


class TokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <token>`` (or ``Token <token>``); rejects unknown, expired and inactive ones."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode("latin-1").lower() not in KEYWORDS:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: expected 'Bearer <token>'.")
        try:
            secret = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The token contains invalid characters.") from None
        token = APIToken.objects.select_related("user").filter(key_hash=api_token_hash(secret)).first()
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if token.is_expired:
            raise exceptions.AuthenticationFailed("This token has expired; create a new one.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("The token's user is inactive.")
        api_token_touch(token=token)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'

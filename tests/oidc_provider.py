"""A real OpenID Connect provider on localhost for the single sign-on tests (oidc-provider-mock, in a thread).

``oidc_provider`` starts one per test; ``sso`` points the settings at it (from its discovery document) and puts
the backend in the chain; ``token_proxy`` stands in front of its token endpoint to hand back a doctored ID token,
the only way to receive a tampered or forged token through the real flow.
"""

from __future__ import annotations

import base64
import json
import threading
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import requests

with warnings.catch_warnings():
    # authlib (under the mock) warns about its own deprecations on import, nothing of ours; its module adds an
    # "always" filter when imported, so import it first and put the "ignore" in front (both end with the block).
    import authlib.deprecate

    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    import oidc_provider_mock

# The mock, issuing tokens, trips authlib's deprecation of an API it still uses: a mark for the modules using it.
QUIET_PROVIDER = pytest.mark.filterwarnings("ignore:get_jwt_config:DeprecationWarning")
CLIENT_ID = "fleetdeck"
CLIENT_SECRET = "a-test-client-secret"  # noqa: S105 - the mock accepts any
BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "fleet.oidc.FleetdeckOIDCBackend",
    "django.contrib.auth.backends.ModelBackend",
]


@dataclass
class Provider:
    """A running mock provider: its base URL and discovery document."""

    url: str
    config: dict

    def set_user(self, sub: str, claims: dict) -> None:
        """Register (or replace) the subject ``sub`` and the claims it is issued."""
        response = requests.put(f"{self.url}/users/{sub}", json=claims, timeout=5)
        assert response.status_code == 204, response.text


@contextmanager
def provider_running(**options):
    """A mock provider on a free localhost port for the duration of the block."""
    with oidc_provider_mock.run_server_in_thread(**options) as server:
        url = f"http://localhost:{server.server_port}"
        config = requests.get(f"{url}/.well-known/openid-configuration", timeout=5).json()
        yield Provider(url=url, config=config)


@pytest.fixture
def oidc_provider(monkeypatch):
    """A real OIDC provider over plain HTTP on localhost (authlib wants to be told that this is fine)."""
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    with provider_running() as provider:
        yield provider


def point_settings_at(settings, provider: Provider) -> None:
    """Configure single sign-on against ``provider`` as docs/sso.md says, from its discovery document."""
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = provider.config["authorization_endpoint"]
    settings.OIDC_OP_TOKEN_ENDPOINT = provider.config["token_endpoint"]
    settings.OIDC_OP_USER_ENDPOINT = provider.config["userinfo_endpoint"]
    settings.OIDC_OP_JWKS_ENDPOINT = provider.config["jwks_uri"]
    settings.OIDC_OP_ISSUER = provider.config["issuer"]
    settings.OIDC_VERIFY_KID = False  # the mock's ID tokens carry no "kid" (it has one key)
    settings.OIDC_ADMIN_GROUPS = ["fleet-admins"]
    settings.OIDC_OPERATOR_GROUPS = ["fleet-operators"]
    settings.OIDC_VIEWER_GROUPS = ["fleet-viewers"]
    settings.OIDC_DEFAULT_ROLE = ""
    settings.AUTHENTICATION_BACKENDS = BACKENDS


@pytest.fixture
def sso(settings, oidc_provider) -> Provider:
    """Single sign-on on, against the running provider."""
    point_settings_at(settings, oidc_provider)
    return oidc_provider


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWTs spell their segments."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_payload(token: str) -> dict:
    """The (unverified) payload of a JWT."""
    segment = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


@contextmanager
def token_proxy(upstream: str, doctor: Callable[[str], str] = str, *, request: Callable[[bytes], bytes] = bytes):
    """A token endpoint on localhost that forwards to ``upstream`` (the request body through ``request``) and
    passes the ID token it answers through ``doctor``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
            answer = requests.post(upstream, data=request(body), headers=headers, timeout=5)
            tokens = answer.json()
            if "id_token" in tokens:
                tokens["id_token"] = doctor(tokens["id_token"])
            out = json.dumps(tokens).encode()
            self.send_response(answer.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/token"
    finally:
        server.shutdown()
        server.server_close()


def sign_in(client, provider: Provider, sub: str, *, action: dict | None = None):
    """The real redirect flow without a browser: start here, answer the provider's form, follow it back.

    Returns the callback's response (a redirect to the overview, or to the login page with a message)."""
    start = client.get("/oidc/authenticate/")
    assert start.status_code == 302 and start["Location"].startswith(provider.config["authorization_endpoint"])
    answer = requests.post(start["Location"], data=action or {"sub": sub}, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    assert back.path == "/oidc/callback/"
    return client.get(f"{back.path}?{back.query}")


def expired_provider_options() -> dict:
    """Options for a provider whose ID tokens expired a minute before they were issued."""
    return {"access_token_max_age": timedelta(seconds=-60)}

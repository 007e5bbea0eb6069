"""Shared fixtures: users with roles, API clients authenticated by real tokens, the shared fixtures folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from core.choices import Role
from core.services import api_token_create, user_set_role
from tests.prometheus import prometheus  # noqa: F401 - the shared real-Prometheus peer fixture

ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("FLEETDECK_SHARED_DIR", ROOT.parent / "shared"))
ARTIFACTS_DIR = ROOT / "test-artifacts"


@pytest.fixture(autouse=True)
def _empty_cache():
    """Every test starts with an empty cache (the overview caches its figures for a few seconds)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def shared_fixtures() -> Path:
    """The real public data in ../shared/fixtures (present in the repo's workspace and on CI)."""
    path = SHARED_DIR / "fixtures"
    if not path.is_dir():
        pytest.skip(f"shared fixtures not found at {path}; set FLEETDECK_SHARED_DIR to the shared/ folder")
    return path


@pytest.fixture
def make_user(db):
    """Create a user with one role: make_user('viewer')."""
    counter = iter(range(1_000_000))

    def make(role: str = Role.ADMIN, username: str | None = None, password: str = "a-long-test-password"):
        user = get_user_model().objects.create_user(
            username=username or f"{role}-{next(counter)}", password=password, email=f"{role}@example.com"
        )
        user_set_role(user=user, role=Role(role))
        return user

    return make


@pytest.fixture
def api_client(make_user):
    """An APIClient authenticated with a real bearer token: api_client('operator', read_only=False)."""

    def client(role: str = Role.ADMIN, *, read_only: bool = False) -> APIClient:
        user = make_user(role)
        _, secret = api_token_create(user=user, name="test", read_only=read_only)
        c = APIClient()
        c.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        c.user = user
        return c

    return client


@pytest.fixture
def admin_api(api_client) -> APIClient:
    return api_client(Role.ADMIN)

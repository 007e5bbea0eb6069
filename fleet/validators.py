"""Validators for references that must never be secrets themselves, and for cloud identifiers."""

import os
import re
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

# A credential reference names where a credential lives; the secret itself is never stored.
CREDENTIAL_REF_RE = re.compile(r"^(adc|profile:[A-Za-z0-9_.+-]{1,64}|env:[A-Z_][A-Z0-9_]{0,127})$")
TOKEN_REF_RE = re.compile(r"^(env:[A-Z_][A-Z0-9_]{0,127}|file:/[^\s]{1,1023})$")
# Telemetry tokens are sent to whatever URL a node names, so only this namespace of variables may hold them.
TOKEN_ENV_PREFIX = "FLEETDECK_"  # noqa: S105 - a prefix of variable names, not a token
AWS_ACCOUNT_RE = re.compile(r"^\d{12}$")
GCP_PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
GPU_UUID_RE = re.compile(r"^(GPU|MIG)-[0-9A-Za-z-]{8,64}$")
SLUG_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def validate_credential_ref(value: str) -> None:
    """'' (the default credential chain), 'adc', 'profile:NAME' or 'env:VAR'."""
    if value and not CREDENTIAL_REF_RE.match(value):
        raise ValidationError(
            "Use a reference, never the secret: 'adc', 'profile:<aws profile>' or 'env:<VARIABLE_NAME>'.",
            code="invalid_credential_ref",
        )


def token_ref_problem(value: str) -> str:
    """Why a telemetry token reference may not be used ('' when it may).

    Allowed: 'env:FLEETDECK_…' variables, and 'file:' paths that, symlinks resolved, lie inside
    FLEETDECK_SECRETS_DIR (no folder configured: no file references).
    """
    if not TOKEN_REF_RE.match(value):
        return "Use a reference, never the token: 'env:FLEETDECK_<NAME>' or 'file:<path in FLEETDECK_SECRETS_DIR>'."
    scheme, _, target = value.partition(":")
    if scheme == "env" and not target.startswith(TOKEN_ENV_PREFIX):
        return f"Token variables must be named {TOKEN_ENV_PREFIX}…: other variables are not allowed."
    if scheme == "file" and token_file_path(target) is None:
        return "Token files must lie inside the secrets folder (FLEETDECK_SECRETS_DIR): this path is not allowed."
    return ""


def token_file_path(target: str) -> Path | None:
    """The real path of a token file if it lies inside FLEETDECK_SECRETS_DIR, else None."""
    if not settings.FLEETDECK_SECRETS_DIR:
        return None
    root = os.path.realpath(settings.FLEETDECK_SECRETS_DIR)
    path = os.path.realpath(target)
    if path == root or os.path.commonpath([root, path]) != root:
        return None
    return Path(path)


def validate_token_ref(value: str) -> None:
    """'' (no token) or an allowed reference naming where a telemetry bearer token is kept."""
    problem = value and token_ref_problem(value)
    if problem:
        raise ValidationError(problem, code="invalid_token_ref")


_HTTP_URL = URLValidator(schemes=["http", "https"], message="Use an http:// or https:// URL.")


def validate_telemetry_url(value: str) -> None:
    """An http:// or https:// URL: URLField alone also accepts ftp:// and ftps://.

    A function, not a URLValidator: DRF drops URLValidators from a URLField's validators.
    """
    _HTTP_URL(value)


def validate_gpu_uuid(value: str) -> None:
    """An NVML UUID: 'GPU-…' (or 'MIG-…' for a MIG device)."""
    if not GPU_UUID_RE.match(value):
        raise ValidationError("A GPU UUID looks like 'GPU-8b2c…' as nvidia-smi -L prints it.", code="invalid_uuid")


def validate_labels(value) -> None:
    """Labels are a flat object of string keys to string values, like cloud tags."""
    if not isinstance(value, dict):
        raise ValidationError("Labels must be an object of string keys to string values.", code="invalid_labels")
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > 128:
            raise ValidationError(f"Label key {key!r} must be a string of 1-128 characters.", code="invalid_labels")
        # PostgreSQL's jsonb cannot store U+0000; refuse it here rather than fail in the database.
        if "\x00" in key or (isinstance(item, str) and "\x00" in item):
            raise ValidationError(f"Label {key!r} contains a NUL character.", code="invalid_labels")
        if not isinstance(item, str) or len(item) > 256:
            raise ValidationError(
                f"Label {key!r} must have a string value of at most 256 characters.", code="invalid_labels"
            )

"""Validators for references that must never be secrets themselves, and for cloud identifiers."""

import re

from django.core.exceptions import ValidationError

# A credential reference names where a credential lives; the secret itself is never stored.
CREDENTIAL_REF_RE = re.compile(r"^(adc|profile:[A-Za-z0-9_.+-]{1,64}|env:[A-Z_][A-Z0-9_]{0,127})$")
TOKEN_REF_RE = re.compile(r"^(env:[A-Z_][A-Z0-9_]{0,127}|file:/[^\s]{1,1023})$")
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


def validate_token_ref(value: str) -> None:
    """'env:VAR' or 'file:/absolute/path' naming where a node's telemetry bearer token is kept."""
    if value and not TOKEN_REF_RE.match(value):
        raise ValidationError(
            "Use a reference, never the token: 'env:<VARIABLE_NAME>' or 'file:/absolute/path'.",
            code="invalid_token_ref",
        )


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

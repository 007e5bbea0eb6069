"""Token references of telemetry endpoints: resolve an allowed 'env:' or 'file:' reference to a bearer token.

The allow-list (``fleet.validators``) is checked again on every resolve; see docs/agent.md, "Trust model".
"""

from __future__ import annotations

import os
import re

from fleet.validators import token_file_path, token_ref_problem

# RFC 6750 allows fewer characters; anything printable without blanks is sent, anything else never is.
BEARER_TOKEN_RE = re.compile(r"[\x21-\x7e]+")


class TokenRefError(Exception):
    """A node's token reference cannot be resolved (not allowed, variable unset, file unreadable)."""


def token_resolve(token_ref: str) -> str | None:
    """The bearer token an allowed reference names ('env:FLEETDECK_…' or 'file:…'), None for no token.

    The allow-list is checked here again, not only when the reference was written: rows written before it
    existed, or a symlink swapped since, must not resolve.
    """
    if not token_ref:
        return None
    problem = token_ref_problem(token_ref)
    if problem:
        raise TokenRefError(f"token reference refused: {problem}")
    scheme, _, target = token_ref.partition(":")
    if scheme == "env":
        value = os.environ.get(target, "").strip()
        if not value:
            raise TokenRefError(f"token variable {target} is not set on the worker")
    else:
        value = _token_file_read(target)
    if not BEARER_TOKEN_RE.fullmatch(value):
        raise TokenRefError(f"the token {token_ref} names is not a valid bearer token (printable, no blanks)")
    return value


def _token_file_read(target: str) -> str:
    path = token_file_path(target)
    if path is None:
        raise TokenRefError("token reference refused: this path is not allowed")
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise TokenRefError(f"token file {target} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise TokenRefError(f"token file {target} is not text") from None
    if not value:
        raise TokenRefError(f"token file {target} is empty")
    return value

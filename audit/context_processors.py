"""Template context for every page: whether the user may read the audit trail (the "Changes" nav link)."""

from audit.selectors import audit_visible


def audit(request) -> dict:
    """``audit_visible``: the same rule the Changes page and API apply (audit.selectors.audit_visible)."""
    user = getattr(request, "user", None)
    return {"audit_visible": bool(user is not None and audit_visible(user))}

"""Errors that list what is wrong with a file, one problem per line (``line 4: …``), for commands, pages and
the API alike."""

from __future__ import annotations


def errors_text(errors: list[str], *, limit: int) -> str:
    """The first ``limit`` problems, one per line, then "… and N more" when there are more."""
    shown = errors[:limit]
    more = len(errors) - len(shown)
    return "\n".join(shown + ([f"… and {more} more"] if more else []))


class LineErrors(Exception):
    """A file that cannot be imported; ``errors`` says why, one line per problem; the message shows the first
    ``max_shown`` of them."""

    max_shown = 50

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__(errors_text(errors, limit=self.max_shown))

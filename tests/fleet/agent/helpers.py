"""A tiny Prometheus text-format parser and an HTTP fetch for the agent tests."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field

SAMPLE_RE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    """One series line: metric name, labels, value as written."""

    name: str
    labels: dict[str, str]
    value: str


@dataclass
class Exposition:
    """A parsed /metrics body."""

    types: dict[str, str] = field(default_factory=dict)
    helps: dict[str, str] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)

    def names(self) -> set[str]:
        return {sample.name for sample in self.samples}

    def select(self, name: str, **labels: str) -> list[Sample]:
        """Samples of ``name`` whose labels include ``labels``."""
        return [s for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    def value(self, name: str, **labels: str) -> float:
        """The value of the one sample of ``name`` with these labels."""
        (sample,) = self.select(name, **labels)
        return float(sample.value)


def parse_exposition(text: str) -> Exposition:
    """Parse the Prometheus text format (HELP/TYPE optional, other comments ignored)."""
    out = Exposition()
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(maxsplit=3)
            if len(parts) >= 3 and parts[1] == "TYPE":
                out.types[parts[2]] = parts[3].strip()
            elif len(parts) >= 3 and parts[1] == "HELP":
                out.helps[parts[2]] = parts[3] if len(parts) > 3 else ""
            continue
        match = SAMPLE_RE.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = dict(LABEL_RE.findall(match["labels"] or ""))
        out.samples.append(Sample(match["name"], labels, match["value"]))
    return out


@dataclass(frozen=True)
class HttpResult:
    """Status, headers and body of one HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


def fetch(url: str, *, token: str | None = None, headers: dict[str, str] | None = None) -> HttpResult:
    """GET ``url`` with urllib, returning error statuses instead of raising."""
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 - http://127.0.0.1 only
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return HttpResult(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as exc:
        return HttpResult(exc.code, dict(exc.headers.items()), exc.read())

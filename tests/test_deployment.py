"""The web process is started the same way everywhere: gunicorn's timeouts agree in Procfile.demo, the Dockerfile
and docker-compose.yml, and docs/deployment.md states them."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import yaml
from django.conf import settings

from fleet.telemetry.fetch import STRAGGLER_GRACE_S

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_FLAGS = ("--timeout", "--graceful-timeout")


def procfile_web() -> list[str]:
    """The ``web:`` command of Procfile.demo, as words."""
    for line in (ROOT / "Procfile.demo").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() == "web":
            return shlex.split(command)
    raise AssertionError("Procfile.demo has no web: line")


def dockerfile_cmd() -> list[str]:
    """The Dockerfile's exec-form ``CMD``, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    [cmd] = re.findall(r"^CMD (\[.*\])$", text, flags=re.MULTILINE)
    return json.loads(cmd)


def compose_web() -> dict:
    """The ``web`` service of docker-compose.yml."""
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"]


def flag_values(words: list[str]) -> dict[str, int]:
    """The values of gunicorn's timeout flags in a command line (``--flag N`` or ``--flag=N``)."""
    values = {}
    for i, word in enumerate(words):
        name, eq, value = word.partition("=")
        if name in TIMEOUT_FLAGS:
            values[name] = int(value if eq else words[i + 1])
    return values


def test_the_three_web_commands_set_the_same_explicit_timeouts():
    commands = {"Procfile.demo": procfile_web(), "Dockerfile": dockerfile_cmd(), "compose": compose_web()["command"]}
    for where, words in commands.items():
        assert words[0] == "gunicorn", where
        assert set(flag_values(words)) == set(TIMEOUT_FLAGS), f"{where} leaves a gunicorn timeout at its default"
    values = {where: flag_values(words) for where, words in commands.items()}
    assert len({tuple(sorted(v.items())) for v in values.values()}) == 1, values


def test_the_timeouts_leave_room_for_what_runs_inside_a_request():
    timeouts = flag_values(dockerfile_cmd())
    # Poll-now (POST /api/v1/nodes/{id}/poll/) runs in the request: it waits for its fetch at most until the poll's
    # deadline plus the straggler grace (a hung name lookup). Cloud syncs run in a worker (the endpoint answers 202).
    assert timeouts["--timeout"] > settings.TELEMETRY_POLL_DEADLINE_S + STRAGGLER_GRACE_S + 10
    assert timeouts["--timeout"] >= 2 * settings.TELEMETRY_FETCH_DEADLINE_S
    assert 0 < timeouts["--graceful-timeout"] <= timeouts["--timeout"]


def test_compose_gives_the_web_container_longer_than_gunicorns_graceful_timeout_to_stop():
    grace = compose_web()["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) > flag_values(compose_web()["command"])["--graceful-timeout"]


def test_the_deployment_guide_states_the_timeouts():
    guide = (ROOT / "docs" / "deployment.md").read_text()
    for flag, value in flag_values(dockerfile_cmd()).items():
        assert f"{flag} {value}" in guide, flag


def test_the_image_copies_every_first_party_package():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["importlinter"]["root_packages"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    missing = [p for p in packages if f"COPY {p} ./{p}" not in dockerfile]
    assert not missing, f"the Dockerfile does not copy {missing}: the image would not start"
